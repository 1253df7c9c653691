package jwstest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/varmenne/varmenne/acme/jws/jwstest"
)

// The helpers are checked against go-jose directly, not against package jws, so a bug
// shared by both cannot hide.
func TestSignVerifiesWithGoJose(t *testing.T) {
	ecKey := func(c elliptic.Curve) crypto.Signer {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		key     crypto.Signer
		alg     string
		kid     string
		payload []byte
	}{
		{"RSA signs RS256 with jwk", rsaKey, "RS256", "", []byte(`{}`)},
		{"P-256 signs ES256 with kid", ecKey(elliptic.P256()), "ES256", "https://acme.test/acct/1", []byte(`{"a":1}`)},
		{"P-384 signs ES384 with jwk", ecKey(elliptic.P384()), "ES384", "", []byte(`{}`)},
		{"P-521 signs ES512 with jwk", ecKey(elliptic.P521()), "ES512", "", []byte(`{}`)},
		{"Ed25519 signs EdDSA POST-as-GET", edKey, "EdDSA", "https://acme.test/acct/1", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, err := jwstest.Sign(tc.key, tc.kid, "nonce", "https://acme.test/x", tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := jose.ParseSignedJSON(string(body), []jose.SignatureAlgorithm{jose.SignatureAlgorithm(tc.alg)})
			if err != nil {
				t.Fatal(err)
			}
			h := sig.Signatures[0].Protected
			if h.Nonce != "nonce" || h.KeyID != tc.kid || (h.JSONWebKey != nil) != (tc.kid == "") {
				t.Errorf("header = %+v", h)
			}
			got, err := sig.Verify(tc.key.Public())
			if err != nil || string(got) != string(tc.payload) {
				t.Fatalf("Verify = %q, %v", got, err)
			}
		})
	}
	if _, err := jwstest.Sign(ecKey(elliptic.P224()), "", "", "u", nil); err == nil {
		t.Error("Sign with a P-224 key succeeded")
	}
}

func TestEABMAC(t *testing.T) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	cases := []struct {
		alg, want string
		h         func() hash.Hash
	}{{"", "HS256", sha256.New}, {"HS384", "HS384", sha512.New384}, {"HS512", "HS512", sha512.New}}
	for _, tc := range cases {
		t.Run("alg "+tc.want, func(t *testing.T) {
			raw, err := jwstest.EAB(k, "kid-1", key, "https://acme.test/new-account", tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			var m struct{ Protected, Payload, Signature string }
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			var h struct{ Alg, Kid, URL string }
			p, _ := base64.RawURLEncoding.DecodeString(m.Protected)
			if err := json.Unmarshal(p, &h); err != nil || h.Alg != tc.want || h.Kid != "kid-1" || h.URL != "https://acme.test/new-account" {
				t.Fatalf("protected = %s", p)
			}
			mac := hmac.New(tc.h, key)
			mac.Write([]byte(m.Protected + "." + m.Payload))
			if got := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); got != m.Signature {
				t.Fatalf("MAC = %s, want %s", m.Signature, got)
			}
		})
	}
	if _, err := jwstest.EAB(k, "kid-1", key, "u", "RS256"); err == nil {
		t.Error("EAB with RS256 succeeded")
	}
}
