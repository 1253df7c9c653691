package authority

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/profile"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/store"
)

// newProfileFixture is the shared fixture with the authority rebuilt around the four
// built-in SOTE profiles, each on its issuer and with its plugin chain, as serve
// wires them.
func newProfileFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, Config{})
	pki, err := sharedPKI()
	if err != nil {
		t.Fatal(err)
	}
	set := profile.BuiltinSet()
	var profiles []Profile
	for _, name := range set.Names() {
		p := set.Profiles[name]
		iss := pki.Production
		if p.Test {
			iss = pki.Test
		}
		sp, err := p.Signer(name)
		if err != nil {
			t.Fatal(err)
		}
		sp.CRLURL = "http://127.0.0.1:14080/crl/" + iss.Name + ".crl"
		sp.IssuerURL = "http://127.0.0.1:14080/issuer/" + iss.Name + ".cer"
		chain, err := policy.NewChain(p.Plugins, policy.Env{Profile: p.Info(name), Keys: f.st, Orgs: f.st})
		if err != nil {
			t.Fatal(err)
		}
		profiles = append(profiles, Profile{Name: name, Description: p.Description, Test: p.Test,
			CA: signer.New(iss, sp, f.rec, time.Now, rand.Reader), Policy: chain})
	}
	a, err := NewWithProfiles(Config{DefaultProfile: set.Default, Revoker: testRevoker(f.st), Audit: testAuditor(f.st)}, f.st, f.val, profiles, nil)
	if err != nil {
		t.Fatalf("NewWithProfiles: %v", err)
	}
	t.Cleanup(a.Close)
	f.a = a
	return f
}

func TestProfileAccess(t *testing.T) {
	t.Parallel()
	f := newProfileFixture(t)
	const testOnlyOID = "1.2.246.10.55555555.10.0"
	if err := f.st.AddOrganisation(f.ctx, store.Organisation{OID: testOnlyOID, Name: "Testi", LongName: "Testi Oy", Domains: []string{"testi.example"}, TestOnly: true}); err != nil {
		t.Fatal(err)
	}
	anyProfile := f.account()
	testEAB := f.accountWithProfiles(testOrgOID, "sote-server-test", "sote-system-signature-test")
	testOnly, _ := f.accountFor(testOnlyOID)

	tests := []struct {
		name    string
		acct    *store.Account
		profile string
		domain  string
		want    acme.ErrorKind
		detail  string
		echoed  string
	}{
		{"no profile gets the default", anyProfile, "", "example.fi", "", "", "sote-server"},
		{"every built-in profile by name", anyProfile, "sote-system-signature-test", "example.fi", "", "", "sote-system-signature-test"},
		{"an unknown profile is invalidProfile and lists the offered ones", anyProfile, "sote-client", "example.fi", acme.InvalidProfile, "sote-server, sote-server-test, sote-system-signature, sote-system-signature-test", ""},
		{"an EAB limited to test profiles may not order sote-server", testEAB, "sote-server", "example.fi", acme.Unauthorized, "allows profiles sote-server-test, sote-system-signature-test only", ""},
		{"an EAB limited to test profiles may not order the default", testEAB, "", "example.fi", acme.Unauthorized, "not sote-server", ""},
		{"an EAB limited to test profiles orders one of them", testEAB, "sote-server-test", "example.fi", "", "", "sote-server-test"},
		{"a test-only organisation may not order a production profile", testOnly, "sote-system-signature", "testi.example", acme.Unauthorized, "test profiles only", ""},
		{"a test-only organisation orders a test profile", testOnly, "sote-system-signature-test", "testi.example", "", "", "sote-system-signature-test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := f.a.NewOrder(f.ctx, tt.acct, acme.NewOrderRequest{Identifiers: dnsIDs("www." + tt.domain), Profile: tt.profile})
			ae := wantKind(t, err, tt.want)
			if ae != nil {
				if !strings.Contains(ae.Detail, tt.detail) {
					t.Errorf("detail %q does not say %q", ae.Detail, tt.detail)
				}
				return
			}
			if o.Profile != tt.echoed {
				t.Errorf("order profile %q, want %q", o.Profile, tt.echoed)
			}
		})
	}
}

// accountWithProfiles is an account whose EAB key is limited to profiles.
func (f *fixture) accountWithProfiles(org string, profiles ...string) *store.Account {
	f.t.Helper()
	kid := newID()
	hmacKey := make([]byte, 32)
	rand.Read(hmacKey)
	if err := f.st.CreateEAB(f.ctx, store.EABKey{KID: kid, OrgOID: org, HMACKey: hmacKey, Profiles: profiles, Status: store.EABApproved, CreatedAt: time.Now()}); err != nil {
		f.t.Fatal(err)
	}
	key := newKey(f.t)
	acct, _, err := f.a.NewAccount(f.ctx, newAccountRequest(f.t, key, kid, hmacKey), jwstest.JWK(key), newAccountURL)
	if err != nil {
		f.t.Fatalf("NewAccount: %v", err)
	}
	return acct
}

