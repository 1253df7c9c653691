// Package filekey keeps issuer keys in files, for the embedded default and for
// development only: a key on disk is not protected the way an HSM key is, and the
// server says so at start. Production issuer keys live in signer/pkcs11.
//
// It also makes and reloads the development PKI (a root, a production and a test
// issuer, and the ACME listener's TLS certificate) that `varmenne serve` uses when
// nothing else is configured.
package filekey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// KeyTypes are the key types Generate makes.
var KeyTypes = []string{"ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096"}

// Generate makes a key: "ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096".
func Generate(keyType string) (crypto.Signer, error) {
	switch keyType {
	case "ecdsa-p256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa-p384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa-2048":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "rsa-3072":
		return rsa.GenerateKey(rand.Reader, 3072)
	case "rsa-4096":
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("filekey: unknown key type %q (supported: %q)", keyType, KeyTypes)
}

// Save writes key as a PKCS#8 PEM "PRIVATE KEY" with mode 0600. It writes a
// temporary file and renames it, so a crash leaves either the old file or the new
// one, never half a key.
func Save(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("filekey: %s: %w", path, err)
	}
	return writeAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// Load reads a private key from a PEM file: PKCS#8 "PRIVATE KEY", or the older
// "EC PRIVATE KEY" and "RSA PRIVATE KEY" that OpenSSL tools still write.
func Load(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("filekey: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("filekey: %s: no PEM block", path)
	}
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("filekey: %s: PEM block is %q, want \"PRIVATE KEY\"", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("filekey: %s: %w", path, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("filekey: %s: a %T cannot sign", path, key)
	}
	return s, nil
}

// writeAtomic writes data to a temporary file beside path, syncs it and renames it
// over path.
func writeAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("filekey: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// CreateTemp already uses 0600; Chmod states the mode whatever the umask did.
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("filekey: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("filekey: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("filekey: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("filekey: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("filekey: %w", err)
	}
	// Make the rename itself durable; a directory that cannot be synced is no reason
	// to fail a write that already happened.
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
