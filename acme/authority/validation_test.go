package authority

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/validate"
	"github.com/varmenne/varmenne/store"
)

// Tests of issue 8: which challenges are offered, how validation is dispatched and
// combined with CAA, authorisation reuse, and the CAA recheck at finalize.

const testAccountURIPrefix = "https://acme.test/acme/account/"

// scriptedValidator answers each method from a table and logs every call.
type scriptedValidator struct {
	mu    sync.Mutex
	fail  map[string]error // "<method> <name>" or "caa <name>" → the answer; missing: nil
	calls []string         // "<method> <name>", "caa <name> <method> <accountURI>"
	// persist is the dns-persist-01 record found per name; missing: a record
	// without persistUntil.
	persist map[string]validate.PersistRecord
}

func (v *scriptedValidator) answer(call, key string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = append(v.calls, call)
	return v.fail[key]
}

func (v *scriptedValidator) HTTP01(_ context.Context, name, _, _ string) error {
	return v.answer("http-01 "+name, "http-01 "+name)
}

func (v *scriptedValidator) DNS01(_ context.Context, name, _ string) error {
	return v.answer("dns-01 "+name, "dns-01 "+name)
}

func (v *scriptedValidator) TLSALPN01(_ context.Context, name, _ string) error {
	return v.answer("tls-alpn-01 "+name, "tls-alpn-01 "+name)
}

func (v *scriptedValidator) DNSAccount01(_ context.Context, name, accountURI, _ string) error {
	return v.answer("dns-account-01 "+name+" "+accountURI, "dns-account-01 "+name)
}

// DNSPersist01 answers with the record v.persist holds for the name (a found
// record), or with the scripted error.
func (v *scriptedValidator) DNSPersist01(_ context.Context, name string, wildcard bool, accountURI string, _ time.Time) (*validate.PersistRecord, error) {
	if err := v.answer(fmt.Sprintf("dns-persist-01 %s %v %s", name, wildcard, accountURI), "dns-persist-01 "+name); err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if rec, ok := v.persist[name]; ok {
		return &rec, nil
	}
	return &validate.PersistRecord{Owner: "_validation-persist." + name, Value: "ca.test; accounturi=" + accountURI}, nil
}

func (v *scriptedValidator) CAA(_ context.Context, name, accountURI, method string) error {
	return v.answer("caa "+name+" "+method+" "+accountURI, "caa "+name)
}

// set makes key ("caa www.example.fi", "dns-01 example.fi") answer err; nil clears it.
func (v *scriptedValidator) set(key string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if err == nil {
		delete(v.fail, key)
		return
	}
	v.fail[key] = err
}

// take returns the calls so far and forgets them.
func (v *scriptedValidator) take() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	calls := v.calls
	v.calls = nil
	slices.Sort(calls)
	return calls
}

// newScriptedFixture is the shared fixture with the authority rebuilt around a
// scripted validator and the account URL prefix set.
func newScriptedFixture(t *testing.T, cfg Config) (*fixture, *scriptedValidator) {
	t.Helper()
	cfg.AccountURIPrefix = testAccountURIPrefix
	f := newFixture(t, cfg)
	v := &scriptedValidator{fail: map[string]error{}, persist: map[string]validate.PersistRecord{}}
	cfg.Revoker, cfg.Audit = testRevoker(f.st), testAuditor(f.st)
	f.a = New(cfg, f.st, v, f.ca, nil)
	t.Cleanup(f.a.Close)
	return f, v
}

// respond answers the challenge of type typ of the authorization and waits until the
// result is recorded.
func (f *fixture) respond(acct *store.Account, azID, typ string) *store.Authorization {
	f.t.Helper()
	az, err := f.a.Authorization(f.ctx, acct, azID)
	if err != nil {
		f.t.Fatalf("Authorization: %v", err)
	}
	for _, ch := range az.Challenges {
		if ch.Type == typ {
			if _, _, err := f.a.RespondChallenge(f.ctx, acct, ch.ID); err != nil {
				f.t.Fatalf("RespondChallenge: %v", err)
			}
			f.a.Close()
			az, err := f.a.Authorization(f.ctx, acct, azID)
			if err != nil {
				f.t.Fatalf("Authorization: %v", err)
			}
			return az
		}
	}
	f.t.Fatalf("authorization for %s offers no %s", az.Name, typ)
	return nil
}

func challengeTypesOf(az *store.Authorization) []string {
	var out []string
	for _, ch := range az.Challenges {
		out = append(out, ch.Type)
	}
	return out
}

