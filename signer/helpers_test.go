package signer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"maps"
	"math/big"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/varmenne/varmenne/store"
)

// testNow is the fixed clock of the tests; certificates are made around it.
var testNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// One RSA-2048 key per test binary: generating RSA keys is slow under -race.
var testRSAKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func newKey(t testing.TB, kind string) crypto.Signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch kind {
	case "p256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		k, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ed25519":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	case "rsa":
		k, err = testRSAKey()
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testPKI is a root and an issuing CA below it.
type testPKI struct {
	root    *x509.Certificate
	rootKey crypto.Signer
	issuer  *Issuer
}

func newTestPKI(t testing.TB, issuerKind string) *testPKI {
	t.Helper()
	rootKey := newKey(t, "p256")
	root := makeCA(t, "test root", rootKey.Public(), nil, rootKey, caLifetime)
	issuerKey := newKey(t, issuerKind)
	cert := makeCA(t, "test issuer "+issuerKind, issuerKey.Public(), root, rootKey, caLifetime)
	return &testPKI{root: root, rootKey: rootKey, issuer: &Issuer{Name: "production", Cert: cert, Key: issuerKey}}
}

const caLifetime = 5 * 365 * 24 * time.Hour

var caSerial atomic.Int64

// makeCA makes a CA certificate valid from a day before testNow for lifetime.
func makeCA(t testing.TB, cn string, pub crypto.PublicKey, parent *x509.Certificate, parentKey crypto.Signer, lifetime time.Duration) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(caSerial.Add(1)),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"varmenne test"}, Country: []string{"FI"}},
		NotBefore:             testNow.Add(-24 * time.Hour),
		NotAfter:              testNow.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testProfile() Profile {
	return Profile{
		Name:        "sote-server",
		Validity:    365 * 24 * time.Hour,
		Backdate:    time.Minute,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		CRLURL:      "http://crl.example.fi/production.crl",
		IssuerURL:   "http://ca.example.fi/production.cer",
		OCSPURL:     "http://ocsp.example.fi",
	}
}

// events is the order in which the recorder and the issuer key were used.
type events struct {
	mu  sync.Mutex
	log []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, s)
}

func (e *events) count(s string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, l := range e.log {
		if l == s {
			n++
		}
	}
	return n
}

// fakeRecorder answers each RecordIntent with the next error of errs (nil when they
// run out) and keeps every intent it was given.
type fakeRecorder struct {
	mu      sync.Mutex
	ev      *events
	errs    []error
	intents []store.IssuanceIntent
	failed  map[string]string // serial → reason, from FailIntent
}

func (r *fakeRecorder) FailIntent(_ context.Context, serial, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ev.add("fail")
	if r.failed == nil {
		r.failed = map[string]string{}
	}
	r.failed[serial] = reason
	return nil
}

func (r *fakeRecorder) failedReasons() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.failed)
}

func (r *fakeRecorder) RecordIntent(_ context.Context, in store.IssuanceIntent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ev.add("intent")
	r.intents = append(r.intents, in)
	if len(r.errs) == 0 {
		return nil
	}
	err := r.errs[0]
	r.errs = r.errs[1:]
	return err
}

// countingSigner counts Sign calls on the issuer key; corrupt, when set, replaces
// the signature it returns; refuse, when set, is returned without signing.
type countingSigner struct {
	crypto.Signer
	ev      *events
	corrupt func(sig []byte) []byte
	refuse  error
}

func (s *countingSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if s.refuse != nil {
		s.ev.add("refused")
		return nil, s.refuse
	}
	s.ev.add("sign")
	sig, err := s.Signer.Sign(r, digest, opts)
	if err == nil && s.corrupt != nil {
		sig = s.corrupt(sig)
	}
	return sig, err
}

// harness wires a CA to a fake recorder and a counting issuer key.
type harness struct {
	pki *testPKI
	ev  *events
	rec *fakeRecorder
	key *countingSigner
	ca  *CA
}

func newHarness(t testing.TB, issuerKind string, profile Profile, recErrs ...error) *harness {
	t.Helper()
	pki := newTestPKI(t, issuerKind)
	ev := &events{}
	key := &countingSigner{Signer: pki.issuer.Key, ev: ev}
	iss := *pki.issuer
	iss.Key = key
	rec := &fakeRecorder{ev: ev, errs: recErrs}
	return &harness{pki: pki, ev: ev, rec: rec, key: key,
		ca: New(&iss, profile, rec, func() time.Time { return testNow }, nil)}
}

func testRequest(t testing.TB, subjectKind string) Request {
	return Request{
		OrderID:   "order-1",
		PublicKey: newKey(t, subjectKind).Public(),
		Names:     []string{"www.example.fi", "example.fi"},
		Subject:   pkix.Name{Country: []string{"FI"}, Organization: []string{"Esimerkki Oy"}, OrganizationalUnit: []string{"Helsingin VI apteekki"}},
	}
}
