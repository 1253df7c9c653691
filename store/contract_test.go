package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"
)

// testContract is the behaviour every SQL dialect must show. open returns a new,
// empty, migrated store; the suite closes it.
func testContract(t *testing.T, open func(t *testing.T) *SQL) {
	t.Run("round trips", func(t *testing.T) { testRoundTrips(t, open) })
	t.Run("storage encoding", func(t *testing.T) { testEncoding(t, open) })
	t.Run("hex refusals", func(t *testing.T) { testHexRefusals(t, open) })
	t.Run("sentinel errors", func(t *testing.T) { testSentinels(t, open) })
	t.Run("challenge outcomes", func(t *testing.T) { testChallengeOutcomes(t, open) })
	t.Run("issuance", func(t *testing.T) { testIssuance(t, open) })
	t.Run("concurrency", func(t *testing.T) { testConcurrency(t, open) })
	t.Run("revocations and CRLs", func(t *testing.T) { testCRL(t, open) })
	t.Run("shared by replicas", func(t *testing.T) { testShared(t, open) })
	t.Run("authorization reuse", func(t *testing.T) { testAuthzReuse(t, open) })
	t.Run("register and conformity", func(t *testing.T) { testRegister(t, open) })
	t.Run("sweep of stuck processing", func(t *testing.T) { testSweep(t, open) })
	t.Run("rate limits", func(t *testing.T) { testRateLimits(t, open) })
	t.Run("renewal information", func(t *testing.T) { testRenewal(t, open) })
	t.Run("organisation domains and networks", func(t *testing.T) { testOrgNames(t, open) })
	t.Run("lookups use indexes", func(t *testing.T) { testLookupIndexes(t, open) })
	t.Run("operators and the EAB lifecycle", func(t *testing.T) { testOperators(t, open) })
	t.Run("console sessions", func(t *testing.T) { testConsoleSessions(t, open) })
	t.Run("audited changes", func(t *testing.T) { testAudited(t, open) })
	t.Run("operator lifecycle and organisation names", func(t *testing.T) { testOperatorLifecycle(t, open) })
	t.Run("concurrent finishes all store", func(t *testing.T) { testConcurrentFinishes(t, open) })
	t.Run("EAB keys sealed at rest", func(t *testing.T) { testEABSealed(t, open) })
	t.Run("locks that die with their holder", func(t *testing.T) { testLocks(t, open) })
	t.Run("issuer generations", func(t *testing.T) { testGenerations(t, open) })
	t.Run("persistent authorizations", func(t *testing.T) { testPersistentAuthorizations(t, open) })
	t.Run("console reads", func(t *testing.T) { testConsoleReads(t, open) })
}

const (
	org1 = "1.2.246.10.1234567.10.0"
	org2 = "1.2.246.10.7654321.10.0"
)

// t0 is a time with microseconds, in a zone other than UTC, so round trips check
// both the precision and the conversion to UTC.
var t0 = time.Date(2025, 3, 4, 5, 6, 7, 891234000, time.FixedZone("EET", 2*3600))

// world is a store with a fixed starting population:
// organisations org1 and org2; EAB keys kid-bound (bound to account acct-1 of org1),
// kid-free (approved, org1) and kid-revoked (revoked, org1).
type world struct {
	t   *testing.T
	s   *SQL
	ctx context.Context
}

func newWorld(t *testing.T, open func(t *testing.T) *SQL) *world {
	t.Helper()
	s := open(t)
	t.Cleanup(func() { s.Close() })
	w := &world{t: t, s: s, ctx: context.Background()}
	for _, oid := range []string{org1, org2} {
		w.must(s.AddOrganisation(w.ctx, Organisation{OID: oid, Name: "Org " + oid, CreatedAt: t0}))
	}
	w.eab("kid-bound", EABApproved)
	w.eab("kid-free", EABApproved)
	w.eab("kid-revoked", EABRevoked)
	w.must(s.CreateAccount(w.ctx, account("acct-1", "thumb-1"), "kid-bound"))
	return w
}

func (w *world) must(err error) {
	w.t.Helper()
	if err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) eab(kid, status string) {
	w.t.Helper()
	w.must(w.s.CreateEAB(w.ctx, EABKey{KID: kid, OrgOID: org1, HMACKey: []byte("secret-" + kid), Status: status, CreatedAt: t0}))
}

func account(id, thumbprint string) Account {
	return Account{ID: id, Thumbprint: thumbprint, JWK: []byte(`{"kty":"EC","x":"` + id + `"}`), OrgOID: org1,
		Contacts: []string{"mailto:admin@example.fi"}, Status: "valid", CreatedAt: t0}
}

// authz is a pending authorization of acct-1 with n pending challenges
// <id>-c0, <id>-c1, ….
func authz(id string, n int) Authorization {
	a := Authorization{ID: id, AccountID: "acct-1", Name: id + ".example.fi", Status: "pending",
		Expires: t0.Add(time.Hour), CreatedAt: t0}
	for i := range n {
		a.Challenges = append(a.Challenges, Challenge{ID: fmt.Sprintf("%s-c%d", id, i), AuthzID: id,
			Type: "http-01", Token: fmt.Sprintf("token-%s-%d", id, i), Status: "pending"})
	}
	return a
}

func order(id, status string, authzIDs ...string) Order {
	return Order{ID: id, AccountID: "acct-1", OrgOID: org1, Status: status, Expires: t0.Add(time.Hour),
		Names: []string{id + ".example.fi"}, Profile: "sote-server", AuthzIDs: authzIDs, CreatedAt: t0}
}

// pendingOrder creates a pending order with a new pending authorization (two
// challenges) per id in authzIDs.
func (w *world) pendingOrder(id string, authzIDs ...string) {
	w.t.Helper()
	var as []Authorization
	for _, a := range authzIDs {
		as = append(as, authz(a, 2))
	}
	w.must(w.s.CreateOrder(w.ctx, order(id, "pending", authzIDs...), as))
}

// readyOrder creates a ready order whose one authorization <id>-a is valid.
func (w *world) readyOrder(id string) {
	w.t.Helper()
	a := authz(id+"-a", 1)
	a.Status, a.Challenges[0].Status, a.Challenges[0].Validated = "valid", "valid", t0
	w.must(w.s.CreateOrder(w.ctx, order(id, "ready", a.ID), []Authorization{a}))
}

func (w *world) processingOrder(id string) {
	w.t.Helper()
	w.readyOrder(id)
	w.must(w.s.BeginFinalize(w.ctx, id))
}

func intent(serial, orderID, keyHash string) IssuanceIntent {
	return IssuanceIntent{Serial: serial, OrderID: orderID, Issuer: "production", Names: []string{"a.example.fi"},
		KeyHash: keyHash, LintTBS: []byte("tbs-" + serial), CreatedAt: t0}
}

func cert(serial, orderID, keyHash string) Certificate {
	return Certificate{Serial: serial, Issuer: "production", DER: []byte("der-" + serial), Names: []string{"a.example.fi"},
		KeyHash: keyHash, NotBefore: t0, NotAfter: t0.AddDate(1, 0, 0), OrgOID: org1, AccountID: "acct-1",
		OrderID: orderID, Profile: "sote-server", CreatedAt: t0}
}

// issue runs a whole issuance of serial for keyHash on a new order o-<serial>.
func (w *world) issue(serial, keyHash string) {
	w.t.Helper()
	o := "o-" + serial
	w.processingOrder(o)
	w.must(w.s.RecordIntent(w.ctx, intent(serial, o, keyHash)))
	w.must(w.s.FinishIssuance(w.ctx, cert(serial, o, keyHash)))
}

func (w *world) orderStatus(id string) string {
	w.t.Helper()
	o, err := w.s.GetOrder(w.ctx, id)
	w.must(err)
	return o.Status
}

func (w *world) authzStatus(id string) string {
	w.t.Helper()
	a, err := w.s.GetAuthorization(w.ctx, id)
	w.must(err)
	return a.Status
}

func (w *world) challengeStatus(id string) string {
	w.t.Helper()
	c, err := w.s.GetChallenge(w.ctx, id)
	w.must(err)
	return c.Status
}

func (w *world) eabStatus(kid string) string {
	w.t.Helper()
	k, err := w.s.GetEAB(w.ctx, kid)
	w.must(err)
	return k.Status
}

func (w *world) intentStatus(serial string) string {
	w.t.Helper()
	in, err := w.s.GetIntent(w.ctx, serial)
	w.must(err)
	return in.Status
}

