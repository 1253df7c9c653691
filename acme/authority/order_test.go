package authority

import (
	"crypto/x509"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/store"
)

func TestNewOrderIdentifierLimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{MaxIdentifiers: 3})
	f.addOrg(otherOrgOID, "Terveyskeskus", "Terveyskeskus Oy", "example.fi", "terveys.example")
	orgWide := f.account()
	narrow, _ := f.accountFor(testOrgOID, "a.example.fi")
	multi, _ := f.accountFor(otherOrgOID)
	long71 := strings.Repeat("a", 60) + ".example.fi"

	tests := []struct {
		name  string
		acct  *store.Account
		req   acme.NewOrderRequest
		want  acme.ErrorKind
		names []string
	}{
		{"an account of the whole organisation orders any of its names", orgWide, acme.NewOrderRequest{Identifiers: dnsIDs("b.example.fi", "a.example.fi")}, "", []string{"b.example.fi", "a.example.fi"}},
		{"an EAB limited to a.example.fi orders a.example.fi", narrow, acme.NewOrderRequest{Identifiers: dnsIDs("a.example.fi")}, "", []string{"a.example.fi"}},
		{"an EAB limited to a.example.fi orders a name below it", narrow, acme.NewOrderRequest{Identifiers: dnsIDs("www.a.example.fi")}, "", []string{"www.a.example.fi"}},
		{"an EAB limited to a.example.fi cannot order b.example.fi", narrow, acme.NewOrderRequest{Identifiers: dnsIDs("b.example.fi")}, acme.RejectedIdentifier, nil},
		{"an EAB limited to a.example.fi cannot order the organisation's domain", narrow, acme.NewOrderRequest{Identifiers: dnsIDs("example.fi")}, acme.RejectedIdentifier, nil},
		{"an EAB limited to a.example.fi cannot mix in b.example.fi", narrow, acme.NewOrderRequest{Identifiers: dnsIDs("a.example.fi", "b.example.fi")}, acme.RejectedIdentifier, nil},
		{"an organisation with two domains orders from both", multi, acme.NewOrderRequest{Identifiers: dnsIDs("www.terveys.example", "www.example.fi")}, "", []string{"www.terveys.example", "www.example.fi"}},
		{"no identifiers is malformed", orgWide, acme.NewOrderRequest{}, acme.Malformed, nil},
		{"more identifiers than the maximum are rejected", orgWide, acme.NewOrderRequest{Identifiers: dnsIDs("a.example.fi", "b.example.fi", "c.example.fi", "d.example.fi")}, acme.RejectedIdentifier, nil},
		{"an unknown profile is invalidProfile", orgWide, acme.NewOrderRequest{Identifiers: dnsIDs("a.example.fi"), Profile: "sote-client"}, acme.InvalidProfile, nil},
		{"a first name over 64 characters, which would be the CN, is rejected", orgWide, acme.NewOrderRequest{Identifiers: dnsIDs(long71, "a.example.fi")}, acme.RejectedIdentifier, nil},
		{"a name over 64 characters after a short first name is accepted", orgWide, acme.NewOrderRequest{Identifiers: dnsIDs("c.example.fi", long71)}, "", []string{"c.example.fi", long71}},
		{"the default profile by name is accepted", orgWide, acme.NewOrderRequest{Identifiers: dnsIDs("a.example.fi"), Profile: "sote-server"}, "", []string{"a.example.fi"}},
		{"case-folded duplicates become one name at the first one's place", orgWide, acme.NewOrderRequest{Identifiers: dnsIDs("WWW.Example.FI", "api.example.fi", "www.EXAMPLE.fi")}, "", []string{"www.example.fi", "api.example.fi"}},
		{"notBefore is refused by a profile without a start delay", orgWide, acme.NewOrderRequest{Identifiers: dnsIDs("a.example.fi"), NotBefore: time.Now().Add(time.Hour).Format(time.RFC3339)}, acme.Malformed, nil},
		{"notAfter that is not RFC 3339 is malformed", orgWide, acme.NewOrderRequest{Identifiers: dnsIDs("a.example.fi"), NotAfter: "2026-12-01"}, acme.Malformed, nil},
		{"notAfter two years away is refused for a server profile", orgWide, acme.NewOrderRequest{Identifiers: dnsIDs("a.example.fi"), NotAfter: time.Now().AddDate(2, 0, 0).Format(time.RFC3339)}, acme.Malformed, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acct := tt.acct
			o, err := f.a.NewOrder(f.ctx, acct, tt.req)
			wantKind(t, err, tt.want)
			if tt.want != "" {
				return
			}
			if !slices.Equal(o.Names, tt.names) || o.Status != string(acme.StatusPending) || o.AccountID != acct.ID || o.OrgOID != acct.OrgOID {
				t.Errorf("order names %q status %q account %s org %s; want %q pending of %s", o.Names, o.Status, o.AccountID, o.OrgOID, tt.names, acct.ID)
			}
			if len(o.AuthzIDs) != len(o.Names) {
				t.Fatalf("%d authorizations for %d names", len(o.AuthzIDs), len(o.Names))
			}
			for i, id := range o.AuthzIDs {
				az, err := f.a.Authorization(f.ctx, acct, id)
				if err != nil {
					t.Fatalf("Authorization: %v", err)
				}
				if az.Name != o.Names[i] || az.Status != string(acme.StatusPending) {
					t.Fatalf("authorization %+v, want pending for %s", az, o.Names[i])
				}
				httpChallenge(t, az)
				for _, ch := range az.Challenges {
					if ch.Status != string(acme.StatusPending) || len(ch.Token) != 43 {
						t.Errorf("challenge %+v, want pending with a 256-bit token", ch)
					}
				}
			}
		})
	}
}

