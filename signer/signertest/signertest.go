// Package signertest is the contract every issuer-key backend (signer/filekey,
// signer/pkcs11) must pass: its keys sign and verify for each algorithm the issuers
// use, concurrently, and certificates issued through signer.CA with them chain to
// their root.
package signertest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/store"
)

// Kinds are the key kinds every backend must provide.
var Kinds = []string{"rsa-2048", "ecdsa-p256", "ecdsa-p384"}

// NewKey returns an issuer key of kind from the backend under test. It may return
// the same key for the same kind across calls.
type NewKey func(t *testing.T, kind string) crypto.Signer

// Run runs the contract on a backend.
func Run(t *testing.T, newKey NewKey) {
	for _, kind := range Kinds {
		t.Run(kind, func(t *testing.T) {
			key := newKey(t, kind)
			t.Run("public key is of the kind", func(t *testing.T) { testKind(t, key, kind) })
			t.Run("signatures verify", func(t *testing.T) { testSignVerify(t, key) })
			t.Run("concurrent signatures verify", func(t *testing.T) { testConcurrent(t, key) })
			t.Run("issue through signer.CA", func(t *testing.T) { testIssue(t, key) })
			t.Run("issuer check refuses a certificate of another key", func(t *testing.T) { testMismatch(t, key) })
		})
	}
}

func testKind(t *testing.T, key crypto.Signer, kind string) {
	var got string
	switch k := key.Public().(type) {
	case *rsa.PublicKey:
		got = fmt.Sprintf("rsa-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		got = map[elliptic.Curve]string{elliptic.P256(): "ecdsa-p256", elliptic.P384(): "ecdsa-p384"}[k.Curve]
	}
	if got != kind {
		t.Errorf("public key is %s (%T), want %s", got, key.Public(), kind)
	}
}

// hashes are the digests an issuer key must sign: SOTE's sha512WithRSAEncryption,
// and the SHA-2 sizes x509 picks for other algorithms.
var hashes = []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512}

func digest(h crypto.Hash, msg []byte) []byte {
	switch h {
	case crypto.SHA256:
		d := sha256.Sum256(msg)
		return d[:]
	case crypto.SHA384:
		d := sha512.Sum384(msg)
		return d[:]
	default:
		d := sha512.Sum512(msg)
		return d[:]
	}
}

func verify(pub crypto.PublicKey, h crypto.Hash, d, sig []byte) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, h, d, sig)
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, d, sig) {
			return fmt.Errorf("ECDSA signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("unexpected key type %T", pub)
}

func testSignVerify(t *testing.T, key crypto.Signer) {
	for _, h := range hashes {
		t.Run(h.String(), func(t *testing.T) {
			msg := []byte("varmenne contract " + h.String())
			d := digest(h, msg)
			sig, err := key.Sign(rand.Reader, d, h)
			if err != nil {
				t.Fatal(err)
			}
			if err := verify(key.Public(), h, d, sig); err != nil {
				t.Fatal(err)
			}
			other := digest(h, []byte("another message"))
			if verify(key.Public(), h, other, sig) == nil {
				t.Error("the signature also verifies for another message")
			}
		})
	}
}

func testConcurrent(t *testing.T, key crypto.Signer) {
	const workers, each = 6, 3
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				d := digest(crypto.SHA256, fmt.Appendf(nil, "message %d/%d", w, i))
				sig, err := key.Sign(rand.Reader, d, crypto.SHA256)
				if err == nil {
					err = verify(key.Public(), crypto.SHA256, d, sig)
				}
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// now is the clock of the issued certificates.
var now = time.Now().Truncate(time.Second)

// softRoot is a software root the backend's issuer certificates are signed by.
var softRoot = sync.OnceValues(func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })

func makeCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
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

func caTemplate(cn string, serial int64) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"varmenne contract"}, Country: []string{"FI"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// PKI makes a software root and an issuer certificate for key, signed by the root.
func PKI(t testing.TB, key crypto.Signer) (*x509.Certificate, *signer.Issuer) {
	t.Helper()
	rootKey, err := softRoot()
	if err != nil {
		t.Fatal(err)
	}
	rootTmpl := caTemplate("contract root", 1)
	root := makeCert(t, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	issTmpl := caTemplate("contract issuer", 2)
	issTmpl.MaxPathLenZero = true
	cert := makeCert(t, issTmpl, root, key.Public(), rootKey)
	return root, &signer.Issuer{Name: "production", Cert: cert, Key: key}
}

// NewRecorder returns an intent recorder that keeps intents in memory and refuses a
// serial it has seen (store.ErrDuplicate).
func NewRecorder() signer.IntentRecorder {
	return &memRecorder{intents: map[string]store.IssuanceIntent{}}
}

// Profile is the sote-server profile the contract issues with.
func Profile() signer.Profile {
	return signer.Profile{
		Name:        "sote-server",
		Validity:    365 * 24 * time.Hour,
		Backdate:    time.Minute,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		CRLURL:      "http://crl.example.fi/production.crl",
		IssuerURL:   "http://ca.example.fi/production.cer",
	}
}

// memRecorder keeps intents in memory.
type memRecorder struct {
	mu      sync.Mutex
	intents map[string]store.IssuanceIntent
}

func (r *memRecorder) RecordIntent(_ context.Context, in store.IssuanceIntent) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.intents[in.Serial]; ok {
		return store.ErrDuplicate
	}
	r.intents[in.Serial] = in
	return nil
}

func testIssue(t *testing.T, key crypto.Signer) {
	root, iss := PKI(t, key)
	if err := iss.Check(); err != nil {
		t.Fatalf("issuer self-test: %v", err)
	}
	ca := signer.New(iss, Profile(), NewRecorder(), nil, nil)
	sub, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ca.Issue(context.Background(), signer.Request{
		OrderID:   "order-1",
		PublicKey: sub.Public(),
		Names:     []string{"www.example.fi"},
		Subject:   pkix.Name{Country: []string{"FI"}, Organization: []string{"Esimerkki Oy"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	inter.AddCert(iss.Cert)
	if _, err := got.Cert.Verify(x509.VerifyOptions{DNSName: "www.example.fi", Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("issued certificate does not chain to the root: %v", err)
	}
	if _, ok := key.Public().(*rsa.PublicKey); ok && got.Cert.SignatureAlgorithm != x509.SHA512WithRSA {
		t.Errorf("RSA issuer signed with %v, want sha512WithRSAEncryption", got.Cert.SignatureAlgorithm)
	}
}

func testMismatch(t *testing.T, key crypto.Signer) {
	_, iss := PKI(t, key)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rootKey, _ := softRoot()
	tmpl := caTemplate("issuer of another key", 3)
	iss.Cert = makeCert(t, tmpl, tmpl, other.Public(), rootKey)
	if err := iss.Check(); err == nil {
		t.Error("Issuer.Check accepted a certificate whose key is not the backend's key")
	}
}
