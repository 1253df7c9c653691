package jws_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	"github.com/varmenne/varmenne/acme/jws"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
)

// BenchmarkParseVerify is the per-request cost of the outer JWS on the issuance path:
// Parse and Verify of a typical ES256 kid request (a newOrder for one name, ~400 bytes).
func BenchmarkParseVerify(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	body, err := jwstest.Sign(key, "https://acme.example.fi/acme/acct/1234567",
		"ZFzV3mZ5Bj4mXq3cW1sQbG4e0xKkJtYvR2nHpLaD8uE", "https://acme.example.fi/acme/new-order",
		[]byte(`{"identifiers":[{"type":"dns","value":"www.example.fi"}]}`))
	if err != nil {
		b.Fatal(err)
	}
	accountKey := jwstest.JWK(key)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := jws.Parse(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Verify(accountKey); err != nil {
			b.Fatal(err)
		}
	}
}
