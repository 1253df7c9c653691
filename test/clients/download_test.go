package clients

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/mholt/acmez/v3"
	acmezacme "github.com/mholt/acmez/v3/acme"

	"github.com/varmenne/varmenne/test/harness"
)

// crossSign makes another CA ("cross root") and a certificate of the server's
// development root (its subject and key) signed by it, and writes the alternate chain
// file --alternate-chain takes: the production issuer, then the cross-signed root.
func crossSign(t *testing.T, in *harness.Instance) (file string, crossRoot *x509.Certificate) {
	t.Helper()
	pki := filepath.Join(in.Data, "pki")
	read := func(name string) *x509.Certificate {
		b, err := os.ReadFile(filepath.Join(pki, name))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: no PEM", name)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	devRoot, issuer := read("root.pem"), read("production.pem")
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "varmenne test cross root", Country: []string{"FI"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(5, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	crossRoot, _ = x509.ParseCertificate(der)
	cross := &x509.Certificate{SerialNumber: big.NewInt(2), RawSubject: devRoot.RawSubject,
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(4, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, SubjectKeyId: devRoot.SubjectKeyId}
	crossDER, err := x509.CreateCertificate(rand.Reader, cross, crossRoot, devRoot.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: issuer.Raw})
	pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: crossDER})
	file = filepath.Join(t.TempDir(), "cross-chain.pem")
	if err := os.WriteFile(file, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, crossRoot
}

// postAsGet fetches url with a POST-as-GET signed by the account, with an Accept header.
func postAsGet(t *testing.T, in *harness.Instance, acct acmezacme.Account, url, accept string) (*http.Response, []byte) {
	t.Helper()
	hc := in.HTTPClient()
	var dir struct{ NewNonce string }
	resp, err := hc.Get(in.Directory)
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&dir)
	resp.Body.Close()
	resp, err = hc.Head(dir.NewNonce)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	opts := (&jose.SignerOptions{}).WithHeader("kid", acct.Location).WithHeader("nonce", resp.Header.Get("Replay-Nonce")).WithHeader("url", url)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: acct.PrivateKey.(*ecdsa.PrivateKey)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(nil)
	if err != nil {
		t.Fatal(err)
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	// Flattened JSON with "payload": "" (go-jose leaves an empty payload out).
	parts := strings.Split(compact, ".")
	body, _ := json.Marshal(map[string]string{"protected": parts[0], "payload": "", "signature": parts[2]})
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/jose+json")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body
}

// TestDownloadFormatsAndAlternateChains: the certificate URL serves the PEM chain by
// default, the DER leaf for application/pkix-cert and a certs-only PKCS#7 that
// `openssl pkcs7 -print_certs` reads for application/pkcs7-mime; with
// --alternate-chain the answer links an alternate chain through a cross-signed root,
// which acmez fetches and which verifies to the cross root.
func TestDownloadFormatsAndAlternateChains(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "lataus", false)
	file, crossRoot := crossSign(t, e.in)
	// The chain begins with the production issuer: the test issuer refuses it.
	wrong := exec.Command(harness.Binary, "serve", "--data", e.in.Data, "--listen", "127.0.0.1:0", "--ops-listen", "",
		"--public-listen", "127.0.0.1:0", "--alternate-chain", "test="+file)
	if out, err := wrong.CombinedOutput(); err == nil || !strings.Contains(string(out), `is not of issuer "test"'s subject and key`) {
		t.Fatalf("serve with the production chain as the test issuer's alternate: %v\n%s", err, harness.Tail(out, 2000))
	}
	e.in.Extra = append(e.in.Extra, "--alternate-chain", "production="+file)
	e.in.Restart()

	ctx := harness.Ctx(t)
	c, acct := e.acmezClient(ctx)
	kid2, mac2 := e.in.EAB(e.oid) // for certbot's own account below
	name := e.name("www")
	csr, err := acmez.NewCSR(newKey(t), []string{name})
	if err != nil {
		t.Fatal(err)
	}
	certs, err := c.ObtainCertificate(ctx, acmez.OrderParameters{Account: acct,
		Identifiers: []acmezacme.Identifier{{Type: "dns", Value: name}}, CSR: acmez.StaticCSR(csr)})
	if err != nil {
		t.Fatalf("acmez: %v", err)
	}
	if len(certs) != 2 {
		t.Fatalf("acmez got %d chains, want the default and one alternate", len(certs))
	}
	def := harness.ParseChain(t, certs[0].ChainPEM)
	leaf, _ := e.check(def, name)
	alt := harness.ParseChain(t, certs[1].ChainPEM)
	if len(alt) != 3 || !alt[0].Equal(leaf) {
		t.Fatalf("alternate chain of %d certificates, want the leaf, the issuer and the cross-signed root", len(alt))
	}
	cross := x509.NewCertPool()
	cross.AddCert(crossRoot)
	inter := x509.NewCertPool()
	for _, ca := range alt[1:] {
		inter.AddCert(ca)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: cross, Intermediates: inter}); err != nil {
		t.Fatalf("the alternate chain does not verify to the cross root: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: cross, Intermediates: x509.NewCertPool()}); err == nil {
		t.Fatal("the leaf verifies to the cross root without the alternate chain: the test proves nothing")
	}

	t.Run("PEM by default, with a Link to the alternate", func(t *testing.T) {
		resp, body := postAsGet(t, e.in, acct, certs[0].URL, "")
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/pem-certificate-chain" {
			t.Fatalf("%s, Content-Type %q", resp.Status, ct)
		}
		if got := harness.ParseChain(t, body); len(got) != len(def) || !got[0].Equal(leaf) {
			t.Fatalf("PEM chain of %d certificates, want %d", len(got), len(def))
		}
		if links := strings.Join(resp.Header.Values("Link"), ", "); !strings.Contains(links, "<"+certs[0].URL+`/alt/1>;rel="alternate"`) {
			t.Fatalf("Link %q lacks the alternate chain", links)
		}
	})
	t.Run("DER for application/pkix-cert", func(t *testing.T) {
		resp, body := postAsGet(t, e.in, acct, certs[0].URL, "application/pkix-cert")
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/pkix-cert" || !bytes.Equal(body, leaf.Raw) {
			t.Fatalf("%s, Content-Type %q, %d bytes: want the leaf's DER", resp.Status, ct, len(body))
		}
	})
	for _, tc := range []struct {
		name, url string
		want      int
	}{{"default chain", certs[0].URL, len(def)}, {"alternate chain", certs[0].URL + "/alt/1", 3}} {
		t.Run("PKCS#7 for application/pkcs7-mime, "+tc.name, func(t *testing.T) {
			resp, body := postAsGet(t, e.in, acct, tc.url, "application/pkcs7-mime")
			if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/pkcs7-mime" {
				t.Fatalf("%s, Content-Type %q: %s", resp.Status, ct, body)
			}
			cmd := exec.Command("openssl", "pkcs7", "-inform", "DER", "-print_certs")
			cmd.Stdin = bytes.NewReader(body)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("openssl pkcs7 -print_certs: %v\n%s", err, out)
			}
			got := harness.ParseChain(t, out)
			if len(got) != tc.want || !got[0].Equal(leaf) {
				t.Fatalf("openssl read %d certificates from the PKCS#7, want %d, leaf first:\n%s", len(got), tc.want, out)
			}
		})
	}
	t.Run("certbot --preferred-chain picks the cross-signed chain", func(t *testing.T) {
		certbot := lookPath(t, "certbot")
		e.responder().Close() // certbot's standalone server takes the http-01 port
		name := e.name("certbot")
		dir := t.TempDir()
		cmd := exec.Command(certbot, "certonly", "--non-interactive", "--agree-tos", "--register-unsafely-without-email",
			"--server", e.in.Directory, "--eab-kid="+kid2, "--eab-hmac-key="+mac2,
			"--standalone", "--http-01-address", "127.0.0.1", "--http-01-port", strconv.Itoa(e.in.HTTP01Port),
			"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"), "--logs-dir", filepath.Join(dir, "logs"),
			"--key-type", "ecdsa", "--preferred-chain", crossRoot.Subject.CommonName, "-d", name)
		cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+e.in.Roots)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("certbot: %v\n%s", err, harness.Tail(out, 3000))
		}
		chainPEM, err := os.ReadFile(filepath.Join(dir, "config", "live", name, "chain.pem"))
		if err != nil {
			t.Fatal(err)
		}
		chain := harness.ParseChain(t, chainPEM)
		if top := chain[len(chain)-1]; len(chain) != 2 || top.Issuer.CommonName != crossRoot.Subject.CommonName {
			t.Fatalf("certbot's chain.pem has %d certificates, the last issued by %q; want the issuer and the root cross-signed by %q",
				len(chain), top.Issuer.CommonName, crossRoot.Subject.CommonName)
		}
	})
	t.Run("an alternate the issuer does not have is malformed", func(t *testing.T) {
		resp, body := postAsGet(t, e.in, acct, certs[0].URL+"/alt/2", "")
		var p struct{ Type string }
		_ = json.Unmarshal(body, &p)
		if resp.StatusCode != 400 || p.Type != "urn:ietf:params:acme:error:malformed" {
			t.Fatalf("%s %s", resp.Status, body)
		}
	})
}
