package authority

import (
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/store"
)

func TestCheckIdentifiers(t *testing.T) {
	email := acme.Identifier{Type: "email", Value: "admin@example.fi"}
	dns := func(v string) acme.Identifier { return acme.Identifier{Type: acme.IdentifierDNS, Value: v} }
	allowed := []string{"example.fi"}

	tests := []struct {
		name     string
		ids      []acme.Identifier
		wantList []string
		wantKind acme.ErrorKind // "" means accepted
		// refused identifier values with their subproblem kinds, in request order
		wantSubs map[string]acme.ErrorKind
	}{
		{
			name:     "a name under the organisation's domain is accepted",
			ids:      []acme.Identifier{dns("www.example.fi")},
			wantList: []string{"www.example.fi"},
		},
		{
			name:     "the organisation's domain itself is accepted",
			ids:      []acme.Identifier{dns("example.fi")},
			wantList: []string{"example.fi"},
		},
		{
			name:     "case-folded duplicates become one name at the first one's place",
			ids:      []acme.Identifier{dns("WWW.Example.FI"), dns("api.example.fi"), dns("www.example.fi"), dns("www.EXAMPLE.fi")},
			wantList: []string{"www.example.fi", "api.example.fi"},
		},
		{
			name:     "a name outside the organisation's domains is rejected",
			ids:      []acme.Identifier{dns("www.muu.fi")},
			wantKind: acme.RejectedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"www.muu.fi": acme.RejectedIdentifier},
		},
		{
			name:     "a look-alike domain ending in the organisation's domain is rejected",
			ids:      []acme.Identifier{dns("notexample.fi")},
			wantKind: acme.RejectedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"notexample.fi": acme.RejectedIdentifier},
		},
		{
			name:     "a wildcard under the organisation's domain is rejected",
			ids:      []acme.Identifier{dns("*.example.fi")},
			wantKind: acme.RejectedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"*.example.fi": acme.RejectedIdentifier},
		},
		{
			name:     "a misplaced wildcard is malformed",
			ids:      []acme.Identifier{dns("www.*.example.fi")},
			wantKind: acme.Malformed,
			wantSubs: map[string]acme.ErrorKind{"www.*.example.fi": acme.Malformed},
		},
		{
			name:     "an IP address in a dns identifier is malformed",
			ids:      []acme.Identifier{dns("10.0.0.1")},
			wantKind: acme.Malformed,
			wantSubs: map[string]acme.ErrorKind{"10.0.0.1": acme.Malformed},
		},
		{
			name:     "an email identifier is unsupported",
			ids:      []acme.Identifier{email},
			wantKind: acme.UnsupportedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"admin@example.fi": acme.UnsupportedIdentifier},
		},
		{
			name:     "one bad name refuses the whole order with a subproblem for it alone",
			ids:      []acme.Identifier{dns("www.example.fi"), dns("www.muu.fi"), dns("api.example.fi")},
			wantKind: acme.RejectedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"www.muu.fi": acme.RejectedIdentifier},
		},
		{
			name:     "each bad identifier has its own subproblem",
			ids:      []acme.Identifier{dns("www.muu.fi"), dns("www.example.fi"), dns("*.example.fi"), dns("muu.example.com")},
			wantKind: acme.RejectedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"www.muu.fi": acme.RejectedIdentifier, "*.example.fi": acme.RejectedIdentifier, "muu.example.com": acme.RejectedIdentifier},
		},
		{
			name:     "malformed beats unsupported and rejected",
			ids:      []acme.Identifier{dns("www.muu.fi"), email, dns("bad_name.example.fi")},
			wantKind: acme.Malformed,
			wantSubs: map[string]acme.ErrorKind{"www.muu.fi": acme.RejectedIdentifier, "admin@example.fi": acme.UnsupportedIdentifier, "bad_name.example.fi": acme.Malformed},
		},
		{
			name:     "malformed first stays malformed after unsupported",
			ids:      []acme.Identifier{dns("a..example.fi"), email},
			wantKind: acme.Malformed,
			wantSubs: map[string]acme.ErrorKind{"a..example.fi": acme.Malformed, "admin@example.fi": acme.UnsupportedIdentifier},
		},
		{
			name:     "unsupported beats rejected that comes before it",
			ids:      []acme.Identifier{dns("www.muu.fi"), email},
			wantKind: acme.UnsupportedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"www.muu.fi": acme.RejectedIdentifier, "admin@example.fi": acme.UnsupportedIdentifier},
		},
		{
			name:     "unsupported beats rejected that comes after it",
			ids:      []acme.Identifier{email, dns("www.muu.fi")},
			wantKind: acme.UnsupportedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"www.muu.fi": acme.RejectedIdentifier, "admin@example.fi": acme.UnsupportedIdentifier},
		},
	}
	a := New(Config{}, nil, nil, nil, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := a.checkIdentifiers(tt.ids, testOrgOID, allowed)
			ae := wantKind(t, err, tt.wantKind)
			if ae == nil {
				if !slices.Equal(list, tt.wantList) {
					t.Errorf("names %q, want %q", list, tt.wantList)
				}
				return
			}
			if list != nil {
				t.Errorf("names %q returned with a refusal", list)
			}
			if len(ae.Subproblems) != len(tt.wantSubs) {
				t.Fatalf("%d subproblems %+v, want %d", len(ae.Subproblems), ae.Subproblems, len(tt.wantSubs))
			}
			for _, sp := range ae.Subproblems {
				if sp.Identifier == nil {
					t.Fatalf("subproblem %q names no identifier", sp.Detail)
				}
				kind, ok := tt.wantSubs[sp.Identifier.Value]
				if !ok {
					t.Errorf("subproblem for %q, which is not refused", sp.Identifier.Value)
					continue
				}
				if sp.Type != kind.URN() {
					t.Errorf("subproblem for %q has type %s, want %s", sp.Identifier.Value, sp.Type, kind.URN())
				}
				if sp.Detail == "" {
					t.Errorf("subproblem for %q has no detail", sp.Identifier.Value)
				}
			}
			switch {
			case len(ae.Subproblems) == 1 && ae.Detail != ae.Subproblems[0].Detail:
				t.Errorf("detail %q, want the one subproblem's %q", ae.Detail, ae.Subproblems[0].Detail)
			case len(ae.Subproblems) > 1 && !strings.Contains(ae.Detail, "subproblems"):
				t.Errorf("detail %q does not point at the subproblems", ae.Detail)
			}
		})
	}
}

