package e2e

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/signer/filekey"
)

// TestIssuerNearItsEndStopsTheStart: a production issuer with 200 days left cannot
// sign the built-in 365-day and 730-day certificates, so serve refuses to start,
// naming the profile, the issuer's last day and what to do; with profiles that fit
// (--config) it starts and issues.
func TestIssuerNearItsEndStopsTheStart(t *testing.T) {
	in := start(t, "")
	in.stop()
	pki := filepath.Join(in.Data, "pki")
	root, err := x509.ParseCertificate(pemBlock(t, filepath.Join(pki, "root.pem")))
	if err != nil {
		t.Fatal(err)
	}
	rootKey, err := filekey.Load(filepath.Join(pki, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	old, err := x509.ParseCertificate(pemBlock(t, filepath.Join(pki, "production.pem")))
	if err != nil {
		t.Fatal(err)
	}
	// The same issuer key, certified anew to end in 200 days.
	tmpl := *old
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotAfter = time.Now().Add(200 * 24 * time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, root, old.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pki, "production.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}

	out, err := varmenne("serve", "--data", in.Data, "--listen", "127.0.0.1:0", "--ops-listen", "", "--admin-listen", "",
		"--public-listen", "127.0.0.1:0")
	ends := tmpl.NotAfter.UTC().Format(time.DateOnly)
	for _, want := range []string{`profile "sote-server" issues certificates of up to 365 days`, `issuer "production" ends on ` + ends,
		"roll over to a new issuer generation", "max_validity_days"} {
		if err == nil || !strings.Contains(out, want) {
			t.Fatalf("serve with an issuer 200 days from its end: %v: %s\nwant it to say %q", err, out, want)
		}
	}

	config := filepath.Join(t.TempDir(), "profiles.json")
	if err := os.WriteFile(config, []byte(`{"profiles": {
		"sote-server": {"description": "until the rollover", "kind": "server", "max_validity_days": 150, "max_start_delay": "0s"},
		"sote-system-signature": {"description": "until the rollover", "kind": "system-signature", "max_validity_days": 150, "max_start_delay": "0s"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	in.Extra = append(in.Extra, "--config", config)
	in.launch()
	kid, mac := in.org("1.2.246.10.12345678.10.0", "Helsingin VI apteekki", "apteekki.example")
	chain, _ := in.obtain(in.client(kid, mac), in.responder(), newKey(t), "www.apteekki.example")
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	if leaf.NotAfter.After(tmpl.NotAfter) {
		t.Errorf("certificate ends %s, after its issuer (%s)", leaf.NotAfter, tmpl.NotAfter)
	}
}

// pemBlock is the first PEM block of a file.
func pemBlock(t *testing.T, path string) []byte {
	t.Helper()
	b, _ := pem.Decode(mustRead(t, path))
	if b == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	return b.Bytes
}
