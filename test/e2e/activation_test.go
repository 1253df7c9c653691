package e2e

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestHSMTwoPersonActivation: the key ceremony gives the token a new PIN that
// nobody sees and writes it as two activation shares, one per operator; serve
// starts and issues with both, and is refused with one share, one holder's share
// twice, the PIN given whole, or a share and the PIN; the audit log says who holds
// which share and whose shares activated the keys. When a holder leaves, a reshare
// hands the activation to a new holder, and the old shares activate nothing.
func TestHSMTwoPersonActivation(t *testing.T) {
	h := newHSM(t)
	data := t.TempDir()
	out := h.ceremony(t, data, "ecdsa-p256")

	t.Run("init writes each holder's share to their own file, and records who holds which", func(t *testing.T) {
		for i, holder := range []string{"Aino Virtanen", "Eero Korhonen"} {
			fi, err := os.Stat(h.shares[i])
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("share of %s: %v (mode %v); want a file only its owner reads", holder, err, fi.Mode().Perm())
			}
			b := string(mustRead(t, h.shares[i]))
			if !strings.Contains(b, "holder: "+holder) || !strings.Contains(b, "token: "+h.token.Label) || !strings.Contains(out, h.shares[i]) {
				t.Errorf("share file %s does not name %s and the token, or init did not say where it went:\n%s\n%s", h.shares[i], holder, b, out)
			}
		}
		if strings.Contains(out, h.token.PIN) {
			t.Error("init printed the PIN")
		}
		events, err := varmenne("audit", "export", "--data", data)
		if err != nil || !strings.Contains(events, `"action":"hsm.activation.split","object":"token=varmenne-e2e serial=`) ||
			!strings.Contains(events, `share1=\"Aino Virtanen\" share2=\"Eero Korhonen\"`) {
			t.Fatalf("the audit log does not record who holds which share: %v\n%s", err, events)
		}
	})

	refusals := []struct {
		name string
		args []string
		want string
	}{
		{"one share", h.withShares(h.shares[0]), "one activation share activates nothing: give the other holder's share too"},
		{"one holder's share twice", h.withShares(h.shares[0], h.shares[0]), "are both Aino Virtanen's"},
		{"the ceremony's PIN, whole", h.args, "a PIN given whole (--pkcs11-pin-file) would let one person activate them"},
		{"a share and the PIN", append(h.withShares(h.shares[0]), "--pkcs11-pin-file", h.args[len(h.args)-1]), "both activation shares and a PIN"},
	}
	for _, tt := range refusals {
		t.Run("serve refuses "+tt.name, func(t *testing.T) {
			out, err := varmenne(append([]string{"serve", "--data", data, "--register-source", h.register}, tt.args...)...)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if err == nil || !strings.Contains(lines[len(lines)-1], tt.want) {
				t.Fatalf("serve with %s: %v: %s; want a refusal saying %q", tt.name, err, out, tt.want)
			}
		})
	}
	t.Run("the refusals are in the audit log, and no login succeeded", func(t *testing.T) {
		events, err := varmenne("audit", "export", "--data", data)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(events, `"action":"hsm.login"`); n != 1+len(refusals) { // the ceremony's, then each refused start
			t.Errorf("%d hsm.login events; want the ceremony's and %d refused ones:\n%s", n, len(refusals), events)
		}
		if regexp.MustCompile(`"actor":"varmenne serve","action":"hsm.login","object":"[^"]*","outcome":"ok"`).MatchString(events) {
			t.Errorf("a refused start logged in:\n%s", events)
		}
	})

	in := startWith(t, data, h.serve()...)
	t.Run("both shares activate the keys, and the login names both holders", func(t *testing.T) {
		events, err := varmenne("audit", "export", "--data", data)
		if err != nil {
			t.Fatal(err)
		}
		login := regexp.MustCompile(`"actor":"varmenne serve","action":"hsm.login","object":"token=varmenne-e2e serial=[0-9a-f]+ holders=\\"Aino Virtanen,Eero Korhonen\\"","outcome":"ok"`)
		if !login.MatchString(events) {
			t.Fatalf("the audit log has no HSM login naming both holders:\n%s", events)
		}
		for _, want := range []string{`"action":"hsm.selftest","object":"token=varmenne-e2e key=varmenne-production","outcome":"ok"`,
			`"action":"hsm.selftest","object":"token=varmenne-e2e key=varmenne-test","outcome":"ok"`} {
			if !strings.Contains(events, want) {
				t.Errorf("the audit log lacks %s", want)
			}
		}
	})
	kid, mac := in.org("1.2.246.10.44444444.10.0", "HSM-apteekki", "two.example")
	c := in.client(kid, mac)
	chain, _ := in.obtain(c, in.responder(), newKey(t), "www.two.example")
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: in.rootPool(), Intermediates: intermediates(t, chain[1:]), DNSName: "www.two.example"}); err != nil {
		t.Fatalf("the certificate the activated keys signed does not verify: %v", err)
	}
	in.stop()

	// A holder leaves: a reshare, by the remaining holder and the new one, hands
	// Aino's part to Liisa; the shares before it activate nothing.
	dir := t.TempDir()
	liisa, eero := filepath.Join(dir, "liisa.share"), filepath.Join(dir, "eero.share")
	args := append([]string{"init", "--reshare", "--data", data, "--operator", "Liisa Mäkinen", "--operator", "Eero Korhonen",
		"--share-out", liisa, "--share-out", eero}, h.withShares(h.shares[:]...)...)
	if out, err := varmenne(args...); err != nil {
		t.Fatalf("init --reshare: %v\n%s", err, out)
	}
	out, err = varmenne(append([]string{"serve", "--data", data, "--register-source", h.register}, h.withShares(h.shares[:]...)...)...)
	if err == nil || !strings.Contains(out, "which a later ceremony step replaced") {
		t.Fatalf("serve with the shares before the reshare: %v: %s; want a refusal", err, out)
	}
	in.Extra = append([]string{"--register-source", h.register}, h.withShares(liisa, eero)...)
	in.launch()
	events, err := varmenne("audit", "export", "--data", data)
	if err != nil || !strings.Contains(events, `share1=\"Liisa Mäkinen\" share2=\"Eero Korhonen\" reshare=true`) ||
		!strings.Contains(events, `holders=\"Liisa Mäkinen,Eero Korhonen\"","outcome":"ok"`) {
		t.Fatalf("the audit log lacks the reshare or the login with the new holders' shares: %v\n%s", err, events)
	}
}

func intermediates(t *testing.T, ders [][]byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			t.Fatal(err)
		}
		p.AddCert(c)
	}
	return p
}
