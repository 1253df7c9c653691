package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/varmenne/varmenne/acme/jws/jwstest"
)

// profileOrder is the order resource as the server sends it, with the profile that
// x/crypto/acme does not read.
type profileOrder struct {
	Status         string   `json:"status"`
	Profile        string   `json:"profile"`
	Authorizations []string `json:"authorizations"`
	Finalize       string   `json:"finalize"`
	URL            string   `json:"-"`
}

// problem is an RFC 7807 answer.
type problem struct {
	Type        string `json:"type"`
	Detail      string `json:"detail"`
	Subproblems []struct {
		Type       string `json:"type"`
		Detail     string `json:"detail"`
		Identifier struct {
			Value string `json:"value"`
		} `json:"identifier"`
	} `json:"subproblems"`
}

func (p *problem) Error() string { return p.Type + ": " + p.Detail }

// is reports whether err is a problem of the kind.
func problemIs(err error, kind string) bool {
	p, ok := err.(*problem)
	return ok && p.Type == "urn:ietf:params:acme:error:"+kind
}

// newOrder sends newOrder itself, with a profile and validity x/crypto/acme cannot
// send, signed with the client's account key and kid.
func (in *instance) newOrder(c *acme.Client, profile, notAfter string, names ...string) (*profileOrder, error) {
	t := in.T
	t.Helper()
	hc := in.httpClient()
	var dir struct {
		NewNonce string `json:"newNonce"`
		NewOrder string `json:"newOrder"`
	}
	resp, err := hc.Get(in.Directory)
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&dir)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	head, err := hc.Head(dir.NewNonce)
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	var ids []map[string]string
	for _, n := range names {
		in.pointAt(n)
		ids = append(ids, map[string]string{"type": "dns", "value": n})
	}
	req := map[string]any{"identifiers": ids}
	if profile != "" {
		req["profile"] = profile
	}
	if notAfter != "" {
		req["notAfter"] = notAfter
	}
	payload, _ := json.Marshal(req)
	body, err := jwstest.Sign(c.Key, string(c.KID), head.Header.Get("Replay-Nonce"), dir.NewOrder, payload)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = hc.Post(dir.NewOrder, "application/jose+json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		var p problem
		if err := json.Unmarshal(raw, &p); err != nil || p.Type == "" {
			t.Fatalf("newOrder answered %d: %s", resp.StatusCode, raw)
		}
		return nil, &p
	}
	var o profileOrder
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatal(err)
	}
	o.URL = resp.Header.Get("Location")
	return &o, nil
}

// finish proves the order's names with http-01 and finalizes it with a CSR of key.
func (in *instance) finish(c *acme.Client, r *responder, o *profileOrder, key crypto.Signer, names ...string) ([]*x509.Certificate, error) {
	t := in.T
	t.Helper()
	ctx := ctxT(t)
	for _, u := range o.Authorizations {
		az, err := c.GetAuthorization(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if az.Status == acme.StatusValid {
			continue
		}
		for _, ch := range az.Challenges {
			if ch.Type == "http-01" {
				ka, _ := c.HTTP01ChallengeResponse(ch.Token)
				r.Set(ch.Token, ka)
				if _, err := c.Accept(ctx, ch); err != nil {
					t.Fatalf("accept: %v", err)
				}
			}
		}
		if _, err := c.WaitAuthorization(ctx, u); err != nil {
			t.Fatalf("authorization: %v", err)
		}
	}
	if _, err := c.WaitOrder(ctx, o.URL); err != nil {
		t.Fatalf("order not ready: %v", err)
	}
	// The CSR asks for codeSigning; it is never copied: the profile decides the
	// key usages and EKUs.
	codeSigning, _ := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 3}})
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: names[0], Organization: []string{"ignored"}}, DNSNames: names,
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: codeSigning}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	ders, _, err := c.CreateOrderCert(ctx, o.Finalize, csr, true)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for _, d := range ders {
		cert, err := x509.ParseCertificate(d)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, cert)
	}
	return certs, nil
}

