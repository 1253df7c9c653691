package crl

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"github.com/varmenne/varmenne/revocation"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
)

// TestBuildIsLintClean runs zlint's CRL lints (RFC 5280 and CA/Browser Forum) over
// CRLs as Build writes them: with entries of every reason, an invalidity date, a
// revocation time after 2049, a serial that needs a sign byte, and with no entries.
func TestBuildIsLintClean(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	entries := sampleEntries(t)
	for i, r := range []int{revocation.AffiliationChanged.Code, revocation.CessationOfOperation.Code, revocation.PrivilegeWithdrawn.Code} {
		entries = append(entries, Entry{Serial: []byte{0x40, byte(i)}, RevokedAt: t0.Add(-time.Minute), Reason: r})
	}
	cases := []struct {
		name    string
		key     crypto.Signer
		entries []Entry
	}{
		{"RSA with entries", rsaKey, entries},
		{"ECDSA P-384 with entries", p384, entries},
		{"no entries", p384, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			is := newIssuer(t, "production", tc.key)
			der, err := Build(is.Cert, is.Key, template(3), tc.entries)
			if err != nil {
				t.Fatal(err)
			}
			rl, err := zx509.ParseRevocationList(der)
			if err != nil {
				t.Fatalf("zcrypto cannot parse it: %v", err)
			}
			res := zlint.LintRevocationList(rl)
			for name, r := range res.Results {
				if r.Status >= lint.Warn {
					t.Errorf("%s: %s %s", name, r.Status, r.Details)
				}
			}
		})
	}
}
