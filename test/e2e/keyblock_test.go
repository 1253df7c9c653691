package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOperatorBlocksAKey: operators had no way to block a key by hand. Blocked
// with "varmenne key block --key FILE", the key is refused at finalize (badCSR)
// by the same server, and the block is in the audit log.
func TestOperatorBlocksAKey(t *testing.T) {
	in := start(t, "")
	kid, mac := in.org("1.2.246.10.62000001.10.0", "Avain Oy", "avain.example")
	c := in.client(kid, mac)
	r := in.responder()
	key := newKey(t)
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := in.cli("key", "block", "--key", pubFile, "--reason", "reported compromised by the vendor")
	if err != nil || !strings.Contains(out, "is blocked") {
		t.Fatalf("key block: %v: %s", err, out)
	}
	if _, _, err := in.tryFinalize(c, r, key, "www.avain.example"); !isProblem(err, "badCSR") || !strings.Contains(err.Error(), "may not be certified") {
		t.Fatalf("finalize with the blocked key: %v, want badCSR saying it may not be certified", err)
	}
	if _, _, err := in.tryFinalize(c, r, newKey(t), "portaali.avain.example"); err != nil {
		t.Fatalf("finalize with another key: %v", err)
	}
	events, err := in.cli("audit", "export")
	if err != nil || !strings.Contains(events, `"action":"key.block"`) || !strings.Contains(events, `reason=\"reported compromised by the vendor\"`) {
		t.Fatalf("the block is not in the audit log: %v\n%s", err, events)
	}
}