func TestProfileIssuesFromItsIssuer(t *testing.T) {
	t.Parallel()
	f := newProfileFixture(t)
	acct := f.account()
	pki, _ := sharedPKI()
	// A key of a type the profile certifies by default: system signature profiles
	// take RSA only (profile.DefaultKeyTypes).
	ecKey := func(t *testing.T) crypto.Signer { return newKey(t) }
	rsaKey := func(t *testing.T) crypto.Signer {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	tests := []struct {
		profile string
		issuer  *signer.Issuer
		ku      x509.KeyUsage
		days    int
		key     func(t *testing.T) crypto.Signer
	}{
		{"sote-server", pki.Production, x509.KeyUsageDigitalSignature, 365, ecKey},
		{"sote-server-test", pki.Test, x509.KeyUsageDigitalSignature, 365, ecKey},
		{"sote-system-signature", pki.Production, x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, 730, rsaKey},
		{"sote-system-signature-test", pki.Test, x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, 730, rsaKey},
	}
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			name := strings.ReplaceAll(tt.profile, "-", "") + ".example.fi"
			o, err := f.a.NewOrder(f.ctx, acct, acme.NewOrderRequest{Identifiers: dnsIDs(name), Profile: tt.profile})
			if err != nil {
				t.Fatal(err)
			}
			o = f.validateAll(acct, o)
			o, err = f.finalize(acct, o.ID, makeCSR(t, tt.key(t), &x509.CertificateRequest{DNSNames: []string{name}}))
			if err != nil {
				t.Fatalf("Finalize: %v", err)
			}
			rec, err := f.st.GetCertificate(f.ctx, o.CertSerial)
			if err != nil {
				t.Fatal(err)
			}
			cert, _ := x509.ParseCertificate(rec.DER)
			if err := cert.CheckSignatureFrom(tt.issuer.Cert); err != nil || rec.Issuer != tt.issuer.Name || rec.Profile != tt.profile {
				t.Errorf("signed by issuer %q for profile %q (%v); want %q", rec.Issuer, rec.Profile, err, tt.issuer.Name)
			}
			if f.a.IssuerNamed(rec.Issuer) != tt.issuer {
				t.Errorf("IssuerNamed(%q) is not the issuer that signed", rec.Issuer)
			}
			if cert.KeyUsage != tt.ku || cert.NotAfter.Sub(cert.NotBefore) != time.Duration(tt.days)*24*time.Hour-time.Second {
				t.Errorf("KU %b validity %s", cert.KeyUsage, cert.NotAfter.Sub(cert.NotBefore))
			}
		})
	}
}

func TestRequestedNotBeforeIsIssued(t *testing.T) {
	t.Parallel()
	f := newProfileFixture(t)
	acct := f.account()
	nb := time.Now().Add(48 * time.Hour).Truncate(time.Second).UTC()
	o, err := f.a.NewOrder(f.ctx, acct, acme.NewOrderRequest{Identifiers: dnsIDs("later.example.fi"), NotBefore: nb.Format(time.RFC3339)})
	if err != nil {
		t.Fatalf("NewOrder: %v", err)
	}
	o = f.validateAll(acct, o)
	o, err = f.finalize(acct, o.ID, makeCSR(t, newKey(t), &x509.CertificateRequest{DNSNames: []string{"later.example.fi"}}))
	if err != nil {
		t.Fatalf("Finalize: %v", err)
	}
	rec, _ := f.st.GetCertificate(f.ctx, o.CertSerial)
	if !rec.NotBefore.Equal(nb) || !rec.NotAfter.Equal(nb.Add(365*24*time.Hour-time.Second)) {
		t.Fatalf("validity %s to %s, want from %s for 365 days", rec.NotBefore, rec.NotAfter, nb)
	}
	if _, err := f.a.NewOrder(f.ctx, acct, acme.NewOrderRequest{Identifiers: dnsIDs("past.example.fi"), NotBefore: time.Now().Add(-time.Hour).Format(time.RFC3339)}); !acme.IsKind(err, acme.Malformed) {
		t.Fatalf("a notBefore in the past: %v, want malformed", err)
	}
}

// brokenPolicy is a Policy that is not a *policy.Chain and answers badly.
type brokenPolicy struct{ err error }

func (b brokenPolicy) CheckOrder(context.Context, *policy.Request) error { return b.err }
func (b brokenPolicy) CheckCSR(context.Context, *policy.Request) error   { return b.err }

func TestPolicyFailureRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	a, err := NewWithProfiles(Config{Revoker: testRevoker(f.st), Audit: testAuditor(f.st)}, f.st, f.val, []Profile{{Name: "sote-server", CA: f.ca, Policy: brokenPolicy{errors.New("secret internals")}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.NewOrder(f.ctx, f.account(), acme.NewOrderRequest{Identifiers: dnsIDs("www.example.fi")})
	ae := wantKind(t, err, acme.ServerInternal)
	if strings.Contains(ae.Detail, "secret internals") {
		t.Errorf("detail %q leaks the error", ae.Detail)
	}
}

func TestNewWithProfilesRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	ok := Profile{Name: "sote-server", CA: f.ca, Policy: brokenPolicy{}}
	var nilChain *policy.Chain
	tests := []struct {
		name     string
		profiles []Profile
	}{
		{"no profiles", nil},
		{"the default missing", []Profile{{Name: "sote-server-test", CA: f.ca, Policy: brokenPolicy{}}}},
		{"a profile twice", []Profile{ok, ok}},
		{"a profile without a policy", []Profile{{Name: "sote-server", CA: f.ca}}},
		{"a profile with a nil chain", []Profile{{Name: "sote-server", CA: f.ca, Policy: nilChain}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewWithProfiles(Config{Revoker: testRevoker(f.st), Audit: testAuditor(f.st)}, f.st, f.val, tt.profiles, nil); err == nil {
				t.Fatal("NewWithProfiles accepted it")
			}
		})
	}
}