func TestOfferedChallenges(t *testing.T) {
	tests := []struct {
		name      string
		allowWild bool
		ids       []string
		want      acme.ErrorKind
		detail    string
		authzs    []string // "<name> <wildcard> <types>" per authorization
	}{
		{name: "a host name is offered http-01, dns-01, tls-alpn-01, then dns-account-01 and dns-persist-01", ids: []string{"www.example.fi"},
			authzs: []string{"www.example.fi false [http-01 dns-01 tls-alpn-01 dns-account-01 dns-persist-01]"}},
		{name: "a wildcard is refused by default", ids: []string{"*.example.fi"},
			want: acme.RejectedIdentifier, detail: "does not issue wildcard certificates"},
		{name: "an allowed wildcard is offered only the DNS challenges, at its base name", allowWild: true, ids: []string{"*.example.fi"},
			authzs: []string{"example.fi true [dns-01 dns-account-01 dns-persist-01]"}},
		{name: "a wildcard and its base name get separate authorizations", allowWild: true, ids: []string{"example.fi", "*.example.fi"},
			authzs: []string{"example.fi false [http-01 dns-01 tls-alpn-01 dns-account-01 dns-persist-01]", "example.fi true [dns-01 dns-account-01 dns-persist-01]"}},
		{name: "a wildcard over a public suffix stays refused", allowWild: true, ids: []string{"*.fi"},
			want: acme.RejectedIdentifier, detail: "public suffix"},
		{name: "a wildcard outside the organisation's domains stays refused", allowWild: true, ids: []string{"*.muu.fi"},
			want: acme.RejectedIdentifier, detail: "outside the domains"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := newScriptedFixture(t, Config{AllowWildcards: tt.allowWild})
			acct := f.account()
			o, err := f.a.NewOrder(f.ctx, acct, acme.NewOrderRequest{Identifiers: dnsIDs(tt.ids...)})
			if tt.want != "" {
				ae := wantKind(t, err, tt.want)
				if !strings.Contains(ae.Detail, tt.detail) && (len(ae.Subproblems) == 0 || !strings.Contains(ae.Subproblems[0].Detail, tt.detail)) {
					t.Errorf("detail %q (subproblems %+v) does not say %q", ae.Detail, ae.Subproblems, tt.detail)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewOrder: %v", err)
			}
			if !slices.Equal(o.Names, tt.ids) {
				t.Errorf("order names %q, want %q as asked", o.Names, tt.ids)
			}
			var got []string
			for _, id := range o.AuthzIDs {
				az, err := f.a.Authorization(f.ctx, acct, id)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%s %v %v", az.Name, az.Wildcard, challengeTypesOf(az)))
			}
			if !slices.Equal(got, tt.authzs) {
				t.Errorf("authorizations %q, want %q", got, tt.authzs)
			}
		})
	}
}

func TestValidationDispatch(t *testing.T) {
	tests := []struct {
		name     string
		order    string
		typ      string
		wantCall []string
	}{
		{"http-01 validates the name and checks CAA for http-01", "www.example.fi", acme.ChallengeHTTP01,
			[]string{"caa www.example.fi http-01 %s", "http-01 www.example.fi"}},
		{"dns-01 validates the name and checks CAA for dns-01", "www.example.fi", acme.ChallengeDNS01,
			[]string{"caa www.example.fi dns-01 %s", "dns-01 www.example.fi"}},
		{"tls-alpn-01 validates the name and checks CAA for tls-alpn-01", "www.example.fi", acme.ChallengeTLSALPN01,
			[]string{"caa www.example.fi tls-alpn-01 %s", "tls-alpn-01 www.example.fi"}},
		{"a wildcard is proven at its base and CAA is checked for the wildcard", "*.example.fi", acme.ChallengeDNS01,
			[]string{"caa *.example.fi dns-01 %s", "dns-01 example.fi"}},
		{"dns-account-01 validates with the account's URL and checks CAA for dns-account-01", "www.example.fi", acme.ChallengeDNSAccount01,
			[]string{"caa www.example.fi dns-account-01 %[1]s", "dns-account-01 www.example.fi %[1]s"}},
		{"dns-persist-01 reads the record for the account and checks CAA for dns-persist-01", "www.example.fi", acme.ChallengeDNSPersist01,
			[]string{"caa www.example.fi dns-persist-01 %[1]s", "dns-persist-01 www.example.fi false %[1]s"}},
		{"dns-persist-01 for a wildcard asks for a wildcard record at the base", "*.example.fi", acme.ChallengeDNSPersist01,
			[]string{"caa *.example.fi dns-persist-01 %[1]s", "dns-persist-01 example.fi true %[1]s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, v := newScriptedFixture(t, Config{AllowWildcards: true})
			acct := f.account()
			o := f.order(acct, tt.order)
			az := f.respond(acct, o.AuthzIDs[0], tt.typ)
			if az.Status != string(acme.StatusValid) {
				t.Fatalf("authorization %s, want valid", az.Status)
			}
			want := slices.Clone(tt.wantCall)
			for i := range want {
				if strings.Contains(want[i], "%") {
					want[i] = fmt.Sprintf(want[i], testAccountURIPrefix+acct.ID)
				}
			}
			if got := v.take(); !slices.Equal(got, want) {
				t.Errorf("validator calls %q, want %q", got, want)
			}
		})
	}
}

