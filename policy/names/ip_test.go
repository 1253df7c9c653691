package names

import (
	"context"
	"crypto/x509"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/acme"
)

func ipID(v string) acme.Identifier { return acme.Identifier{Type: acme.IdentifierIP, Value: v} }

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// One row per rule of ip identifiers (RFC 8738) at newOrder.
func TestPluginIPIdentifiers(t *testing.T) {
	nets := prefixes("192.0.2.0/24", "2001:db8:10::/48")
	www := acme.Identifier{Type: acme.IdentifierDNS, Value: "www.example.fi"}
	long71 := acme.Identifier{Type: acme.IdentifierDNS, Value: strings.Repeat("a", 60) + ".example.fi"}
	tests := []struct {
		name   string
		nets   []netip.Prefix
		ids    []acme.Identifier
		want   acme.ErrorKind
		detail string
		subs   int
	}{
		{"an IPv4 address in an approved network beside a DNS name is accepted", nets, []acme.Identifier{www, ipID("192.0.2.10")}, "", "", 0},
		{"an IPv6 address in an approved network is accepted, in any spelling", nets, []acme.Identifier{ipID("2001:DB8:10:0::1"), www}, "", "", 0},
		{"an address alone is refused: a DNS name is required", nets, []acme.Identifier{ipID("192.0.2.10")}, acme.RejectedIdentifier, "a DNS name is required", 1},
		{"two addresses alone are refused with one subproblem each", nets, []acme.Identifier{ipID("192.0.2.10"), ipID("2001:db8:10::1")}, acme.RejectedIdentifier, "a DNS name is required", 2},
		{"an address outside the approved networks is refused", nets, []acme.Identifier{www, ipID("198.51.100.1")}, acme.RejectedIdentifier, "outside the networks approved for organisation " + testOrgOID + " (allowed: 192.0.2.0/24, 2001:db8:10::/48)", 1},
		{"an organisation without networks gets no addresses", nil, []acme.Identifier{www, ipID("192.0.2.10")}, acme.RejectedIdentifier, "allowed: none; an operator approves them with", 1},
		{"an address with a zone is malformed", nets, []acme.Identifier{www, ipID("fe80::1%eth0")}, acme.Malformed, "zone", 1},
		{"an IPv4-mapped IPv6 address is malformed", nets, []acme.Identifier{www, ipID("::ffff:192.0.2.10")}, acme.Malformed, "request the IPv4 address 192.0.2.10", 1},
		{"a host name in an ip identifier is malformed", nets, []acme.Identifier{www, ipID("www.example.fi")}, acme.Malformed, "not an IP address", 1},
		{"a bracketed IPv6 address is malformed", nets, []acme.Identifier{www, ipID("[2001:db8:10::1]")}, acme.Malformed, "not an IP address", 1},
		{"the unspecified address is refused", prefixes("0.0.0.0/8"), []acme.Identifier{www, ipID("0.0.0.0")}, acme.RejectedIdentifier, "not a unicast address", 1},
		{"a multicast address is refused", prefixes("224.0.0.0/4"), []acme.Identifier{www, ipID("224.0.0.1")}, acme.RejectedIdentifier, "not a unicast address", 1},
		{"the CN rule applies to the first DNS name, even after an address", nets, []acme.Identifier{ipID("192.0.2.10"), long71}, acme.RejectedIdentifier, "common name", 1},
	}
	p := newPlugin(t, nil, false)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := orderRequest([]string{"example.fi"}, tt.ids...)
			r.AllowedNetworks = tt.nets
			ae := wantKind(t, p.CheckOrder(context.Background(), r), tt.want)
			if ae == nil {
				return
			}
			if !strings.Contains(ae.Detail, tt.detail) && !strings.Contains(ae.Subproblems[0].Detail, tt.detail) {
				t.Errorf("detail %q (subproblem %q) does not say %q", ae.Detail, ae.Subproblems[0].Detail, tt.detail)
			}
			if len(ae.Subproblems) != tt.subs {
				t.Errorf("%d subproblems %+v, want %d", len(ae.Subproblems), ae.Subproblems, tt.subs)
			}
			for _, sp := range ae.Subproblems {
				if sp.Identifier == nil || sp.Identifier.Type == "" {
					t.Errorf("subproblem %q names no identifier", sp.Detail)
				}
			}
		})
	}
}

