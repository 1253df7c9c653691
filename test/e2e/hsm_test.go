package e2e

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/signer/pkcs11/softhsmtest"
	"github.com/varmenne/varmenne/test/harness"
)

// hsm is a SoftHSM2 token for one test, and the flags that point varmenne at it.
type hsm struct {
	token    *softhsmtest.Token
	args     []string  // --pkcs11-module, --pkcs11-token, --pkcs11-pin-file (the ceremony's)
	shares   [2]string // the activation shares the ceremony writes: Aino's, Eero's
	register string    // a THL register export listing the organisations of the HSM tests
}

// The organisations the HSM tests order for: with HSM keys the server runs in
// production, where only THL's register makes an organisation eligible.
var hsmOrgs = []harness.RegisterOrg{{OID: "1.2.246.10.44444444.10.0", Name: "HSM-apteekki"}, {OID: "1.2.246.10.44444445.10.0", Name: "Kaksi Oy"},
	{OID: "1.2.246.10.44444446.10.0", Name: "Ympäristö Oy"}}

// serve is the serve flags of the token, activated by both holders' shares, and
// the register, then extra.
func (h *hsm) serve(extra ...string) []string {
	return append(append(h.withShares(h.shares[:]...), "--register-source", h.register), extra...)
}

// withShares is the token's flags without the ceremony's PIN file, with these
// activation shares.
func (h *hsm) withShares(shares ...string) []string {
	args := slices.Clone(h.args[:len(h.args)-2])
	for _, s := range shares {
		args = append(args, "--pkcs11-pin-share", s)
	}
	return args
}