func TestCAAAtValidation(t *testing.T) {
	refused := acme.Errorf(acme.CAA, "the CAA issue records at example.fi do not allow this CA")
	wrong := acme.Errorf(acme.IncorrectResponse, "wrong content")
	tests := []struct {
		name       string
		fail       map[string]error
		wantStatus acme.Status
		wantKind   acme.ErrorKind
	}{
		{"a proven name CAA allows becomes valid", nil, acme.StatusValid, ""},
		{"a proven name CAA forbids becomes invalid with the caa problem", map[string]error{"caa www.example.fi": refused}, acme.StatusInvalid, acme.CAA},
		{"a failed challenge is reported before CAA", map[string]error{"caa www.example.fi": refused, "http-01 www.example.fi": wrong}, acme.StatusInvalid, acme.IncorrectResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, v := newScriptedFixture(t, Config{})
			for k, err := range tt.fail {
				v.set(k, err)
			}
			acct := f.account()
			o := f.order(acct, "www.example.fi")
			az := f.respond(acct, o.AuthzIDs[0], acme.ChallengeHTTP01)
			if az.Status != string(tt.wantStatus) {
				t.Fatalf("authorization %s, want %s", az.Status, tt.wantStatus)
			}
			o, err := f.a.Order(f.ctx, acct, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantOrder := map[acme.Status]string{acme.StatusValid: "ready", acme.StatusInvalid: "invalid"}[tt.wantStatus]
			if o.Status != wantOrder {
				t.Errorf("order %s, want %s", o.Status, wantOrder)
			}
			if tt.wantKind == "" {
				return
			}
			var p acme.Problem
			if err := json.Unmarshal(az.Challenges[0].Error, &p); err != nil || p.Type != tt.wantKind.URN() {
				t.Errorf("challenge problem %s, want %s", az.Challenges[0].Error, tt.wantKind.URN())
			}
		})
	}
}

func TestValidAuthorizationLifetime(t *testing.T) {
	f, _ := newScriptedFixture(t, Config{AuthzLifetime: 2 * 24 * time.Hour, ValidAuthzLifetime: 10 * 24 * time.Hour})
	clock := time.Now().UTC().Truncate(time.Microsecond)
	f.a.now = func() time.Time { return clock }
	acct := f.account()
	o := f.order(acct, "www.example.fi")
	az, _ := f.a.Authorization(f.ctx, acct, o.AuthzIDs[0])
	if want := clock.Add(2 * 24 * time.Hour); !az.Expires.Equal(want) {
		t.Errorf("pending authorization expires %v, want %v", az.Expires, want)
	}
	az = f.respond(acct, o.AuthzIDs[0], acme.ChallengeHTTP01)
	if want := clock.Add(10 * 24 * time.Hour); az.Status != string(acme.StatusValid) || !az.Expires.Equal(want) {
		t.Errorf("valid authorization %s expires %v, want valid until %v", az.Status, az.Expires, want)
	}
	clock = clock.Add(10*24*time.Hour + time.Second)
	if az, _ := f.a.Authorization(f.ctx, acct, o.AuthzIDs[0]); az.Status != string(acme.StatusExpired) {
		t.Errorf("authorization past its expiry is %s, want expired", az.Status)
	}
}

