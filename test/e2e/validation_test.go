package e2e

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/acme"
)

// Issue 8 end to end: dns-01 with certbot's manual hooks (and a CNAME delegated to a
// vendor's zone), tls-alpn-01 and a wildcard through dns-01 with
// golang.org/x/crypto/acme, CAA with accounturi, validationmethods and issuewild,
// and the CAA recheck at finalize.

// txtControl is the loopback endpoint certbot's hooks call to publish and remove
// _acme-challenge TXT values in the test's DNS server. A label may be delegated: its
// values then go to the CNAME target, as an IT vendor's DNS API would put them.
type txtControl struct {
	in        *instance
	url       string
	mu        sync.Mutex
	values    map[string][]string // owner name → TXT values
	delegates map[string]string   // _acme-challenge label → CNAME target
	calls     []string            // "add <domain>", "del <domain>"
}

func (in *instance) txtControl() *txtControl {
	t := in.T
	tc := &txtControl{in: in, values: map[string][]string{}, delegates: map[string]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(tc.serve)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	tc.url = "http://" + ln.Addr().String() + "/txt"
	return tc
}

// delegate makes _acme-challenge.<domain> a CNAME to target.
func (tc *txtControl) delegate(domain, target string) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	label := "_acme-challenge." + domain
	tc.delegates[label] = target
	tc.in.DNS.SetCNAME(label, target)
}

func (tc *txtControl) serve(w http.ResponseWriter, r *http.Request) {
	op, domain, value := r.FormValue("op"), r.FormValue("domain"), r.FormValue("validation")
	if r.Method != http.MethodPost || (op != "add" && op != "del") || domain == "" || value == "" {
		http.Error(w, "POST op=add|del, domain, validation", http.StatusBadRequest)
		return
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.calls = append(tc.calls, op+" "+domain)
	owner := "_acme-challenge." + strings.TrimPrefix(domain, "*.")
	if target, ok := tc.delegates[owner]; ok {
		owner = target
	}
	vals := slices.DeleteFunc(tc.values[owner], func(v string) bool { return v == value })
	if op == "add" {
		vals = append(vals, value)
	}
	tc.values[owner] = vals
	if len(vals) == 0 {
		tc.in.DNS.Clear(owner)
	} else {
		tc.in.DNS.SetTXT(owner, vals...)
	}
}

// hook writes the script certbot runs as --manual-auth-hook and --manual-cleanup-hook.
// It is Python because certbot is: where certbot runs, python3 does. Proxies are
// switched off so that the loopback request cannot leave the machine.
func (tc *txtControl) hook(dir string) string {
	path := filepath.Join(dir, "txt-hook.py")
	script := fmt.Sprintf(`#!/usr/bin/env python3
import os, sys, urllib.parse, urllib.request
data = urllib.parse.urlencode({"op": sys.argv[1], "domain": os.environ["CERTBOT_DOMAIN"],
                               "validation": os.environ["CERTBOT_VALIDATION"]}).encode()
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
opener.open(%q, data, timeout=10).read()
`, tc.url)
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		tc.in.T.Fatal(err)
	}
	return path
}