// At finalize the CSR carries exactly the order's DNS names and addresses.
func TestCheckCSRNamesAddresses(t *testing.T) {
	key := newKey(t)
	order := []acme.Identifier{{Type: acme.IdentifierDNS, Value: "www.example.fi"}, ipID("192.0.2.10"), ipID("2001:db8:10::1")}
	ip := net.ParseIP
	tests := []struct {
		name string
		tmpl x509.CertificateRequest
		want acme.ErrorKind
	}{
		{"the names and addresses of the order are accepted", x509.CertificateRequest{DNSNames: []string{"www.example.fi"}, IPAddresses: []net.IP{ip("2001:db8:10::1"), ip("192.0.2.10")}}, ""},
		{"a missing address is badCSR", x509.CertificateRequest{DNSNames: []string{"www.example.fi"}, IPAddresses: []net.IP{ip("192.0.2.10")}}, acme.BadCSR},
		{"an extra address is badCSR", x509.CertificateRequest{DNSNames: []string{"www.example.fi"}, IPAddresses: []net.IP{ip("192.0.2.10"), ip("2001:db8:10::1"), ip("192.0.2.11")}}, acme.BadCSR},
		{"an address twice is badCSR", x509.CertificateRequest{DNSNames: []string{"www.example.fi"}, IPAddresses: []net.IP{ip("192.0.2.10"), ip("192.0.2.10"), ip("2001:db8:10::1")}}, acme.BadCSR},
		{"an address as a dNSName is badCSR", x509.CertificateRequest{DNSNames: []string{"www.example.fi", "192.0.2.10"}, IPAddresses: []net.IP{ip("2001:db8:10::1")}}, acme.BadCSR},
		{"the DNS name missing is badCSR", x509.CertificateRequest{IPAddresses: []net.IP{ip("192.0.2.10"), ip("2001:db8:10::1")}}, acme.BadCSR},
	}
	var orderNames []string
	for _, id := range order {
		orderNames = append(orderNames, Canonical(id))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := x509.ParseCertificateRequest(makeCSR(t, key, &tt.tmpl))
			if err != nil {
				t.Fatal(err)
			}
			wantKind(t, CheckCSRNames(csr, orderNames), tt.want)
		})
	}
}

func TestCanonical(t *testing.T) {
	for _, tt := range []struct {
		id   acme.Identifier
		want string
	}{
		{acme.Identifier{Type: acme.IdentifierDNS, Value: "WWW.Example.FI"}, "www.example.fi"},
		{ipID("2001:DB8:0:0::1"), "2001:db8::1"},
		{ipID("192.0.2.10"), "192.0.2.10"},
	} {
		if got := Canonical(tt.id); got != tt.want {
			t.Errorf("Canonical(%+v) = %q, want %q", tt.id, got, tt.want)
		}
		if acme.IdentifierOf(tt.want).Type != tt.id.Type {
			t.Errorf("IdentifierOf(%q) is not of type %s", tt.want, tt.id.Type)
		}
	}
}

func TestParseNetwork(t *testing.T) {
	for _, tt := range []struct {
		in, want string // want "" means refused
	}{
		{"192.0.2.0/24", "192.0.2.0/24"},
		{"2001:db8:10::/48", "2001:db8:10::/48"},
		{"192.0.2.7", "192.0.2.7/32"},
		{"2001:db8::7", "2001:db8::7/128"},
		{"192.0.2.7/24", ""},
		{"0.0.0.0/0", ""},
		{"::ffff:192.0.2.0/120", ""},
		{"example.fi", ""},
		{"192.0.2.0/33", ""},
	} {
		got, err := ParseNetwork(tt.in)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("ParseNetwork(%q) = %s, want a refusal", tt.in, got)
		case tt.want != "" && (err != nil || got.String() != tt.want):
			t.Errorf("ParseNetwork(%q) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

// An EAB key narrows what the organisation is approved for and never widens it.
func TestNarrow(t *testing.T) {
	org := []string{"example.fi", "apteekki.example"}
	for _, tt := range []struct {
		name      string
		key, want []string
	}{
		{"an unlimited key gets the organisation's domains", nil, org},
		{"a key's subdomain narrows", []string{"www.example.fi"}, []string{"www.example.fi"}},
		{"a key's domain the organisation no longer holds is dropped", []string{"www.example.fi", "muu.fi"}, []string{"www.example.fi"}},
		{"a key broader than the organisation gets only the organisation's", []string{"example"}, []string{"apteekki.example"}},
		{"a key with none of the organisation's domains gets nothing", []string{"muu.fi"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := NarrowDomains(org, tt.key); !slices.Equal(got, tt.want) {
				t.Errorf("NarrowDomains(%v, %v) = %v, want %v", org, tt.key, got, tt.want)
			}
		})
	}
	orgNets := prefixes("192.0.2.0/24", "2001:db8:10::/48")
	for _, tt := range []struct {
		name      string
		key, want []netip.Prefix
	}{
		{"an unlimited key gets the organisation's networks", nil, orgNets},
		{"a key's smaller network narrows", prefixes("192.0.2.128/25"), prefixes("192.0.2.128/25")},
		{"a key's broader network gets the organisation's", prefixes("192.0.0.0/16"), prefixes("192.0.2.0/24")},
		{"a key's network outside the organisation's gets nothing", prefixes("198.51.100.0/24"), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := NarrowNetworks(orgNets, tt.key); !slices.Equal(got, tt.want) {
				t.Errorf("NarrowNetworks(%v) = %v, want %v", tt.key, got, tt.want)
			}
		})
	}
}