func TestAuthorizationReuse(t *testing.T) {
	type step struct {
		account  string // "A" or "B" (same organisation, another account)
		names    []string
		validate bool          // validate the order's pending authorizations
		advance  time.Duration // move the clock first
	}
	tests := []struct {
		name       string
		cfg        Config
		first      step
		second     step
		wantReused []bool // per name of the second order
		wantStatus acme.Status
	}{
		{name: "the same account reuses its valid authorization",
			first:  step{account: "A", names: []string{"www.example.fi"}, validate: true},
			second: step{account: "A", names: []string{"www.example.fi"}}, wantReused: []bool{true}, wantStatus: acme.StatusReady},
		{name: "another account of the same organisation does not",
			first:  step{account: "A", names: []string{"www.example.fi"}, validate: true},
			second: step{account: "B", names: []string{"www.example.fi"}}, wantReused: []bool{false}, wantStatus: acme.StatusPending},
		{name: "a pending authorization is not reused",
			first:  step{account: "A", names: []string{"www.example.fi"}},
			second: step{account: "A", names: []string{"www.example.fi"}}, wantReused: []bool{false}, wantStatus: acme.StatusPending},
		{name: "only the proven name of a mixed order is reused",
			first:  step{account: "A", names: []string{"www.example.fi"}, validate: true},
			second: step{account: "A", names: []string{"mail.example.fi", "www.example.fi"}}, wantReused: []bool{false, true}, wantStatus: acme.StatusPending},
		{name: "a validation older than the reuse window is not reused",
			cfg:    Config{AuthzReuse: 24 * time.Hour},
			first:  step{account: "A", names: []string{"www.example.fi"}, validate: true},
			second: step{account: "A", names: []string{"www.example.fi"}, advance: 25 * time.Hour}, wantReused: []bool{false}, wantStatus: acme.StatusPending},
		{name: "a validation inside the reuse window is reused",
			cfg:    Config{AuthzReuse: 24 * time.Hour},
			first:  step{account: "A", names: []string{"www.example.fi"}, validate: true},
			second: step{account: "A", names: []string{"www.example.fi"}, advance: 23 * time.Hour}, wantReused: []bool{true}, wantStatus: acme.StatusReady},
		{name: "reuse switched off",
			cfg:    Config{AuthzReuse: -1},
			first:  step{account: "A", names: []string{"www.example.fi"}, validate: true},
			second: step{account: "A", names: []string{"www.example.fi"}}, wantReused: []bool{false}, wantStatus: acme.StatusPending},
		{name: "a wildcard's authorization does not serve its base name",
			cfg:    Config{AllowWildcards: true},
			first:  step{account: "A", names: []string{"*.example.fi"}, validate: true},
			second: step{account: "A", names: []string{"example.fi"}}, wantReused: []bool{false}, wantStatus: acme.StatusPending},
		{name: "a host's authorization does not serve a wildcard",
			cfg:    Config{AllowWildcards: true},
			first:  step{account: "A", names: []string{"example.fi"}, validate: true},
			second: step{account: "A", names: []string{"*.example.fi"}}, wantReused: []bool{false}, wantStatus: acme.StatusPending},
		{name: "a wildcard's authorization serves the wildcard",
			cfg:    Config{AllowWildcards: true},
			first:  step{account: "A", names: []string{"*.example.fi"}, validate: true},
			second: step{account: "A", names: []string{"*.example.fi"}}, wantReused: []bool{true}, wantStatus: acme.StatusReady},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, v := newScriptedFixture(t, tt.cfg)
			clock := time.Now().UTC()
			f.a.now = func() time.Time { return clock }
			accts := map[string]*store.Account{"A": f.account(), "B": f.account()}

			first := f.order(accts[tt.first.account], tt.first.names...)
			if tt.first.validate {
				for _, id := range first.AuthzIDs {
					az, _ := f.a.Authorization(f.ctx, accts[tt.first.account], id)
					// dns-01 serves every name, the wildcard included.
					if got := f.respond(accts[tt.first.account], id, acme.ChallengeDNS01); got.Status != string(acme.StatusValid) {
						t.Fatalf("first order's authorization for %s is %s", az.Name, got.Status)
					}
				}
			}
			v.take()

			clock = clock.Add(tt.second.advance)
			second := f.order(accts[tt.second.account], tt.second.names...)
			for i, id := range second.AuthzIDs {
				reused := slices.Contains(first.AuthzIDs, id)
				if reused != tt.wantReused[i] {
					t.Errorf("%s: reused %v, want %v", tt.second.names[i], reused, tt.wantReused[i])
				}
				az, err := f.a.Authorization(f.ctx, accts[tt.second.account], id)
				if err != nil {
					t.Fatalf("the second order's account cannot read its authorization %s: %v", id, err)
				}
				if az.AccountID != accts[tt.second.account].ID {
					t.Errorf("authorization of account %s in an order of account %s", az.AccountID, accts[tt.second.account].ID)
				}
			}
			if second.Status != string(tt.wantStatus) {
				t.Errorf("second order %s, want %s", second.Status, tt.wantStatus)
			}
			if calls := v.take(); len(calls) != 0 {
				t.Errorf("creating the second order ran validations %q", calls)
			}
		})
	}
}

