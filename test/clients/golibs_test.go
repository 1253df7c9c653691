package clients

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/go-acme/lego/v4/certcrypto"
	legocert "github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/registration"
	"github.com/mholt/acmez/v3"
	acmezacme "github.com/mholt/acmez/v3/acme"
	"golang.org/x/crypto/acme"

	"github.com/varmenne/varmenne/test/harness"
)

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (e *env) hmac() []byte {
	e.t.Helper()
	mac, err := base64.RawURLEncoding.DecodeString(e.mac)
	if err != nil {
		e.t.Fatal(err)
	}
	return mac
}

// --- golang.org/x/crypto/acme ---

// xcryptoObtain runs one order for name with http-01 (r) or, when r is nil, dns-01.
func (e *env) xcryptoObtain(c *acme.Client, r *harness.Responder, name string) []*x509.Certificate {
	e.t.Helper()
	typ, present := "dns-01", e.in.DNS01(c)
	if r != nil {
		typ, present = "http-01", harness.HTTP01(c, r)
	}
	ders, _ := e.in.Obtain(c, typ, present, newKey(e.t), name)
	certs, err := x509.ParseCertificates(bytes.Join(ders, nil))
	if err != nil {
		e.t.Fatal(err)
	}
	return certs
}

// xcryptoACME: golang.org/x/crypto/acme with EAB; http-01 and dns-01; renewal;
// AccountKeyRollover, after which the old key is refused and the new one orders;
// revocation.
func xcryptoACME(e *env) {
	t := e.t
	ctx := harness.Ctx(t)
	r := e.responder()
	c := &acme.Client{Key: newKey(t), DirectoryURL: e.in.Directory, HTTPClient: e.in.HTTPClient(), UserAgent: "varmenne-client-matrix"}
	acct, err := c.Register(ctx, &acme.Account{Contact: []string{"mailto:it@" + e.domain},
		ExternalAccountBinding: &acme.ExternalAccountBinding{KID: e.kid, Key: e.hmac()}}, acme.AcceptTOS)
	if err != nil {
		t.Fatalf("register with EAB: %v", err)
	}
	name := e.name("www")
	first, _ := e.check(e.xcryptoObtain(c, r, name), name)
	chain := e.xcryptoObtain(c, r, name)
	second, issuer := e.check(chain, name)
	e.renewed(first, second)

	oldKey := c.Key
	if err := c.AccountKeyRollover(ctx, newKey(t)); err != nil {
		t.Fatalf("AccountKeyRollover: %v", err)
	}
	stale := &acme.Client{Key: oldKey, DirectoryURL: e.in.Directory, HTTPClient: e.in.HTTPClient()}
	stale.KID = acme.KeyID(acct.URI)
	_, err = stale.UpdateReg(ctx, &acme.Account{Contact: []string{"mailto:old-key@" + e.domain}})
	var problem *acme.Error
	if !errors.As(err, &problem) || problem.ProblemType != staleKeyProblem || !strings.Contains(problem.Detail, "signature") {
		t.Fatalf("the account's old key updates the account after the key rollover: %v, want the %s problem", err, staleKeyProblem)
	}
	// x/crypto turns the accountDoesNotExist problem into ErrNoAccount.
	if _, err := stale.GetReg(ctx, ""); !errors.Is(err, acme.ErrNoAccount) {
		t.Fatalf("the account's old key looks the account up after the key rollover: %v, want accountDoesNotExist", err)
	}
	dnsName := e.name("dns")
	e.check(e.xcryptoObtain(c, nil, dnsName), dnsName)

	if err := c.RevokeCert(ctx, nil, second.Raw, acme.CRLReasonSuperseded); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	e.revoked(second, issuer)
}

// --- github.com/mholt/acmez/v3 ---

type acmezHTTP struct{ r *harness.Responder }

func (s acmezHTTP) Present(_ context.Context, ch acmezacme.Challenge) error {
	s.r.Set(ch.Token, ch.KeyAuthorization)
	return nil
}
func (s acmezHTTP) CleanUp(context.Context, acmezacme.Challenge) error { return nil }

type acmezDNS struct{ in *harness.Instance }

func (s acmezDNS) Present(_ context.Context, ch acmezacme.Challenge) error {
	s.in.DNS.SetTXT(ch.DNS01TXTRecordName(), ch.DNS01KeyAuthorization())
	return nil
}
func (s acmezDNS) CleanUp(_ context.Context, ch acmezacme.Challenge) error {
	s.in.DNS.Clear(ch.DNS01TXTRecordName())
	return nil
}

