// Command setup prepares a step-ca instance for varmenne's benchmark: a root and an
// intermediate of the chosen key type, a ca.json with one ACME provisioner that
// requires EAB, and EAB keys written into step-ca's own database through its own
// ACME database layer (the open-source edition has no working EAB key management).
// It prints one line per key, "KID HMAC" (HMAC base64url), for varmenne-bench --eab.
//
//	go run ./setup --dir DIR --listen 127.0.0.1:PORT --key-type p256|rsa4096 --eab 4
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	acmenosql "github.com/smallstep/certificates/acme/db/nosql"
	"github.com/smallstep/nosql"
)

func main() {
	dir := flag.String("dir", "", "directory for the keys, certificates, ca.json and database")
	listen := flag.String("listen", "127.0.0.1:9443", "address step-ca listens on")
	keyType := flag.String("key-type", "p256", "root and intermediate key: p256 or rsa4096")
	eab := flag.Int("eab", 1, "EAB keys to create")
	provisionerID := flag.String("provisioner-id", "", "provisioner ID the keys are stored under (step-ca uses the ACME provisioner's ID, empty for a ca.json provisioner)")
	flag.Parse()
	if err := run(*dir, *listen, *keyType, *eab, *provisionerID); err != nil {
		fmt.Fprintln(os.Stderr, "setup: "+err.Error())
		os.Exit(1)
	}
}

func run(dir, listen, keyType string, eab int, provisionerID string) error {
	if dir == "" {
		return fmt.Errorf("--dir is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	rootKey, err := newKey(keyType)
	if err != nil {
		return err
	}
	interKey, err := newKey(keyType)
	if err != nil {
		return err
	}
	now := time.Now()
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench step-ca root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(5, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, MaxPathLen: 1}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return err
	}
	root, _ := x509.ParseCertificate(rootDER)
	interTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "bench step-ca intermediate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(2, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, MaxPathLen: 0, MaxPathLenZero: true}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(interKey)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"root.crt":         pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}),
		"intermediate.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: interDER}),
		"intermediate.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	dbDir := filepath.Join(dir, "db")
	cfg := map[string]any{
		"root":     filepath.Join(dir, "root.crt"),
		"crt":      filepath.Join(dir, "intermediate.crt"),
		"key":      filepath.Join(dir, "intermediate.key"),
		"address":  listen,
		"dnsNames": []string{"127.0.0.1", "localhost"},
		"logger":   map[string]any{"format": "text"},
		"db":       map[string]any{"type": "badgerv2", "dataSource": dbDir},
		"authority": map[string]any{
			"provisioners": []any{map[string]any{
				"type": "ACME", "name": "acme", "requireEAB": true, "challenges": []string{"http-01"},
				"claims": map[string]any{"maxTLSCertDuration": "2160h", "defaultTLSCertDuration": "2160h"},
			}},
		},
		"tls": map[string]any{"minVersion": 1.2, "maxVersion": 1.3, "renegotiation": false},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "ca.json"), b, 0o600); err != nil {
		return err
	}

	db, err := nosql.New("badgerv2", dbDir)
	if err != nil {
		return fmt.Errorf("opening step-ca's database: %w", err)
	}
	defer db.Close()
	// Makes step-ca's ACME tables.
	if _, err := acmenosql.New(db); err != nil {
		return err
	}
	// step-ca looks a key up by its ID and compares the provisioner ID, which is
	// empty for a provisioner of ca.json; its own CreateExternalAccountKey cannot
	// index an empty one, so the record is written as step-ca stores it
	// (acme_external_account_keys, JSON). The listing index is not needed to bind.
	for range eab {
		id, mac := make([]byte, 24), make([]byte, 32)
		if _, err := rand.Read(id); err != nil {
			return err
		}
		if _, err := rand.Read(mac); err != nil {
			return err
		}
		kid := base64.RawURLEncoding.EncodeToString(id)
		rec, err := json.Marshal(eabRecord{ID: kid, ProvisionerID: provisionerID, HmacKey: mac, CreatedAt: time.Now()})
		if err != nil {
			return err
		}
		if err := db.Set([]byte("acme_external_account_keys"), []byte(kid), rec); err != nil {
			return fmt.Errorf("writing an EAB key: %w", err)
		}
		fmt.Printf("%s %s\n", kid, base64.RawURLEncoding.EncodeToString(mac))
	}
	return nil
}

// eabRecord is an external account key as step-ca's database holds it.
type eabRecord struct {
	ID            string    `json:"id"`
	ProvisionerID string    `json:"provisionerID"`
	Reference     string    `json:"reference"`
	AccountID     string    `json:"accountID,omitempty"`
	HmacKey       []byte    `json:"key"`
	CreatedAt     time.Time `json:"createdAt"`
	BoundAt       time.Time `json:"boundAt"`
}

func newKey(kind string) (crypto.Signer, error) {
	switch kind {
	case "p256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa4096":
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("--key-type %q: use p256 or rsa4096", kind)
}
