package validate

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestIsPublic(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"1.1.1.1", true},
		{"8.8.8.8", true},
		{"100.63.255.255", true},
		{"100.128.0.0", true},
		{"172.32.0.1", true},
		{"2a00:1450:4001::1", true},
		{"2606:4700::1111", true},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"10.0.0.1", false},
		{"100.64.0.1", false},
		{"127.0.0.1", false},
		{"127.255.255.254", false},
		{"169.254.169.254", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.0.0.8", false},
		{"192.0.2.1", false},
		{"192.168.1.1", false},
		{"198.18.0.1", false},
		{"198.51.100.1", false},
		{"203.0.113.1", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"240.0.0.1", false},
		{"255.255.255.255", false},
		{"::", false},
		{"::1", false},
		{"::127.0.0.1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"fe80::1", false},
		{"ff02::1", false},
		{"64:ff9b::a00:1", false},
		{"100::1", false},
		{"2001:db8::1", false},
		{"2001::1", false},
		{"2002:a00:1::1", false},
		{"3fff::1", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := isPublic(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("isPublic(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		v, err := New(Config{})
		if err != nil {
			t.Fatal(err)
		}
		want := Config{HTTPPort: 80, HTTPSPort: 443, Timeout: 10 * time.Second, MaxRedirects: 10, AllowedNets: []netip.Prefix{}}
		if v.cfg.HTTPPort != want.HTTPPort || v.cfg.HTTPSPort != want.HTTPSPort || v.cfg.Timeout != want.Timeout || v.cfg.MaxRedirects != want.MaxRedirects {
			t.Errorf("got %+v, want %+v", v.cfg, want)
		}
	})
	t.Run("allowed nets are masked and unmapped", func(t *testing.T) {
		v, err := New(Config{AllowedNets: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8"), netip.MustParsePrefix("::ffff:192.168.0.0/112")}})
		if err != nil {
			t.Fatal(err)
		}
		want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16")}
		if len(v.cfg.AllowedNets) != 2 || v.cfg.AllowedNets[0] != want[0] || v.cfg.AllowedNets[1] != want[1] {
			t.Errorf("got %v, want %v", v.cfg.AllowedNets, want)
		}
	})

	bad := []struct {
		name string
		cfg  Config
	}{
		{"resolver given by name", Config{Resolver: "dns.example.fi:53"}},
		{"resolver without port", Config{Resolver: "127.0.0.1"}},
		{"negative http port", Config{HTTPPort: -1}},
		{"http port above 65535", Config{HTTPPort: 65536}},
		{"https port above 65535", Config{HTTPSPort: 70000}},
		{"negative timeout", Config{Timeout: -time.Second}},
		{"negative redirects", Config{MaxRedirects: -1}},
		{"invalid allowed net", Config{AllowedNets: []netip.Prefix{{}}}},
	}
	for _, tt := range bad {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestKeyAuthorization(t *testing.T) {
	if got := KeyAuthorization("tok", "thumb"); got != "tok.thumb" {
		t.Errorf("got %q", got)
	}
}

// testCert writes a self-signed certificate for www.example.fi and returns the files.
func testCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "www.example.fi"},
		DNSNames:     []string{"www.example.fi"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