// acmezClient registers an acmez account with EAB that answers http-01.
func (e *env) acmezClient(ctx context.Context) (*acmez.Client, acmezacme.Account) {
	t := e.t
	t.Helper()
	c := &acmez.Client{Client: &acmezacme.Client{Directory: e.in.Directory, HTTPClient: e.in.HTTPClient(), UserAgent: "varmenne-client-matrix"},
		ChallengeSolvers: map[string]acmez.Solver{"http-01": acmezHTTP{e.responder()}}}
	acct := acmezacme.Account{Contact: []string{"mailto:it@" + e.domain}, TermsOfServiceAgreed: true, PrivateKey: newKey(t)}
	if err := acct.SetExternalAccountBinding(ctx, c.Client, acmezacme.EAB{KeyID: e.kid, MACKey: e.mac}); err != nil {
		t.Fatal(err)
	}
	acct, err := c.NewAccount(ctx, acct)
	if err != nil {
		t.Fatalf("acmez: new account with EAB: %v", err)
	}
	return c, acct
}

// acmezObtain orders name in profile (empty: the default), replacing old when given.
func (e *env) acmezObtain(ctx context.Context, c *acmez.Client, acct acmezacme.Account, name, profile string, old *x509.Certificate) []*x509.Certificate {
	t := e.t
	t.Helper()
	csr, err := acmez.NewCSR(newKey(t), []string{name})
	if err != nil {
		t.Fatal(err)
	}
	certs, err := c.ObtainCertificate(ctx, acmez.OrderParameters{Account: acct, Profile: profile,
		Identifiers: []acmezacme.Identifier{{Type: "dns", Value: name}}, CSR: acmez.StaticCSR(csr), Replaces: old})
	if err != nil {
		t.Fatalf("acmez: obtain %s (profile %q): %v", name, profile, err)
	}
	return harness.ParseChain(t, certs[0].ChainPEM)
}

// staleKeyProblem is the problem a request signed with a key the account has rolled
// over from gets: its signature does not verify against the account's key (the
// detail says so).
const staleKeyProblem = "urn:ietf:params:acme:error:malformed"

// acmezRollover rolls acct's key over with AccountKeyRollover and asserts that the
// old key is refused, when it orders and when it looks the account up, with the ACME
// problems a user would see; it returns the account with the new key.
func (e *env) acmezRollover(ctx context.Context, c *acmez.Client, acct acmezacme.Account) acmezacme.Account {
	t := e.t
	t.Helper()
	rolled, err := c.AccountKeyRollover(ctx, acct, newKey(t))
	if err != nil {
		t.Fatalf("acmez: AccountKeyRollover: %v", err)
	}
	// Not UpdateAccount: acmez sends the account's "status":"valid" with it, which
	// varmenne refuses as malformed whatever the key.
	order := acmezacme.Order{Identifiers: []acmezacme.Identifier{{Type: "dns", Value: e.name("old-key")}}}
	for _, stale := range []struct {
		what, want, detail string
		call               func() error
	}{
		{"orders", staleKeyProblem, "signature", func() error { _, err := c.NewOrder(ctx, acct, order); return err }},
		{"looks the account up (onlyReturnExisting)", acmezacme.ProblemTypeAccountDoesNotExist, "",
			func() error { _, err := c.GetAccount(ctx, acct); return err }},
	} {
		var problem acmezacme.Problem
		if err := stale.call(); !errors.As(err, &problem) || problem.Type != stale.want || !strings.Contains(problem.Detail, stale.detail) {
			t.Fatalf("acmez: the old key %s after the key rollover: %v, want the %s problem", stale.what, err, stale.want)
		}
	}
	found, err := c.GetAccount(ctx, acmezacme.Account{PrivateKey: rolled.PrivateKey})
	if err != nil || found.Location != acct.Location {
		t.Fatalf("acmez: the new key finds account %q (%v), want %q", found.Location, err, acct.Location)
	}
	return rolled
}

// acmezFlow: acmez v3 with EAB; http-01 in the test profile, a renewal in the default
// profile that names the first certificate in `replaces` (ARI); AccountKeyRollover,
// after which the old key is refused and the new one orders over dns-01; revocation.
func acmezFlow(e *env) {
	t := e.t
	ctx := harness.Ctx(t)
	c, acct := e.acmezClient(ctx)
	name := e.name("www")
	first, firstIssuer := e.checkTest(e.acmezObtain(ctx, c, acct, name, "sote-server-test", nil), name)
	if !strings.Contains(firstIssuer.Subject.CommonName, "TEST") {
		t.Errorf("a sote-server-test certificate from issuer %q, want the test issuer", firstIssuer.Subject.CommonName)
	}
	ari, err := c.GetRenewalInfo(ctx, first)
	if err != nil || !ari.HasWindow() {
		t.Fatalf("acmez: renewal info: %+v, %v", ari, err)
	}
	second, issuer := e.check(e.acmezObtain(ctx, c, acct, name, "", first), name)
	e.renewed(first, second)
	if strings.Contains(issuer.Subject.CommonName, "TEST") {
		t.Errorf("a default-profile certificate from the test issuer %q", issuer.Subject.CommonName)
	}

	acct = e.acmezRollover(ctx, c, acct)
	c.ChallengeSolvers = map[string]acmez.Solver{"dns-01": acmezDNS{e.in}}
	dnsName := e.name("dns")
	e.check(e.acmezObtain(ctx, c, acct, dnsName, "", nil), dnsName)

	reason := 4
	if err := c.RevokeCertificate(ctx, acct, second, acct.PrivateKey, reason); err != nil {
		t.Fatalf("acmez: revoke: %v", err)
	}
	e.revoked(second, issuer)
	e.good(first, firstIssuer)
}

