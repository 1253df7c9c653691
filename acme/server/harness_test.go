package server_test

// The harness runs the real front end, authority, store, nonce pool and signer behind
// httptest; only the validator is a fake, so a test decides what a challenge proves.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"mime"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/authority"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
	"github.com/varmenne/varmenne/acme/nonce"
	"github.com/varmenne/varmenne/acme/server"
	"github.com/varmenne/varmenne/acme/validate"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/policy/keys"
	"github.com/varmenne/varmenne/revocation"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/store"
	"github.com/varmenne/varmenne/test/logbuf"
)

// Two organisations, so that "another organisation" is a real one.
const (
	orgA    = "1.2.246.10.1234567.10.0"
	domainA = "example.fi"
	orgB    = "1.2.246.10.7654321.10.0"
	domainB = "toinen.fi"
)

// fakeValidator answers http-01 with the error set for a name (nil: valid).
type fakeValidator struct {
	mu    sync.Mutex
	fail  map[string]error
	calls map[string]int
}

func (v *fakeValidator) HTTP01(_ context.Context, name, token, keyAuth string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls[name]++
	if token == "" || !strings.HasPrefix(keyAuth, token+".") {
		return acme.Errorf(acme.IncorrectResponse, "fake validator: bad key authorization %q", keyAuth)
	}
	return v.fail[name]
}

// DNS01, TLSALPN01 and CAA complete the authority's Validator; these tests answer
// only http-01 challenges, and CAA always permits.
func (v *fakeValidator) DNS01(_ context.Context, name, _ string) error {
	return acme.Errorf(acme.DNS, "fake validator: no dns-01 for %s", name)
}

func (v *fakeValidator) TLSALPN01(_ context.Context, name, _ string) error {
	return acme.Errorf(acme.TLS, "fake validator: no tls-alpn-01 for %s", name)
}

func (v *fakeValidator) DNSAccount01(_ context.Context, name, _, _ string) error {
	return acme.Errorf(acme.DNS, "fake validator: no dns-account-01 for %s", name)
}

func (v *fakeValidator) DNSPersist01(_ context.Context, name string, _ bool, _ string, _ time.Time) (*validate.PersistRecord, error) {
	return nil, acme.Errorf(acme.DNS, "fake validator: no dns-persist-01 for %s", name)
}

func (v *fakeValidator) CAA(context.Context, string, string, string) error { return nil }

func (v *fakeValidator) failWith(name string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.fail[name] = err
}

func (v *fakeValidator) callsFor(name string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.calls[name]
}

// env is one running server with its own database and PKI.
type env struct {
	base   string
	client *http.Client
	st     *store.SQL
	val    *fakeValidator
	log    *syncBuffer
	dir    acme.Directory
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvConfig(t, server.Config{})
}

// newEnvConfig is newEnv with front-end settings; BaseURL is set here.
func newEnvConfig(t *testing.T, cfg server.Config) *env {
	t.Helper()
	return newEnvWith(t, cfg, nil)
}

// newEnvPlugins is newEnv with its one profile, sote-server, guarded by the plugins
// named instead of authority.New's names, keys and validity.
func newEnvPlugins(t *testing.T, plugins ...string) *env {
	t.Helper()
	specs := []policy.Spec{}
	for _, p := range plugins {
		specs = append(specs, policy.Spec{Name: p})
	}
	return newEnvWith(t, server.Config{}, specs)
}

// newEnvWith builds the environment; plugins nil is authority.New's default chain.
func newEnvWith(t *testing.T, cfg server.Config, plugins []policy.Spec) *env {
	t.Helper()
	return newEnvAuthority(t, cfg, plugins, authority.Config{})
}

