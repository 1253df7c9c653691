package filekey

import (
	"crypto"
	"crypto/x509"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/varmenne/varmenne/signer"
)

func TestEnsureDevPKIMakesOCSPResponders(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	pki := mustEnsure(t, dir, "", nil, true)
	again := mustEnsure(t, dir, "", nil, false)
	cases := []struct {
		name      string
		issuer    *signer.Issuer
		responder *Responder
		reloaded  *Responder
	}{
		{"production", pki.Production, pki.ProductionOCSP, again.ProductionOCSP},
		{"test", pki.Test, pki.TestOCSP, again.TestOCSP},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.responder.Cert
			if err := c.CheckSignatureFrom(tc.issuer.Cert); err != nil {
				t.Errorf("responder certificate is not signed by the %s issuer: %v", tc.name, err)
			}
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}) {
				t.Errorf("EKU %v, want id-kp-OCSPSigning only", c.ExtKeyUsage)
			}
			if c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("IsCA %v, key usage %v: want an end entity for digitalSignature", c.IsCA, c.KeyUsage)
			}
			noCheck := false
			for _, e := range c.Extensions {
				if e.Id.Equal(oidOCSPNoCheck) {
					noCheck = !e.Critical && string(e.Value) == "\x05\x00"
				}
			}
			if !noCheck {
				t.Error("no non-critical id-pkix-ocsp-nocheck extension with a NULL value")
			}
			if !publicKeyEqual(tc.responder.Key.Public(), c.PublicKey) || publicKeyEqual(tc.issuer.Key.Public(), c.PublicKey) {
				t.Error("the responder key must be its certificate's and not the issuer's")
			}
			if d := c.NotAfter.Sub(c.NotBefore); d > responderValidity+time.Hour {
				t.Errorf("validity %s is longer than %s", d, responderValidity)
			}
			if !tc.reloaded.Cert.Equal(c) {
				t.Error("a responder still good was re-issued on reload")
			}
		})
	}
	if pki.ProductionOCSP.Cert.Equal(pki.TestOCSP.Cert) {
		t.Error("production and test share a responder")
	}
}

func TestEnsureResponderRenews(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	pki := mustEnsure(t, dir, "", nil, true)
	f := files(dir, "production-ocsp")
	old := pki.ProductionOCSP.Cert
	cases := []struct {
		name    string
		now     time.Time
		renewed bool
	}{
		{"well before its end it is kept", old.NotBefore.Add(time.Hour), false},
		{"within 30 days of its end it is replaced", old.NotAfter.Add(-29 * 24 * time.Hour), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ensureResponder(f, pki.Production, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if renewed := !r.Cert.Equal(old); renewed != tc.renewed {
				t.Errorf("renewed = %v, want %v", renewed, tc.renewed)
			}
			if tc.renewed && !r.Cert.NotAfter.After(old.NotAfter) {
				t.Errorf("new certificate ends %s, not after the old %s", r.Cert.NotAfter, old.NotAfter)
			}
		})
	}
	t.Run("one signed by another issuer is replaced", func(t *testing.T) {
		r, err := ensureResponder(f, pki.Test, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Cert.CheckSignatureFrom(pki.Test.Cert); err != nil {
			t.Errorf("not re-issued by the issuer asked for: %v", err)
		}
	})
}

// opaqueSigner hides the key type, as an HSM key does: only Public and Sign.
type opaqueSigner struct{ crypto.Signer }

func TestEnsureResponderForAnHSMIssuer(t *testing.T) {
	pki := mustEnsure(t, filepath.Join(t.TempDir(), "pki"), "", nil, true)
	issuer := &signer.Issuer{Name: "production", Cert: pki.Production.Cert, Key: opaqueSigner{pki.Production.Key}}
	dir := filepath.Join(t.TempDir(), "hsm-pki")
	r, err := EnsureResponder(dir, issuer, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Cert.CheckSignatureFrom(issuer.Cert); err != nil {
		t.Errorf("not signed by the issuer key: %v", err)
	}
	if !responderUsable(r.Cert, r.Key, issuer.Cert, time.Now()) {
		t.Error("the responder made is not usable")
	}
	again, err := EnsureResponder(dir, issuer, time.Now())
	if err != nil || !again.Cert.Equal(r.Cert) {
		t.Errorf("reload re-issued a responder still good (err %v)", err)
	}
	if _, err := Load(filepath.Join(dir, "production-ocsp.key")); err != nil {
		t.Errorf("responder key file: %v", err)
	}
}
