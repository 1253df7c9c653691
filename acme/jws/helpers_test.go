package jws_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
)

const (
	testURL   = "https://acme.test/acme/new-order"
	testNonce = "bm9uY2Utb25l"
	testKID   = "https://acme.test/acme/acct/1"
)

type testKeys struct {
	rsa, rsa512, rsa9000   *rsa.PrivateKey
	p224, p256, p384, p521 *ecdsa.PrivateKey
	ed                     ed25519.PrivateKey
}

// keys are generated once per test binary; RSA generation dominates the run time.
var keys = sync.OnceValue(func() testKeys {
	ec := func(c elliptic.Curve) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	// Out-of-range RSA keys cannot come from rsa.GenerateKey; only their public modulus
	// matters to the tests, so any odd number of the right size does.
	modulus := func(bits int) *rsa.PrivateKey {
		n := new(big.Int).Lsh(r.N, uint(bits))
		n.Rsh(n, 2048)
		n.SetBit(n, 0, 1)
		return &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: 65537}}
	}
	return testKeys{rsa: r, rsa512: modulus(512), rsa9000: modulus(9000), p224: ec(elliptic.P224()), p256: ec(elliptic.P256()),
		p384: ec(elliptic.P384()), p521: ec(elliptic.P521()), ed: ed}
})

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// jwkJSON is the public JWK of key as JSON.
func jwkJSON(t testing.TB, key crypto.Signer) string {
	t.Helper()
	b, err := json.Marshal(jwstest.JWK(key))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ecJWK writes an EC JWK by hand, for curves go-jose refuses to marshal.
func ecJWK(crv string, k *ecdsa.PrivateKey) string {
	size := (k.Curve.Params().BitSize + 7) / 8
	x, y := make([]byte, size), make([]byte, size)
	k.X.FillBytes(x)
	k.Y.FillBytes(y)
	return `{"kty":"EC","crv":"` + crv + `","x":"` + base64.RawURLEncoding.EncodeToString(x) +
		`","y":"` + base64.RawURLEncoding.EncodeToString(y) + `"}`
}

// hdr joins raw "name":value members into a protected header, verbatim, so tests can
// write duplicates and wrong types.
func hdr(members ...string) string { return "{" + strings.Join(members, ",") + "}" }

func member(name, rawValue string) string { return `"` + name + `":` + rawValue }

func str(name, value string) string { return member(name, `"`+value+`"`) }

// signed signs protected (verbatim) and payload with key.
func signed(t testing.TB, key crypto.Signer, protected, payload string) []byte {
	t.Helper()
	b, err := jwstest.SignProtected(key, []byte(protected), []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign is jwstest.Sign that fails the test on error.
func sign(t testing.TB, key crypto.Signer, kid, nonce, url, payload string) []byte {
	t.Helper()
	var p []byte
	if payload != "" {
		p = []byte(payload)
	}
	b, err := jwstest.Sign(key, kid, nonce, url, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edit decodes a flattened JWS body into its members, lets f change them, and encodes it again.
func edit(t testing.TB, body []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantKind fails unless err is an *acme.Error of kind with a detail; kind "" wants no error.
// badSignatureAlgorithm must list the accepted algorithms.
func wantKind(t testing.TB, err error, kind acme.ErrorKind) {
	t.Helper()
	if kind == "" {
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		return
	}
	ae, ok := acme.AsError(err)
	if !ok {
		t.Fatalf("got %v (%T), want an *acme.Error of kind %s", err, err, kind)
	}
	if ae.Kind != kind {
		t.Fatalf("got kind %s (%q), want %s", ae.Kind, ae.Detail, kind)
	}
	if ae.Detail == "" {
		t.Errorf("refusal has no detail")
	}
	if kind == acme.BadSignatureAlgorithm && !slices.Equal(ae.Algorithms, jws.Algorithms) {
		t.Errorf("Algorithms = %v, want %v", ae.Algorithms, jws.Algorithms)
	}
}
