package keys

import (
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/signer"
)

// fakeKeys answers the plugin's store questions.
type fakeKeys struct {
	certified, blocked map[string]bool
	err                error
}

func (f *fakeKeys) KeyCertified(_ context.Context, h string) (bool, error) {
	return f.certified[h], f.err
}
func (f *fakeKeys) KeyBlocked(_ context.Context, h string) (bool, error) { return f.blocked[h], f.err }

func buildKeys(t *testing.T, types []string, st policy.KeyLookup) policy.Plugin {
	t.Helper()
	p, err := policy.Build(PluginName, nil, policy.Env{Profile: policy.ProfileInfo{Name: "sote-server", KeyTypes: types}, Keys: st})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return p
}

func hashOf(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	h, err := Hash(pub)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestPluginCheckCSR: the plugin holds the profile's key types and refuses a key
// certified before. A key's quality and a blocked key are acme/authority's checks,
// run before any plugin (keys_test.go and acme/authority's finalize tests).
func TestPluginCheckCSR(t *testing.T) {
	good2048 := loadRSA(t, "rsa2048.pem")
	good4096 := loadRSA(t, "rsa4096.pem")
	p256 := ecdsaKey(t, elliptic.P256())
	certifiedKey := ecdsaKey(t, elliptic.P384())
	st := &fakeKeys{certified: map[string]bool{hashOf(t, certifiedKey): true}}

	tests := []struct {
		name   string
		types  []string // nil: every SOTE key type
		pub    crypto.PublicKey
		want   acme.ErrorKind
		detail string
	}{
		{"an RSA-2048 key is certified", nil, good2048, "", ""},
		{"a P-256 key is certified", nil, p256, "", ""},
		{"a key type outside the profile's is refused", []string{"rsa-4096", "ecdsa-p384"}, good2048, acme.BadCSR, "certifies rsa-4096, ecdsa-p384 keys, not rsa-2048"},
		{"a key type of the profile is certified", []string{"rsa-4096"}, good4096, "", ""},
		{"a key of no SOTE type is refused with the profile's types", nil, ecdsaKey(t, elliptic.P224()), acme.BadCSR, "certifies rsa-2048, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384 keys only"},
		{"a key certified before is refused", nil, certifiedKey, acme.BadCSR, "certified before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := buildKeys(t, tt.types, st)
			err := p.CheckCSR(context.Background(), &policy.Request{CSR: &x509.CertificateRequest{PublicKey: tt.pub}})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckCSR: %v", err)
				}
				return
			}
			ae, ok := acme.AsError(err)
			if !ok || ae.Kind != tt.want || !strings.Contains(ae.Detail, tt.detail) {
				t.Fatalf("CheckCSR: %v, want %s saying %q", err, tt.want, tt.detail)
			}
		})
	}
}

func TestPluginStoreFailureIsNotAnAllow(t *testing.T) {
	p := buildKeys(t, nil, &fakeKeys{err: errors.New("database down")})
	err := p.CheckCSR(context.Background(), &policy.Request{CSR: &x509.CertificateRequest{PublicKey: ecdsaKey(t, elliptic.P256())}})
	if err == nil {
		t.Fatal("a failed lookup allowed the key")
	}
	if _, ok := acme.AsError(err); ok {
		t.Fatalf("a failed lookup became a client refusal %v; the chain must turn it into serverInternal", err)
	}
}

func TestPluginBuild(t *testing.T) {
	tests := []struct {
		name   string
		types  []string
		keys   policy.KeyLookup
		config string
		want   string
	}{
		{"the defaults build", nil, &fakeKeys{}, "", ""},
		{"an unknown key type is refused", []string{"rsa-1024"}, &fakeKeys{}, "", `"rsa-1024"`},
		{"no store is refused", nil, nil, "", "Env.Keys"},
		{"a configuration key is refused", nil, &fakeKeys{}, `{"sizes": [2048]}`, `unknown field "sizes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := policy.Env{Profile: policy.ProfileInfo{Name: "x", KeyTypes: tt.types}}
			if tt.keys != nil {
				env.Keys = tt.keys
			}
			_, err := policy.Build(PluginName, json.RawMessage(tt.config), env)
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Build: %v, want %q", err, tt.want)
			}
		})
	}
}

// The plugin and the store must name a key alike.
func TestHashIsSignerKeyHash(t *testing.T) {
	for _, pub := range []crypto.PublicKey{loadRSA(t, "rsa3072.pem"), ecdsaKey(t, elliptic.P384())} {
		want, err := signer.KeyHash(pub)
		if err != nil {
			t.Fatal(err)
		}
		if got := hashOf(t, pub); got != want {
			t.Fatalf("Hash %s, signer.KeyHash %s", got, want)
		}
	}
}

func TestTypeOf(t *testing.T) {
	tests := []struct {
		pub  crypto.PublicKey
		want string
	}{
		{loadRSA(t, "rsa3072.pem"), "rsa-3072"},
		{ecdsaKey(t, elliptic.P256()), "ecdsa-p256"},
		{ecdsaKey(t, elliptic.P384()), "ecdsa-p384"},
		{ecdsaKey(t, elliptic.P521()), ""},
	}
	for _, tt := range tests {
		if got := TypeOf(tt.pub); got != tt.want {
			t.Errorf("TypeOf = %q, want %q", got, tt.want)
		}
	}
}
