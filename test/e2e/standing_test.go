package e2e

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/crypto/acme"
)

// The findings of the security review of issue 16, each reproduced as an attacker
// would, through the built binary: an organisation's standing (suspension, a revoked
// EAB key) holds at every step towards a certificate, and an account's rights to
// revoke and download follow its EAB key's narrowing. Revocation by the holder stays
// possible whatever the standing.

// wantRefused fails unless err is an ACME problem of kind whose detail says every want.
func wantRefused(t *testing.T, step string, err error, kind string, wants ...string) {
	t.Helper()
	var ae *acme.Error
	if !errors.As(err, &ae) || ae.ProblemType != "urn:ietf:params:acme:error:"+kind {
		t.Fatalf("%s: %v, want a %s problem", step, err, kind)
	}
	for _, w := range wants {
		if !strings.Contains(ae.Detail, w) {
			t.Errorf("%s: detail %q does not say %q", step, ae.Detail, w)
		}
	}
}

// register is newAccount with an EAB key, reporting the refusal instead of failing.
func (in *instance) register(kid, hmacKey string, key crypto.Signer) (*acme.Client, error) {
	mac, err := base64.RawURLEncoding.DecodeString(hmacKey)
	if err != nil {
		in.T.Fatal(err)
	}
	c := &acme.Client{Key: key, DirectoryURL: in.Directory, HTTPClient: in.httpClient(), UserAgent: "varmenne-e2e"}
	_, err = c.Register(ctxT(in.T), &acme.Account{ExternalAccountBinding: &acme.ExternalAccountBinding{KID: kid, Key: mac}}, acme.AcceptTOS)
	return c, err
}

