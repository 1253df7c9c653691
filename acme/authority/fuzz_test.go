package authority

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/varmenne/varmenne/acme"
)

// FuzzFinalize fuzzes what a finalize body reaches: the payload given to
// Authority.Finalize, as acme/server does after the JWS checks, for a ready order
// of www.example.fi, over the real SQLite store and signer (the fixture).
//
// Properties: a refusal is a typed ACME problem other than serverInternal; and a
// finalize that succeeds issued a certificate for exactly the order's names and the
// CSR's key, signed by the issuer, from a CSR whose signature verifies. A success
// uses the order up, so the next input gets a new ready one. Seeds: the openssl
// CSRs of testdata/csr (README there), CSRs of fresh keys, testdata/fuzz/FuzzFinalize.
func FuzzFinalize(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join("testdata", "csr", "*.csr"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no CSRs in testdata/csr: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		block, _ := pem.Decode(b)
		if block == nil {
			f.Fatalf("%s is not PEM", p)
		}
		f.Add(csrPayload(block.Bytes))
	}
	for _, k := range []crypto.Signer{newKey(f), newKey(f)} {
		f.Add(csrPayload(makeCSR(f, k, &x509.CertificateRequest{DNSNames: []string{"www.example.fi"}})))
	}
	f.Add([]byte(`{"csr":"x","csr":"y"}`))

	fx := newFixture(f, Config{})
	acct := fx.account()
	names := []string{"www.example.fi"}
	order := fx.readyOrder(acct, names...)
	issuer := fx.ca.Issuer().Cert

	f.Fuzz(func(t *testing.T, payload []byte) {
		fx.t = t
		o, err := fx.a.Finalize(fx.ctx, acct, order.ID, payload)
		if err != nil {
			ae, ok := acme.AsError(err)
			if !ok || ae.Kind == acme.ServerInternal {
				t.Fatalf("finalize with %q: %v", payload, err)
			}
			// A refusal after the order began processing (a key certified meanwhile,
			// say) leaves it invalid: the next input needs another.
			if cur, err := fx.a.Order(fx.ctx, acct, order.ID); err != nil || cur.Status != string(acme.StatusReady) {
				order = fx.readyOrder(acct, names...)
			}
			return
		}
		defer func() { order = fx.readyOrder(acct, names...) }()

		var req acme.FinalizeRequest
		if err := json.Unmarshal(payload, &req); err != nil {
			t.Fatalf("finalize accepted %q", payload)
		}
		der, err := base64.RawURLEncoding.DecodeString(req.CSR)
		if err != nil {
			t.Fatalf("finalize accepted csr %q", req.CSR)
		}
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil || csr.CheckSignature() != nil {
			t.Fatalf("finalize accepted a CSR that does not parse or verify: %v", err)
		}
		if o.Status != string(acme.StatusValid) || o.CertSerial == "" {
			t.Fatalf("finalize succeeded with order %+v", o)
		}
		rec, err := fx.st.GetCertificate(fx.ctx, o.CertSerial)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(rec.DER)
		if err != nil {
			t.Fatal(err)
		}
		if err := cert.CheckSignatureFrom(issuer); err != nil {
			t.Fatalf("the certificate is not signed by the issuer: %v", err)
		}
		if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(csr.PublicKey) {
			t.Fatal("the certificate's key is not the CSR's")
		}
		if !slices.Equal(cert.DNSNames, names) || len(cert.EmailAddresses)+len(cert.URIs)+len(cert.IPAddresses) > 0 {
			t.Fatalf("the certificate names %v %v %v %v, the order %v", cert.DNSNames, cert.EmailAddresses, cert.URIs, cert.IPAddresses, names)
		}
	})
}

func csrPayload(der []byte) []byte {
	return []byte(`{"csr":"` + base64.RawURLEncoding.EncodeToString(der) + `"}`)
}