func (in *instance) issuerCert(name string) *x509.Certificate {
	in.T.Helper()
	block, _ := pem.Decode(mustRead(in.T, filepath.Join(in.Data, "pki", name+".pem")))
	if block == nil {
		in.T.Fatalf("pki/%s.pem holds no PEM", name)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		in.T.Fatal(err)
	}
	return c
}

// verifies reports whether leaf chains to roots (roots.pem or test-roots.pem)
// through issuer.
func (in *instance) verifies(leaf, issuer *x509.Certificate, roots *x509.CertPool, eku x509.ExtKeyUsage) error {
	inter := x509.NewCertPool()
	inter.AddCert(issuer)
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{eku}})
	return err
}

// eabFor creates an EAB key for org with extra eab create flags.
func (in *instance) eabFor(org string, flags ...string) (kid, mac string) {
	t := in.T
	t.Helper()
	out, err := in.cli(append([]string{"eab", "create", "--org", org, "--json"}, flags...)...)
	if err != nil {
		t.Fatalf("eab create: %v: %s", err, out)
	}
	var k struct {
		KID     string `json:"kid"`
		HMACKey string `json:"hmac_key"`
	}
	if err := json.Unmarshal([]byte(out), &k); err != nil {
		t.Fatalf("eab create printed %q", out)
	}
	return k.KID, k.HMACKey
}