func TestReusedOrderCompletesWithTheNewName(t *testing.T) {
	f, _ := newScriptedFixture(t, Config{})
	acct := f.account()
	f.readyOrder(acct, "www.example.fi")
	o := f.order(acct, "mail.example.fi", "www.example.fi")
	if o.Status != string(acme.StatusPending) {
		t.Fatalf("order %s, want pending until mail.example.fi is proven", o.Status)
	}
	f.respond(acct, o.AuthzIDs[0], acme.ChallengeHTTP01)
	if o, _ = f.a.Order(f.ctx, acct, o.ID); o.Status != string(acme.StatusReady) {
		t.Fatalf("order %s after the new name was proven, want ready", o.Status)
	}
	key := newKey(t)
	o, err := f.finalize(acct, o.ID, makeCSR(t, key, &x509.CertificateRequest{DNSNames: []string{"mail.example.fi", "www.example.fi"}}))
	if err != nil || o.Status != string(acme.StatusValid) {
		t.Fatalf("finalize: %v (order %+v)", err, o)
	}
}

func TestFinalizeRechecksCAA(t *testing.T) {
	names := []string{"a.example.fi", "b.example.fi", "c.example.fi"}
	forbid := func(name string) error {
		return acme.Errorf(acme.CAA, "the CAA issue records at %s do not allow this CA", name)
	}
	tests := []struct {
		name      string
		cfg       Config
		names     []string
		advance   time.Duration // between validation and finalize
		forbidden []string      // CAA refuses these at finalize
		wantKind  acme.ErrorKind
		wantSubs  []string // identifiers of the subproblems
		wantCAA   []string // names whose CAA is checked at finalize
	}{
		{name: "only the third of three names forbidden refuses the whole finalize, naming the third",
			names: names, advance: 9 * time.Hour, forbidden: []string{"c.example.fi"},
			wantKind: acme.CAA, wantSubs: []string{"c.example.fi"}, wantCAA: names},
		{name: "only the first forbidden is found as well",
			names: names, advance: 9 * time.Hour, forbidden: []string{"a.example.fi"},
			wantKind: acme.CAA, wantSubs: []string{"a.example.fi"}, wantCAA: names},
		{name: "every forbidden name gets its subproblem",
			names: names, advance: 9 * time.Hour, forbidden: []string{"a.example.fi", "c.example.fi"},
			wantKind: acme.CAA, wantSubs: []string{"a.example.fi", "c.example.fi"}, wantCAA: names},
		{name: "validations older than the window are rechecked and pass",
			names: names, advance: 9 * time.Hour, wantCAA: names},
		{name: "fresh validations are not rechecked",
			names: names, advance: 7 * time.Hour, forbidden: []string{"c.example.fi"}},
		{name: "a short configured window rechecks sooner",
			cfg:   Config{CAARecheckAfter: time.Minute},
			names: names, advance: 2 * time.Minute, forbidden: []string{"b.example.fi"},
			wantKind: acme.CAA, wantSubs: []string{"b.example.fi"}, wantCAA: names},
		{name: "a wildcard is rechecked as a wildcard",
			cfg:   Config{AllowWildcards: true},
			names: []string{"example.fi", "*.example.fi"}, advance: 9 * time.Hour, forbidden: []string{"*.example.fi"},
			wantKind: acme.CAA, wantSubs: []string{"*.example.fi"}, wantCAA: []string{"*.example.fi", "example.fi"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, v := newScriptedFixture(t, tt.cfg)
			clock := time.Now().UTC()
			f.a.now = func() time.Time { return clock }
			acct := f.account()
			o := f.order(acct, tt.names...)
			for _, id := range o.AuthzIDs {
				f.respond(acct, id, acme.ChallengeDNS01)
			}
			if o, _ = f.a.Order(f.ctx, acct, o.ID); o.Status != string(acme.StatusReady) {
				t.Fatalf("order %s after validation, want ready", o.Status)
			}
			v.take()

			clock = clock.Add(tt.advance)
			for _, n := range tt.forbidden {
				v.set("caa "+n, forbid(n))
			}
			csr := makeCSR(t, newKey(t), &x509.CertificateRequest{DNSNames: tt.names})
			got, err := f.finalize(acct, o.ID, csr)

			var checked []string
			for _, c := range v.take() {
				if fields := strings.Fields(c); fields[0] == "caa" {
					checked = append(checked, fields[1])
					if fields[2] != acme.ChallengeDNS01 || fields[3] != testAccountURIPrefix+acct.ID {
						t.Errorf("CAA recheck %q: want the method that validated (dns-01) and the account URL", c)
					}
				}
			}
			if want := slices.Sorted(slices.Values(tt.wantCAA)); !slices.Equal(checked, want) {
				t.Errorf("CAA checked at finalize for %q, want %q", checked, want)
			}

			if tt.wantKind == "" {
				if err != nil || got.Status != string(acme.StatusValid) {
					t.Fatalf("finalize: %v, want a certificate", err)
				}
				return
			}
			ae := wantKind(t, err, tt.wantKind)
			if ae.HTTPStatus() != 403 {
				t.Errorf("status %d, want 403", ae.HTTPStatus())
			}
			var subs []string
			for _, s := range ae.Subproblems {
				subs = append(subs, s.Identifier.Value)
				if s.Type != acme.CAA.URN() || !strings.Contains(s.Detail, s.Identifier.Value) {
					t.Errorf("subproblem %+v: want a caa problem about %s", s, s.Identifier.Value)
				}
			}
			slices.Sort(subs)
			if !slices.Equal(subs, tt.wantSubs) {
				t.Errorf("subproblems for %q, want %q", subs, tt.wantSubs)
			}
			if n := f.rec.n.Load(); n != 0 {
				t.Errorf("%d issuance intents recorded; a CAA refusal must come before signing", n)
			}
			// Nothing was consumed: once CAA allows it again, the same order issues.
			if o, _ := f.a.Order(f.ctx, acct, o.ID); o.Status != string(acme.StatusReady) {
				t.Fatalf("order %s after the refusal, want still ready", o.Status)
			}
			for _, n := range tt.forbidden {
				v.set("caa "+n, nil)
			}
			if got, err := f.finalize(acct, o.ID, csr); err != nil || got.Status != string(acme.StatusValid) {
				t.Fatalf("finalize once CAA allows it: %v", err)
			}
		})
	}
}