func TestCheckIdentifiersOutsideDetailNamesOrganisation(t *testing.T) {
	a := New(Config{}, nil, nil, nil, nil)
	_, err := a.checkIdentifiers(dnsIDs("www.muu.fi"), testOrgOID, []string{"example.fi", "example.com"})
	ae := wantKind(t, err, acme.RejectedIdentifier)
	for _, want := range []string{"www.muu.fi", testOrgOID, "example.fi, example.com"} {
		if !strings.Contains(ae.Detail, want) {
			t.Errorf("detail %q lacks %q", ae.Detail, want)
		}
	}
}

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

func TestCheckValidityRequest(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a := New(Config{}, nil, nil, nil, nil) // 365 days, 1 minute backdate
	a.now = func() time.Time { return now }
	latest := now.Add(365*24*time.Hour - time.Minute - time.Second)
	helsinki := time.FixedZone("EET", 2*60*60)
	rfc := func(t time.Time) string { return t.Format(time.RFC3339) }

	tests := []struct {
		name         string
		nb, na       string
		want         acme.ErrorKind
		wantNotAfter time.Time
	}{
		{"neither given leaves the validity to the profile", "", "", "", time.Time{}},
		{"notBefore is refused", rfc(now.Add(time.Hour)), "", acme.Malformed, time.Time{}},
		{"notBefore is refused even with a good notAfter", rfc(now), rfc(now.Add(24 * time.Hour)), acme.Malformed, time.Time{}},
		{"notAfter that is not RFC 3339 is refused", "", "2026-12-01", acme.Malformed, time.Time{}},
		{"notAfter in the past is refused", "", rfc(now.Add(-time.Hour)), acme.Malformed, time.Time{}},
		{"notAfter equal to now is refused", "", rfc(now), acme.Malformed, time.Time{}},
		{"notAfter a second past MaxValidity less the backdate is refused", "", rfc(latest.Add(time.Second)), acme.Malformed, time.Time{}},
		{"notAfter a full MaxValidity away is refused", "", rfc(now.Add(365 * 24 * time.Hour)), acme.Malformed, time.Time{}},
		{"notAfter two years away is refused", "", rfc(now.AddDate(2, 0, 0)), acme.Malformed, time.Time{}},
		{"notAfter at the latest allowed second is honoured", "", rfc(latest), "", latest},
		{"notAfter in 30 days is honoured", "", rfc(now.AddDate(0, 0, 30)), "", now.AddDate(0, 0, 30)},
		{"notAfter with an offset is honoured in UTC", "", now.AddDate(0, 0, 30).In(helsinki).Format(time.RFC3339), "", now.AddDate(0, 0, 30)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nb, na, err := a.checkValidityRequest(tt.nb, tt.na)
			wantKind(t, err, tt.want)
			if !nb.IsZero() {
				t.Errorf("notBefore %s, want none", nb)
			}
			if !na.Equal(tt.wantNotAfter) || (!na.IsZero() && na.Location() != time.UTC) {
				t.Errorf("notAfter %s, want %s in UTC", na, tt.wantNotAfter)
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