// policyService is a webhook that answers by the first label of the first name:
// "ok" allows, "deny" refuses, "slow" answers after the plugin's timeout, "garbled"
// sends broken JSON, "panic" panics in the handler. A request without a valid HMAC is answered 401.
func policyService(t *testing.T, secret []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		if r.Header.Get("X-Varmenne-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var req struct {
			Organisation string `json:"organisation"`
			Profile      string `json:"profile"`
			Identifiers  []struct{ Value string }
		}
		if err := json.Unmarshal(body, &req); err != nil || len(req.Identifiers) == 0 || req.Organisation == "" || req.Profile == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		switch label, _, _ := strings.Cut(req.Identifiers[0].Value, "."); label {
		case "ok":
			io.WriteString(w, `{"allow": true}`)
		case "deny":
			io.WriteString(w, `{"allow": false, "detail": "this host is not in the organisation's system inventory"}`)
		case "slow":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			io.WriteString(w, `{"allow": true}`)
		case "garbled":
			io.WriteString(w, `{"allow": tru`)
		case "panic":
			// A policy service whose handler panics: net/http drops the connection
			// without an answer.
			panic(http.ErrAbortHandler)
		default:
			io.WriteString(w, `{}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestProfiles drives the four SOTE profiles, EAB profile limits and a webhook
// profile from a configuration file through a running server.
func TestProfiles(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	hook := policyService(t, secret)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "webhook.key")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`{
  "profiles": {
    "sote-server-hooked": {
      "description": "SOTE server certificate, asked of the organisation's policy service",
      "kind": "server",
      "plugins": [
        {"name": "names"}, {"name": "keys"}, {"name": "validity"},
        {"name": "webhook", "timeout": "5s", "config": {"url": %q, "secret_file": %q, "timeout": "1s", "allow_networks": ["127.0.0.0/8"]}}
      ]
    }
  }
}`, hook.URL+"/check", secretFile)
	configFile := filepath.Join(dir, "varmenne.json")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	in := startWith(t, "", "--config", configFile)
	r := in.responder()
	const org = "1.2.246.10.12345678.10.0"
	kid, mac := in.org(org, "Helsingin VI apteekki", "apteekki.example")
	c := in.client(kid, mac)

	t.Run("the directory lists the profiles", func(t *testing.T) {
		resp, err := in.httpClient().Get(in.Directory)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var d struct {
			Meta struct {
				Profiles map[string]string `json:"profiles"`
			} `json:"meta"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"sote-server", "sote-server-test", "sote-system-signature", "sote-system-signature-test", "sote-server-hooked"} {
			if d.Meta.Profiles[p] == "" {
				t.Errorf("meta.profiles lacks %s: %v", p, d.Meta.Profiles)
			}
		}
	})

	refusals := []struct {
		name     string
		profile  string
		notAfter string
		names    []string
		kind     string
		detail   string
	}{
		{"a name outside the organisation's domains is refused", "sote-server", "", []string{"www.apteekki.example", "www.muu.example"}, "rejectedIdentifier", "outside the domains approved"},
		{"a 2-year sote-server certificate is refused", "sote-server", time.Now().AddDate(2, 0, 0).UTC().Format(time.RFC3339), []string{"www.apteekki.example"}, "malformed", "maximum of 365 days"},
		{"an unknown profile is invalidProfile", "sote-client", "", []string{"www.apteekki.example"}, "invalidProfile", "sote-server"},
		{"the webhook denying refuses", "sote-server-hooked", "", []string{"deny.apteekki.example"}, "unauthorized", "system inventory"},
		{"the webhook timing out refuses", "sote-server-hooked", "", []string{"slow.apteekki.example"}, "unauthorized", "did not answer within 1s"},
		{"the webhook panicking refuses", "sote-server-hooked", "", []string{"panic.apteekki.example"}, "unauthorized", "could not be reached, so the request is refused (the policy fails closed)"},
		{"a malformed webhook answer refuses", "sote-server-hooked", "", []string{"garbled.apteekki.example"}, "unauthorized", "other than a JSON object"},
		{"a webhook answer without allow refuses", "sote-server-hooked", "", []string{"other.apteekki.example"}, "unauthorized", `without "allow"`},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			_, err := in.newOrder(c, tt.profile, tt.notAfter, tt.names...)
			if !problemIs(err, tt.kind) || !strings.Contains(err.Error(), tt.detail) {
				t.Fatalf("newOrder: got %v, want %s saying %q", err, tt.kind, tt.detail)
			}
		})
	}
	t.Run("a multi-name refusal has a subproblem for the refused name only", func(t *testing.T) {
		_, err := in.newOrder(c, "sote-server", "", "www.apteekki.example", "www.muu.example")
		p, ok := err.(*problem)
		if !ok || len(p.Subproblems) != 1 || p.Subproblems[0].Identifier.Value != "www.muu.example" {
			t.Fatalf("got %+v, want one subproblem for www.muu.example", err)
		}
	})

	t.Run("the webhook allowing issues", func(t *testing.T) {
		o, err := in.newOrder(c, "sote-server-hooked", "", "ok.apteekki.example")
		if err != nil {
			t.Fatalf("newOrder: %v", err)
		}
		if o.Profile != "sote-server-hooked" {
			t.Errorf("order profile %q, want sote-server-hooked echoed", o.Profile)
		}
		if _, err := in.finish(c, r, o, newKey(t), "ok.apteekki.example"); err != nil {
			t.Fatalf("finalize: %v", err)
		}
	})

	prod, test := in.issuerCert("production"), in.issuerCert("test")
	reused := rsaKey2048(t) // system signature profiles certify RSA keys only by default

	t.Run("a 2-year system signature certificate", func(t *testing.T) {
		o, err := in.newOrder(c, "sote-system-signature", "", "potilastiedot.apteekki.example")
		if err != nil {
			t.Fatalf("newOrder: %v", err)
		}
		certs, err := in.finish(c, r, o, reused, "potilastiedot.apteekki.example")
		if err != nil {
			t.Fatalf("finalize: %v", err)
		}
		leaf := certs[0]
		if d := leaf.NotAfter.Sub(leaf.NotBefore); d != 730*24*time.Hour-time.Second {
			t.Errorf("validity %s, want 730 days inclusive of the last second", d)
		}
		if want := x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment; leaf.KeyUsage != want {
			t.Errorf("key usage %b, want digitalSignature + nonRepudiation (%b)", leaf.KeyUsage, want)
		}
		if len(leaf.ExtKeyUsage) != 0 || len(leaf.UnknownExtKeyUsage) != 0 {
			t.Errorf("EKUs %v %v: a system signature certificate has none (not serverAuth, not the CSR's codeSigning)", leaf.ExtKeyUsage, leaf.UnknownExtKeyUsage)
		}
		if leaf.Subject.CommonName != "potilastiedot.apteekki.example" || leaf.Subject.Organization[0] != "Helsingin VI apteekki" {
			t.Errorf("subject %s, want CN = the system's DNS name and O = the organisation", leaf.Subject)
		}
		if err := in.verifies(leaf, prod, in.rootPool(), x509.ExtKeyUsageAny); err != nil {
			t.Errorf("does not chain to the production issuer: %v", err)
		}
	})

	t.Run("a system signature profile refuses an ECDSA key by default", func(t *testing.T) {
		o, err := in.newOrder(c, "sote-system-signature", "", "ec.apteekki.example")
		if err != nil {
			t.Fatalf("newOrder: %v", err)
		}
		_, err = in.finish(c, r, o, newKey(t), "ec.apteekki.example")
		wantRefused(t, "finalize", err, "badCSR", "certifies rsa-2048, rsa-3072, rsa-4096 keys, not ecdsa-p256")
	})

	t.Run("a key certified before is refused in another profile too", func(t *testing.T) {
		o, err := in.newOrder(c, "sote-server-test", "", "testi.apteekki.example")
		if err != nil {
			t.Fatalf("newOrder: %v", err)
		}
		if _, err := in.finish(c, r, o, reused, "testi.apteekki.example"); !isProblem(err, "badCSR") || !strings.Contains(err.Error(), "certified before") {
			t.Fatalf("finalize with a reused key: want badCSR, got %v", err)
		}
	})

	t.Run("a test profile chains to the test issuer only", func(t *testing.T) {
		o, err := in.newOrder(c, "sote-server-test", "", "testi2.apteekki.example")
		if err != nil {
			t.Fatalf("newOrder: %v", err)
		}
		certs, err := in.finish(c, r, o, newKey(t), "testi2.apteekki.example")
		if err != nil {
			t.Fatalf("finalize: %v", err)
		}
		leaf := certs[0]
		if len(certs) != 2 || !certs[1].Equal(test) {
			t.Errorf("the served chain is not leaf + test issuer")
		}
		if err := in.verifies(leaf, test, in.TestRootPool(), x509.ExtKeyUsageServerAuth); err != nil {
			t.Errorf("does not verify with test-roots.pem and the test issuer: %v", err)
		}
		if err := in.verifies(leaf, test, in.rootPool(), x509.ExtKeyUsageServerAuth); err == nil {
			t.Errorf("a test certificate verifies with roots.pem, the production root")
		}
		if err := in.verifies(leaf, prod, in.TestRootPool(), x509.ExtKeyUsageServerAuth); err == nil {
			t.Errorf("a test certificate verifies through the production issuer")
		}
	})

	t.Run("a sote-server certificate for an RSA key carries the profile's contents, not the CSR's", func(t *testing.T) {
		o, err := in.newOrder(c, "", "", "rsa.apteekki.example", "www.apteekki.example")
		if err != nil {
			t.Fatalf("newOrder: %v", err)
		}
		if o.Profile != "sote-server" {
			t.Errorf("an order without a profile got %q, want the default sote-server", o.Profile)
		}
		certs, err := in.finish(c, r, o, rsaKey2048(t), "rsa.apteekki.example", "www.apteekki.example")
		if err != nil {
			t.Fatalf("finalize: %v", err)
		}
		checkServerContents(t, certs[0], "Helsingin VI apteekki", "Helsingin VI apteekki (long)", "rsa.apteekki.example")
		if len(certs) != 2 || !certs[1].Equal(prod) {
			t.Errorf("a production profile's chain is not leaf + production issuer")
		}
	})

	t.Run("an EAB key limited to test profiles cannot order sote-server", func(t *testing.T) {
		kid, mac := in.eabFor(org, "--profile", "sote-server-test", "--profile", "sote-system-signature-test")
		tc := in.client(kid, mac)
		if _, err := in.newOrder(tc, "sote-server", "", "www.apteekki.example"); !problemIs(err, "unauthorized") || !strings.Contains(err.Error(), "sote-server-test") {
			t.Fatalf("sote-server: got %v, want unauthorized naming the allowed profiles", err)
		}
		if _, err := in.newOrder(tc, "", "", "www.apteekki.example"); !problemIs(err, "unauthorized") {
			t.Fatalf("the default profile: got %v, want unauthorized", err)
		}
		if _, err := in.newOrder(tc, "sote-system-signature-test", "", "www.apteekki.example"); err != nil {
			t.Fatalf("an allowed test profile: %v", err)
		}
	})

	t.Run("a test-only organisation gets test profiles only", func(t *testing.T) {
		const testOrg = "1.2.246.10.87654321.10.0"
		if out, err := in.cli("org", "add", "--oid", testOrg, "--name", "Testiapteekki", "--domain", "testi.example", "--test-only"); err != nil {
			t.Fatalf("org add --test-only: %v: %s", err, out)
		}
		if out, err := in.cli("eab", "create", "--org", testOrg, "--profile", "sote-server"); err == nil {
			t.Fatalf("eab create --profile sote-server for a test-only organisation succeeded: %s", out)
		}
		kid, mac := in.eabFor(testOrg)
		tc := in.client(kid, mac)
		if _, err := in.newOrder(tc, "sote-system-signature", "", "www.testi.example"); !problemIs(err, "unauthorized") {
			t.Fatalf("production profile: got %v, want unauthorized", err)
		}
		if _, err := in.newOrder(tc, "sote-system-signature-test", "", "www.testi.example"); err != nil {
			t.Fatalf("test profile: %v", err)
		}
	})
}