// --- github.com/go-acme/lego/v4 (the library) ---

type legoUser struct {
	email string
	reg   *registration.Resource
	key   crypto.PrivateKey
}

func (u *legoUser) GetEmail() string                        { return u.email }
func (u *legoUser) GetRegistration() *registration.Resource { return u.reg }
func (u *legoUser) GetPrivateKey() crypto.PrivateKey        { return u.key }

type legoHTTP struct{ r *harness.Responder }

func (p legoHTTP) Present(_, token, keyAuth string) error { p.r.Set(token, keyAuth); return nil }
func (p legoHTTP) CleanUp(_, _, _ string) error           { return nil }

type legoDNS struct{ in *harness.Instance }

func (p legoDNS) Present(domain, _, keyAuth string) error {
	info := dns01.GetChallengeInfo(domain, keyAuth)
	p.in.DNS.SetTXT(strings.TrimSuffix(info.FQDN, "."), info.Value)
	return nil
}
func (p legoDNS) CleanUp(_, _, _ string) error { return nil }

// legoClient registers a lego library account with EAB that answers http-01 and
// dns-01 (the propagation check asks the test's DNS server only).
func (e *env) legoClient(kid, mac string) *lego.Client {
	t := e.t
	t.Helper()
	u := &legoUser{email: "it@" + e.domain, key: newKey(t)}
	cfg := lego.NewConfig(u)
	cfg.CADirURL = e.in.Directory
	cfg.HTTPClient = e.in.HTTPClient()
	cfg.Certificate.KeyType = certcrypto.EC256
	c, err := lego.NewClient(cfg)
	if err != nil {
		t.Fatalf("lego: %v", err)
	}
	if err := c.Challenge.SetHTTP01Provider(legoHTTP{e.responder()}); err != nil {
		t.Fatal(err)
	}
	if err := c.Challenge.SetDNS01Provider(legoDNS{e.in}, dns01.AddRecursiveNameservers([]string{e.in.DNS.Addr()}),
		dns01.DisableAuthoritativeNssPropagationRequirement()); err != nil {
		t.Fatal(err)
	}
	u.reg, err = c.Registration.RegisterWithExternalAccountBinding(registration.RegisterEABOptions{TermsOfServiceAgreed: true, Kid: kid, HmacEncoded: mac})
	if err != nil {
		t.Fatalf("lego: register with EAB: %v", err)
	}
	return c
}

// legoLib: the lego library v4.34.0 with EAB; http-01 in the test profile; ARI
// renewal info and a renewal that replaces the first certificate; dns-01 (when the
// challenge is removed); revocation with a reason.
func legoLib(e *env) {
	t := e.t
	c := e.legoClient(e.kid, e.mac)
	name := e.name("www")
	res, err := c.Certificate.Obtain(legocert.ObtainRequest{Domains: []string{name}, Bundle: true, Profile: "sote-server-test"})
	if err != nil {
		t.Fatalf("lego: obtain: %v", err)
	}
	first, firstIssuer := e.checkTest(harness.ParseChain(t, res.Certificate), name)
	if !strings.Contains(firstIssuer.Subject.CommonName, "TEST") {
		t.Errorf("a sote-server-test certificate from issuer %q, want the test issuer", firstIssuer.Subject.CommonName)
	}
	if _, err := c.Certificate.GetRenewalInfo(legocert.RenewalInfoRequest{Cert: first}); err != nil {
		t.Fatalf("lego: renewal info: %v", err)
	}
	certID, err := legocert.MakeARICertID(first)
	if err != nil {
		t.Fatal(err)
	}
	res2, err := c.Certificate.Obtain(legocert.ObtainRequest{Domains: []string{name}, Bundle: true, ReplacesCertID: certID})
	if err != nil {
		t.Fatalf("lego: renew (replaces %s): %v", certID, err)
	}
	second, issuer := e.check(harness.ParseChain(t, res2.Certificate), name)
	e.renewed(first, second)

	c.Challenge.Remove("http-01")
	c.Challenge.Remove("tls-alpn-01")
	dnsName := e.name("dns")
	res3, err := c.Certificate.Obtain(legocert.ObtainRequest{Domains: []string{dnsName}, Bundle: true})
	if err != nil {
		t.Fatalf("lego: obtain over dns-01: %v", err)
	}
	e.check(harness.ParseChain(t, res3.Certificate), dnsName)

	reason := uint(4)
	if err := c.Certificate.RevokeWithReason(res2.Certificate, &reason); err != nil {
		t.Fatalf("lego: revoke: %v", err)
	}
	e.revoked(second, issuer)
}