// newHSM makes a private SoftHSM2 token and points SOFTHSM2_CONF (inherited by the
// varmenne processes the test starts) at it. A missing softhsm2 fails the test.
func newHSM(t *testing.T) *hsm {
	t.Helper()
	if err := softhsmtest.Check(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf, err := softhsmtest.Config(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	tok, err := softhsmtest.NewToken(conf, "varmenne-e2e")
	if err != nil {
		t.Fatal(err)
	}
	pinFile := filepath.Join(dir, "pin")
	if err := os.WriteFile(pinFile, []byte(tok.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	holders := t.TempDir() // each holder's medium would be their own
	return &hsm{token: tok, args: []string{"--pkcs11-module", softhsmtest.Module, "--pkcs11-token", tok.Label, "--pkcs11-pin-file", pinFile},
		shares:   [2]string{filepath.Join(holders, "aino.share"), filepath.Join(holders, "eero.share")},
		register: harness.WriteRegister(t, hsmOrgs...)}
}

// varmenne runs a command of the binary and returns its output and error.
func varmenne(args ...string) (string, error) {
	out, err := exec.Command(binary, args...).CombinedOutput()
	return string(out), err
}

// ceremony runs varmenne init on data with two operators.
func (h *hsm) ceremony(t *testing.T, data, keyType string) string {
	t.Helper()
	args := append([]string{"init", "--data", data, "--operator", "Aino Virtanen", "--operator", "Eero Korhonen", "--key-type", keyType,
		"--share-out", h.shares[0], "--share-out", h.shares[1]}, h.args...)
	out, err := varmenne(args...)
	if err != nil {
		t.Fatalf("varmenne init: %v\n%s", err, out)
	}
	return out
}

func fingerprint(t *testing.T, path string) string {
	t.Helper()
	block, _ := pem.Decode(mustRead(t, path))
	if block == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:])
}

// TestHSMCertbot: the key ceremony makes RSA-4096 keys inside SoftHSM2, serve signs
// with them, certbot gets a certificate, and openssl verifies the chain to the root
// the ceremony printed.
func TestHSMCertbot(t *testing.T) {
	certbot, err := exec.LookPath("certbot")
	if err != nil {
		t.Fatal("certbot is not installed: run ./scripts/install-test-deps (make test does)")
	}
	h := newHSM(t)
	data := t.TempDir()
	out := h.ceremony(t, data, "rsa-4096")

	t.Run("init prints the fingerprints of what it wrote", func(t *testing.T) {
		for _, role := range []string{"root", "test-root", "production", "test"} {
			fp := fingerprint(t, filepath.Join(data, "pki", role+".pem"))
			if !strings.Contains(out, fp) {
				t.Errorf("init output lacks the %s fingerprint %s:\n%s", role, fp, out)
			}
		}
	})
	t.Run("the ceremony is in the audit log, which verifies", func(t *testing.T) {
		v, err := varmenne("audit", "verify", "--data", data)
		if err != nil || !strings.Contains(v, "intact") {
			t.Fatalf("audit verify: %v: %s", err, v)
		}
	})
	t.Run("the ceremony made the operator CA and recorded it", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(data, "pki", "operator-ca.pem")); err != nil {
			t.Fatalf("no operator CA after init: %v", err)
		}
		v, err := varmenne("audit", "export", "--data", data)
		if err != nil || !strings.Contains(v, `"actor":"Aino Virtanen+Eero Korhonen","action":"operator-ca.create"`) {
			t.Fatalf("audit export lacks the operator CA's creation by the ceremony's operators: %v: %s", err, v)
		}
	})
	t.Run("no private key file was written", func(t *testing.T) {
		for _, f := range []string{"root.key", "test-root.key", "production.key", "test.key"} {
			if _, err := os.Stat(filepath.Join(data, "pki", f)); err == nil {
				t.Errorf("%s exists: CA keys must stay in the HSM", f)
			}
		}
	})

	in := startWith(t, data, h.serve()...)
	logs := in.Logs.String()
	if strings.Contains(logs, "DEVELOPMENT PKI") || !strings.Contains(logs, "passed its self-test") {
		t.Fatalf("serve with --pkcs11-module did not report HSM keys:\n%s", logs)
	}
	t.Run("the start records the HSM login, each key's self-test and the responder certificates", func(t *testing.T) {
		events, err := varmenne("audit", "export", "--data", data)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"action":"hsm.login","object":"token=`, `"action":"hsm.selftest","object":"token=`,
			`"action":"ocsp.responder.issue","object":"issuer=production`, `"action":"ocsp.responder.issue","object":"issuer=test`,
			`"action":"serve.start","object":"version=`} {
			if !strings.Contains(events, want) {
				t.Errorf("the audit log lacks %s", want)
			}
		}
		if t.Failed() {
			t.Logf("audit log:\n%s", events)
		}
	})
	t.Run("with HSM keys eab create is a request that a second administrator approves", func(t *testing.T) {
		const oid = "1.2.246.10.44444445.10.0"
		if out, err := in.cli("org", "import", h.register); err != nil {
			t.Fatalf("org import: %v: %s", err, out)
		}
		if out, err := in.cli("org", "domains", "add", oid, "--domain", "kaksi.example"); err != nil {
			t.Fatalf("org domains add: %v: %s", err, out)
		}
		out, err := in.cli("eab", "create", "--org", oid, "--json")
		var req struct{ Request, Status, KID string }
		if err != nil || json.Unmarshal([]byte(out), &req) != nil || req.Request == "" || req.Status != "requested" || req.KID != "" {
			t.Fatalf("eab create with HSM keys: %v: %s; want a pending request and no key", err, out)
		}
		if out, err := in.cli("eab", "key", req.Request); err == nil || !strings.Contains(out, "not approved") {
			t.Fatalf("eab key before the approval: %v: %s; want a refusal", err, out)
		}
		if out, err := in.cli("eab", "approve", req.Request); err == nil || !strings.Contains(out, "cannot approve it (dual control)") {
			t.Fatalf("the requester approved their own request: %v: %s", err, out)
		}
		if out, err := in.cli("eab", "approve", req.Request, "--operator-token-file", in.SecondAdmin()); err != nil {
			t.Fatalf("eab approve by a second administrator: %v: %s", err, out)
		}
		out, err = in.cli("eab", "key", req.Request, "--json")
		var k struct {
			KID     string `json:"kid"`
			HMACKey string `json:"hmac_key"`
		}
		if err != nil || json.Unmarshal([]byte(out), &k) != nil || k.KID == "" || k.HMACKey == "" {
			t.Fatalf("eab key after the approval: %v: %s", err, out)
		}
		if out, err := in.cli("eab", "key", req.Request); err == nil || !strings.Contains(out, "never shown again") {
			t.Fatalf("the key was handed over twice: %v: %s", err, out)
		}
		events, err := varmenne("audit", "export", "--data", data)
		if err != nil {
			t.Fatal(err)
		}
		approved := regexp.MustCompile(`"actor":"second-admin","action":"eab.approve","object":"request=` + regexp.QuoteMeta(req.Request) + ` [^"]*requested_by=bootstrap [^"]*","outcome":"ok"`)
		if m := approved.FindString(events); m == "" || strings.Contains(m, "single_control") {
			t.Fatalf("the audit log does not show the second administrator's approval (or shows single control):\n%s", events)
		}
	})
	t.Run("with HSM keys a change to operators waits for a second administrator", func(t *testing.T) {
		in.SecondAdmin() // the CA's only administrator adds the second one alone, recorded as single control
		out, err := in.cli("operator", "add", "kolmas", "--role", "registrar", "--token")
		m := regexp.MustCompile(`operator change (\S+) \(add kolmas\) waits for another administrator`).FindStringSubmatch(out)
		if err != nil || m == nil || strings.Contains(out, "token:") {
			t.Fatalf("operator add with two administrators: %v: %s; want a pending change and no token", err, out)
		}
		if out, err := in.cli("operator", "approve", m[1]); err == nil || !strings.Contains(out, "cannot approve it (dual control)") {
			t.Fatalf("the requester approved their own operator change: %v: %s", err, out)
		}
		out, err = in.cli("operator", "approve", m[1], "--operator-token-file", in.SecondAdmin())
		if err != nil || !strings.Contains(out, "operator kolmas (registrar) added with a bearer token") {
			t.Fatalf("operator approve by the second administrator: %v: %s", err, out)
		}
		events, err := varmenne("audit", "export", "--data", data)
		if err != nil || !strings.Contains(events, `"actor":"bootstrap+second-admin","action":"operator.add","object":"operator=kolmas`) ||
			!strings.Contains(events, `"action":"operator.add","object":"operator=second-admin role=administrator credential=`) ||
			!strings.Contains(events, `single_control=true`) {
			t.Fatalf("the audit log does not show both administrators on the change: %v\n%s", err, events)
		}
	})
	t.Run("serve refuses --dual-control=false with HSM keys", func(t *testing.T) {
		out, err := varmenne(append([]string{"serve", "--data", t.TempDir(), "--dual-control=false"}, h.serve()...)...)
		if err == nil || !strings.Contains(out, "production (issuer keys in an HSM): --dual-control=false is refused") {
			t.Fatalf("serve --dual-control=false with HSM keys: %v: %s", err, out)
		}
	})

	kid, mac := in.org("1.2.246.10.44444444.10.0", "HSM-apteekki", "hsm.example")
	name := "www.hsm.example"
	in.pointAt(name)
	dir := t.TempDir()
	cmd := exec.Command(certbot, "certonly",
		"--non-interactive", "--agree-tos", "--register-unsafely-without-email",
		"--server", in.Directory, "--eab-kid="+kid, "--eab-hmac-key="+mac, // "=": a base64url key may begin with "-"
		"--standalone", "--http-01-address", "127.0.0.1", "--http-01-port", itoa(in.HTTP01Port),
		"--config-dir", filepath.Join(dir, "config"), "--work-dir", filepath.Join(dir, "work"), "--logs-dir", filepath.Join(dir, "logs"),
		"--key-type", "rsa", "--rsa-key-size", "2048", "-d", name)
	cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+in.Roots)
	if cout, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "logs", "letsencrypt.log"))
		t.Fatalf("certbot: %v\n%s\n%s\n--- server log ---\n%s", err, cout, tail(log, 3000), tail([]byte(in.Logs.String()), 3000))
	}
	live := filepath.Join(dir, "config", "live", name)
	certPath, chainPath := filepath.Join(live, "cert.pem"), filepath.Join(live, "chain.pem")
	verify := exec.Command("openssl", "verify", "-CAfile", in.Roots, "-untrusted", chainPath, certPath)
	if vout, err := verify.CombinedOutput(); err != nil || !bytes.Contains(vout, []byte(": OK")) {
		t.Fatalf("openssl verify: %v: %s", err, vout)
	}
	block, _ := pem.Decode(mustRead(t, certPath))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.SignatureAlgorithm != x509.SHA512WithRSA {
		t.Errorf("leaf signed with %v, want sha512WithRSAEncryption", leaf.SignatureAlgorithm)
	}
	chainBlock, _ := pem.Decode(mustRead(t, chainPath))
	issuer, err := x509.ParseCertificate(chainBlock.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if k, ok := issuer.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 4096 {
		t.Errorf("issuer key %T, want RSA-4096", issuer.PublicKey)
	}
	if fp := fingerprint(t, in.Roots); fp != fingerprint(t, filepath.Join(data, "pki", "root.pem")) {
		t.Errorf("roots.pem is not the ceremony's production root")
	}
	if fp := fingerprint(t, in.TestRoots); fp != fingerprint(t, filepath.Join(data, "pki", "test-root.pem")) {
		t.Errorf("test-roots.pem is not the ceremony's test root")
	}

	t.Run("OCSP answers good through a responder the HSM issuer key signed", func(t *testing.T) {
		ocspURL := "http://" + in.PublicAddr + "/ocsp/production"
		if len(leaf.OCSPServer) != 1 || leaf.OCSPServer[0] != ocspURL {
			t.Fatalf("AIA OCSP %v, want %s", leaf.OCSPServer, ocspURL)
		}
		out, err := openssl(t, "ocsp", "-issuer", chainPath, "-cert", certPath, "-url", ocspURL, "-CAfile", in.Roots, "-no_nonce", "-resp_text")
		if err != nil || !strings.Contains(out, "Response verify OK") || !strings.Contains(out, certPath+": good") {
			t.Fatalf("openssl ocsp: %v\n%s", err, out)
		}
		block, _ := pem.Decode(mustRead(t, filepath.Join(data, "pki", "production-ocsp.pem")))
		if block == nil {
			t.Fatal("pki/production-ocsp.pem holds no PEM")
		}
		responder, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if err := responder.CheckSignatureFrom(issuer); err != nil {
			t.Errorf("responder certificate is not signed by the HSM production issuer: %v", err)
		}
		if !strings.Contains(out, "OCSP No Check") || !strings.Contains(out, "OCSP Signing") {
			t.Errorf("the response does not carry the delegated responder certificate (OCSP Signing, OCSP No Check):\n%s", out)
		}
	})
}

