package jws

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"math/big"
	"testing"
)

// TestVerifySignatureKeyMismatch checks verifySignature's own type and curve checks,
// which stand behind checkKeyAlg: a key that does not fit the alg never verifies and
// never panics, even with a signature that is genuine for the key.
func TestVerifySignatureKeyMismatch(t *testing.T) {
	input := []byte("protected.payload")
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(input)
	r, s, err := ecdsa.Sign(rand.Reader, p256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	es256 := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	if !verifySignature("ES256", &p256.PublicKey, input, es256) {
		t.Fatal("the genuine ES256 signature does not verify")
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey := &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 2047), E: 65537}

	cases := []struct {
		name, alg string
		key       any
	}{
		{"ES384 with the P-256 key", "ES384", &p256.PublicKey},
		{"RS256 with the P-256 key", "RS256", &p256.PublicKey},
		{"EdDSA with the P-256 key", "EdDSA", &p256.PublicKey},
		{"ES256 with an Ed25519 key", "ES256", edPub},
		{"ES256 with an RSA key", "ES256", rsaKey},
		{"EdDSA with a short Ed25519 key", "EdDSA", edPub[:31]},
		{"ES256 with a nil key", "ES256", nil},
		{"an alg outside the allow-list", "ES512", &p256.PublicKey},
		{"alg none", "none", &p256.PublicKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if verifySignature(tc.alg, tc.key, input, es256) {
				t.Fatal("verified")
			}
		})
	}
}