// newEnvAuthority is newEnvWith with authority settings (validity, backdate and the
// revoker are the harness's).
func newEnvAuthority(t *testing.T, cfg server.Config, plugins []policy.Spec, ac authority.Config) *env {
	t.Helper()
	ctx := context.Background()
	tmp := t.TempDir()
	st, err := store.OpenSQLite(ctx, filepath.Join(tmp, "varmenne.db"), eabSecret)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	pki, _, err := filekey.EnsureDevPKI(filepath.Join(tmp, "pki"), "ecdsa-p256", nil)
	if err != nil {
		t.Fatalf("EnsureDevPKI: %v", err)
	}
	const validity, backdate = 365 * 24 * time.Hour, time.Minute
	ca := signer.New(pki.Production, signer.Profile{
		Name:        "sote-server",
		Validity:    validity,
		Backdate:    backdate,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		PolicyOIDs:  []asn1.ObjectIdentifier{{1, 2, 246, 517, 1, 10, 203}},
		CRLURL:      "http://127.0.0.1:14080/crl/" + pki.Production.Name + ".crl",
		IssuerURL:   "http://127.0.0.1:14080/issuer/" + pki.Production.Name + ".cer",
	}, st, time.Now, rand.Reader)

	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	val := &fakeValidator{fail: map[string]error{}, calls: map[string]int{}}
	revoker := revocation.New(st, audit.New(st, nil), nil)
	aud := audit.Recorder{Log: audit.New(st, nil), Actor: "varmenne serve"}
	ca.WithAuditor(aud)
	ac.MaxValidity, ac.Backdate, ac.Revoker, ac.Audit = validity, backdate, revoker, aud
	auth := authority.New(ac, st, val, ca, log)
	if plugins != nil {
		chain, err := policy.NewChain(plugins, policy.Env{Profile: policy.ProfileInfo{Name: "sote-server", Kind: policy.KindServer,
			MaxValidity: validity, Backdate: backdate, KeyTypes: keys.KeyTypes}, Keys: st, Orgs: st, Log: log})
		if err != nil {
			t.Fatalf("policy chain %v: %v", plugins, err)
		}
		auth, err = authority.NewWithProfiles(authority.Config{Revoker: revoker, WeakKeys: ac.WeakKeys, Audit: aud}, st, val,
			[]authority.Profile{{Name: "sote-server", Description: "SOTE server certificate", CA: ca, Policy: chain}}, log)
		if err != nil {
			t.Fatalf("NewWithProfiles: %v", err)
		}
	}
	t.Cleanup(auth.Close)

	// The server must know its own URL before it can be the handler: start it late.
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	cfg.BaseURL = base
	srv := server.New(cfg, auth, nonce.NewPool(1024, time.Hour), log)
	ts.Config.Handler = srv.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	if ts.URL != base {
		t.Fatalf("test server URL %s, want %s", ts.URL, base)
	}

	e := &env{base: base, client: ts.Client(), st: st, val: val, log: logs}
	for _, o := range []store.Organisation{
		{OID: orgA, Name: "Esimerkki Oy", LongName: "Esimerkin sote-palvelut", Domains: []string{domainA}, CreatedAt: time.Now()},
		{OID: orgB, Name: "Toinen Oy", Domains: []string{domainB}, CreatedAt: time.Now()},
	} {
		if err := st.AddOrganisation(ctx, o); err != nil {
			t.Fatalf("AddOrganisation: %v", err)
		}
	}
	r := e.get(t, srv.DirectoryURL())
	if r.status != http.StatusOK {
		t.Fatalf("directory: %d %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &e.dir); err != nil {
		t.Fatalf("directory: %v", err)
	}
	return e
}

func (e *env) url(path string) string { return e.base + path }

// response is what the server answered.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends req; every ACME response but the directory's must carry a fresh nonce.
func (e *env) do(t *testing.T, req *http.Request) *response {
	t.Helper()
	res, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	r := &response{status: res.StatusCode, header: res.Header, body: body}
	// GET resources (the directory, renewal information) carry no nonce.
	getResource := req.Method == http.MethodGet && (req.URL.Path == "/acme/directory" || strings.HasPrefix(req.URL.Path, server.RenewalInfoPath))
	if !getResource {
		if n := res.Header.Get("Replay-Nonce"); n == "" {
			t.Errorf("%s %s answered %d without a Replay-Nonce header", req.Method, req.URL.Path, r.status)
		}
	}
	return r
}

func (e *env) get(t *testing.T, url string) *response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e.do(t, req)
}

// nonce gets a fresh nonce the way clients do: HEAD newNonce.
func (e *env) nonce(t *testing.T) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodHead, e.dir.NewNonce, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := e.do(t, req)
	if r.status != http.StatusOK {
		t.Fatalf("HEAD newNonce: %d", r.status)
	}
	return r.header.Get("Replay-Nonce")
}

