package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/acme"
)

// debianEntry is the key's line in an openssl-blacklist file, made as
// openssl-vulnkey's rule says: the SHA-1 of what "openssl rsa -noout -modulus"
// prints, its last 20 hex characters.
func debianEntry(t *testing.T, key *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed (scripts/install-test-deps installs it)")
	}
	modulus, err := exec.Command("openssl", "rsa", "-in", file, "-noout", "-modulus").Output()
	if err != nil {
		t.Fatalf("openssl rsa -modulus: %v", err)
	}
	sum := sha1.Sum(modulus)
	return hex.EncodeToString(sum[:])[20:]
}

func newRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestDebianWeakKeysList: the binary started with --weak-keys refuses a listed RSA
// key as an account key (badPublicKey) and as a certificate key (badCSR), certifies
// a key not listed, and logs what the file gave.
func TestDebianWeakKeysList(t *testing.T) {
	listedAccount, listedCert := newRSAKey(t), newRSAKey(t)
	list := filepath.Join(t.TempDir(), "blacklist.RSA-2048")
	text := "# keys this test lists\n" + debianEntry(t, listedAccount) + "\n" + debianEntry(t, listedCert) + "\n"
	if err := os.WriteFile(list, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	in := startWith(t, "", "--weak-keys", list)
	if !in.LogHas(`"msg":"weak RSA keys loaded (CVE-2008-0166)","file":"` + list + `","entries":2`) {
		t.Errorf("the start does not log the file's 2 entries:\n%s", in.Logs.String())
	}
	const oid = "1.2.246.10.62000002.10.0"
	kid, mac := in.org(oid, "Heikko Oy", "heikko.example")

	hmacKey, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil {
		t.Fatal(err)
	}
	weakClient := &acme.Client{Key: listedAccount, DirectoryURL: in.Directory, HTTPClient: in.httpClient()}
	_, err = weakClient.Register(ctxT(t), &acme.Account{ExternalAccountBinding: &acme.ExternalAccountBinding{KID: kid, Key: hmacKey}}, acme.AcceptTOS)
	if !isProblem(err, "badPublicKey") || !strings.Contains(err.Error(), "CVE-2008-0166") {
		t.Fatalf("newAccount with a listed key: %v, want badPublicKey naming CVE-2008-0166", err)
	}

	c := in.client(kid, mac) // the EAB key was not bound by the refused account
	r := in.responder()
	if _, _, err := in.tryFinalize(c, r, listedCert, "www.heikko.example"); !isProblem(err, "badCSR") || !strings.Contains(err.Error(), "CVE-2008-0166") {
		t.Fatalf("finalize with a listed key: %v, want badCSR naming CVE-2008-0166", err)
	}
	if _, _, err := in.tryFinalize(c, r, newRSAKey(t), "portaali.heikko.example"); err != nil {
		t.Fatalf("finalize with an RSA key not listed: %v", err)
	}
}