// normalized is a deep copy of v as the store gives it back: times at microsecond
// precision in UTC, empty slices as nil.
func normalized[T any](v T) T {
	normalize(reflect.ValueOf(&v).Elem())
	return v
}

func normalize(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if !v.CanInterface() {
			return // an unexported field of a value type such as netip.Prefix
		}
		if tm, ok := v.Interface().(time.Time); ok {
			if !tm.IsZero() {
				v.Set(reflect.ValueOf(tm.Truncate(time.Microsecond).UTC()))
			}
			return
		}
		for i := range v.NumField() {
			normalize(v.Field(i))
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.Set(reflect.Zero(v.Type()))
			return
		}
		// Copy, so that neither normalizing nor editing the result changes the input.
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(c, v)
		v.Set(c)
		for i := range v.Len() {
			normalize(v.Index(i))
		}
	}
}

type roundTripCase[T any] struct {
	name string
	in   T
	want *T // nil: normalized(in)
}

// runRoundTrips writes each case's record with put into a new world and checks that
// get reads back what was written.
func runRoundTrips[T any](t *testing.T, open func(t *testing.T) *SQL, cases []roundTripCase[T],
	put func(w *world, v T) error, get func(w *world, v T) (*T, error)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, open)
			w.must(put(w, tc.in))
			got, err := get(w, tc.in)
			w.must(err)
			want := normalized(tc.in)
			if tc.want != nil {
				want = *tc.want
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("read back\n%+v\nwant\n%+v", *got, want)
			}
		})
	}
}

func testRoundTrips(t *testing.T, open func(t *testing.T) *SQL) {
	t.Run("organisation", func(t *testing.T) {
		runRoundTrips(t, open, []roundTripCase[Organisation]{
			{name: "all fields", in: Organisation{OID: "1.2.246.10.1111111.10.0", Name: "Klinikka", LongName: "Klinikka Oy",
				Domains: []string{"klinikka.fi", "klinikka.example"}, CreatedAt: t0}},
			{name: "no domains and zero time", in: Organisation{OID: "1.2.246.10.2222222.10.0", Domains: []string{}}},
			{name: "test only", in: Organisation{OID: "1.2.246.10.3333333.10.0", Name: "Testiklinikka", Domains: []string{"testi.example"}, TestOnly: true, CreatedAt: t0}},
			{name: "approved networks", in: Organisation{OID: "1.2.246.10.4444444.10.0", Name: "Verkko", Domains: []string{"verkko.example"},
				Networks: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:10::/48"), netip.MustParsePrefix("198.51.100.7/32")}, CreatedAt: t0}},
		}, func(w *world, o Organisation) error { return w.s.AddOrganisation(w.ctx, o) },
			func(w *world, o Organisation) (*Organisation, error) { return w.s.GetOrganisation(w.ctx, o.OID) })
	})

	t.Run("EAB key", func(t *testing.T) {
		runRoundTrips(t, open, []roundTripCase[EABKey]{
			{name: "approved with domains", in: EABKey{KID: "k1", OrgOID: org1, HMACKey: []byte{0, 1, 2, 255},
				Domains: []string{"example.fi"}, Status: EABApproved, CreatedAt: t0}},
			{name: "no domains and zero times", in: EABKey{KID: "k2", OrgOID: org2, HMACKey: []byte("x"), Status: EABApproved}},
			{name: "bound fields", in: EABKey{KID: "k3", OrgOID: org1, HMACKey: []byte("x"), Status: EABBound,
				AccountID: "acct-9", CreatedAt: t0, BoundAt: t0.Add(time.Minute)}},
			{name: "limited to profiles", in: EABKey{KID: "k4", OrgOID: org1, HMACKey: []byte("x"), Status: EABApproved,
				Profiles: []string{"sote-server-test", "sote-system-signature-test"}, CreatedAt: t0}},
			{name: "limited to networks", in: EABKey{KID: "k5", OrgOID: org1, HMACKey: []byte("x"), Status: EABApproved,
				Networks: []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25")}, CreatedAt: t0}},
		}, func(w *world, k EABKey) error { return w.s.CreateEAB(w.ctx, k) },
			func(w *world, k EABKey) (*EABKey, error) { return w.s.GetEAB(w.ctx, k.KID) })
	})

	t.Run("account", func(t *testing.T) {
		full := account("acct-2", "thumb-2")
		fullWant := normalized(full)
		fullWant.EABKID = "kid-free"
		bare := Account{ID: "acct-3", Thumbprint: "thumb-3", JWK: []byte("{}"), OrgOID: org1, Status: "valid", EABKID: "ignored"}
		bareWant := normalized(bare)
		bareWant.EABKID = "kid-free"
		put := func(w *world, a Account) error { return w.s.CreateAccount(w.ctx, a, "kid-free") }
		runRoundTrips(t, open, []roundTripCase[Account]{
			{name: "contacts and time; EABKID is the bound kid", in: full, want: &fullWant},
			{name: "no contacts and zero time", in: bare, want: &bareWant},
		}, put, func(w *world, a Account) (*Account, error) { return w.s.GetAccount(w.ctx, a.ID) })
		runRoundTrips(t, open, []roundTripCase[Account]{
			{name: "by thumbprint", in: full, want: &fullWant},
		}, put, func(w *world, a Account) (*Account, error) { return w.s.GetAccountByThumbprint(w.ctx, a.Thumbprint) })
	})

	t.Run("EAB key after binding", func(t *testing.T) {
		w := newWorld(t, open)
		a := account("acct-2", "thumb-2")
		a.CreatedAt = t0.Add(time.Hour)
		w.must(w.s.CreateAccount(w.ctx, a, "kid-free"))
		k, err := w.s.GetEAB(w.ctx, "kid-free")
		w.must(err)
		if k.Status != EABBound || k.AccountID != "acct-2" || !k.BoundAt.Equal(a.CreatedAt) {
			t.Errorf("EAB key after binding: status %q account %q bound %v; want bound, acct-2, %v",
				k.Status, k.AccountID, k.BoundAt, a.CreatedAt)
		}
	})

	// authzs are inserted in another order than the order lists them, so the
	// AuthzIDs read back follow the link positions.
	orderPut := func(w *world, o Order) error {
		var as []Authorization
		for i := len(o.AuthzIDs) - 1; i >= 0; i-- {
			as = append(as, authz(o.AuthzIDs[i], 1))
		}
		return w.s.CreateOrder(w.ctx, o, as)
	}
	t.Run("order", func(t *testing.T) {
		full := order("o1", "invalid", "az-b", "az-a", "az-c")
		full.Names = []string{"b.example.fi", "a.example.fi", "c.example.fi"}
		full.NotBefore, full.NotAfter = t0, t0.AddDate(1, 0, 0)
		full.Error = []byte(`{"type":"urn:ietf:params:acme:error:serverInternal"}`)
		full.CertSerial = "0a1b"
		bare := Order{ID: "o2", AccountID: "acct-1", OrgOID: org1, Status: "pending", Names: []string{}, Error: []byte{}}
		runRoundTrips(t, open, []roundTripCase[Order]{
			{name: "all fields, authz ids in position order", in: full},
			{name: "zero times, no names, no authzs, empty error", in: bare},
		}, orderPut, func(w *world, o Order) (*Order, error) { return w.s.GetOrder(w.ctx, o.ID) })
	})

	t.Run("order ids", func(t *testing.T) {
		w := newWorld(t, open)
		// Created later but with an earlier CreatedAt: the list follows creation.
		for i, id := range []string{"o-z", "o-a", "o-m"} {
			o := order(id, "pending")
			o.CreatedAt = t0.Add(-time.Duration(i) * time.Hour)
			w.must(w.s.CreateOrder(w.ctx, o, nil))
		}
		cases := []struct {
			name, account string
			want          []string
		}{
			{"in creation order", "acct-1", []string{"o-z", "o-a", "o-m"}},
			{"none for another account", "acct-none", nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := w.s.ListOrderIDs(w.ctx, tc.account)
				w.must(err)
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("ListOrderIDs(%s) = %q, want %q", tc.account, got, tc.want)
				}
			})
		}
	})

	authzPut := func(w *world, a Authorization) error {
		return w.s.CreateOrder(w.ctx, order("o-"+a.ID, "pending", a.ID), []Authorization{a})
	}
	t.Run("authorization", func(t *testing.T) {
		full := authz("az1", 3)
		full.Wildcard = true
		full.Challenges[0].Type, full.Challenges[2].Type = "dns-01", "tls-alpn-01"
		full.Challenges[1].Status, full.Challenges[1].Validated = "invalid", t0
		full.Challenges[1].Error = []byte(`{"type":"urn:ietf:params:acme:error:connection"}`)
		// Challenge ids sort against their creation order.
		full.Challenges[0].ID, full.Challenges[1].ID, full.Challenges[2].ID = "z", "m", "a"
		misfiled := authz("az2", 1)
		misfiled.Challenges[0].AuthzID = "another"
		misfiledWant := normalized(misfiled)
		misfiledWant.Challenges[0].AuthzID = "az2"
		bare := Authorization{ID: "az3", AccountID: "acct-1", Status: "pending", Challenges: []Challenge{}}
		runRoundTrips(t, open, []roundTripCase[Authorization]{
			{name: "challenges in creation order with validated and error", in: full},
			{name: "challenge AuthzID is its authorization", in: misfiled, want: &misfiledWant},
			{name: "no challenges and zero times", in: bare},
		}, authzPut, func(w *world, a Authorization) (*Authorization, error) { return w.s.GetAuthorization(w.ctx, a.ID) })
	})

	t.Run("challenge", func(t *testing.T) {
		validated := authz("az1", 1)
		validated.Challenges[0].Status, validated.Challenges[0].Validated = "valid", t0
		failed := authz("az2", 1)
		failed.Challenges[0].Status, failed.Challenges[0].Error = "invalid", []byte(`{"detail":"x"}`)
		pick := func(a Authorization) *Challenge { c := normalized(a.Challenges[0]); return &c }
		runRoundTrips(t, open, []roundTripCase[Authorization]{
			{name: "pending with zero validated and no error", in: authz("az0", 1)},
			{name: "validated time", in: validated},
			{name: "error document", in: failed},
		}, authzPut, func(w *world, a Authorization) (*Authorization, error) {
			// Read through GetChallenge; compare as the authorization's only challenge.
			c, err := w.s.GetChallenge(w.ctx, a.Challenges[0].ID)
			if err != nil {
				return nil, err
			}
			if want := pick(a); !reflect.DeepEqual(c, want) {
				return nil, fmt.Errorf("GetChallenge = %+v, want %+v", c, want)
			}
			return w.s.GetAuthorization(w.ctx, a.ID)
		})
	})

	t.Run("issuance intent", func(t *testing.T) {
		put := func(w *world, in IssuanceIntent) error {
			w.readyOrder(in.OrderID)
			in.Status = IntentIssued // the store sets the status itself
			return w.s.RecordIntent(w.ctx, in)
		}
		full := intent("0123abcd", "o1", "aa11")
		fullWant := normalized(full)
		fullWant.Status = IntentPending
		bare := IssuanceIntent{Serial: "01", OrderID: "o2", KeyHash: "bb", LintTBS: []byte{}}
		bareWant := normalized(bare)
		bareWant.Status = IntentPending
		upper := intent("0123ABCD", "o3", "AA11")
		upperWant := normalized(upper)
		upperWant.Serial, upperWant.KeyHash, upperWant.Status = "0123abcd", "aa11", IntentPending
		runRoundTrips(t, open, []roundTripCase[IssuanceIntent]{
			{name: "all fields, status pending", in: full, want: &fullWant},
			{name: "no names, empty lint TBS, zero time", in: bare, want: &bareWant},
			{name: "upper-case hex stored lower-case", in: upper, want: &upperWant},
		}, put, func(w *world, in IssuanceIntent) (*IssuanceIntent, error) { return w.s.GetIntent(w.ctx, in.Serial) })
	})

	t.Run("certificate", func(t *testing.T) {
		put := func(w *world, c Certificate) error {
			w.processingOrder(c.OrderID)
			w.must(w.s.RecordIntent(w.ctx, intent(c.Serial, c.OrderID, c.KeyHash)))
			return w.s.FinishIssuance(w.ctx, c)
		}
		bare := Certificate{Serial: "02", DER: []byte{0x30}, KeyHash: "cc", OrderID: "o2", Names: []string{}}
		runRoundTrips(t, open, []roundTripCase[Certificate]{
			{name: "all fields", in: cert("7f00ff", "o1", "dd22")},
			{name: "no names and zero times", in: bare},
		}, put, func(w *world, c Certificate) (*Certificate, error) { return w.s.GetCertificate(w.ctx, c.Serial) })
	})

	t.Run("revocation", func(t *testing.T) {
		put := func(w *world, r Revocation) error {
			w.issue(r.Serial, "ee"+r.Serial)
			return w.s.Revoke(w.ctx, r, nil)
		}
		runRoundTrips(t, open, []roundTripCase[Revocation]{
			{name: "all fields", in: Revocation{Serial: "03", RevokedAt: t0, Reason: 1, RequestedBy: "acct-1",
				IdentifiedBy: "account", PerformedBy: "acme", Note: "key leaked"}},
			{name: "reason 0 and empty texts", in: Revocation{Serial: "04", RevokedAt: t0}},
		}, put, func(w *world, r Revocation) (*Revocation, error) { return w.s.GetRevocation(w.ctx, r.Serial) })
	})

	t.Run("blocked key", func(t *testing.T) {
		w := newWorld(t, open)
		w.must(w.s.BlockKey(w.ctx, BlockedKey{KeyHash: "AB01", Reason: "keyCompromise", Source: "revocation", CreatedAt: t0}))
		w.must(w.s.BlockKey(w.ctx, BlockedKey{KeyHash: "ab01", Reason: "again"})) // idempotent
		cases := []struct {
			name, keyHash string
			want          bool
		}{
			{"blocked key", "ab01", true},
			{"blocked key in upper case", "AB01", true},
			{"other key", "ab02", false},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := w.s.KeyBlocked(w.ctx, tc.keyHash)
				w.must(err)
				if got != tc.want {
					t.Errorf("KeyBlocked(%s) = %v, want %v", tc.keyHash, got, tc.want)
				}
			})
		}
	})
}

