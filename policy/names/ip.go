package names

import (
	"net/netip"
	"strings"

	"github.com/varmenne/varmenne/acme"
)

// ParseIP reads the value of an ip identifier (RFC 8738 section 3): an IPv4 address in
// dotted decimal or an IPv6 address in its text form, without a zone or brackets. It
// returns the address or an *acme.Error (malformed) saying what to send instead.
// IPv4-mapped IPv6 addresses are refused, so that one address has one spelling.
func ParseIP(value string) (netip.Addr, error) {
	shown := show(value)
	ip, err := netip.ParseAddr(value)
	switch {
	case err != nil:
		return netip.Addr{}, acme.Errorf(acme.Malformed,
			"%s is not an IP address; an ip identifier holds an IPv4 address such as 192.0.2.10 or an IPv6 address such as 2001:db8::10", shown)
	case ip.Zone() != "":
		return netip.Addr{}, acme.Errorf(acme.Malformed, "%s carries an IPv6 zone, which a certificate cannot hold; remove the %%zone", shown)
	case ip.Is4In6():
		return netip.Addr{}, acme.Errorf(acme.Malformed, "%s is an IPv4-mapped IPv6 address; request the IPv4 address %s", shown, ip.Unmap())
	case ip.IsUnspecified(), ip.IsMulticast(), ip.IsLinkLocalUnicast(), ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.Addr{}, acme.Errorf(acme.RejectedIdentifier,
			"%s is not a unicast address a server can be reached at; request the server's own address", shown)
	}
	return ip, nil
}

// Canonical is the one spelling of an identifier's value: the lower-cased name of a
// dns identifier, the RFC 5952 text of an ip identifier's address. A value that does
// not parse is returned lower-cased; the plugin refuses it before anyone stores it.
func Canonical(id acme.Identifier) string {
	if id.Type == acme.IdentifierIP {
		if ip, err := ParseIP(id.Value); err == nil {
			return ip.String()
		}
	}
	return Normalize(id.Value)
}

// InNetworks reports whether ip lies in one of nets.
func InNetworks(ip netip.Addr, nets []netip.Prefix) bool {
	for _, n := range nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// ParseNetwork reads an approved network: a CIDR prefix such as 192.0.2.0/24 or
// 2001:db8:10::/48, or a single address (a /32 or /128). The prefix must be the
// network's own address (192.0.2.0/24, not 192.0.2.7/24), so that what an operator
// typed is what is approved.
func ParseNetwork(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		if _, err := netip.ParseAddr(s); err != nil {
			return netip.Prefix{}, acme.Errorf(acme.Malformed, "%s is not a network; write it as a CIDR prefix such as 192.0.2.0/24 or a single address", show(s))
		}
		ip, err := ParseIP(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(ip, ip.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return netip.Prefix{}, acme.Errorf(acme.Malformed, "%s is not a network; write it as a CIDR prefix such as 192.0.2.0/24", show(s))
	case p.Addr().Is4In6():
		return netip.Prefix{}, acme.Errorf(acme.Malformed, "%s is an IPv4-mapped IPv6 prefix; write the IPv4 prefix", show(s))
	case p.Masked() != p:
		return netip.Prefix{}, acme.Errorf(acme.Malformed, "%s has host bits set; the network is %s", show(s), p.Masked())
	case p.Bits() == 0:
		return netip.Prefix{}, acme.Errorf(acme.Malformed, "%s is every address; approve the organisation's own networks", show(s))
	}
	return p, nil
}

// NarrowNetworks is the part of the organisation's networks an EAB key limited to
// keyNets may name: every address in both. With no keyNets the key is not limited.
func NarrowNetworks(orgNets, keyNets []netip.Prefix) []netip.Prefix {
	if len(keyNets) == 0 {
		return orgNets
	}
	var out []netip.Prefix
	for _, k := range keyNets {
		for _, o := range orgNets {
			switch {
			case o.Bits() <= k.Bits() && o.Contains(k.Addr()):
				out = append(out, k)
			case k.Bits() < o.Bits() && k.Contains(o.Addr()):
				out = append(out, o)
			}
		}
	}
	return out
}

// NarrowDomains is the part of the organisation's domains an EAB key limited to
// keyDomains may name: a key's domain inside one of the organisation's, or an
// organisation's domain inside one of the key's. A key never widens what the
// organisation is approved for; with no keyDomains the key is not limited.
func NarrowDomains(orgDomains, keyDomains []string) []string {
	if len(keyDomains) == 0 {
		return orgDomains
	}
	var out []string
	for _, k := range keyDomains {
		if Within(k, orgDomains) {
			out = append(out, k)
		}
	}
	for _, o := range orgDomains {
		if Within(o, keyDomains) && !Within(o, out) {
			out = append(out, o)
		}
	}
	return out
}
