package filekey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateSaveLoad(t *testing.T) {
	tests := []struct {
		keyType string
		check   func(crypto.Signer) bool
	}{
		{"ecdsa-p256", func(k crypto.Signer) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve == elliptic.P256() }},
		{"ecdsa-p384", func(k crypto.Signer) bool { e, ok := k.(*ecdsa.PrivateKey); return ok && e.Curve == elliptic.P384() }},
		{"rsa-2048", func(k crypto.Signer) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 2048 }},
		{"rsa-3072", func(k crypto.Signer) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 3072 }},
		// The one RSA-4096 generation of the suite.
		{"rsa-4096", func(k crypto.Signer) bool { r, ok := k.(*rsa.PrivateKey); return ok && r.N.BitLen() == 4096 }},
	}
	for _, tt := range tests {
		t.Run(tt.keyType+" round-trips as a 0600 PKCS#8 file", func(t *testing.T) {
			t.Parallel()
			key, err := Generate(tt.keyType)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(key) {
				t.Fatalf("Generate(%q) made a %T of the wrong kind", tt.keyType, key)
			}
			dir := t.TempDir()
			path := filepath.Join(dir, "issuer.key")
			if err := Save(path, key); err != nil {
				t.Fatal(err)
			}
			assertMode(t, path, 0o600)
			data, _ := os.ReadFile(path)
			if b, _ := pem.Decode(data); b == nil || b.Type != "PRIVATE KEY" {
				t.Errorf("file is not a PEM \"PRIVATE KEY\": %.40q", data)
			}
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if !got.(interface{ Equal(crypto.PrivateKey) bool }).Equal(key) {
				t.Error("loaded key differs from the saved one")
			}
			assertOnlyFiles(t, dir, "issuer.key")
		})
	}
}

func TestGenerateUnknownType(t *testing.T) {
	for _, kt := range []string{"", "ed25519", "rsa-1024", "ECDSA-P256"} {
		t.Run("refuses "+kt, func(t *testing.T) {
			if k, err := Generate(kt); err == nil {
				t.Errorf("Generate(%q) = %T, want an error", kt, k)
			}
		})
	}
}

func TestSaveReplacesExistingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k.key")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	key, _ := Generate("ecdsa-p256")
	if err := Save(path, key); err != nil {
		t.Fatal(err)
	}
	assertMode(t, path, 0o600)
	if got, err := Load(path); err != nil || !got.Public().(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Errorf("Load after overwrite = %v, want the new key", err)
	}
	assertOnlyFiles(t, dir, "k.key")
}

func TestLoadAcceptsLegacyPEM(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	tests := []struct {
		name  string
		block *pem.Block
	}{
		{"SEC 1 EC PRIVATE KEY", &pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.pem")
			os.WriteFile(path, pem.EncodeToMemory(tt.block), 0o600)
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if !ec.Equal(got) {
				t.Error("loaded key differs")
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		data []byte // nil: no file
	}{
		{"missing file", nil},
		{"not PEM", []byte("hello")},
		{"a certificate, not a key", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}})},
		{"corrupt PKCS#8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{0x30, 0x03, 1, 2, 3}})},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is an error naming the file", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "broken.key")
			if tt.data != nil {
				os.WriteFile(path, tt.data, 0o600)
			}
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), path) {
				t.Errorf("Load = %v, want an error naming %s", err, path)
			}
		})
	}
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %o, want %o", filepath.Base(path), got, want)
	}
}

// assertOnlyFiles fails when dir holds anything but names (e.g. a leftover temp file).
func assertOnlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("dir holds %v, want %v", got, names)
	}
}
