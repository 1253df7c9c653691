package authority

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/acmetest"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
	"github.com/varmenne/varmenne/acme/validate"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/revocation"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/store"
)

// The organisation most tests work for.
const (
	testOrgOID  = "1.2.246.10.12345678.10.0"
	testOrgName = "Apteekki Oy"
	testOrgLong = "Apteekki Oy Keskusapteekki"

	otherOrgOID = "1.2.246.10.87654321.10.0"

	newAccountURL = "https://acme.test/acme/new-account"
)

// fixture is an Authority over the real SQLite store and a real signer.CA with a
// development issuer; only the validator is fake.
type fixture struct {
	t    testing.TB
	ctx  context.Context
	path string // of the SQLite database
	st   *store.SQL
	rec  *countingRecorder
	ca   *signer.CA
	val  *fakeValidator
	a    *Authority
}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "varmenne.db")
	copyTemplateDB(t, path)
	st, err := store.OpenSQLite(ctx, path, eabSecret)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	pki, err := sharedPKI()
	if err != nil {
		t.Fatalf("EnsureDevPKI: %v", err)
	}
	rec := &countingRecorder{st: st}
	// The profile serve uses, with the default SOTE linter.
	ca := signer.New(pki.Production, signer.Profile{
		Name:        "sote-server",
		Validity:    365 * 24 * time.Hour,
		Backdate:    time.Minute,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		CRLURL:      "http://127.0.0.1:14080/crl/production.crl",
		IssuerURL:   "http://127.0.0.1:14080/issuer/production.cer",
	}, rec, time.Now, rand.Reader)
	// Every change and signature is audited, as in a server.
	aud := testAuditor(st)
	ca.WithAuditor(&intentAuditor{Recorder: aud, rec: rec})
	val := &fakeValidator{}
	if cfg.Revoker == nil {
		cfg.Revoker = testRevoker(st)
	}
	if cfg.Audit == nil {
		cfg.Audit = aud
	}
	a := New(cfg, st, val, ca, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	// Background validations must be recorded before the database closes.
	t.Cleanup(a.Close)
	f := &fixture{t: t, ctx: ctx, path: path, st: st, rec: rec, ca: ca, val: val, a: a}
	f.addOrg(testOrgOID, testOrgName, testOrgLong, "example.fi")
	return f
}

// testAuditor is the audit log a server keeps, on st.
func testAuditor(st *store.SQL) audit.Recorder {
	return audit.Recorder{Log: audit.New(st, nil), Actor: "varmenne serve"}
}

// eabSecret seals the EAB keys of every fixture's store, copies of templateDB.
var eabSecret, _ = store.GenerateEABSecret()

// sharedDir holds what every fixture shares; TestMain removes it.
var sharedDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "authority-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sharedDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// sharedPKI is one development PKI for every fixture: it is only read.
var sharedPKI = sync.OnceValues(func() (*filekey.DevPKI, error) {
	pki, _, err := filekey.EnsureDevPKI(filepath.Join(sharedDir, "pki"), "ecdsa-p256", nil)
	return pki, err
})

// templateDB is an empty database with every migration applied, made once with
// store.OpenSQLite; fixtures start from a copy of it instead of paying for the
// migrations' synchronous writes each time.
var templateDB = sync.OnceValues(func() (string, error) {
	path := filepath.Join(sharedDir, "template.db")
	st, err := store.OpenSQLite(context.Background(), path, eabSecret)
	if err != nil {
		return "", err
	}
	// Closing the last connection checkpoints the WAL into the main file.
	return path, st.Close()
})

func copyTemplateDB(t testing.TB, to string) {
	t.Helper()
	from, err := templateDB()
	if err != nil {
		t.Fatalf("template database: %v", err)
	}
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(from + suffix)
		if os.IsNotExist(err) && suffix != "" {
			continue
		}
		if err == nil {
			err = os.WriteFile(to+suffix, b, 0o600)
		}
		if err != nil {
			t.Fatalf("copying the template database: %v", err)
		}
	}
}

// countingRecorder is the real store's RecordIntent, counting the intents recorded:
// those recorded through it, closed, and those the CA records in the transaction of
// their certificate.sign.begin event (intentAuditor).
type countingRecorder struct {
	st *store.SQL
	n  atomic.Int32
	// afterRecord, when set before use, runs after each recorded intent.
	afterRecord func()
	// beforeBegin, when set before use, runs before each transaction that records
	// an intent with its sign.begin event.
	beforeBegin func()
}

// intentAuditor is the server's audit log, counting in rec the intents the CA
// records with their sign.begin event.
type intentAuditor struct {
	audit.Recorder
	rec *countingRecorder
}