// TestCertbotDNS01: certbot with --manual --preferred-challenges dns and hooks that
// publish the TXT records in the test's DNS server; one name's label is delegated by
// CNAME to a vendor's zone. Nothing answers http-01 or tls-alpn-01, so only dns-01
// can succeed. The default server then refuses a wildcard order.
func TestCertbotDNS01(t *testing.T) {
	certbot, err := exec.LookPath("certbot")
	if err != nil {
		t.Fatal("certbot is not installed: run ./scripts/install-test-deps (make test does)")
	}
	in := start(t, "")
	kid, mac := in.org("1.2.246.10.66666666.10.0", "Kuudes apteekki", "kuudes.example")
	tc := in.txtControl()
	tc.delegate("portaali.kuudes.example", "portaali-kuudes.acme-dns.vendor.example")
	names := []string{"www.kuudes.example", "portaali.kuudes.example"}

	dir := t.TempDir()
	hook := tc.hook(dir)
	args := []string{"certonly",
		"--non-interactive", "--agree-tos", "--register-unsafely-without-email",
		"--server", in.Directory,
		"--eab-kid=" + kid, "--eab-hmac-key=" + mac, // "=": a base64url key may begin with "-"
		"--manual", "--preferred-challenges", "dns",
		"--manual-auth-hook", hook + " add", "--manual-cleanup-hook", hook + " del",
		"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"), "--logs-dir", filepath.Join(dir, "logs"),
		"--key-type", "ecdsa",
	}
	for _, n := range names {
		args = append(args, "-d", n)
	}
	cmd := exec.Command(certbot, args...)
	cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+in.Roots)
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "logs", "letsencrypt.log"))
		t.Fatalf("certbot: %v\n%s\n--- certbot log ---\n%s\n--- server log ---\n%s", err, out, tail(log, 4000), tail([]byte(in.Logs.String()), 4000))
	}

	live := filepath.Join(dir, "config", "live", names[0])
	cert, chain := filepath.Join(live, "cert.pem"), filepath.Join(live, "chain.pem")
	verify := exec.Command("openssl", "verify", "-CAfile", in.Roots, "-untrusted", chain, cert)
	if vout, err := verify.CombinedOutput(); err != nil || !bytes.Contains(vout, []byte(": OK")) {
		t.Fatalf("openssl verify: %v: %s", err, vout)
	}
	text, _ := exec.Command("openssl", "x509", "-in", cert, "-noout", "-text").Output()
	for _, n := range names {
		if !bytes.Contains(text, []byte("DNS:"+n)) {
			t.Errorf("certificate lacks DNS:%s", n)
		}
	}

	tc.mu.Lock()
	calls := slices.Sorted(slices.Values(tc.calls))
	left := 0
	for _, v := range tc.values {
		left += len(v)
	}
	tc.mu.Unlock()
	want := []string{"add portaali.kuudes.example", "add www.kuudes.example", "del portaali.kuudes.example", "del www.kuudes.example"}
	if !slices.Equal(calls, want) {
		t.Errorf("hook calls %q, want %q", calls, want)
	}
	if left != 0 {
		t.Errorf("%d TXT values left after the cleanup hook", left)
	}
	if n := strings.Count(in.Logs.String(), `"msg":"validation finished"`); n != 2 {
		t.Errorf("%d validations in the server log, want 2 (one dns-01 per name)", n)
	}

	// Wildcards are off unless the operator allows them.
	c := in.client(in.eab("1.2.246.10.66666666.10.0"))
	_, err = c.AuthorizeOrder(ctxT(t), acme.DomainIDs("*.kuudes.example"))
	if !isProblem(err, "rejectedIdentifier") {
		t.Fatalf("wildcard order on a server without --allow-wildcards: want rejectedIdentifier, got %v", err)
	}
}

// alpnResponder serves tls-alpn-01 certificates by SNI on the port the server's
// --tlsalpn01-port names, only to connections that offer acme-tls/1.
type alpnResponder struct {
	mu    sync.Mutex
	certs map[string]*tls.Certificate
	hits  int
}

