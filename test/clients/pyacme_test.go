package clients

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// debianPython is the interpreter Debian's python3-* packages are installed for; a
// python3 found earlier in PATH (pyenv, a virtualenv) does not see them.
const debianPython = "/usr/bin/python3"

// pythonACME finds Debian's python3 with certbot's acme library importable and logs
// the library's version.
func pythonACME(t *testing.T) string {
	t.Helper()
	py := lookPath(t, debianPython)
	out, err := exec.Command(py, "-c", "import acme, importlib.metadata as m; print(m.version('acme'))").CombinedOutput()
	if err != nil {
		t.Fatalf("python3-acme is not installed for %s: run ./scripts/install-test-deps (make test does): %v: %s", py, err, out)
	}
	t.Logf("python3-acme %s", strings.TrimSpace(string(out)))
	return py
}

// pyACME: certbot's acme library (Debian python3-acme) as an organisation's own
// script would use it, testdata/pyacme/client.py: EAB registration, http-01 answered
// by the library's standalone server, renewal (a second order of the same account,
// a new key) over http-01 from a webroot, dns-01 through the test's DNS hook,
// tls-alpn-01 answered by the library's standalone TLS server (refused: see below),
// revocation signed by the account and by the certificate's own key.
func pyACME(e *env) {
	py := pythonACME(e.t)
	script, err := filepath.Abs(filepath.Join("testdata", "pyacme", "client.py"))
	if err != nil {
		e.t.Fatal(err)
	}
	account := filepath.Join(e.dir, "account")
	pa := func(command string, args ...string) *exec.Cmd {
		cmd := exec.Command(py, append([]string{script, command, "--directory", e.in.Directory}, args...)...)
		cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+e.in.Roots)
		return cmd
	}
	e.run(pa("register", "--account", account, "--eab-kid="+e.kid, "--eab-hmac="+e.mac, "--email", "it@"+e.domain))

	name := e.name("www")
	certFile, keyFile := filepath.Join(e.dir, name+".pem"), filepath.Join(e.dir, name+".key")
	e.run(pa("issue", "--account", account, "--challenge", "http-01", "--http01-port", strconv.Itoa(e.in.HTTP01Port),
		"--key-out", keyFile, "--cert-out", certFile, name))
	first, issuer := e.cert(certFile, "", name)
	e.holdsKey(keyFile, first)
	e.good(first, issuer)

	webroot := e.in.Webroot(filepath.Join(e.dir, "www"))
	e.run(pa("issue", "--account", account, "--challenge", "http-01", "--webroot", webroot,
		"--key-out", keyFile, "--cert-out", certFile, name))
	second, issuer := e.cert(certFile, "", name)
	e.holdsKey(keyFile, second)
	e.renewed(first, second)

	dnsName := e.name("dns")
	dnsCert, dnsKey := filepath.Join(e.dir, dnsName+".pem"), filepath.Join(e.dir, dnsName+".key")
	e.run(pa("issue", "--account", account, "--challenge", "dns-01", "--dns-hook", e.in.DNSHook(),
		"--key-out", dnsKey, "--cert-out", dnsCert, dnsName))
	dnsLeaf, dnsIssuer := e.cert(dnsCert, "", dnsName)
	e.holdsKey(dnsKey, dnsLeaf)

	// tls-alpn-01: the library's challenge certificate (TLSALPN01Response.gen_cert)
	// carries the acmeIdentifier extension under the draft's OID 1.3.6.1.5.5.7.1.30.1,
	// not RFC 8737's 1.3.6.1.5.5.7.1.31, so the server refuses it and says why. A
	// version that answers tls-alpn-01 makes this fail: then assert the certificate and
	// correct docs/clients.md.
	tlsName := e.name("tls")
	tlsCert := filepath.Join(e.dir, tlsName+".pem")
	out, err := pa("issue", "--account", account, "--challenge", "tls-alpn-01", "--tls-alpn-port", strconv.Itoa(e.tlsALPNPort),
		"--key-out", filepath.Join(e.dir, tlsName+".key"), "--cert-out", tlsCert, tlsName).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "urn:ietf:params:acme:error:unauthorized") || !strings.Contains(string(out), "1.3.6.1.5.5.7.1.30.1") {
		e.t.Fatalf("python3-acme answering tls-alpn-01: %v, want the refusal of the draft acmeIdentifier OID 1.3.6.1.5.5.7.1.30.1:\n%s", err, out)
	}
	if _, err := os.Stat(tlsCert); err == nil {
		e.t.Fatalf("the refused tls-alpn-01 order left a certificate in %s", tlsCert)
	}
	e.t.Logf("tls-alpn-01 refused as documented: %s", strings.TrimSpace(string(out)))

	e.run(pa("revoke", "--account", account, "--cert", certFile, "--reason", "4"))
	e.revoked(second, issuer)
	e.good(first, issuer)
	e.run(pa("revoke", "--cert-key", dnsKey, "--cert", dnsCert, "--reason", "1"))
	e.revoked(dnsLeaf, dnsIssuer)
}

// holdsKey asserts that the private key a client wrote (PKCS #8 PEM) is the one leaf
// certifies.
func (e *env) holdsKey(keyFile string, leaf *x509.Certificate) {
	e.t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		e.t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		e.t.Fatalf("%s holds no PEM block", keyFile)
	}
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		e.t.Fatalf("%s: %v", keyFile, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		e.t.Fatalf("%s holds a %T, not a signing key", keyFile, key)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		e.t.Fatalf("%s is not the key certificate %x certifies", keyFile, leaf.SerialNumber)
	}
}