func (a *intentAuditor) Change(ctx context.Context, e audit.Event, outcome string, change func(tx *store.Tx) error) error {
	begin := e.Action() == audit.ActSignBegin
	if begin && a.rec.beforeBegin != nil {
		a.rec.beforeBegin()
	}
	err := a.Recorder.Change(ctx, e, outcome, change)
	if begin && err == nil {
		a.rec.n.Add(1)
		if a.rec.afterRecord != nil {
			a.rec.afterRecord()
		}
	}
	return err
}

// FailIntent passes the signer's closing of an unsigned intent to the store, when
// the store has it.
func (r *countingRecorder) FailIntent(ctx context.Context, serial, reason string) error {
	if f, ok := any(r.st).(signer.IntentFailer); ok {
		return f.FailIntent(ctx, serial, reason)
	}
	return nil
}

func (r *countingRecorder) RecordIntent(ctx context.Context, in store.IssuanceIntent) error {
	err := r.st.RecordIntent(ctx, in)
	if err == nil {
		r.n.Add(1)
		if r.afterRecord != nil {
			r.afterRecord()
		}
	}
	return err
}

// fakeValidator answers http-01 with a chosen result; while gate is open (not nil and
// not closed) it waits, so a test decides when a validation finishes.
type fakeValidator struct {
	calls    atomic.Int32 // challenge validations
	caaCalls atomic.Int32

	mu       sync.Mutex
	result   error
	gate     chan struct{}
	names    []string
	keyAuths []string
	deadline time.Duration // time left on the context when the last call started
}

// set decides what later validations return and whether they wait for gate.
func (v *fakeValidator) set(result error, gate chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.result, v.gate = result, gate
}

func (v *fakeValidator) HTTP01(ctx context.Context, name, token, keyAuth string) error {
	v.calls.Add(1)
	v.mu.Lock()
	result, gate := v.result, v.gate
	v.names = append(v.names, name)
	v.keyAuths = append(v.keyAuths, keyAuth)
	if d, ok := ctx.Deadline(); ok {
		v.deadline = time.Until(d)
	} else {
		v.deadline = -1
	}
	v.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return result
}

// DNS01 and TLSALPN01 answer as HTTP01 does.
func (v *fakeValidator) DNS01(ctx context.Context, name, keyAuth string) error {
	return v.HTTP01(ctx, name, "", keyAuth)
}

func (v *fakeValidator) TLSALPN01(ctx context.Context, name, keyAuth string) error {
	return v.HTTP01(ctx, name, "", keyAuth)
}

func (v *fakeValidator) DNSAccount01(ctx context.Context, name, _, keyAuth string) error {
	return v.HTTP01(ctx, name, "", keyAuth)
}

func (v *fakeValidator) DNSPersist01(ctx context.Context, name string, _ bool, _ string, _ time.Time) (*validate.PersistRecord, error) {
	if err := v.HTTP01(ctx, name, "", ""); err != nil {
		return nil, err
	}
	return &validate.PersistRecord{Owner: "_validation-persist." + name, Value: "fake"}, nil
}

// CAA always allows issuance; the tests here are about the authority's own rules.
func (v *fakeValidator) CAA(ctx context.Context, name, accountURI, method string) error {
	v.caaCalls.Add(1)
	return nil
}

func (f *fixture) addOrg(oid, name, long string, domains ...string) {
	f.t.Helper()
	err := f.st.AddOrganisation(f.ctx, store.Organisation{OID: oid, Name: name, LongName: long, Domains: domains, CreatedAt: time.Now()})
	if err != nil {
		f.t.Fatalf("AddOrganisation %s: %v", oid, err)
	}
}

// newEAB stores an EAB key for org in the given state and returns its kid and HMAC key.
func (f *fixture) newEAB(org string, domains []string, status string) (string, []byte) {
	f.t.Helper()
	kid := newID()
	hmacKey := make([]byte, 32)
	rand.Read(hmacKey)
	err := f.st.CreateEAB(f.ctx, store.EABKey{KID: kid, OrgOID: org, HMACKey: hmacKey, Domains: domains, Status: status, CreatedAt: time.Now()})
	if err != nil {
		f.t.Fatalf("CreateEAB: %v", err)
	}
	return kid, hmacKey
}

// newAccountRequest is a newAccount payload binding key with the EAB key.
func newAccountRequest(t testing.TB, key crypto.Signer, kid string, hmacKey []byte) acme.NewAccountRequest {
	t.Helper()
	eab, err := jwstest.EAB(key, kid, hmacKey, newAccountURL, "")
	if err != nil {
		t.Fatalf("jwstest.EAB: %v", err)
	}
	return acme.NewAccountRequest{Contact: []string{"mailto:admin@example.fi"}, TermsOfServiceAgreed: true, ExternalAccountBinding: eab}
}

