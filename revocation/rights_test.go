package revocation

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/store"
)

// TestAccountMay is the narrowing table: who may revoke or download a certificate
// (the same rule for both).
func TestAccountMay(t *testing.T) {
	const org, otherOrg = "1.2.246.10.1.10.0", "1.2.246.10.2.10.0"
	o := &store.Organisation{OID: org, Domains: []string{"x.test", "y.test"},
		Networks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}}
	key := func(domains []string, nets ...string) *store.EABKey {
		k := &store.EABKey{KID: "kid-" + strings.Join(append(append([]string{}, domains...), nets...), ","), OrgOID: org, Domains: domains, Status: store.EABBound}
		for _, n := range nets {
			k.Networks = append(k.Networks, netip.MustParsePrefix(n))
		}
		return k
	}
	account := func(id string, k *store.EABKey) *store.Account {
		return &store.Account{ID: id, OrgOID: k.OrgOID, EABKID: k.KID, Status: "valid"}
	}
	cert := func(owner string, names ...string) *store.Certificate {
		return &store.Certificate{Serial: "01ab", OrgOID: org, AccountID: owner, Names: names}
	}
	wide := key(nil)
	sub := key([]string{"sub.x.test"})
	net := key(nil, "192.0.2.0/28")
	both := key([]string{"sub.x.test"}, "192.0.2.0/28")
	stranger := &store.EABKey{KID: "kid-other", OrgOID: otherOrg, Status: store.EABBound}

	tests := []struct {
		name string
		acct *store.Account
		org  *store.Organisation
		ek   *store.EABKey
		c    *store.Certificate
		ok   bool
	}{
		{"the owner may, whatever its narrowing", account("a", sub), o, sub, cert("a", "www.y.test"), true},
		{"the owner may even when its key cannot be read", account("a", sub), nil, nil, cert("a", "www.x.test"), true},
		{"an unnarrowed key acts for the whole organisation", account("b", wide), o, wide, cert("a", "www.x.test", "192.0.2.200"), true},
		{"an unnarrowed key: also names the organisation no longer holds", account("b", wide), o, wide, cert("a", "old.z.test"), true},
		{"narrowed to sub.x.test: a certificate of sub.x.test", account("b", sub), o, sub, cert("a", "sub.x.test"), true},
		{"narrowed to sub.x.test: a name below it", account("b", sub), o, sub, cert("a", "api.sub.x.test", "*.sub.x.test"), true},
		{"narrowed to sub.x.test: www.x.test is outside", account("b", sub), o, sub, cert("a", "www.x.test"), false},
		{"narrowed to sub.x.test: the parent x.test is outside", account("b", sub), o, sub, cert("a", "x.test"), false},
		{"narrowed to sub.x.test: *.x.test is outside", account("b", sub), o, sub, cert("a", "*.x.test"), false},
		{"narrowed to sub.x.test: one name outside refuses the whole certificate", account("b", sub), o, sub, cert("a", "sub.x.test", "www.x.test"), false},
		{"narrowed to domains only: the organisation's networks stay open, as for orders", account("b", sub), o, sub, cert("a", "sub.x.test", "192.0.2.7"), true},
		{"narrowed to domains only: an address outside the organisation's networks", account("b", sub), o, sub, cert("a", "198.51.100.1"), false},
		{"narrowed to a network: an address in it", account("b", net), o, net, cert("a", "192.0.2.9"), true},
		{"narrowed to a network: an address outside it", account("b", net), o, net, cert("a", "192.0.2.99"), false},
		{"narrowed to a network: domains stay the organisation's", account("b", net), o, net, cert("a", "www.y.test"), true},
		{"narrowed both ways: inside both", account("b", both), o, both, cert("a", "sub.x.test", "192.0.2.1"), true},
		{"narrowed both ways: an IPv6 address outside", account("b", both), o, both, cert("a", "sub.x.test", "2001:db8::1"), false},
		{"another organisation may not", account("c", stranger), &store.Organisation{OID: otherOrg}, stranger, cert("a", "www.x.test"), false},
		{"an unknown key allows nothing beyond the account's own", account("b", wide), o, nil, cert("a", "www.x.test"), false},
		{"an unknown organisation allows nothing beyond the account's own", account("b", wide), nil, wide, cert("a", "www.x.test"), false},
		{"a certificate without names is the owner's only", account("b", sub), o, sub, cert("a"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := AccountMay(tt.acct, tt.org, tt.ek, tt.c)
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok {
				var e *Error
				if !errors.As(err, &e) || e.Kind != Unauthorized {
					t.Fatalf("got %v, want an Unauthorized refusal", err)
				}
			}
		})
	}
	t.Run("the refusal names the key's narrowing and the names outside it", func(t *testing.T) {
		err := AccountMay(account("b", sub), o, sub, cert("a", "sub.x.test", "www.x.test"))
		for _, want := range []string{"limited to sub.x.test", "www.x.test on the certificate lies outside"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("refusal %v does not say %q", err, want)
			}
		}
	})
}
