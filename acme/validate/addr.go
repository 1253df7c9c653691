package validate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/varmenne/varmenne/acme"
)

// nonPublic4 are the IPv4 ranges no validation connects to unless an operator allows
// them: IANA's special-purpose registry, less the few that are globally reachable.
var nonPublic4 = prefixes(
	"0.0.0.0/8",       // "this network"
	"10.0.0.0/8",      // private (RFC 1918)
	"100.64.0.0/10",   // carrier-grade NAT (RFC 6598)
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, cloud metadata at 169.254.169.254
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation (TEST-NET-1)
	"192.88.99.0/24",  // deprecated 6to4 relay anycast
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation (TEST-NET-2)
	"203.0.113.0/24",  // documentation (TEST-NET-3)
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, broadcast 255.255.255.255 included
)

// public6 is where public IPv6 unicast lives (global unicast, 2000::/3); everything
// outside it — ::, ::1, fc00::/7, fe80::/10, ff00::/8, 64:ff9b::/96, 100::/64 — is not
// public. nonPublic6 are the special ranges inside it.
var (
	public6    = netip.MustParsePrefix("2000::/3")
	nonPublic6 = prefixes(
		"2001::/23",     // IETF protocol assignments: Teredo, benchmarking, ORCHID
		"2001:db8::/32", // documentation
		"2002::/16",     // 6to4: it embeds an IPv4 address we would have to check
		"3fff::/20",     // documentation (RFC 9637)
	)
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// isPublic reports whether ip is a globally reachable unicast address. It expects an
// unmapped address: ::ffff:10.0.0.1 must be checked as 10.0.0.1.
func isPublic(ip netip.Addr) bool {
	if ip.Is4() {
		return !containedIn(ip, nonPublic4)
	}
	return public6.Contains(ip) && !containedIn(ip, nonPublic6)
}

// IsPublic reports whether ip is a globally reachable unicast address, by the rules
// validation uses; IPv4-mapped IPv6 addresses are judged as IPv4. Other packages that
// connect out on a client's or operator's behalf (policy/webhook) use it too.
func IsPublic(ip netip.Addr) bool { return isPublic(ip.Unmap().WithZone("")) }

func containedIn(ip netip.Addr, nets []netip.Prefix) bool {
	for _, p := range nets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// allowed reports whether validation may connect to ip.
func (v *Validator) allowed(ip netip.Addr) bool {
	return isPublic(ip) || containedIn(ip, v.cfg.AllowedNets)
}

// resolve looks host up through the configured resolver and returns the addresses to
// dial: the first allowed IPv6 and the first allowed IPv4 address, in the resolver's
// order of preference (RFC 6724). A second address is a fallback when the first
// cannot be connected to; more would only stretch the attempt.
//
// An IP identifier's address (RFC 8738) is not resolved: it is the one address to
// dial, under the same rule of public addresses or --validation-allow ranges.
//
// publicOnly refuses the --validation-allow ranges too: a redirect from a name
// that resolved to a public address may not lead into a non-public network,
// allowed or not, or the CA would fetch internal pages for anyone.
func (v *Validator) resolve(ctx context.Context, host string, publicOnly bool) ([]netip.Addr, error) {
	allowed := v.allowed
	if publicOnly {
		allowed = isPublic
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip = ip.Unmap().WithZone(""); !allowed(ip) {
			return nil, acme.Errorf(acme.Connection, "%s is a non-public address; validation does not connect there", ip)
		}
		return []netip.Addr{ip}, nil
	}
	ips, err := v.lookupAddrs(ctx, host)
	if err != nil {
		return nil, err
	}
	var pick, refused []netip.Addr
	var have4, have6 bool
	for _, ip := range ips {
		ip = ip.Unmap().WithZone("")
		switch {
		case !allowed(ip):
			refused = append(refused, ip)
		case ip.Is4() && !have4:
			have4 = true
			pick = append(pick, ip)
		case ip.Is6() && !have6:
			have6 = true
			pick = append(pick, ip)
		}
	}
	if len(pick) == 0 {
		return nil, refusedError(host, refused)
	}
	return pick, nil
}

// refusedError says which addresses were refused and why.
func refusedError(host string, refused []netip.Addr) *acme.Error {
	const show = 4
	var list []string
	for i, ip := range refused {
		if i == show {
			list = append(list, fmt.Sprintf("%d more", len(refused)-show))
			break
		}
		list = append(list, ip.String())
	}
	what := "a non-public address"
	if len(refused) > 1 {
		what = "non-public addresses"
	}
	return acme.Errorf(acme.Connection,
		"%s resolves only to %s, %s; validation does not connect there", host, strings.Join(list, ", "), what)
}

// lookupAddrs asks the configured DNS servers for host's AAAA and A records,
// following CNAMEs, IPv6 first. Nothing else answers: not /etc/hosts, not the
// system's resolver.
func (v *Validator) lookupAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	var ips []netip.Addr
	var failed error
	nx := 0
	for _, typ := range []dnsmessage.Type{dnsmessage.TypeAAAA, dnsmessage.TypeA} {
		set, err := v.lookup(ctx, host, typ)
		if err != nil {
			failed = err
			continue
		}
		if set.nxdomain {
			nx++
		}
		for _, rr := range set.records {
			switch r := rr.(type) {
			case *dnsmessage.AAAAResource:
				ips = append(ips, netip.AddrFrom16(r.AAAA))
			case *dnsmessage.AResource:
				ips = append(ips, netip.AddrFrom4(r.A))
			}
		}
	}
	switch {
	case len(ips) > 0:
		return ips, nil
	case failed != nil:
		return nil, acme.Errorf(acme.DNS, "%s", failed)
	case nx > 0:
		return nil, acme.Errorf(acme.DNS, "%s does not exist in DNS (NXDOMAIN)", host)
	}
	return nil, acme.Errorf(acme.DNS, "%s has no A or AAAA records", host)
}

// pinKey carries a hop's *pin in the request context to dialPinned.
type pinKey struct{}

// pin is what one hop may connect to: addresses resolved and checked for its host.
type pin struct {
	addrs []netip.Addr
	port  int
	// attempt is the validation attempt's context. net/http dials under a context
	// detached from the request's cancellation (so a late connection can be pooled);
	// ours must not outlive the attempt.
	attempt context.Context

	mu      sync.Mutex
	dialled netip.Addr // the last address tried, for the error detail
}

func (p *pin) last() netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialled
}

// dialPinned is the transport's only way out. It ignores the address net/http asks
// for and dials the hop's checked addresses, so a name is never resolved twice and a
// rebinding DNS answer cannot redirect the connection.
func (v *Validator) dialPinned(ctx context.Context, _, _ string) (net.Conn, error) {
	p, ok := ctx.Value(pinKey{}).(*pin)
	if !ok || len(p.addrs) == 0 {
		return nil, errors.New("validate: no checked address to dial")
	}
	var errs []error
	for _, ip := range p.addrs {
		p.mu.Lock()
		p.dialled = ip
		p.mu.Unlock()
		c, err := v.dial(p.attempt, "tcp", net.JoinHostPort(ip.String(), strconv.Itoa(p.port)))
		if err == nil {
			// Closing at the attempt's end also ends a TLS handshake or a read that
			// net/http would otherwise leave waiting on a silent server.
			context.AfterFunc(p.attempt, func() { c.Close() })
			return c, nil
		}
		errs = append(errs, err)
		if p.attempt.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}
