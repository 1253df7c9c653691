package e2e

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/test/harness"
)

// TestCertbot: certbot (Debian package) registers with --eab-kid/--eab-hmac-key, gets a
// certificate over http-01 (standalone), and the chain verifies with openssl against
// roots.pem. `make test` installs certbot; a missing certbot fails, it does not skip.
func TestCertbot(t *testing.T) {
	certbot, err := exec.LookPath("certbot")
	if err != nil {
		t.Fatal("certbot is not installed: run ./scripts/install-test-deps (make test does)")
	}
	in := start(t, "")
	kid, mac := in.org("1.2.246.10.33333333.10.0", "Kolmas apteekki", "kolmas.example")
	name := "www.kolmas.example"
	dir, env := in.certbotCertonly(certbot, kid, mac, name)
	live := filepath.Join(dir, "config", "live", name)
	cert, chain := filepath.Join(live, "cert.pem"), filepath.Join(live, "chain.pem")

	verify := exec.Command("openssl", "verify", "-CAfile", in.Roots, "-untrusted", chain, cert)
	if vout, err := verify.CombinedOutput(); err != nil || !bytes.Contains(vout, []byte(": OK")) {
		t.Fatalf("openssl verify: %v: %s", err, vout)
	}
	serialOut, err := exec.Command("openssl", "x509", "-in", cert, "-noout", "-serial").Output()
	if err != nil {
		t.Fatal(err)
	}
	serialHex := strings.TrimPrefix(strings.TrimSpace(string(serialOut)), "serial=")
	serial, err := hex.DecodeString(serialHex)
	if err != nil || len(serial) != 18 || serial[0] != 0x01 {
		t.Fatalf("certbot's certificate serial %s: want 18 bytes starting 01", serialHex)
	}
	text, _ := exec.Command("openssl", "x509", "-in", cert, "-noout", "-text").Output()
	for _, want := range []string{"DNS:" + name, "TLS Web Server Authentication", "TLS Web Client Authentication", "1.2.246.517.1.10.203"} {
		if !bytes.Contains(text, []byte(want)) {
			t.Errorf("certificate lacks %q", want)
		}
	}

	// certbot revokes it too.
	rev := exec.Command(certbot, "revoke", "--non-interactive", "--server", in.Directory,
		"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"), "--logs-dir", filepath.Join(dir, "logs"),
		"--cert-path", cert, "--reason", "superseded", "--no-delete-after-revoke")
	rev.Env = env
	if rout, err := rev.CombinedOutput(); err != nil {
		t.Fatalf("certbot revoke: %v\n%s", err, rout)
	}
}

// certbotCertonly gets a certificate for name with certbot (standalone http-01,
// ECDSA key) and the EAB key; it returns certbot's directory (config/live/<name>/
// holds the files) and the environment it ran with.
func (in *instance) certbotCertonly(certbot, kid, mac, name string) (dir string, env []string) {
	t := in.T
	t.Helper()
	in.pointAt(name)
	dir = t.TempDir()
	cmd := exec.Command(certbot, "certonly",
		"--non-interactive", "--agree-tos", "--register-unsafely-without-email",
		"--server", in.Directory,
		"--eab-kid="+kid, "--eab-hmac-key="+mac, // "=": a base64url key may begin with "-"
		"--standalone", "--http-01-address", "127.0.0.1", "--http-01-port", itoa(in.HTTP01Port),
		"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"), "--logs-dir", filepath.Join(dir, "logs"),
		"--key-type", "ecdsa",
		"-d", name,
	)
	cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+in.Roots)
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "logs", "letsencrypt.log"))
		t.Fatalf("certbot: %v\n%s\n--- certbot log ---\n%s\n--- server log ---\n%s", err, out, tail(log, 4000), tail([]byte(in.Logs.String()), 4000))
	}
	return dir, cmd.Env
}

func itoa(n int) string { return strconv.Itoa(n) }

func tail(b []byte, n int) string { return harness.Tail(b, n) }
