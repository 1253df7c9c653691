package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/crypto/acme"

	"github.com/varmenne/varmenne/test/harness"
)

// client registers a golang.org/x/crypto/acme client with an EAB key.
func (in *instance) client(kid, hmacKey string) *acme.Client {
	t := in.T
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := &acme.Client{Key: key, DirectoryURL: in.Directory, HTTPClient: in.httpClient(), UserAgent: "varmenne-e2e"}
	mac, err := base64.RawURLEncoding.DecodeString(hmacKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Register(ctxT(t), &acme.Account{
		Contact:                []string{"mailto:it@apteekki.example"},
		ExternalAccountBinding: &acme.ExternalAccountBinding{KID: kid, Key: mac},
	}, acme.AcceptTOS)
	if err != nil {
		t.Fatalf("register with EAB: %v", err)
	}
	return c
}

// obtain runs one order to its certificate with http-01 and returns the chain (DER).
func (in *instance) obtain(c *acme.Client, r *responder, certKey crypto.Signer, names ...string) ([][]byte, string) {
	in.T.Helper()
	return in.Obtain(c, "http-01", harness.HTTP01(c, r), certKey, names...)
}

func newKey(t *testing.T) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestGoClientIssueDownloadRevoke is the walking skeleton with golang.org/x/crypto/acme:
// EAB registration, http-01, finalize, download, verify against roots.pem, revoke.
func TestGoClientIssueDownloadRevoke(t *testing.T) {
	in := start(t, "")
	kid, mac := in.org("1.2.246.10.12345678.10.0", "Helsingin VI apteekki", "apteekki.example")
	c := in.client(kid, mac)
	r := in.responder()
	certKey := newKey(t)

	chain, certURL := in.obtain(c, r, certKey, "www.apteekki.example", "apteekki.example")
	if len(chain) != 2 {
		t.Fatalf("chain has %d certificates, want leaf and issuer", len(chain))
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	issuer, _ := x509.ParseCertificate(chain[1])
	inter := x509.NewCertPool()
	inter.AddCert(issuer)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: in.rootPool(), Intermediates: inter, DNSName: "www.apteekki.example"}); err != nil {
		t.Fatalf("issued chain does not verify against %s: %v", in.Roots, err)
	}
	serial := leaf.SerialNumber.Bytes()
	if len(serial) != 18 || serial[0] != 0x01 {
		t.Errorf("serial %x: want 18 bytes starting 0x01", serial)
	}
	if got := leaf.Subject.Organization; len(got) != 1 || got[0] != "Helsingin VI apteekki" {
		t.Errorf("subject O = %q: want the organisation's name, not the CSR's", got)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d.Hours() > 365*24+1 {
		t.Errorf("validity %v exceeds 365 days", d)
	}

	// Download again by URL: the same certificate.
	again, err := c.FetchCert(ctxT(t), certURL, true)
	if err != nil || len(again) != 2 || string(again[0]) != string(chain[0]) {
		t.Fatalf("download by URL: %d certs, %v", len(again), err)
	}

	// The same key is never certified twice.
	_, _, err = in.tryFinalize(c, r, certKey, "www.apteekki.example")
	if !isProblem(err, "badCSR") {
		t.Errorf("second certificate for the same key: want badCSR, got %v", err)
	}

	// Revoke by the owning account; a second revocation is alreadyRevoked.
	if err := c.RevokeCert(ctxT(t), nil, chain[0], acme.CRLReasonSuperseded); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	// x/crypto/acme treats alreadyRevoked as success, so the server's request log tells.
	if err := c.RevokeCert(ctxT(t), nil, chain[0], acme.CRLReasonSuperseded); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	if !in.LogHas(`"problem":"alreadyRevoked"`) {
		t.Fatalf("second revoke was not answered alreadyRevoked; server log:\n%s", tail([]byte(in.Logs.String()), 3000))
	}

	// Revoked by the certificate's own key, and certificateHold refused.
	key2 := newKey(t)
	chain2, _ := in.obtain(c, r, key2, "portaali.apteekki.example")
	if err := c.RevokeCert(ctxT(t), key2, chain2[0], acme.CRLReasonCertificateHold); !isProblem(err, "badRevocationReason") {
		t.Fatalf("certificateHold: want badRevocationReason, got %v", err)
	}
	if err := c.RevokeCert(ctxT(t), key2, chain2[0], acme.CRLReasonKeyCompromise); err != nil {
		t.Fatalf("revoke signed by the certificate key: %v", err)
	}

	// A name outside the organisation's domains is refused at newOrder.
	in.pointAt("www.other.example")
	_, err = c.AuthorizeOrder(ctxT(t), acme.DomainIDs("www.other.example"))
	if !isProblem(err, "rejectedIdentifier") {
		t.Fatalf("foreign name: want rejectedIdentifier, got %v", err)
	}
}

// tryFinalize runs an order and returns the finalize error instead of failing.
func (in *instance) tryFinalize(c *acme.Client, r *responder, certKey crypto.Signer, name string) ([][]byte, string, error) {
	ctx := ctxT(in.T)
	in.pointAt(name)
	order, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name))
	if err != nil {
		return nil, "", err
	}
	for _, u := range order.AuthzURLs {
		az, err := c.GetAuthorization(ctx, u)
		if err != nil {
			return nil, "", err
		}
		for _, ch := range az.Challenges {
			if ch.Type == "http-01" && az.Status == acme.StatusPending {
				ka, _ := c.HTTP01ChallengeResponse(ch.Token)
				r.Set(ch.Token, ka)
				if _, err := c.Accept(ctx, ch); err != nil {
					return nil, "", err
				}
			}
		}
		if _, err := c.WaitAuthorization(ctx, u); err != nil {
			return nil, "", err
		}
	}
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, certKey)
	return c.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
}