// postRaw POSTs body with the given Content-Type ("" sends none).
func (e *env) postRaw(t *testing.T, url, contentType string, body []byte) *response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return e.do(t, req)
}

// postJWS POSTs a JWS body as application/jose+json.
func (e *env) postJWS(t *testing.T, url string, body []byte) *response {
	t.Helper()
	return e.postRaw(t, url, "application/jose+json", body)
}

// sign makes a JWS for url with a fresh nonce: kid "" puts the key's jwk in the header.
func (e *env) sign(t *testing.T, key crypto.Signer, kid, url string, payload []byte) []byte {
	t.Helper()
	body, err := jwstest.Sign(key, kid, e.nonce(t), url, payload)
	if err != nil {
		t.Fatalf("jwstest.Sign: %v", err)
	}
	return body
}

// post signs payload (nil: POST-as-GET) and POSTs it.
func (e *env) post(t *testing.T, key crypto.Signer, kid, url string, payload []byte) *response {
	t.Helper()
	return e.postJWS(t, url, e.sign(t, key, kid, url, payload))
}

// signProtected signs a protected header given as a map, so tests can craft one.
func signProtected(t *testing.T, key crypto.Signer, protected map[string]any, payload []byte) []byte {
	t.Helper()
	h, err := json.Marshal(protected)
	if err != nil {
		t.Fatal(err)
	}
	return signProtectedJSON(t, key, h, payload)
}

func signProtectedJSON(t *testing.T, key crypto.Signer, protected, payload []byte) []byte {
	t.Helper()
	body, err := jwstest.SignProtected(key, protected, payload)
	if err != nil {
		t.Fatalf("jwstest.SignProtected: %v", err)
	}
	return body
}

// wantProblem checks r is an RFC 7807 problem of kind with status and a detail.
func wantProblem(t *testing.T, r *response, kind acme.ErrorKind, status int) *acme.Problem {
	t.Helper()
	ct, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil || ct != "application/problem+json" {
		t.Fatalf("got %d with Content-Type %q, want an application/problem+json %s; body: %s",
			r.status, r.header.Get("Content-Type"), kind, r.body)
	}
	var p acme.Problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem document does not decode: %v; body: %s", err, r.body)
	}
	if p.Type != kind.URN() || r.status != status {
		t.Fatalf("got %d %s (%s), want %d %s", r.status, p.Type, p.Detail, status, kind.URN())
	}
	t.Logf("%d %s: %s", r.status, p.Type, p.Detail)
	if p.Status != status {
		t.Errorf("problem status member %d, HTTP status %d", p.Status, status)
	}
	if strings.TrimSpace(p.Detail) == "" {
		t.Errorf("problem %s has no detail", p.Type)
	}
	return &p
}

// wantStatus checks a non-problem answer.
func wantStatus(t *testing.T, r *response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("got %d, want %d; body: %s", r.status, status, r.body)
	}
}

func decodeJSON[T any](t *testing.T, r *response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("response does not decode: %v; body: %s", err, r.body)
	}
	return v
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// randomID is an id of the server's shape that names nothing.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return b64(b[:])
}

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Slow keys are made once per test binary.
var (
	rsa1024 = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 1024) })
	rsa2047 = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2047) })
	rsaE3   = sync.OnceValues(rsaExponent3)
)

func slowKey(t *testing.T, f func() (*rsa.PrivateKey, error)) *rsa.PrivateKey {
	t.Helper()
	k, err := f()
	if err != nil {
		t.Fatalf("making an RSA key: %v", err)
	}
	return k
}