// TestConfigRefusesToStart: a bad profile configuration stops the start with a
// message naming what is wrong.
func TestConfigRefusesToStart(t *testing.T) {
	tests := []struct {
		name   string
		config string
		want   string
	}{
		{"an unknown key", `{"profiles": {"x-server": {"description": "x", "kind": "server", "max_validity": 10}}}`, `unknown key "max_validity"`},
		{"an unknown plugin", `{"profiles": {"x-server": {"description": "x", "kind": "server", "plugins": [{"name": "names"}, {"name": "keys"}, {"name": "validity"}, {"name": "rate-limit"}]}}}`, `unknown plugin "rate-limit"`},
		{"a validity over the SOTE maximum", `{"profiles": {"x-server": {"description": "x", "kind": "server", "max_validity_days": 730}}}`, "SOTE maximum of 365 days"},
		{"a test profile on the production issuer", `{"profiles": {"x-server": {"description": "x", "kind": "server", "test": true, "issuer": "production"}}}`, `issuer "production"`},
		{"a test profile with the production policy OID", `{"profiles": {"x-server": {"description": "x", "kind": "server", "test": true, "policy_oids": ["1.2.246.517.1.10.203"]}}}`, `policy_oids 1.2.246.517.1.10.203 is the production certificate policy: a test profile carries a test policy`},
		{"a production profile with the test policy OID", `{"profiles": {"x-server": {"description": "x", "kind": "server", "policy_oids": ["1.3.6.1.4.1.32473.1.10.203.9"]}}}`, `policy_oids 1.3.6.1.4.1.32473.1.10.203.9 is the test certificate policy`},
		{"a webhook to loopback without allow_networks", `{"profiles": {"x-server": {"description": "x", "kind": "server", "plugins": [{"name": "names"}, {"name": "keys"}, {"name": "validity"}, {"name": "webhook", "config": {"url": "https://127.0.0.1:9/check", "secret_file": "/nonexistent"}}]}}}`, "not a public address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "varmenne.json")
			if err := os.WriteFile(file, []byte(tt.config), 0o600); err != nil {
				t.Fatal(err)
			}
			// A data directory serve makes itself (0700): t.TempDir is 0755, which
			// serve refuses for a data directory before reading a plugin's config.
			out, err := runServe(t, filepath.Join(dir, "data"), "--config", file)
			if err == nil || !strings.Contains(out, tt.want) {
				t.Fatalf("serve with %s: err %v, output %q; want a refusal saying %q", tt.name, err, out, tt.want)
			}
		})
	}
}

// runServe runs serve on dir expecting it to stop by itself, and returns its output.
func runServe(t *testing.T, dir string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"serve", "--data", dir, "--listen", "127.0.0.1:0",
		"--ops-listen", "127.0.0.1:0", "--public-listen", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("serve did not stop: it accepted the configuration\n%s", tail(out, 2000))
	}
	return string(out), err
}