func TestFinalizeRechecksCAAOfReusedAuthorization(t *testing.T) {
	// The case reuse makes common: proven days ago, CAA changed since.
	f, v := newScriptedFixture(t, Config{})
	clock := time.Now().UTC()
	f.a.now = func() time.Time { return clock }
	acct := f.account()
	f.readyOrder(acct, "www.example.fi")

	clock = clock.Add(3 * 24 * time.Hour)
	o := f.order(acct, "www.example.fi")
	if o.Status != string(acme.StatusReady) {
		t.Fatalf("order %s, want ready through reuse", o.Status)
	}
	v.set("caa www.example.fi", acme.Errorf(acme.CAA, "www.example.fi: CAA now names another CA"))
	_, err := f.finalize(acct, o.ID, makeCSR(t, newKey(t), &x509.CertificateRequest{DNSNames: []string{"www.example.fi"}}))
	if ae := wantKind(t, err, acme.CAA); len(ae.Subproblems) != 1 || ae.Subproblems[0].Identifier.Value != "www.example.fi" {
		t.Fatalf("subproblems %+v, want one for www.example.fi", ae.Subproblems)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{}, true},
		{"reuse of 30 days", Config{AuthzReuse: 30 * 24 * time.Hour}, true},
		{"reuse switched off", Config{AuthzReuse: -1}, true},
		{"reuse over 30 days", Config{AuthzReuse: 31 * 24 * time.Hour}, false},
		{"reuse longer than valid authorizations live", Config{AuthzReuse: 10 * 24 * time.Hour, ValidAuthzLifetime: 5 * 24 * time.Hour}, false},
		{"CAA recheck window of 8 hours", Config{CAARecheckAfter: 8 * time.Hour}, true},
		{"CAA recheck window over 8 hours", Config{CAARecheckAfter: 9 * time.Hour}, false},
		{"negative CAA recheck window", Config{CAARecheckAfter: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