func (in *instance) alpnResponder(port int) *alpnResponder {
	t := in.T
	r := &alpnResponder{certs: map[string]*tls.Certificate{}}
	ln, err := tls.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{
		NextProtos: []string{acme.ALPNProto},
		GetCertificate: func(chi *tls.ClientHelloInfo) (*tls.Certificate, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.hits++
			if c, ok := r.certs[chi.ServerName]; ok && slices.Contains(chi.SupportedProtos, acme.ALPNProto) {
				return c, nil
			}
			return nil, errors.New("no tls-alpn-01 certificate for this name")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.(*tls.Conn).Handshake()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return r
}

func (r *alpnResponder) set(name string, cert tls.Certificate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.certs[name] = &cert
}

// solver answers one challenge of an authorization.
type solver func(c *acme.Client, az *acme.Authorization, ch *acme.Challenge) error

// order runs an order with the challenges of type typ and returns the chain, or the
// first error of the way: of newOrder, an authorization or finalize.
func (in *instance) order(c *acme.Client, typ string, solve solver, certKey crypto.Signer, names ...string) ([][]byte, error) {
	ctx := ctxT(in.T)
	order, err := c.AuthorizeOrder(ctx, acme.DomainIDs(names...))
	if err != nil {
		return nil, err
	}
	for _, u := range order.AuthzURLs {
		az, err := c.GetAuthorization(ctx, u)
		if err != nil {
			return nil, err
		}
		if az.Status == acme.StatusValid {
			continue // reused
		}
		var chal *acme.Challenge
		for _, ch := range az.Challenges {
			if ch.Type == typ {
				chal = ch
			}
		}
		if chal == nil {
			return nil, fmt.Errorf("authorization for %s offers no %s", az.Identifier.Value, typ)
		}
		if err := solve(c, az, chal); err != nil {
			return nil, err
		}
		if _, err := c.Accept(ctx, chal); err != nil {
			return nil, err
		}
		if _, err := c.WaitAuthorization(ctx, u); err != nil {
			return nil, err
		}
	}
	if _, err := c.WaitOrder(ctx, order.URI); err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, certKey)
	if err != nil {
		in.T.Fatal(err)
	}
	der, _, err := c.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	return der, err
}

// problemOf finds the problem of kind in err, directly or in a failed authorization.
func problemOf(err error, kind string) *acme.Error {
	var ae *acme.Error
	if errors.As(err, &ae) && ae.ProblemType == "urn:ietf:params:acme:error:"+kind {
		return ae
	}
	var aze *acme.AuthorizationError
	if errors.As(err, &aze) {
		for _, e := range aze.Errors {
			if errors.As(e, &ae) && ae.ProblemType == "urn:ietf:params:acme:error:"+kind {
				return ae
			}
		}
	}
	return nil
}

// TestGoClientTLSALPN01WildcardAndCAA drives a server started with --allow-wildcards,
// a tls-alpn-01 port, a CAA identity and a CAA recheck at every finalize.
func TestGoClientTLSALPN01WildcardAndCAA(t *testing.T) {
	const caaID = "ca.varmenne.test"
	alpnPort := freePort(t)
	in := startWith(t, "", "--allow-wildcards", "--tlsalpn01-port", fmt.Sprint(alpnPort),
		"--caa-identity", caaID, "--caa-recheck-after", "1ns")
	const oid = "1.2.246.10.77777777.10.0"
	kid, mac := in.org(oid, "Seitsemas apteekki", "seitsemas.example", "kahdeksas.example")
	c := in.client(kid, mac)
	alpn := in.alpnResponder(alpnPort)
	byALPN := func(c *acme.Client, az *acme.Authorization, ch *acme.Challenge) error {
		in.pointAt(az.Identifier.Value)
		cert, err := c.TLSALPN01ChallengeCert(ch.Token, az.Identifier.Value)
		alpn.set(az.Identifier.Value, cert)
		return err
	}
	var txtMu sync.Mutex
	txt := map[string][]string{}
	byDNS := func(c *acme.Client, az *acme.Authorization, ch *acme.Challenge) error {
		v, err := c.DNS01ChallengeRecord(ch.Token)
		txtMu.Lock()
		defer txtMu.Unlock()
		label := "_acme-challenge." + az.Identifier.Value
		txt[label] = append(txt[label], v)
		in.DNS.SetTXT(label, txt[label]...)
		return err
	}

	t.Run("the directory names the CAA identity", func(t *testing.T) {
		resp, err := in.httpClient().Get(in.Directory)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var dir struct {
			Meta struct {
				CAAIdentities []string `json:"caaIdentities"`
			} `json:"meta"`
		}
		if err := jsonDecode(resp.Body, &dir); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(dir.Meta.CAAIdentities, []string{caaID}) {
			t.Fatalf("meta.caaIdentities %q, want [%s]", dir.Meta.CAAIdentities, caaID)
		}
	})

	// CAA lets only this account, by tls-alpn-01, issue for seitsemas.example.
	in.DNS.SetCAA("seitsemas.example", 0, "issue", caaID+"; accounturi="+string(c.KID)+"; validationmethods=tls-alpn-01")

	t.Run("tls-alpn-01 with the account CAA names", func(t *testing.T) {
		chain, err := in.order(c, "tls-alpn-01", byALPN, newKey(t), "www.seitsemas.example")
		if err != nil {
			t.Fatalf("tls-alpn-01 order: %v\n%s", err, tail([]byte(in.Logs.String()), 3000))
		}
		leaf, _ := x509.ParseCertificate(chain[0])
		if !slices.Equal(leaf.DNSNames, []string{"www.seitsemas.example"}) {
			t.Errorf("certificate names %q", leaf.DNSNames)
		}
		alpn.mu.Lock()
		hits := alpn.hits
		alpn.mu.Unlock()
		if hits == 0 {
			t.Error("the server never connected to the tls-alpn-01 responder")
		}
	})

	t.Run("CAA accounturi refuses another account", func(t *testing.T) {
		other := in.client(in.eab(oid))
		_, err := in.order(other, "tls-alpn-01", byALPN, newKey(t), "api.seitsemas.example")
		ae := problemOf(err, "caa")
		if ae == nil || !strings.Contains(ae.Detail, "another ACME account") {
			t.Fatalf("order by another account: want a caa problem about the account, got %v", err)
		}
	})

	t.Run("CAA validationmethods refuses dns-01", func(t *testing.T) {
		_, err := in.order(c, "dns-01", byDNS, newKey(t), "dns.seitsemas.example")
		if ae := problemOf(err, "caa"); ae == nil || !strings.Contains(ae.Detail, "validation method dns-01") {
			t.Fatalf("dns-01 where CAA allows only tls-alpn-01: want a caa problem, got %v", err)
		}
	})

	t.Run("a wildcard and its base name through dns-01", func(t *testing.T) {
		in.DNS.SetCAA("kahdeksas.example", 0, "issue", caaID)
		in.DNS.SetCAA("kahdeksas.example", 0, "issuewild", caaID+"; validationmethods=dns-01")
		names := []string{"*.kahdeksas.example", "kahdeksas.example"}
		chain, err := in.order(c, "dns-01", byDNS, newKey(t), names...)
		if err != nil {
			t.Fatalf("wildcard order: %v\n%s", err, tail([]byte(in.Logs.String()), 3000))
		}
		leaf, _ := x509.ParseCertificate(chain[0])
		if got := slices.Sorted(slices.Values(leaf.DNSNames)); !slices.Equal(got, names) {
			t.Errorf("certificate names %q, want %q", got, names)
		}
		if err := leaf.VerifyHostname("portaali.kahdeksas.example"); err != nil {
			t.Errorf("the wildcard certificate does not cover a host below it: %v", err)
		}
	})

	t.Run("a SERVFAIL makes dns-01 invalid with a dns problem", func(t *testing.T) {
		in.DNS.SetServfail("_acme-challenge.rikki.kahdeksas.example")
		nothing := func(*acme.Client, *acme.Authorization, *acme.Challenge) error { return nil }
		_, err := in.order(c, "dns-01", nothing, newKey(t), "rikki.kahdeksas.example")
		if ae := problemOf(err, "dns"); ae == nil || !strings.Contains(ae.Detail, "SERVFAIL") {
			t.Fatalf("want a dns problem naming SERVFAIL, got %v", err)
		}
		var aze *acme.AuthorizationError
		if !errors.As(err, &aze) {
			t.Fatalf("want the authorization to end invalid, got %v", err)
		}
	})

	t.Run("a wildcard is offered only the DNS challenges", func(t *testing.T) {
		order, err := c.AuthorizeOrder(ctxT(t), acme.DomainIDs("*.seitsemas.example"))
		if err != nil {
			t.Fatal(err)
		}
		az, err := c.GetAuthorization(ctxT(t), order.AuthzURLs[0])
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, ch := range az.Challenges {
			types = append(types, ch.Type)
		}
		if want := []string{"dns-01", "dns-account-01", "dns-persist-01"}; !slices.Equal(types, want) || !az.Wildcard || az.Identifier.Value != "seitsemas.example" {
			t.Fatalf("wildcard authorization %s wildcard=%v with challenges %q, want seitsemas.example wildcard with %q only",
				az.Identifier.Value, az.Wildcard, types, want)
		}
	})

	t.Run("CAA is rechecked for every name at finalize", func(t *testing.T) {
		names := []string{"a.kahdeksas.example", "b.kahdeksas.example", "c.kahdeksas.example"}
		ctx := ctxT(t)
		order, err := c.AuthorizeOrder(ctx, acme.DomainIDs(names...))
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range order.AuthzURLs {
			az, _ := c.GetAuthorization(ctx, u)
			for _, ch := range az.Challenges {
				if ch.Type == "dns-01" {
					byDNS(c, az, ch)
					if _, err := c.Accept(ctx, ch); err != nil {
						t.Fatal(err)
					}
				}
			}
			if _, err := c.WaitAuthorization(ctx, u); err != nil {
				t.Fatalf("authorization: %v", err)
			}
		}
		// Validated; now c.kahdeksas.example closes its CAA to us.
		in.DNS.SetCAA("c.kahdeksas.example", 0, "issue", "other-ca.example")
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, newKey(t))
		_, _, err = c.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
		ae := problemOf(err, "caa")
		if ae == nil || ae.StatusCode != http.StatusForbidden {
			t.Fatalf("finalize after the CAA change: want a 403 caa problem, got %v", err)
		}
		if len(ae.Subproblems) != 1 || ae.Subproblems[0].Identifier == nil || ae.Subproblems[0].Identifier.Value != "c.kahdeksas.example" {
			t.Fatalf("subproblems %+v, want exactly one, for c.kahdeksas.example", ae.Subproblems)
		}
	})
}