// isProblem reports whether err is an ACME problem of the given type.
func isProblem(err error, kind string) bool {
	var ae *acme.Error
	return errors.As(err, &ae) && ae.ProblemType == "urn:ietf:params:acme:error:"+kind
}

// TestRestartKeepsEverything: after a restart the CA, the account and the certificate
// are the same.
func TestRestartKeepsEverything(t *testing.T) {
	in := start(t, "")
	kid, mac := in.org("1.2.246.10.22222222.10.0", "Apteekki Kaksi", "kaksi.example")
	c := in.client(kid, mac)
	r := in.responder()
	chain, certURL := in.obtain(c, r, newKey(t), "www.kaksi.example")
	rootsBefore := string(mustRead(t, in.Roots))
	acctBefore, err := c.GetReg(ctxT(t), "")
	if err != nil {
		t.Fatal(err)
	}

	in.restart()
	c.DirectoryURL = in.Directory
	c.HTTPClient = in.httpClient()
	// The client's cached directory points at the old port; a new client with the same key.
	c2 := &acme.Client{Key: c.Key, DirectoryURL: in.Directory, HTTPClient: in.httpClient()}
	if got := string(mustRead(t, in.Roots)); got != rootsBefore {
		t.Fatal("roots.pem changed across a restart: the development CA was made anew")
	}
	acctAfter, err := c2.GetReg(ctxT(t), "")
	if err != nil {
		t.Fatalf("account lookup after restart: %v", err)
	}
	if pathOf(acctAfter.URI) != pathOf(acctBefore.URI) {
		t.Fatalf("account after restart %s, before %s", acctAfter.URI, acctBefore.URI)
	}
	after, err := c2.FetchCert(ctxT(t), in.directoryBase()+pathOf(certURL), true)
	if err != nil || string(after[0]) != string(chain[0]) {
		t.Fatalf("certificate after restart: %v", err)
	}
}

func pathOf(u string) string {
	i := strings.Index(u, "/acme/")
	if i < 0 {
		return u
	}
	return u[i:]
}

func (in *instance) directoryBase() string {
	return strings.TrimSuffix(in.Directory, "/acme/directory")
}

// TestDirectoryAndGet checks the directory's meta and that resources refuse plain GET.
func TestDirectoryAndGet(t *testing.T) {
	in := start(t, "")
	hc := in.httpClient()
	resp, err := hc.Get(in.Directory)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var dir struct {
		NewAccount string `json:"newAccount"`
		NewOrder   string `json:"newOrder"`
		Meta       struct {
			ExternalAccountRequired bool   `json:"externalAccountRequired"`
			TermsOfService          string `json:"termsOfService"`
			Website                 string `json:"website"`
		} `json:"meta"`
	}
	if err := jsonDecode(resp.Body, &dir); err != nil {
		t.Fatal(err)
	}
	if !dir.Meta.ExternalAccountRequired || dir.Meta.TermsOfService == "" || dir.Meta.Website == "" {
		t.Fatalf("directory meta %+v: want externalAccountRequired, termsOfService, website", dir.Meta)
	}
	get, err := hc.Get(dir.NewOrder)
	if err != nil {
		t.Fatal(err)
	}
	get.Body.Close()
	if get.StatusCode != http.StatusMethodNotAllowed || get.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("GET newOrder: %d %s, want 405 problem", get.StatusCode, get.Header.Get("Content-Type"))
	}
}