// rsaExponent3 makes a 2048-bit RSA key with public exponent 3, which crypto/rsa's
// GenerateKey never does.
func rsaExponent3() (*rsa.PrivateKey, error) {
	one, three := big.NewInt(1), big.NewInt(3)
	prime := func(other *big.Int) (*big.Int, error) {
		for {
			p, err := rand.Prime(rand.Reader, 1024)
			if err != nil {
				return nil, err
			}
			if new(big.Int).Mod(new(big.Int).Sub(p, one), three).Sign() != 0 && (other == nil || p.Cmp(other) != 0) {
				return p, nil
			}
		}
	}
	p, err := prime(nil)
	if err != nil {
		return nil, err
	}
	q, err := prime(p)
	if err != nil {
		return nil, err
	}
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	k := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 3},
		D:         new(big.Int).ModInverse(three, phi),
		Primes:    []*big.Int{p, q},
	}
	k.Precompute()
	return k, k.Validate()
}

// Accounts.

type account struct {
	key crypto.Signer
	kid string // the account URL
	org string
}

func (a *account) id() string { return a.kid[strings.LastIndex(a.kid, "/")+1:] }

// newEAB creates an approved EAB key for org directly in the store.
func (e *env) newEAB(t *testing.T, org string) (kid string, hmacKey []byte) {
	t.Helper()
	return e.newEABWithStatus(t, org, store.EABApproved)
}

func (e *env) newEABWithStatus(t *testing.T, org, status string) (kid string, hmacKey []byte) {
	t.Helper()
	kid = "eab-" + randomID()
	hmacKey = make([]byte, 32)
	_, _ = rand.Read(hmacKey)
	if err := e.st.CreateEAB(context.Background(), store.EABKey{
		KID: kid, OrgOID: org, HMACKey: hmacKey, Status: status, CreatedAt: time.Now(),
	}); err != nil {
		t.Fatalf("CreateEAB: %v", err)
	}
	return kid, hmacKey
}

// eab is a correct binding of key to a fresh EAB key of org.
func (e *env) eab(t *testing.T, org string, key crypto.Signer) json.RawMessage {
	t.Helper()
	kid, hmacKey := e.newEAB(t, org)
	b, err := jwstest.EAB(key, kid, hmacKey, e.dir.NewAccount, "")
	if err != nil {
		t.Fatalf("jwstest.EAB: %v", err)
	}
	return b
}

func newAccountPayload(t *testing.T, eab json.RawMessage, contacts ...string) []byte {
	t.Helper()
	return mustJSON(t, map[string]any{
		"termsOfServiceAgreed":   true,
		"contact":                contacts,
		"externalAccountBinding": eab,
	})
}

// register makes an account of org with a fresh P-256 key.
func (e *env) register(t *testing.T, org string) *account {
	t.Helper()
	return e.registerKey(t, org, ecKey(t))
}

func (e *env) registerKey(t *testing.T, org string, key crypto.Signer) *account {
	t.Helper()
	r := e.post(t, key, "", e.dir.NewAccount, newAccountPayload(t, e.eab(t, org, key), "mailto:admin@"+domainA))
	wantStatus(t, r, http.StatusCreated)
	kid := r.header.Get("Location")
	if !strings.HasPrefix(kid, e.base+"/acme/account/") {
		t.Fatalf("newAccount Location %q", kid)
	}
	if got := decodeJSON[acme.Account](t, r); got.Status != acme.StatusValid {
		t.Fatalf("new account status %q", got.Status)
	}
	return &account{key: key, kid: kid, org: org}
}

// as posts payload signed by the account (nil payload: POST-as-GET).
func (e *env) as(t *testing.T, a *account, url string, payload []byte) *response {
	t.Helper()
	return e.post(t, a.key, a.kid, url, payload)
}

// Orders.

type order struct {
	url        string
	obj        acme.Order
	challenges []string // one http-01 challenge URL per authorization
	pending    []bool   // whether each authorization was pending (not reused) when read
}

func identifiers(names ...string) []acme.Identifier {
	ids := make([]acme.Identifier, 0, len(names))
	for _, n := range names {
		ids = append(ids, acme.Identifier{Type: acme.IdentifierDNS, Value: n})
	}
	return ids
}

