package authority

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/profile"
	"github.com/varmenne/varmenne/signer"
)

// TestOrderOutlastingItsIssuerIsRefused: newOrder refuses, as malformed with the
// latest notAfter the issuer can sign, an order whose certificate would end after
// the issuer — never serverInternal — and takes one that ends in time.
func TestOrderOutlastingItsIssuerIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ends := time.Now().Add(100 * 24 * time.Hour).UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ending issuer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: ends, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := profile.BuiltinSet().Profiles[profile.Server]
	sp, err := p.Signer(profile.Server)
	if err != nil {
		t.Fatal(err)
	}
	sp.CRLURL, sp.IssuerURL = "http://127.0.0.1:14080/crl/production.crl", "http://127.0.0.1:14080/issuer/production.cer"
	chain, err := policy.NewChain(p.Plugins, policy.Env{Profile: p.Info(profile.Server), Keys: f.st, Orgs: f.st})
	if err != nil {
		t.Fatal(err)
	}
	ca := signer.New(&signer.Issuer{Name: "production", Cert: cert, Key: key}, sp, f.rec, time.Now, rand.Reader)
	a, err := NewWithProfiles(Config{Revoker: testRevoker(f.st), Audit: testAuditor(f.st)}, f.st, f.val,
		[]Profile{{Name: profile.Server, Description: p.Description, CA: ca, Policy: chain}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	acct, _ := f.accountFor(testOrgOID)

	_, err = a.NewOrder(f.ctx, acct, acme.NewOrderRequest{Identifiers: dnsIDs("www.example.fi")})
	if ae := wantKind(t, err, acme.Malformed); ae != nil && !strings.Contains(ae.Detail, "ask for a notAfter no later than "+ends.Format(time.RFC3339)) {
		t.Errorf("detail %q does not give the latest notAfter the issuer can sign", ae.Detail)
	}
	in := ends.Add(-24 * time.Hour).Format(time.RFC3339)
	if _, err := a.NewOrder(f.ctx, acct, acme.NewOrderRequest{Identifiers: dnsIDs("www.example.fi"), NotAfter: in}); err != nil {
		t.Fatalf("an order ending a day before the issuer: %v", err)
	}
}
