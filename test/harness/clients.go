package harness

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// Webroot serves the files under dir/.well-known/acme-challenge/ on the instance's
// http-01 port, as the web server of a client's webroot mode does, and returns dir.
func (in *Instance) Webroot(dir string) string {
	t := in.T
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, ".well-known", "acme-challenge"), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", in.HTTP01Port))
	if err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(dir))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/.well-known/acme-challenge/") {
			http.NotFound(w, r)
			return
		}
		files.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Close() })
	return dir
}

// DNSHook starts a loopback HTTP endpoint through which an ACME client's dns-01 hook
// script (a separate process) sets and removes TXT records in the instance's DNS
// server: POST /txt with form values name and value sets, DELETE /txt?name= clears.
// It returns the endpoint's URL, e.g. for `curl -fsS -d name=… -d value=… URL`.
func (in *Instance) DNSHook() string {
	t := in.T
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		if err := r.ParseForm(); err != nil || r.URL.Path != "/txt" {
			http.Error(w, "POST /txt name=…&value=…, or DELETE /txt?name=…", http.StatusBadRequest)
			return
		}
		name := strings.TrimSuffix(r.Form.Get("name"), ".")
		switch {
		case name == "":
			http.Error(w, "name is required", http.StatusBadRequest)
		case r.Method == http.MethodPost && r.Form.Get("value") != "":
			in.DNS.SetTXT(name, r.Form.Get("value"))
		case r.Method == http.MethodDelete:
			in.DNS.Clear(name)
		default:
			http.Error(w, "POST with a value, or DELETE", http.StatusBadRequest)
		}
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/txt"
}

// ParseChain reads PEM certificates, leaf first.
func ParseChain(t *testing.T, pemBytes []byte) []*x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := pemBytes; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("parsing a certificate: %v", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatalf("no PEM certificate in %q", Tail(pemBytes, 200))
	}
	return certs
}

// Verify checks that leaf, with the intermediates given, chains to the server's
// production root (roots.pem) for serverAuth and names dnsName, and not to its test
// root (test-roots.pem).
func (in *Instance) Verify(leaf *x509.Certificate, intermediates []*x509.Certificate, dnsName string) {
	in.T.Helper()
	in.verifyOnly(leaf, intermediates, dnsName, in.Roots, in.TestRoots)
}

// VerifyTest is Verify for a test-profile certificate: it chains to test-roots.pem,
// and a relying party trusting roots.pem refuses it.
func (in *Instance) VerifyTest(leaf *x509.Certificate, intermediates []*x509.Certificate, dnsName string) {
	in.T.Helper()
	in.verifyOnly(leaf, intermediates, dnsName, in.TestRoots, in.Roots)
}

func (in *Instance) verifyOnly(leaf *x509.Certificate, intermediates []*x509.Certificate, dnsName, trusted, other string) {
	t := in.T
	t.Helper()
	pool := x509.NewCertPool()
	for _, c := range intermediates {
		pool.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: dnsName, Roots: in.pool(trusted), Intermediates: pool}); err != nil {
		t.Fatalf("certificate %x for %v does not verify for %s against %s: %v", leaf.SerialNumber, leaf.DNSNames, dnsName, filepath.Base(trusted), err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: dnsName, Roots: in.pool(other), Intermediates: pool}); err == nil {
		t.Fatalf("certificate %x for %v verifies against %s too: the test and production hierarchies are not apart", leaf.SerialNumber, leaf.DNSNames, filepath.Base(other))
	}
}

// OCSPStatus asks the OCSP responder the certificate names (its AIA) about leaf and
// returns ocsp.Good, ocsp.Revoked or ocsp.Unknown, as a relying party would see it.
func (in *Instance) OCSPStatus(leaf, issuer *x509.Certificate) int {
	t := in.T
	t.Helper()
	if len(leaf.OCSPServer) == 0 {
		t.Fatalf("certificate %x names no OCSP responder", leaf.SerialNumber)
	}
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(leaf.OCSPServer[0], "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatalf("OCSP request: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OCSP responder answered %s: %s", resp.Status, body)
	}
	r, err := ocsp.ParseResponseForCert(body, leaf, issuer)
	if err != nil {
		t.Fatalf("OCSP response: %v", err)
	}
	return r.Status
}