// pendingChallenge orders name and returns its http-01 challenge, not yet accepted.
func (in *instance) pendingChallenge(c *acme.Client, name string) *acme.Challenge {
	t := in.T
	t.Helper()
	in.pointAt(name)
	o, err := c.AuthorizeOrder(ctxT(t), acme.DomainIDs(name))
	if err != nil {
		t.Fatalf("newOrder %s: %v", name, err)
	}
	az, err := c.GetAuthorization(ctxT(t), o.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range az.Challenges {
		if ch.Type == "http-01" {
			return ch
		}
	}
	t.Fatalf("no http-01 challenge for %s", name)
	return nil
}

// csrFor is a CSR for names with a fresh key.
func csrFor(t *testing.T, names ...string) []byte {
	t.Helper()
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// holderStillRevokes: the account revokes its own certificate, which reaches the
// CRL, and can still download it.
func holderStillRevokes(t *testing.T, in *instance, c *acme.Client, chain [][]byte, certURL string) {
	t.Helper()
	if got, err := c.FetchCert(ctxT(t), certURL, false); err != nil || string(got[0]) != string(chain[0]) {
		t.Fatalf("the holder downloading its certificate: %v", err)
	}
	if err := c.RevokeCert(ctxT(t), nil, chain[0], acme.CRLReasonCessationOfOperation); err != nil {
		t.Fatalf("the holder revoking its certificate: %v", err)
	}
	leaf := mustParse(t, chain[0])
	waitCRL(t, "http://"+in.PublicAddr+"/crl/production.crl", func(rl *x509.RevocationList) bool { return listed(rl, leaf.SerialNumber) != nil })
}

// TestSuspendedOrganisationStandsStill: suspending an organisation stops every step
// towards a certificate, not only newOrder. Before the fix an order that was ready
// before the suspension was finalized and its certificate issued, an unused EAB key
// of the organisation registered an account (201), and a challenge could be
// started. Its account can still revoke and download its own certificate; once the
// organisation is resumed, the same ready order finalizes.
func TestSuspendedOrganisationStandsStill(t *testing.T) {
	in := start(t, "")
	const oid = "1.2.246.10.16161616.10.0"
	kid, mac := in.org(oid, "Apteekki Kuusitoista", "x.test")
	c := in.client(kid, mac)
	r := in.responder()
	chain, certURL := in.obtain(c, r, newKey(t), "www.x.test")
	in.pointAt("ready.x.test")
	finalizeURL, err := readyOrder(ctxT(t), c, r, "ready.x.test")
	if err != nil {
		t.Fatal(err)
	}
	pending := in.pendingChallenge(c, "pending.x.test")
	unusedKID, unusedMAC := in.eab(oid) // handed over before the suspension, not yet used

	if out, err := in.cli("org", "suspend", oid, "--reason", "unpaid invoice"); err != nil {
		t.Fatalf("org suspend: %v: %s", err, out)
	}
	says := []string{"organisation " + oid + " is suspended (unpaid invoice)", "resume"}

	t.Run("an order ready before the suspension is not finalized", func(t *testing.T) {
		_, _, err := c.CreateOrderCert(ctxT(t), finalizeURL, csrFor(t, "ready.x.test"), true)
		wantRefused(t, "finalize", err, "unauthorized", says...)
	})
	t.Run("an unused EAB key of the organisation registers no account", func(t *testing.T) {
		_, err := in.register(unusedKID, unusedMAC, newKey(t))
		wantRefused(t, "newAccount", err, "unauthorized", says...)
	})
	t.Run("a challenge cannot be started", func(t *testing.T) {
		ka, _ := c.HTTP01ChallengeResponse(pending.Token)
		r.Set(pending.Token, ka)
		_, err := c.Accept(ctxT(t), pending)
		wantRefused(t, "challenge", err, "unauthorized", says...)
	})
	t.Run("no new order", func(t *testing.T) {
		in.pointAt("new.x.test")
		_, err := c.AuthorizeOrder(ctxT(t), acme.DomainIDs("new.x.test"))
		wantRefused(t, "newOrder", err, "unauthorized", says...)
	})
	t.Run("no key rollover", func(t *testing.T) {
		err := c.AccountKeyRollover(ctxT(t), newKey(t))
		wantRefused(t, "keyChange", err, "unauthorized", says...)
	})
	t.Run("the suspended organisation still downloads and revokes its own certificate", func(t *testing.T) {
		holderStillRevokes(t, in, c, chain, certURL)
	})
	t.Run("once resumed, the ready order finalizes", func(t *testing.T) {
		if out, err := in.cli("org", "resume", oid); err != nil {
			t.Fatalf("org resume: %v: %s", err, out)
		}
		if _, _, err := c.CreateOrderCert(ctxT(t), finalizeURL, csrFor(t, "ready.x.test"), true); err != nil {
			t.Fatalf("finalize after the resumption: %v", err)
		}
	})
}

// TestRevokedEABKeyStopsItsAccount: revoking an EAB key without
// --deactivate-accounts used to leave the account it bound issuing. Now that
// account takes no step towards a certificate, and still revokes its own.
func TestRevokedEABKeyStopsItsAccount(t *testing.T) {
	in := start(t, "")
	const oid = "1.2.246.10.17171717.10.0"
	kid, mac := in.org(oid, "Apteekki Seitsemäntoista", "x.test")
	c := in.client(kid, mac)
	r := in.responder()
	chain, certURL := in.obtain(c, r, newKey(t), "www.x.test")
	in.pointAt("ready.x.test")
	finalizeURL, err := readyOrder(ctxT(t), c, r, "ready.x.test")
	if err != nil {
		t.Fatal(err)
	}
	pending := in.pendingChallenge(c, "pending.x.test")
	// A colleague's account of another key of the organisation is not touched.
	colleague := in.client(in.eab(oid))

	out, err := in.cli("eab", "revoke", kid, "--reason", "key leaked")
	if err != nil {
		t.Fatalf("eab revoke: %v: %s", err, out)
	}
	says := []string{"EAB key " + kid, "was revoked by the CA's operators (key leaked)"}

	t.Run("no new order", func(t *testing.T) {
		in.pointAt("new.x.test")
		_, err := c.AuthorizeOrder(ctxT(t), acme.DomainIDs("new.x.test"))
		wantRefused(t, "newOrder", err, "unauthorized", says...)
	})
	t.Run("an order ready before the revocation is not finalized", func(t *testing.T) {
		_, _, err := c.CreateOrderCert(ctxT(t), finalizeURL, csrFor(t, "ready.x.test"), true)
		wantRefused(t, "finalize", err, "unauthorized", says...)
	})
	t.Run("a challenge cannot be started", func(t *testing.T) {
		ka, _ := c.HTTP01ChallengeResponse(pending.Token)
		r.Set(pending.Token, ka)
		_, err := c.Accept(ctxT(t), pending)
		wantRefused(t, "challenge", err, "unauthorized", says...)
	})
	t.Run("no key rollover to escape the key", func(t *testing.T) {
		err := c.AccountKeyRollover(ctxT(t), newKey(t))
		wantRefused(t, "keyChange", err, "unauthorized", says...)
	})
	t.Run("the revoked key registers no new account", func(t *testing.T) {
		_, err := in.register(kid, mac, newKey(t))
		wantRefused(t, "newAccount", err, "unauthorized")
	})
	t.Run("the account still downloads and revokes its own certificate", func(t *testing.T) {
		holderStillRevokes(t, in, c, chain, certURL)
	})
	t.Run("an account of another key of the organisation still issues", func(t *testing.T) {
		in.obtain(colleague, r, newKey(t), "colleague.x.test")
	})
}

// TestRightsFollowTheNarrowing: an account whose EAB key is narrowed to sub.x.test
// revoked another account's www.x.test certificate with keyCompromise (blocking that
// key for everyone) and downloaded it. Now it may revoke and download only
// certificates whose every name lies inside its narrowing; the www.x.test
// certificate is untouched and its key not blocked.
func TestRightsFollowTheNarrowing(t *testing.T) {
	in := start(t, "")
	const oid = "1.2.246.10.18181818.10.0"
	kid, mac := in.org(oid, "Apteekki Kahdeksantoista", "x.test")
	owner := in.client(kid, mac)
	narrow := in.client(in.eabFor(oid, "--domain", "sub.x.test"))
	r := in.responder()
	wwwKey := newKey(t)
	www, wwwURL := in.obtain(owner, r, wwwKey, "www.x.test")
	sub, subURL := in.obtain(owner, r, newKey(t), "api.sub.x.test")

	t.Run("the narrowed account may not revoke a certificate outside its narrowing", func(t *testing.T) {
		err := narrow.RevokeCert(ctxT(t), nil, www[0], acme.CRLReasonKeyCompromise)
		wantRefused(t, "revokeCert", err, "unauthorized", "limited to sub.x.test", "www.x.test")
	})
	t.Run("nor download it: for that account it does not exist", func(t *testing.T) {
		_, err := narrow.FetchCert(ctxT(t), wwwURL, false)
		var ae *acme.Error
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound {
			t.Fatalf("download: %v, want 404", err)
		}
		wantRefused(t, "download", err, "malformed", "no such certificate")
	})
	t.Run("the certificate's key was not blocked", func(t *testing.T) {
		kid2, mac2 := in.eab(oid)
		if _, err := in.register(kid2, mac2, wwwKey); err != nil {
			t.Fatalf("the www.x.test certificate's key as an account key: %v; it must not be blocked", err)
		}
	})
	t.Run("inside its narrowing it may download and revoke another account's certificate", func(t *testing.T) {
		if _, err := narrow.FetchCert(ctxT(t), subURL, false); err != nil {
			t.Fatalf("download of api.sub.x.test: %v", err)
		}
		if err := narrow.RevokeCert(ctxT(t), nil, sub[0], acme.CRLReasonKeyCompromise); err != nil {
			t.Fatalf("revoking api.sub.x.test: %v", err)
		}
	})
	t.Run("the owner still revokes its www.x.test certificate", func(t *testing.T) {
		holderStillRevokes(t, in, owner, www, wwwURL)
	})
}