func TestRequestedNotAfterIsIssued(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	acct := f.account()
	now := time.Now().Truncate(time.Second)

	tests := []struct {
		name     string
		notAfter time.Time
	}{
		{"30 days", now.AddDate(0, 0, 30)},
		{"the latest second the order accepts", now.Add(365*24*time.Hour - time.Minute - time.Second)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := []string{"a.example.fi", "b.example.fi"}[i]
			o, err := f.a.NewOrder(f.ctx, acct, acme.NewOrderRequest{Identifiers: dnsIDs(name), NotAfter: tt.notAfter.Format(time.RFC3339)})
			if err != nil {
				t.Fatalf("NewOrder: %v", err)
			}
			if !o.NotAfter.Equal(tt.notAfter) {
				t.Errorf("order notAfter %s, want %s", o.NotAfter, tt.notAfter)
			}
			o = f.validateAll(acct, o)
			key := newKey(t)
			o, err = f.finalize(acct, o.ID, makeCSR(t, key, &x509.CertificateRequest{DNSNames: []string{name}}))
			if err != nil {
				t.Fatalf("Finalize: %v", err)
			}
			rec, err := f.st.GetCertificate(f.ctx, o.CertSerial)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(rec.DER)
			if err != nil {
				t.Fatal(err)
			}
			if !cert.NotAfter.Equal(tt.notAfter) || !rec.NotAfter.Equal(tt.notAfter) {
				t.Errorf("certificate notAfter %s (stored %s), want %s", cert.NotAfter, rec.NotAfter, tt.notAfter)
			}
		})
	}
}

