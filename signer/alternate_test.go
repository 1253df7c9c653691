package signer

import (
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
)

func pemOf(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// TestAddAlternate: an alternate chain is taken only when the leaf verifies through
// it: it begins with the issuer's subject and key and each certificate is signed by
// the next; everything else is refused with what is wrong.
func TestAddAlternate(t *testing.T) {
	p := newTestPKI(t, "p256")
	crossKey := newKey(t, "p256")
	crossRoot := makeCA(t, "cross root", crossKey.Public(), nil, crossKey, caLifetime)
	crossSignedRoot := makeCA(t, "test root", p.rootKey.Public(), crossRoot, crossKey, caLifetime)             // the root's subject and key
	crossSignedIssuer := makeCA(t, "test issuer p256", p.issuer.Key.Public(), crossRoot, crossKey, caLifetime) // the issuer's
	otherKey := newKey(t, "p256")
	stranger := makeCA(t, "test issuer p256", otherKey.Public(), crossRoot, crossKey, caLifetime) // same name, other key

	for _, tc := range []struct {
		name    string
		pem     []byte
		wantErr string // empty: accepted
	}{
		{"the issuer, then the root cross-signed by another CA", pemOf(p.issuer.Cert, crossSignedRoot), ""},
		{"the issuer cross-signed, then the other CA's root", pemOf(crossSignedIssuer, crossRoot), ""},
		{"no certificate", []byte("not PEM"), "no PEM certificate"},
		{"a key where certificates belong", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), `"PRIVATE KEY" PEM block`},
		{"a broken certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0}}), "certificate 1"},
		{"a first certificate of another key", pemOf(stranger, crossRoot), "is not of issuer"},
		{"a first certificate of another subject", pemOf(crossRoot), "is not of issuer"},
		{"certificates out of order", pemOf(p.issuer.Cert, crossRoot, crossSignedRoot), "is not signed by certificate 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iss := *p.issuer
			iss.Alternates = nil
			err := iss.AddAlternate(tc.pem)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr == "" && len(iss.Alternates) != 1:
				t.Fatalf("%d alternates after one was added", len(iss.Alternates))
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
			case tc.wantErr != "" && len(iss.Alternates) != 0:
				t.Fatal("a refused chain was kept")
			}
		})
	}
}