// newOrder creates a pending order for names and looks up its challenges.
func (e *env) newOrder(t *testing.T, a *account, names ...string) *order {
	t.Helper()
	r := e.as(t, a, e.dir.NewOrder, mustJSON(t, acme.NewOrderRequest{Identifiers: identifiers(names...)}))
	wantStatus(t, r, http.StatusCreated)
	o := &order{url: r.header.Get("Location"), obj: decodeJSON[acme.Order](t, r)}
	if len(o.obj.Authorizations) != len(names) {
		t.Fatalf("new order: %s", r.body)
	}
	for _, az := range o.obj.Authorizations {
		r := e.as(t, a, az, nil)
		wantStatus(t, r, http.StatusOK)
		authz := decodeJSON[acme.Authorization](t, r)
		for _, ch := range authz.Challenges {
			if ch.Type == acme.ChallengeHTTP01 {
				o.challenges = append(o.challenges, ch.URL)
				o.pending = append(o.pending, authz.Status == acme.StatusPending)
			}
		}
	}
	if len(o.challenges) != len(names) {
		t.Fatalf("order has %d http-01 challenges for %d names", len(o.challenges), len(names))
	}
	return o
}

// poll reads the order until it has status want, failing after 10 s.
func (e *env) poll(t *testing.T, a *account, o *order, want acme.Status) acme.Order {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.as(t, a, o.url, nil)
		wantStatus(t, r, http.StatusOK)
		o.obj = decodeJSON[acme.Order](t, r)
		if o.obj.Status == want {
			return o.obj
		}
		if time.Now().After(deadline) {
			t.Fatalf("order is %s, want %s: %s", o.obj.Status, want, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// authorize answers every challenge of o and waits for the order to be ready.
func (e *env) authorize(t *testing.T, a *account, o *order) {
	t.Helper()
	for i, ch := range o.challenges {
		if o.pending[i] {
			wantStatus(t, e.as(t, a, ch, []byte("{}")), http.StatusOK)
		}
	}
	e.poll(t, a, o, acme.StatusReady)
}

// readyOrder is a new order whose authorizations are valid.
func (e *env) readyOrder(t *testing.T, a *account, names ...string) *order {
	t.Helper()
	o := e.newOrder(t, a, names...)
	e.authorize(t, a, o)
	return o
}

// csr is the unpadded base64url DER of a CSR for names signed by key.
func csr(t *testing.T, key crypto.Signer, tmpl *x509.CertificateRequest) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	return b64(der)
}

func csrTemplate(names []string, cn string) *x509.CertificateRequest {
	return &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: slices.Clone(names)}
}

func b64Decode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func csrFor(t *testing.T, key crypto.Signer, names ...string) string {
	t.Helper()
	return csr(t, key, &x509.CertificateRequest{DNSNames: names})
}

func finalizePayload(t *testing.T, csr string) []byte {
	t.Helper()
	return mustJSON(t, acme.FinalizeRequest{CSR: csr})
}

// issued is a downloaded certificate and its key.
type issued struct {
	order   *order
	certURL string
	cert    *x509.Certificate
	key     crypto.Signer
}

// finalize finalizes a ready order with a fresh key and downloads the certificate.
func (e *env) finalize(t *testing.T, a *account, o *order) *issued {
	t.Helper()
	key := ecKey(t)
	var names []string
	for _, id := range o.obj.Identifiers {
		names = append(names, id.Value)
	}
	r := e.as(t, a, o.obj.Finalize, finalizePayload(t, csrFor(t, key, names...)))
	wantStatus(t, r, http.StatusOK)
	o.obj = decodeJSON[acme.Order](t, r)
	if o.obj.Status != acme.StatusValid || o.obj.Certificate == "" {
		t.Fatalf("finalized order: %s", r.body)
	}
	r = e.as(t, a, o.obj.Certificate, nil)
	wantStatus(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/pem-certificate-chain" {
		t.Fatalf("certificate Content-Type %q", ct)
	}
	block, _ := pem.Decode(r.body)
	if block == nil {
		t.Fatalf("certificate is not PEM: %s", r.body)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	return &issued{order: o, certURL: o.obj.Certificate, cert: cert, key: key}
}

// issue runs the whole happy path for names.
func (e *env) issue(t *testing.T, a *account, names ...string) *issued {
	t.Helper()
	return e.finalize(t, a, e.readyOrder(t, a, names...))
}

// syncBuffer is the shared test log sink.
type syncBuffer = logbuf.Buffer

// eabSecret seals the EAB keys of the stores the tests open.
var eabSecret, _ = store.GenerateEABSecret()