// TestHSMPINFromEnvironment: the key ceremony may take the token's PIN from
// VARMENNE_PKCS11_PIN (varmenne runs itself again without it, pin_linux.go), but
// serve never takes a PIN whole: one person holding it would activate the issuer
// keys alone. Serve given the PIN there is refused before it logs in.
func TestHSMPINFromEnvironment(t *testing.T) {
	h := newHSM(t)
	data := t.TempDir()
	withoutPINFile := slices.Clone(h.args[:len(h.args)-2])
	if h.args[len(h.args)-2] != "--pkcs11-pin-file" {
		t.Fatalf("newHSM's flags end %q, want --pkcs11-pin-file FILE", h.args[len(h.args)-2:])
	}
	t.Setenv("VARMENNE_PKCS11_PIN", h.token.PIN)
	out, err := varmenne(append([]string{"init", "--data", data, "--operator", "Aino Virtanen", "--operator", "Eero Korhonen", "--key-type", "ecdsa-p256",
		"--share-out", h.shares[0], "--share-out", h.shares[1]}, withoutPINFile...)...)
	if err != nil {
		t.Fatalf("init with the PIN in the environment: %v\n%s", err, out)
	}
	out, err = varmenne(append([]string{"serve", "--data", data, "--register-source", h.register}, withoutPINFile...)...)
	if err == nil || !strings.Contains(out, "a PIN given whole ($VARMENNE_PKCS11_PIN) would let one person activate them: give --pkcs11-pin-share FILE twice") {
		t.Fatalf("serve with the PIN in its environment: %v: %s; want a refusal", err, out)
	}
	if strings.Contains(out, h.token.PIN) {
		t.Error("the PIN appears in serve's output")
	}
}