// testEncoding checks the stored form other programs (the CLI, SQL reports) rely on.
func testEncoding(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	w.must(w.s.AddOrganisation(w.ctx, Organisation{OID: "zero"}))
	w.must(w.s.AddOrganisation(w.ctx, Organisation{OID: "full", Domains: []string{"a.fi", "b.fi"}, CreatedAt: t0}))
	cases := []struct {
		name, query, arg, want string
	}{
		{"zero time is 0", "SELECT created_at FROM organisations WHERE oid = ?", "zero", "0"},
		{"time is unix microseconds", "SELECT created_at FROM organisations WHERE oid = ?", "full", fmt.Sprint(t0.UnixMicro())},
		{"empty list is an empty JSON array", "SELECT domains FROM organisations WHERE oid = ?", "zero", "[]"},
		{"list is a JSON array", "SELECT domains FROM organisations WHERE oid = ?", "full", `["a.fi","b.fi"]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			w.must(w.s.db.QueryRowContext(w.ctx, w.s.d.rebind(tc.query), tc.arg).Scan(&got))
			mustEqual(t, tc.query, got, tc.want)
		})
	}
}

// testHexRefusals: a serial or key hash that is not hex is refused before it is
// stored, since it could never match the lower-case hex the issuer computes.
func testHexRefusals(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	w.processingOrder("o1")
	cases := []struct {
		name string
		do   func() error
	}{
		{"RecordIntent with a serial that is not hex", func() error { return w.s.RecordIntent(w.ctx, intent("0x1f", "o1", "aa")) }},
		{"RecordIntent with an empty key hash", func() error { return w.s.RecordIntent(w.ctx, intent("1f", "o1", "")) }},
		{"FinishIssuance with a key hash that is not hex", func() error { return w.s.FinishIssuance(w.ctx, cert("1f", "o1", "a-b")) }},
		{"BlockKey with a key hash that is not hex", func() error { return w.s.BlockKey(w.ctx, BlockedKey{KeyHash: "zz"}) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); err == nil {
				t.Error("accepted, want an error")
			}
		})
	}
	t.Run("nothing was stored", func(t *testing.T) {
		for _, table := range []string{"issuance_intents", "certificates", "blocked_keys"} {
			var n int
			w.must(w.s.db.QueryRowContext(w.ctx, "SELECT COUNT(*) FROM "+table).Scan(&n))
			if n != 0 {
				t.Errorf("%s has %d rows, want 0", table, n)
			}
		}
	})
}

func testSentinels(t *testing.T, open func(t *testing.T) *SQL) {
	problem := []byte(`{"type":"urn:ietf:params:acme:error:badCSR"}`)
	cases := []struct {
		name  string
		setup func(w *world)
		do    func(w *world) error
		want  error
		after func(w *world) // checks that a refusal changed nothing
	}{
		{name: "AddOrganisation with a taken OID is ErrDuplicate",
			do:   func(w *world) error { return w.s.AddOrganisation(w.ctx, Organisation{OID: org1}) },
			want: ErrDuplicate},
		{name: "GetOrganisation of an unknown OID is ErrNotFound",
			do:   func(w *world) error { _, err := w.s.GetOrganisation(w.ctx, "1.2.3"); return err },
			want: ErrNotFound},
		{name: "CreateEAB with a taken kid is ErrDuplicate",
			do: func(w *world) error {
				return w.s.CreateEAB(w.ctx, EABKey{KID: "kid-free", OrgOID: org2, HMACKey: []byte("x"), Status: EABApproved})
			},
			want:  ErrDuplicate,
			after: func(w *world) { mustEqual(w.t, "EAB org", mustEAB(w, "kid-free").OrgOID, org1) }},
		{name: "CreateEAB for an unknown organisation is ErrNotFound",
			do: func(w *world) error {
				return w.s.CreateEAB(w.ctx, EABKey{KID: "k9", OrgOID: "1.2.3", HMACKey: []byte("x"), Status: EABApproved})
			},
			want: ErrNotFound},
		{name: "GetEAB of an unknown kid is ErrNotFound",
			do:   func(w *world) error { _, err := w.s.GetEAB(w.ctx, "nope"); return err },
			want: ErrNotFound},
		{name: "CreateAccount with a bound EAB key is ErrConflict",
			do:    func(w *world) error { return w.s.CreateAccount(w.ctx, account("acct-2", "thumb-2"), "kid-bound") },
			want:  ErrConflict,
			after: func(w *world) { mustNotFound(w, "account", getAccount(w, "acct-2")) }},
		{name: "CreateAccount with a revoked EAB key is ErrConflict",
			do:   func(w *world) error { return w.s.CreateAccount(w.ctx, account("acct-2", "thumb-2"), "kid-revoked") },
			want: ErrConflict},
		{name: "CreateAccount with an unknown EAB key is ErrConflict",
			do:   func(w *world) error { return w.s.CreateAccount(w.ctx, account("acct-2", "thumb-2"), "nope") },
			want: ErrConflict},
		{name: "CreateAccount with another organisation's EAB key is ErrConflict",
			do: func(w *world) error {
				a := account("acct-2", "thumb-2")
				a.OrgOID = org2
				return w.s.CreateAccount(w.ctx, a, "kid-free")
			},
			want:  ErrConflict,
			after: func(w *world) { mustEqual(w.t, "EAB status", w.eabStatus("kid-free"), EABApproved) }},
		{name: "CreateAccount with a taken thumbprint is ErrDuplicate and leaves the EAB key approved",
			do:   func(w *world) error { return w.s.CreateAccount(w.ctx, account("acct-2", "thumb-1"), "kid-free") },
			want: ErrDuplicate,
			after: func(w *world) {
				k := mustEAB(w, "kid-free")
				mustEqual(w.t, "EAB status", k.Status, EABApproved)
				mustEqual(w.t, "EAB account", k.AccountID, "")
				mustNotFound(w, "account", getAccount(w, "acct-2"))
			}},
		{name: "CreateAccount with a taken account id is ErrDuplicate",
			do:    func(w *world) error { return w.s.CreateAccount(w.ctx, account("acct-1", "thumb-2"), "kid-free") },
			want:  ErrDuplicate,
			after: func(w *world) { mustEqual(w.t, "EAB status", w.eabStatus("kid-free"), EABApproved) }},
		{name: "GetAccount of an unknown id is ErrNotFound",
			do:   func(w *world) error { return getAccount(w, "nope") },
			want: ErrNotFound},
		{name: "GetAccountByThumbprint of an unknown key is ErrNotFound",
			do:   func(w *world) error { _, err := w.s.GetAccountByThumbprint(w.ctx, "nope"); return err },
			want: ErrNotFound},
		{name: "UpdateAccountContacts of an unknown account is ErrNotFound",
			do:   func(w *world) error { return w.s.UpdateAccountContacts(w.ctx, "nope", nil) },
			want: ErrNotFound},
		{name: "UpdateAccountContacts replaces the contacts",
			do: func(w *world) error {
				return w.s.UpdateAccountContacts(w.ctx, "acct-1", []string{"mailto:x@example.fi"})
			},
			after: func(w *world) {
				a, err := w.s.GetAccount(w.ctx, "acct-1")
				w.must(err)
				mustEqual(w.t, "contacts", fmt.Sprint(a.Contacts), "[mailto:x@example.fi]")
			}},
		{name: "DeactivateAccount of a valid account deactivates it",
			do:    func(w *world) error { return w.s.DeactivateAccount(w.ctx, "acct-1") },
			after: func(w *world) { mustEqual(w.t, "status", mustAccount(w, "acct-1").Status, "deactivated") }},
		{name: "DeactivateAccount twice is ErrConflict",
			setup: func(w *world) { w.must(w.s.DeactivateAccount(w.ctx, "acct-1")) },
			do:    func(w *world) error { return w.s.DeactivateAccount(w.ctx, "acct-1") },
			want:  ErrConflict},
		{name: "DeactivateAccount of an unknown account is ErrNotFound",
			do:   func(w *world) error { return w.s.DeactivateAccount(w.ctx, "nope") },
			want: ErrNotFound},
		{name: "ChangeAccountKey from the current key changes it",
			do: func(w *world) error {
				return w.s.ChangeAccountKey(w.ctx, "acct-1", "thumb-1", "thumb-new", []byte(`{"new":1}`))
			},
			after: func(w *world) {
				a, err := w.s.GetAccountByThumbprint(w.ctx, "thumb-new")
				w.must(err)
				mustEqual(w.t, "account", a.ID, "acct-1")
				mustEqual(w.t, "jwk", string(a.JWK), `{"new":1}`)
			}},
		{name: "ChangeAccountKey from a stale key is ErrConflict",
			do: func(w *world) error {
				return w.s.ChangeAccountKey(w.ctx, "acct-1", "thumb-old", "thumb-new", []byte("{}"))
			},
			want:  ErrConflict,
			after: func(w *world) { mustEqual(w.t, "thumbprint", mustAccount(w, "acct-1").Thumbprint, "thumb-1") }},
		{name: "ChangeAccountKey to another account's key is ErrDuplicate",
			setup: func(w *world) { w.must(w.s.CreateAccount(w.ctx, account("acct-2", "thumb-2"), "kid-free")) },
			do:    func(w *world) error { return w.s.ChangeAccountKey(w.ctx, "acct-1", "thumb-1", "thumb-2", []byte("{}")) },
			want:  ErrDuplicate,
			after: func(w *world) { mustEqual(w.t, "thumbprint", mustAccount(w, "acct-1").Thumbprint, "thumb-1") }},
		{name: "ChangeAccountKey of an unknown account is ErrNotFound",
			do:   func(w *world) error { return w.s.ChangeAccountKey(w.ctx, "nope", "thumb-1", "thumb-2", []byte("{}")) },
			want: ErrNotFound},
		{name: "CreateOrder with a taken order id is ErrDuplicate and stores none of its authorizations",
			setup: func(w *world) { w.pendingOrder("o1", "az1") },
			do: func(w *world) error {
				return w.s.CreateOrder(w.ctx, order("o1", "pending", "az2"), []Authorization{authz("az2", 1)})
			},
			want:  ErrDuplicate,
			after: func(w *world) { _, err := w.s.GetAuthorization(w.ctx, "az2"); mustNotFound(w, "authz", err) }},
		{name: "CreateOrder with a taken authorization id is ErrDuplicate",
			setup: func(w *world) { w.pendingOrder("o1", "az1") },
			do: func(w *world) error {
				return w.s.CreateOrder(w.ctx, order("o2", "pending", "az1"), []Authorization{authz("az1", 1)})
			},
			want:  ErrDuplicate,
			after: func(w *world) { _, err := w.s.GetOrder(w.ctx, "o2"); mustNotFound(w, "order", err) }},
		{name: "CreateOrder linking an unknown authorization is ErrNotFound and stores nothing",
			do: func(w *world) error {
				return w.s.CreateOrder(w.ctx, order("o1", "pending", "az1", "az-missing"), []Authorization{authz("az1", 1)})
			},
			want: ErrNotFound,
			after: func(w *world) {
				_, err := w.s.GetOrder(w.ctx, "o1")
				mustNotFound(w, "order", err)
				_, err = w.s.GetAuthorization(w.ctx, "az1")
				mustNotFound(w, "authz", err)
			}},
		{name: "CreateOrder for an unknown account is ErrNotFound",
			do: func(w *world) error {
				o := order("o1", "pending")
				o.AccountID = "nope"
				return w.s.CreateOrder(w.ctx, o, nil)
			},
			want: ErrNotFound},
		{name: "CreateOrder reusing an existing authorization links it",
			setup: func(w *world) { w.pendingOrder("o1", "az1") },
			do: func(w *world) error {
				return w.s.CreateOrder(w.ctx, order("o2", "pending", "az2", "az1"), []Authorization{authz("az2", 1)})
			},
			after: func(w *world) {
				o, err := w.s.GetOrder(w.ctx, "o2")
				w.must(err)
				mustEqual(w.t, "authz ids", fmt.Sprint(o.AuthzIDs), "[az2 az1]")
			}},
		{name: "GetOrder of an unknown id is ErrNotFound",
			do:   func(w *world) error { _, err := w.s.GetOrder(w.ctx, "nope"); return err },
			want: ErrNotFound},
		{name: "GetAuthorization of an unknown id is ErrNotFound",
			do:   func(w *world) error { _, err := w.s.GetAuthorization(w.ctx, "nope"); return err },
			want: ErrNotFound},
		{name: "GetChallenge of an unknown id is ErrNotFound",
			do:   func(w *world) error { _, err := w.s.GetChallenge(w.ctx, "nope"); return err },
			want: ErrNotFound},
		{name: "GetChallengeAuthorization of an unknown id is ErrNotFound",
			do:   func(w *world) error { _, _, err := w.s.GetChallengeAuthorization(w.ctx, "nope"); return err },
			want: ErrNotFound},
		{name: "GetChallengeAuthorization reads the challenge and its whole authorization",
			setup: func(w *world) { w.pendingOrder("o1", "az1"); w.pendingOrder("o2", "az2") },
			do: func(w *world) error {
				w.must(w.s.StartChallenge(w.ctx, "az1-c1"))
				ch, az, err := w.s.GetChallengeAuthorization(w.ctx, "az1-c1")
				if err != nil {
					return err
				}
				wantCh, err := w.s.GetChallenge(w.ctx, "az1-c1")
				w.must(err)
				wantAz, err := w.s.GetAuthorization(w.ctx, "az1")
				w.must(err)
				if !reflect.DeepEqual(ch, wantCh) || !reflect.DeepEqual(az, wantAz) || len(az.Challenges) != 2 {
					return fmt.Errorf("got %+v of %+v, want %+v of %+v", ch, az, wantCh, wantAz)
				}
				return nil
			}},
		{name: "StartChallenge of a pending challenge makes it processing",
			setup: func(w *world) { w.pendingOrder("o1", "az1") },
			do:    func(w *world) error { return w.s.StartChallenge(w.ctx, "az1-c1") },
			after: func(w *world) {
				mustEqual(w.t, "started challenge", w.challengeStatus("az1-c1"), "processing")
				mustEqual(w.t, "other challenge", w.challengeStatus("az1-c0"), "pending")
			}},
		{name: "StartChallenge of a processing challenge is ErrConflict",
			setup: func(w *world) { w.pendingOrder("o1", "az1"); w.must(w.s.StartChallenge(w.ctx, "az1-c0")) },
			do:    func(w *world) error { return w.s.StartChallenge(w.ctx, "az1-c0") },
			want:  ErrConflict},
		{name: "StartChallenge while another challenge of the authorization is processing is ErrConflict",
			setup: func(w *world) { w.pendingOrder("o1", "az1"); w.must(w.s.StartChallenge(w.ctx, "az1-c0")) },
			do:    func(w *world) error { return w.s.StartChallenge(w.ctx, "az1-c1") },
			want:  ErrConflict,
			after: func(w *world) { mustEqual(w.t, "challenge", w.challengeStatus("az1-c1"), "pending") }},
		{name: "StartChallenge of an authorization that is no longer pending is ErrConflict",
			setup: func(w *world) {
				w.pendingOrder("o1", "az1")
				w.must(w.s.StartChallenge(w.ctx, "az1-c0"))
				w.must(w.s.FinishChallenge(w.ctx, "az1-c0", true, t0, nil))
			},
			do:    func(w *world) error { return w.s.StartChallenge(w.ctx, "az1-c1") },
			want:  ErrConflict,
			after: func(w *world) { mustEqual(w.t, "challenge", w.challengeStatus("az1-c1"), "pending") }},
		{name: "StartChallenge of an unknown challenge is ErrNotFound",
			do:   func(w *world) error { return w.s.StartChallenge(w.ctx, "nope") },
			want: ErrNotFound},
		{name: "FinishChallenge of a pending challenge is ErrConflict",
			setup: func(w *world) { w.pendingOrder("o1", "az1") },
			do:    func(w *world) error { return w.s.FinishChallenge(w.ctx, "az1-c0", true, t0, nil) },
			want:  ErrConflict,
			after: func(w *world) { mustEqual(w.t, "authz", w.authzStatus("az1"), "pending") }},
		{name: "FinishChallenge twice is ErrConflict",
			setup: func(w *world) {
				w.pendingOrder("o1", "az1")
				w.must(w.s.StartChallenge(w.ctx, "az1-c0"))
				w.must(w.s.FinishChallenge(w.ctx, "az1-c0", false, t0, problem))
			},
			do:    func(w *world) error { return w.s.FinishChallenge(w.ctx, "az1-c0", true, t0, nil) },
			want:  ErrConflict,
			after: func(w *world) { mustEqual(w.t, "challenge", w.challengeStatus("az1-c0"), "invalid") }},
		{name: "FinishChallengeValid makes the challenge and its authorization valid, with the authorization's new expiry, and the order ready",
			setup: func(w *world) { w.pendingOrder("o1", "az1"); w.must(w.s.StartChallenge(w.ctx, "az1-c0")) },
			do:    func(w *world) error { return w.s.FinishChallengeValid(w.ctx, "az1-c0", t0, t0.Add(30*24*time.Hour)) },
			after: func(w *world) {
				a, err := w.s.GetAuthorization(w.ctx, "az1")
				w.must(err)
				mustEqual(w.t, "authz", a.Status, "valid")
				mustEqual(w.t, "authz expiry", a.Expires.UTC().String(), t0.Add(30*24*time.Hour).UTC().String())
				mustEqual(w.t, "challenge", w.challengeStatus("az1-c0"), "valid")
				o, err := w.s.GetOrder(w.ctx, "o1")
				w.must(err)
				mustEqual(w.t, "order", o.Status, "ready")
			}},
		{name: "FinishChallengeValid of a pending challenge is ErrConflict and keeps the authorization's expiry",
			setup: func(w *world) { w.pendingOrder("o1", "az1") },
			do:    func(w *world) error { return w.s.FinishChallengeValid(w.ctx, "az1-c0", t0, t0.Add(30*24*time.Hour)) },
			want:  ErrConflict,
			after: func(w *world) {
				a, err := w.s.GetAuthorization(w.ctx, "az1")
				w.must(err)
				mustEqual(w.t, "authz", a.Status, "pending")
				mustEqual(w.t, "authz expiry", a.Expires.UTC().String(), t0.Add(time.Hour).UTC().String())
			}},
		{name: "FinishChallengeWithEvidence makes the challenge valid with its evidence, with its audit event",
			setup: func(w *world) { w.pendingOrder("o1", "az1"); w.must(w.s.StartChallenge(w.ctx, "az1-c0")) },
			do: func(w *world) error {
				_, err := w.s.AuditedRows(w.ctx, testSeal, func(tx *Tx) ([]AuditEvent, error) {
					return []AuditEvent{event("authz.validate.persistent-record", "authz=az1")},
						tx.FinishChallengeWithEvidence("az1-c0", t0, `_validation-persist.a.example TXT "ca.example; accounturi=x"`)
				})
				return err
			},
			after: func(w *world) {
				c, err := w.s.GetChallenge(w.ctx, "az1-c0")
				w.must(err)
				mustEqual(w.t, "challenge", c.Status, "valid")
				mustEqual(w.t, "evidence", c.Evidence, `_validation-persist.a.example TXT "ca.example; accounturi=x"`)
				mustEqual(w.t, "authz", w.authzStatus("az1"), "valid")
				other, err := w.s.GetChallenge(w.ctx, "az1-c1")
				w.must(err)
				mustEqual(w.t, "other challenge's evidence", other.Evidence, "")
			}},
		{name: "FinishChallengeWithEvidence of a pending challenge is ErrConflict and keeps nothing",
			setup: func(w *world) { w.pendingOrder("o1", "az1") },
			do: func(w *world) error {
				_, err := w.s.AuditedRows(w.ctx, testSeal, func(tx *Tx) ([]AuditEvent, error) {
					return []AuditEvent{event("authz.validate.persistent-record", "authz=az1")},
						tx.FinishChallengeWithEvidence("az1-c0", t0, "x")
				})
				return err
			},
			want: ErrConflict,
			after: func(w *world) {
				c, err := w.s.GetChallenge(w.ctx, "az1-c0")
				w.must(err)
				mustEqual(w.t, "evidence", c.Evidence, "")
				mustEqual(w.t, "authz", w.authzStatus("az1"), "pending")
			}},
		{name: "BeginFinalize of a pending order is ErrConflict",
			setup: func(w *world) { w.pendingOrder("o1", "az1") },
			do:    func(w *world) error { return w.s.BeginFinalize(w.ctx, "o1") },
			want:  ErrConflict,
			after: func(w *world) { mustEqual(w.t, "order", w.orderStatus("o1"), "pending") }},
		{name: "BeginFinalize twice is ErrConflict",
			setup: func(w *world) { w.processingOrder("o1") },
			do:    func(w *world) error { return w.s.BeginFinalize(w.ctx, "o1") },
			want:  ErrConflict},
		{name: "BeginFinalize of an unknown order is ErrNotFound",
			do:   func(w *world) error { return w.s.BeginFinalize(w.ctx, "nope") },
			want: ErrNotFound},
		{name: "FailOrder of a processing order makes it invalid with the problem",
			setup: func(w *world) { w.processingOrder("o1") },
			do:    func(w *world) error { return w.s.FailOrder(w.ctx, "o1", problem) },
			after: func(w *world) {
				o, err := w.s.GetOrder(w.ctx, "o1")
				w.must(err)
				mustEqual(w.t, "status", o.Status, "invalid")
				mustEqual(w.t, "error", string(o.Error), string(problem))
			}},
		{name: "FailOrder of a ready order is ErrConflict",
			setup: func(w *world) { w.readyOrder("o1") },
			do:    func(w *world) error { return w.s.FailOrder(w.ctx, "o1", problem) },
			want:  ErrConflict,
			after: func(w *world) { mustEqual(w.t, "order", w.orderStatus("o1"), "ready") }},
		{name: "RecordIntent with a used serial is ErrDuplicate",
			setup: func(w *world) {
				w.readyOrder("o1")
				w.must(w.s.RecordIntent(w.ctx, intent("0a", "o1", "aa")))
				w.must(w.s.AbandonIntent(w.ctx, "0a"))
			},
			do:   func(w *world) error { return w.s.RecordIntent(w.ctx, intent("0A", "o1", "bb")) },
			want: ErrDuplicate},
		{name: "RecordIntent for a key held by a pending intent is ErrKeyInUse",
			setup: func(w *world) { w.readyOrder("o1"); w.must(w.s.RecordIntent(w.ctx, intent("0a", "o1", "aa"))) },
			do:    func(w *world) error { return w.s.RecordIntent(w.ctx, intent("0b", "o1", "AA")) },
			want:  ErrKeyInUse,
			after: func(w *world) { _, err := w.s.GetIntent(w.ctx, "0b"); mustNotFound(w, "intent", err) }},
		{name: "RecordIntent for a key held by an issued intent is ErrKeyInUse",
			setup: func(w *world) { w.issue("0a", "aa") },
			do:    func(w *world) error { return w.s.RecordIntent(w.ctx, intent("0b", "o-0a", "aa")) },
			want:  ErrKeyInUse},
		{name: "RecordIntent for a certified key is ErrKeyInUse",
			setup: func(w *world) {
				w.issue("0a", "aa")
				// The certificate alone must block the key, whatever its intent says.
				_, err := w.s.db.Exec(`UPDATE issuance_intents SET status = 'failed'`)
				w.must(err)
			},
			do:   func(w *world) error { return w.s.RecordIntent(w.ctx, intent("0b", "o-0a", "aa")) },
			want: ErrKeyInUse},
		{name: "RecordIntent for a key of an abandoned intent succeeds",
			setup: func(w *world) {
				w.readyOrder("o1")
				w.must(w.s.RecordIntent(w.ctx, intent("0a", "o1", "aa")))
				w.must(w.s.AbandonIntent(w.ctx, "0a"))
			},
			do: func(w *world) error { return w.s.RecordIntent(w.ctx, intent("0b", "o1", "aa")) },
			after: func(w *world) {
				mustEqual(w.t, "old intent", w.intentStatus("0a"), IntentFailed)
				mustEqual(w.t, "new intent", w.intentStatus("0b"), IntentPending)
			}},
		{name: "RecordIntent for an unknown order is ErrNotFound",
			do:   func(w *world) error { return w.s.RecordIntent(w.ctx, intent("0a", "nope", "aa")) },
			want: ErrNotFound},
		{name: "GetIntent of an unknown serial is ErrNotFound",
			do:   func(w *world) error { _, err := w.s.GetIntent(w.ctx, "ff"); return err },
			want: ErrNotFound},
		{name: "AbandonIntent twice is ErrConflict",
			setup: func(w *world) {
				w.readyOrder("o1")
				w.must(w.s.RecordIntent(w.ctx, intent("0a", "o1", "aa")))
				w.must(w.s.AbandonIntent(w.ctx, "0a"))
			},
			do:   func(w *world) error { return w.s.AbandonIntent(w.ctx, "0a") },
			want: ErrConflict},
		{name: "AbandonIntent of an issued intent is ErrConflict",
			setup: func(w *world) { w.issue("0a", "aa") },
			do:    func(w *world) error { return w.s.AbandonIntent(w.ctx, "0a") },
			want:  ErrConflict,
			after: func(w *world) { mustEqual(w.t, "intent", w.intentStatus("0a"), IntentIssued) }},
		{name: "AbandonIntent of an unknown serial is ErrNotFound",
			do:   func(w *world) error { return w.s.AbandonIntent(w.ctx, "ff") },
			want: ErrNotFound},
		{name: "FinishIssuance with a certified serial is ErrDuplicate",
			setup: func(w *world) { w.issue("0a", "aa"); w.processingOrder("o2") },
			do:    func(w *world) error { return w.s.FinishIssuance(w.ctx, cert("0a", "o2", "bb")) },
			want:  ErrDuplicate,
			after: func(w *world) { mustEqual(w.t, "order", w.orderStatus("o2"), "processing") }},
		{name: "FinishIssuance for a certified key is ErrKeyInUse",
			setup: func(w *world) {
				w.issue("0a", "aa")
				w.processingOrder("o2")
				w.must(w.s.RecordIntent(w.ctx, intent("0b", "o2", "bb")))
			},
			do:   func(w *world) error { return w.s.FinishIssuance(w.ctx, cert("0b", "o2", "aa")) },
			want: ErrKeyInUse,
			after: func(w *world) {
				mustEqual(w.t, "order", w.orderStatus("o2"), "processing")
				mustEqual(w.t, "intent", w.intentStatus("0b"), IntentPending)
			}},
		{name: "FinishIssuance for an order that is not processing is ErrConflict and stores nothing",
			setup: func(w *world) { w.readyOrder("o1"); w.must(w.s.RecordIntent(w.ctx, intent("0a", "o1", "aa"))) },
			do:    func(w *world) error { return w.s.FinishIssuance(w.ctx, cert("0a", "o1", "aa")) },
			want:  ErrConflict,
			after: func(w *world) {
				_, err := w.s.GetCertificate(w.ctx, "0a")
				mustNotFound(w, "certificate", err)
				mustEqual(w.t, "intent", w.intentStatus("0a"), IntentPending)
				mustEqual(w.t, "order", w.orderStatus("o1"), "ready")
			}},
		{name: "FinishIssuance without a recorded intent is ErrNotFound and stores nothing",
			setup: func(w *world) { w.processingOrder("o1") },
			do:    func(w *world) error { return w.s.FinishIssuance(w.ctx, cert("0a", "o1", "aa")) },
			want:  ErrNotFound,
			after: func(w *world) { _, err := w.s.GetCertificate(w.ctx, "0a"); mustNotFound(w, "certificate", err) }},
		{name: "FinishIssuance of an abandoned intent is ErrConflict",
			setup: func(w *world) {
				w.processingOrder("o1")
				w.must(w.s.RecordIntent(w.ctx, intent("0a", "o1", "aa")))
				w.must(w.s.AbandonIntent(w.ctx, "0a"))
			},
			do:    func(w *world) error { return w.s.FinishIssuance(w.ctx, cert("0a", "o1", "aa")) },
			want:  ErrConflict,
			after: func(w *world) { mustEqual(w.t, "order", w.orderStatus("o1"), "processing") }},
		{name: "GetCertificate of an unknown serial is ErrNotFound",
			do:   func(w *world) error { _, err := w.s.GetCertificate(w.ctx, "ff"); return err },
			want: ErrNotFound},
		{name: "Revoke of an unknown certificate is ErrNotFound and blocks nothing",
			do: func(w *world) error {
				return w.s.Revoke(w.ctx, Revocation{Serial: "ff", RevokedAt: t0}, &BlockedKey{KeyHash: "aa"})
			},
			want:  ErrNotFound,
			after: func(w *world) { mustBool(w, "key blocked", w.s.KeyBlocked, "aa", false) }},
		{name: "Revoke twice is ErrDuplicate",
			setup: func(w *world) {
				w.issue("0a", "aa")
				w.must(w.s.Revoke(w.ctx, Revocation{Serial: "0a", RevokedAt: t0, Reason: 4}, nil))
			},
			do: func(w *world) error {
				return w.s.Revoke(w.ctx, Revocation{Serial: "0A", RevokedAt: t0, Reason: 1}, nil)
			},
			want: ErrDuplicate,
			after: func(w *world) {
				r, err := w.s.GetRevocation(w.ctx, "0a")
				w.must(err)
				mustEqual(w.t, "reason", fmt.Sprint(r.Reason), "4")
			}},
		{name: "Revoke with a block blocks the key, also when it is already blocked",
			setup: func(w *world) {
				w.issue("0a", "aa")
				w.must(w.s.BlockKey(w.ctx, BlockedKey{KeyHash: "aa", Reason: "earlier"}))
				w.issue("0b", "bb")
			},
			do: func(w *world) error {
				w.must(w.s.Revoke(w.ctx, Revocation{Serial: "0a", RevokedAt: t0, Reason: 1}, &BlockedKey{KeyHash: "aa"}))
				return w.s.Revoke(w.ctx, Revocation{Serial: "0b", RevokedAt: t0, Reason: 1}, &BlockedKey{KeyHash: "bb"})
			},
			after: func(w *world) {
				mustBool(w, "key blocked", w.s.KeyBlocked, "aa", true)
				mustBool(w, "key blocked", w.s.KeyBlocked, "bb", true)
			}},
		{name: "GetRevocation of a certificate that is not revoked is ErrNotFound",
			setup: func(w *world) { w.issue("0a", "aa") },
			do:    func(w *world) error { _, err := w.s.GetRevocation(w.ctx, "0a"); return err },
			want:  ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, open)
			if tc.setup != nil {
				tc.setup(w)
			}
			err := tc.do(w)
			if tc.want == nil && err != nil {
				t.Fatalf("got %v, want success", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.after != nil {
				tc.after(w)
			}
		})
	}
}

func getAccount(w *world, id string) error { _, err := w.s.GetAccount(w.ctx, id); return err }

func mustAccount(w *world, id string) *Account {
	w.t.Helper()
	a, err := w.s.GetAccount(w.ctx, id)
	w.must(err)
	return a
}

func mustEAB(w *world, kid string) *EABKey {
	w.t.Helper()
	k, err := w.s.GetEAB(w.ctx, kid)
	w.must(err)
	return k
}

func mustEqual(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func mustNotFound(w *world, what string, err error) {
	w.t.Helper()
	if !errors.Is(err, ErrNotFound) {
		w.t.Errorf("%s: got %v, want ErrNotFound (nothing stored)", what, err)
	}
}

func mustBool(w *world, what string, f func(context.Context, string) (bool, error), arg string, want bool) {
	w.t.Helper()
	got, err := f(w.ctx, arg)
	w.must(err)
	if got != want {
		w.t.Errorf("%s(%s) = %v, want %v", what, arg, got, want)
	}
}

func testChallengeOutcomes(t *testing.T, open func(t *testing.T) *SQL) {
	problem := []byte(`{"type":"urn:ietf:params:acme:error:incorrectResponse"}`)
	type finish struct {
		challenge string
		valid     bool
	}
	cases := []struct {
		name       string
		setup      func(w *world)
		finishes   []finish
		wantOrders map[string]string
		wantAuthzs map[string]string
	}{
		{name: "the last authorization becoming valid makes the order ready",
			setup:      func(w *world) { w.pendingOrder("o1", "az1", "az2") },
			finishes:   []finish{{"az1-c0", true}, {"az2-c1", true}},
			wantOrders: map[string]string{"o1": "ready"},
			wantAuthzs: map[string]string{"az1": "valid", "az2": "valid"}},
		{name: "a valid authorization leaves an order with another pending authorization pending",
			setup:      func(w *world) { w.pendingOrder("o1", "az1", "az2") },
			finishes:   []finish{{"az1-c0", true}},
			wantOrders: map[string]string{"o1": "pending"},
			wantAuthzs: map[string]string{"az1": "valid", "az2": "pending"}},
		{name: "an invalid authorization makes the order invalid",
			setup:      func(w *world) { w.pendingOrder("o1", "az1", "az2") },
			finishes:   []finish{{"az1-c0", true}, {"az2-c0", false}},
			wantOrders: map[string]string{"o1": "invalid"},
			wantAuthzs: map[string]string{"az1": "valid", "az2": "invalid"}},
		{name: "a shared authorization becoming valid readies only the orders whose authorizations are all valid",
			setup: func(w *world) {
				w.pendingOrder("o1", "az1")
				w.must(w.s.CreateOrder(w.ctx, order("o2", "pending", "az1", "az2"), []Authorization{authz("az2", 1)}))
			},
			finishes:   []finish{{"az1-c0", true}},
			wantOrders: map[string]string{"o1": "ready", "o2": "pending"},
			wantAuthzs: map[string]string{"az1": "valid", "az2": "pending"}},
		{name: "a shared authorization becoming invalid invalidates every pending order",
			setup: func(w *world) {
				w.pendingOrder("o1", "az1")
				w.must(w.s.CreateOrder(w.ctx, order("o2", "pending", "az2", "az1"), []Authorization{authz("az2", 1)}))
			},
			finishes:   []finish{{"az1-c1", false}},
			wantOrders: map[string]string{"o1": "invalid", "o2": "invalid"},
			wantAuthzs: map[string]string{"az1": "invalid", "az2": "pending"}},
		{name: "an invalid authorization leaves an order that is not pending alone",
			setup: func(w *world) {
				w.readyOrder("o1") // authz o1-a, valid
				w.pendingOrder("o2", "az2")
				w.must(w.s.CreateOrder(w.ctx, order("o3", "pending", "o1-a", "az2"), nil))
			},
			finishes:   []finish{{"az2-c0", false}},
			wantOrders: map[string]string{"o1": "ready", "o2": "invalid", "o3": "invalid"},
			wantAuthzs: map[string]string{"o1-a": "valid", "az2": "invalid"}},
		{name: "a reused valid authorization counts toward readiness",
			setup: func(w *world) {
				w.readyOrder("o1") // authz o1-a, valid
				w.must(w.s.CreateOrder(w.ctx, order("o2", "pending", "o1-a", "az2"), []Authorization{authz("az2", 1)}))
			},
			finishes:   []finish{{"az2-c0", true}},
			wantOrders: map[string]string{"o1": "ready", "o2": "ready"},
			wantAuthzs: map[string]string{"o1-a": "valid", "az2": "valid"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, open)
			tc.setup(w)
			validated := t0.Add(time.Minute)
			for _, f := range tc.finishes {
				w.must(w.s.StartChallenge(w.ctx, f.challenge))
				var p []byte
				if !f.valid {
					p = problem
				}
				w.must(w.s.FinishChallenge(w.ctx, f.challenge, f.valid, validated, p))
				c, err := w.s.GetChallenge(w.ctx, f.challenge)
				w.must(err)
				want := map[bool]string{true: "valid", false: "invalid"}[f.valid]
				if c.Status != want || !c.Validated.Equal(validated) || string(c.Error) != string(p) {
					t.Errorf("challenge %s = %s, %v, %s; want %s, %v, %s", f.challenge, c.Status, c.Validated, c.Error, want, validated, p)
				}
			}
			for id, want := range tc.wantAuthzs {
				mustEqual(t, "authorization "+id, w.authzStatus(id), want)
			}
			for id, want := range tc.wantOrders {
				o, err := w.s.GetOrder(w.ctx, id)
				w.must(err)
				mustEqual(t, "order "+id, o.Status, want)
				if o.Error != nil {
					t.Errorf("order %s error = %s, want none (the problem is on the challenge)", id, o.Error)
				}
			}
		})
	}
}

func testIssuance(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	w.processingOrder("o1")
	w.must(w.s.RecordIntent(w.ctx, intent("0a", "o1", "aa")))
	mustBool(w, "KeyCertified", w.s.KeyCertified, "aa", false)
	w.must(w.s.FinishIssuance(w.ctx, cert("0a", "o1", "aa")))

	o, err := w.s.GetOrder(w.ctx, "o1")
	w.must(err)
	cases := []struct{ name, got, want string }{
		{"order is valid", o.Status, "valid"},
		{"order names its certificate", o.CertSerial, "0a"},
		{"intent is issued", w.intentStatus("0a"), IntentIssued},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { mustEqual(t, tc.name, tc.got, tc.want) })
	}
	t.Run("key is certified", func(t *testing.T) { mustBool(w, "KeyCertified", w.s.KeyCertified, "AA", true) })
}

// race runs f(0..n-1) at once and returns their errors.
func race(n int, f func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

func testConcurrency(t *testing.T, open func(t *testing.T) *SQL) {
	const n = 10
	cases := []struct {
		name    string
		setup   func(w *world)
		do      func(w *world, i int) error
		wins    int     // calls that must succeed; 0 means 1
		refused []error // what the others may get
		after   func(w *world)
	}{
		{name: "one EAB key binds exactly one of concurrent new accounts",
			do: func(w *world, i int) error {
				return w.s.CreateAccount(w.ctx, account(fmt.Sprintf("acct-c%d", i), fmt.Sprintf("thumb-c%d", i)), "kid-free")
			},
			refused: []error{ErrConflict, ErrDuplicate},
			after: func(w *world) {
				k := mustEAB(w, "kid-free")
				mustEqual(w.t, "EAB status", k.Status, EABBound)
				bound := 0
				for i := range n {
					id := fmt.Sprintf("acct-c%d", i)
					if err := getAccount(w, id); err == nil {
						bound++
						mustEqual(w.t, "EAB account", k.AccountID, id)
					}
				}
				if bound != 1 {
					w.t.Errorf("%d accounts stored, want 1", bound)
				}
			}},
		{name: "one thumbprint makes exactly one account, and the losers' EAB keys stay approved",
			setup: func(w *world) {
				for i := range n {
					w.eab(fmt.Sprintf("kid-t%d", i), EABApproved)
				}
			},
			do: func(w *world, i int) error {
				return w.s.CreateAccount(w.ctx, account(fmt.Sprintf("acct-t%d", i), "thumb-same"), fmt.Sprintf("kid-t%d", i))
			},
			refused: []error{ErrDuplicate},
			after: func(w *world) {
				a, err := w.s.GetAccountByThumbprint(w.ctx, "thumb-same")
				w.must(err)
				approved := 0
				for i := range n {
					k := mustEAB(w, fmt.Sprintf("kid-t%d", i))
					if k.Status == EABApproved {
						approved++
					} else if k.AccountID != a.ID {
						w.t.Errorf("EAB key %s bound to %s, want %s", k.KID, k.AccountID, a.ID)
					}
				}
				if approved != n-1 {
					w.t.Errorf("%d EAB keys still approved, want %d", approved, n-1)
				}
			}},
		{name: "exactly one of concurrent finalizations begins",
			setup:   func(w *world) { w.readyOrder("o1") },
			do:      func(w *world, _ int) error { return w.s.BeginFinalize(w.ctx, "o1") },
			refused: []error{ErrConflict},
			after:   func(w *world) { mustEqual(w.t, "order", w.orderStatus("o1"), "processing") }},
		{name: "exactly one of concurrent intents for one key is recorded",
			setup: func(w *world) { w.processingOrder("o1") },
			do: func(w *world, i int) error {
				return w.s.RecordIntent(w.ctx, intent(fmt.Sprintf("%02x", i), "o1", "aa"))
			},
			refused: []error{ErrKeyInUse}},
		{name: "exactly one of concurrent intents for one serial is recorded",
			setup: func(w *world) { w.processingOrder("o1") },
			do: func(w *world, i int) error {
				return w.s.RecordIntent(w.ctx, intent("0b", "o1", fmt.Sprintf("b%02x", i)))
			},
			refused: []error{ErrDuplicate}},
		{name: "a certificate is stored once when its issuance is finished concurrently",
			setup: func(w *world) {
				w.processingOrder("o1")
				w.must(w.s.RecordIntent(w.ctx, intent("0c", "o1", "cc")))
			},
			do: func(w *world, _ int) error { return w.s.FinishIssuance(w.ctx, cert("0c", "o1", "cc")) },
			// The losers violate both the serial's and the key's uniqueness; which one
			// the database names first differs between dialects.
			refused: []error{ErrDuplicate, ErrKeyInUse, ErrConflict},
			after: func(w *world) {
				mustEqual(w.t, "order", w.orderStatus("o1"), "valid")
				mustEqual(w.t, "intent", w.intentStatus("0c"), "issued")
			}},
		{name: "exactly one of concurrent challenges of one authorization starts",
			setup: func(w *world) {
				w.must(w.s.CreateOrder(w.ctx, order("o1", "pending", "az1"), []Authorization{authz("az1", n)}))
			},
			do:      func(w *world, i int) error { return w.s.StartChallenge(w.ctx, fmt.Sprintf("az1-c%d", i)) },
			refused: []error{ErrConflict},
			after: func(w *world) {
				a, err := w.s.GetAuthorization(w.ctx, "az1")
				w.must(err)
				processing := 0
				for _, c := range a.Challenges {
					if c.Status == "processing" {
						processing++
					}
				}
				if processing != 1 {
					w.t.Errorf("%d challenges processing, want 1", processing)
				}
			}},
		{name: "exactly one of concurrent revocations of one certificate is recorded",
			setup: func(w *world) { w.issue("0a", "aa") },
			do: func(w *world, i int) error {
				return w.s.Revoke(w.ctx, Revocation{Serial: "0a", RevokedAt: t0, Reason: i}, nil)
			},
			refused: []error{ErrDuplicate}},
		{name: "the last two authorizations finishing at once make the order ready",
			setup: func(w *world) {
				w.pendingOrder("o1", "az0", "az1")
				w.must(w.s.StartChallenge(w.ctx, "az0-c0"))
				w.must(w.s.StartChallenge(w.ctx, "az1-c0"))
			},
			do: func(w *world, i int) error {
				if i >= 2 {
					return w.s.FinishChallenge(w.ctx, "az0-c0", true, t0, nil) // late duplicates
				}
				return w.s.FinishChallenge(w.ctx, fmt.Sprintf("az%d-c0", i), true, t0, nil)
			},
			wins:    2,
			refused: []error{ErrConflict},
			after:   func(w *world) { mustEqual(w.t, "order", w.orderStatus("o1"), "ready") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, open)
			if tc.setup != nil {
				tc.setup(w)
			}
			errs := race(n, func(i int) error { return tc.do(w, i) })
			won := 0
			for _, err := range errs {
				if err == nil {
					won++
					continue
				}
				expected := false
				for _, r := range tc.refused {
					expected = expected || errors.Is(err, r)
				}
				if !expected {
					t.Errorf("unexpected error: %v", err)
				}
			}
			wantWon := max(tc.wins, 1)
			if won != wantWon {
				t.Errorf("%d of %d calls succeeded, want %d", won, n, wantWon)
			}
			if tc.after != nil {
				tc.after(w)
			}
		})
	}
}