// TestAnotherAccountsResourcesLookUnknown: another account learns nothing, not even
// whether the id exists (ROBUSTNESS 46).
func TestAnotherAccountsResourcesLookUnknown(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.addOrg(otherOrgOID, "Terveyskeskus", "Terveyskeskus Oy", "terveys.example")
	owner := f.account()
	sameOrg := f.account()
	otherOrg, _ := f.accountFor(otherOrgOID)
	o := f.order(owner, "www.example.fi")
	az, err := f.a.Authorization(f.ctx, owner, o.AuthzIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	chID := httpChallenge(t, az).ID

	lookups := []struct {
		name string
		call func(acct *store.Account, id string) error
		id   string
	}{
		{"order", func(a *store.Account, id string) error { _, err := f.a.Order(f.ctx, a, id); return err }, o.ID},
		{"authorization", func(a *store.Account, id string) error { _, err := f.a.Authorization(f.ctx, a, id); return err }, az.ID},
		{"challenge", func(a *store.Account, id string) error { _, _, err := f.a.Challenge(f.ctx, a, id); return err }, chID},
		{"challenge response", func(a *store.Account, id string) error {
			_, _, err := f.a.RespondChallenge(f.ctx, a, id)
			return err
		}, chID},
		{"finalize", func(a *store.Account, id string) error {
			_, err := f.a.Finalize(f.ctx, a, id, []byte(`{"csr":"x"}`))
			return err
		}, o.ID},
	}
	for _, l := range lookups {
		for _, who := range []struct {
			name string
			acct *store.Account
		}{{"same organisation", sameOrg}, {"other organisation", otherOrg}} {
			t.Run(l.name+" of another account of the "+who.name+" answers as an unknown id", func(t *testing.T) {
				got := wantKind(t, l.call(who.acct, l.id), acme.Malformed)
				unknown := wantKind(t, l.call(who.acct, "AAAAAAAAAAAAAAAAAAAAAA"), acme.Malformed)
				if got.HTTPStatus() != 404 || unknown.HTTPStatus() != 404 {
					t.Errorf("status %d (unknown id: %d), want 404 for both", got.HTTPStatus(), unknown.HTTPStatus())
				}
				if got.Detail != unknown.Detail {
					t.Errorf("detail %q differs from the unknown id's %q", got.Detail, unknown.Detail)
				}
			})
		}
	}
	if n := f.val.calls.Load(); n != 0 {
		t.Errorf("the validator ran %d times for another account's challenge", n)
	}
	if cur, err := f.a.Order(f.ctx, owner, o.ID); err != nil || cur.Status != string(acme.StatusPending) {
		t.Errorf("owner's order after the other accounts' attempts: %+v, %v; want pending", cur, err)
	}
}

// An EAB key narrows the organisation's approved domains and networks and never
// widens them: a domain an older key names that the organisation does not hold is
// refused.
func TestNewOrderEABNarrowsNeverWidens(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	if _, err := f.st.AddOrganisationNames(f.ctx, testOrgOID, nil, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}); err != nil {
		t.Fatal(err)
	}
	stale, _ := f.accountFor(testOrgOID, "a.example.fi", "muu.example")
	for _, tt := range []struct {
		name string
		ids  []acme.Identifier
		want acme.ErrorKind
	}{
		{"a name of the key inside the organisation's domains is allowed", dnsIDs("www.a.example.fi"), ""},
		{"a name of the key the organisation does not hold is refused", dnsIDs("www.muu.example"), acme.RejectedIdentifier},
		{"a name of the organisation outside the key's is refused", dnsIDs("b.example.fi"), acme.RejectedIdentifier},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.a.NewOrder(f.ctx, stale, acme.NewOrderRequest{Identifiers: tt.ids})
			wantKind(t, err, tt.want)
		})
	}
}

// An order with IP identifiers (RFC 8738) beside a DNS name keeps the canonical
// address, and its authorization offers http-01 and tls-alpn-01 but never dns-01.
func TestNewOrderIPIdentifiers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	if _, err := f.st.AddOrganisationNames(f.ctx, testOrgOID, nil, []netip.Prefix{netip.MustParsePrefix("2001:db8:10::/48"), netip.MustParsePrefix("192.0.2.0/24")}); err != nil {
		t.Fatal(err)
	}
	acct := f.account()
	ids := append(dnsIDs("www.example.fi"), acme.Identifier{Type: acme.IdentifierIP, Value: "2001:DB8:10:0::7"}, acme.Identifier{Type: acme.IdentifierIP, Value: "192.0.2.7"},
		acme.Identifier{Type: acme.IdentifierIP, Value: "2001:db8:10::7"})
	o, err := f.a.NewOrder(f.ctx, acct, acme.NewOrderRequest{Identifiers: ids})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"www.example.fi", "2001:db8:10::7", "192.0.2.7"}; !slices.Equal(o.Names, want) {
		t.Fatalf("order names %v, want %v (one canonical spelling each)", o.Names, want)
	}
	for i, id := range o.AuthzIDs[1:] {
		az, err := f.a.Authorization(f.ctx, acct, id)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, ch := range az.Challenges {
			types = append(types, ch.Type)
		}
		if az.Name != o.Names[i+1] || !slices.Equal(types, []string{acme.ChallengeHTTP01, acme.ChallengeTLSALPN01}) {
			t.Errorf("authorization for %s offers %v, want http-01 and tls-alpn-01 only", az.Name, types)
		}
	}
	_, err = f.a.NewOrder(f.ctx, acct, acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: acme.IdentifierIP, Value: "192.0.2.7"}}})
	if ae := wantKind(t, err, acme.RejectedIdentifier); ae != nil && !strings.Contains(ae.Detail, "a DNS name is required") {
		t.Errorf("IP-only order refused with %q, want a detail saying a DNS name is required", ae.Detail)
	}
}