// TestHSMRefusesToStart: serve stops before listening when the HSM does not hold
// the keys the certificates name, or the token is not the one the shares are for.
func TestHSMRefusesToStart(t *testing.T) {
	h := newHSM(t)
	base := t.TempDir()
	h.ceremony(t, base, "ecdsa-p256")
	tests := []struct {
		name   string
		change func(t *testing.T, data string) []string // returns extra serve flags
		want   string
	}{
		{"issuer certificate of another key", func(t *testing.T, data string) []string {
			prod := filepath.Join(data, "pki", "production.pem")
			if err := os.WriteFile(prod, mustRead(t, filepath.Join(data, "pki", "test.pem")), 0o644); err != nil {
				t.Fatal(err)
			}
			return nil
		}, `is not for HSM key "varmenne-production"`},
		{"key label not in the token", func(*testing.T, string) []string {
			return []string{"--pkcs11-production-key", "no-such-key"}
		}, `no private key labelled "no-such-key"`},
		{"the shares of another token of the same label", func(t *testing.T, data string) []string {
			// A token put in the place of the ceremony's: its record says nothing of it.
			if err := os.Remove(filepath.Join(data, "pki", "activation")); err != nil {
				t.Fatal(err)
			}
			newHSM(t) // a new token of the same label; its token directory is now SOFTHSM2_CONF's
			return nil
		}, "not the token the PIN belongs to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := t.TempDir()
			if err := os.CopyFS(data, os.DirFS(base)); err != nil {
				t.Fatal(err)
			}
			ownerOnly(t, data) // CopyFS made them 0755 and 0644, which serve refuses
			args := append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--ops-listen", "",
				"--public-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t))}, h.serve()...)
			args = append(args, tt.change(t, data)...)
			cmd := exec.Command(binary, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("serve exited 0")
				}
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("serve started; want a refusal\n%s", stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("serve said %q, want it to say %q", stderr.String(), tt.want)
			}
			if strings.Contains(stderr.String(), h.token.PIN) {
				t.Error("the PIN appears in serve's output")
			}
		})
	}
}

// ownerOnly makes the directories under dir 0700 and its files 0600, as serve
// made them and wants them.
func ownerOnly(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(p, 0o700)
		}
		return os.Chmod(p, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}
