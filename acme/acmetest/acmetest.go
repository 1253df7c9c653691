// Package acmetest holds the helpers tests of the ACME rules share: a client key, a CSR,
// and the check that a refusal is an *acme.Error of the right kind. Tests only.
package acmetest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"

	"github.com/varmenne/varmenne/acme"
)

// NewKey is a fresh P-256 key, as most clients make.
func NewKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// CSR signs the template with key and returns its DER.
func CSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatalf("CreateCertificateRequest: %v", err)
	}
	return der
}

// WantKind fails unless err is an *acme.Error of kind; kind "" means no error.
func WantKind(t testing.TB, err error, kind acme.ErrorKind) *acme.Error {
	t.Helper()
	if kind == "" {
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		return nil
	}
	ae, ok := acme.AsError(err)
	if !ok {
		t.Fatalf("got %v, want an *acme.Error of kind %s", err, kind)
	}
	if ae.Kind != kind {
		t.Fatalf("got kind %s (%s), want %s", ae.Kind, ae.Detail, kind)
	}
	return ae
}