// accountFor creates an account of org through NewAccount with a fresh EAB key.
func (f *fixture) accountFor(org string, eabDomains ...string) (*store.Account, *ecdsa.PrivateKey) {
	f.t.Helper()
	kid, hmacKey := f.newEAB(org, eabDomains, store.EABApproved)
	key := newKey(f.t)
	acct, created, err := f.a.NewAccount(f.ctx, newAccountRequest(f.t, key, kid, hmacKey), jwstest.JWK(key), newAccountURL)
	if err != nil || !created {
		f.t.Fatalf("NewAccount: created %v, %v", created, err)
	}
	return acct, key
}

// account is a new account of the test organisation.
func (f *fixture) account() *store.Account {
	f.t.Helper()
	acct, _ := f.accountFor(testOrgOID)
	return acct
}

// order creates an order for names.
func (f *fixture) order(acct *store.Account, names ...string) *store.Order {
	f.t.Helper()
	o, err := f.a.NewOrder(f.ctx, acct, acme.NewOrderRequest{Identifiers: dnsIDs(names...)})
	if err != nil {
		f.t.Fatalf("NewOrder %v: %v", names, err)
	}
	return o
}

// validateAll answers every authorization of o with the validator's current result
// and returns the order as it is then.
func (f *fixture) validateAll(acct *store.Account, o *store.Order) *store.Order {
	f.t.Helper()
	for _, azID := range o.AuthzIDs {
		az, err := f.a.Authorization(f.ctx, acct, azID)
		if err != nil {
			f.t.Fatalf("Authorization: %v", err)
		}
		if _, _, err := f.a.RespondChallenge(f.ctx, acct, httpChallenge(f.t, az).ID); err != nil {
			f.t.Fatalf("RespondChallenge: %v", err)
		}
	}
	f.a.Close() // wait until every result is recorded
	o, err := f.a.Order(f.ctx, acct, o.ID)
	if err != nil {
		f.t.Fatalf("Order: %v", err)
	}
	return o
}

// readyOrder is an order for names whose authorizations are all valid.
func (f *fixture) readyOrder(acct *store.Account, names ...string) *store.Order {
	f.t.Helper()
	o := f.validateAll(acct, f.order(acct, names...))
	if o.Status != string(acme.StatusReady) {
		f.t.Fatalf("order status %q after validation, want ready", o.Status)
	}
	return o
}

// finalize sends a finalize request with the CSR DER.
func (f *fixture) finalize(acct *store.Account, orderID string, csrDER []byte) (*store.Order, error) {
	return f.a.Finalize(f.ctx, acct, orderID, []byte(`{"csr":"`+base64.RawURLEncoding.EncodeToString(csrDER)+`"}`))
}

// issue runs the whole flow for names and returns the stored certificate, the parsed
// one and its key.
func (f *fixture) issue(acct *store.Account, names ...string) (*store.Certificate, *x509.Certificate, *ecdsa.PrivateKey) {
	f.t.Helper()
	o := f.readyOrder(acct, names...)
	key := newKey(f.t)
	o, err := f.finalize(acct, o.ID, makeCSR(f.t, key, &x509.CertificateRequest{DNSNames: names}))
	if err != nil {
		f.t.Fatalf("Finalize: %v", err)
	}
	if o.Status != string(acme.StatusValid) || o.CertSerial == "" {
		f.t.Fatalf("order after finalize: status %q serial %q, want valid with a serial", o.Status, o.CertSerial)
	}
	rec, err := f.st.GetCertificate(f.ctx, o.CertSerial)
	if err != nil {
		f.t.Fatalf("GetCertificate: %v", err)
	}
	cert, err := x509.ParseCertificate(rec.DER)
	if err != nil {
		f.t.Fatalf("ParseCertificate: %v", err)
	}
	return rec, cert, key
}

// httpChallenge is the authorization's http-01 challenge, the one the fake
// validator's HTTP01 answers.
func httpChallenge(t testing.TB, az *store.Authorization) *store.Challenge {
	t.Helper()
	for i := range az.Challenges {
		if az.Challenges[i].Type == acme.ChallengeHTTP01 {
			return &az.Challenges[i]
		}
	}
	t.Fatalf("authorization for %s offers no http-01 challenge: %+v", az.Name, az.Challenges)
	return nil
}

func dnsIDs(names ...string) []acme.Identifier {
	ids := make([]acme.Identifier, len(names))
	for i, n := range names {
		ids[i] = acme.Identifier{Type: acme.IdentifierDNS, Value: n}
	}
	return ids
}

// keyHash is the store's key of a public key.
func keyHash(t testing.TB, pub crypto.PublicKey) string {
	t.Helper()
	h, err := signer.KeyHash(pub)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func isStoreNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// Shared with the other packages' tests.
var (
	newKey   = acmetest.NewKey
	makeCSR  = acmetest.CSR
	wantKind = acmetest.WantKind
)

// testRevoker is the revocation component on st, as serve wires it.
func testRevoker(st *store.SQL) Revoker { return revocation.New(st, audit.New(st, nil), nil) }
