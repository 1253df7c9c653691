package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509/pkix"
	"sync"
	"testing"

	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/signer/signertest"
)

// benchKeys are the issuer keys the benchmarks compare: software keys of the
// embedded default and an RSA-4096 key in SoftHSM2 (SOTE's issuer key type).
func benchKeys(b *testing.B) []struct {
	name string
	key  crypto.Signer
} {
	fileKey := func(kind string) crypto.Signer {
		k, err := filekey.Generate(kind)
		if err != nil {
			b.Fatal(err)
		}
		return k
	}
	p := openPool(b, 4)
	return []struct {
		name string
		key  crypto.Signer
	}{
		{"file-ecdsa-p256", fileKey("ecdsa-p256")},
		{"file-rsa-4096", fileKey("rsa-4096")},
		{"softhsm-rsa-4096", key(b, p, "rsa-4096")},
	}
}

// BenchmarkSign: raw signatures per second of each issuer key, with as many
// goroutines as GOMAXPROCS asking at once.
func BenchmarkSign(b *testing.B) {
	for _, k := range benchKeys(b) {
		b.Run(k.name, func(b *testing.B) {
			d := sha512.Sum512([]byte("varmenne benchmark"))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := k.key.Sign(rand.Reader, d[:], crypto.SHA512); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
		})
	}
}

// BenchmarkIssue: certificates per second through the whole signer pipeline —
// template, serial, intent (in memory), throw-away pre-signature, zlint, the issuer
// key's signature and its verification — for the same keys.
func BenchmarkIssue(b *testing.B) {
	sub, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	req := signer.Request{
		OrderID:   "bench",
		PublicKey: sub.Public(),
		Names:     []string{"www.example.fi", "example.fi"},
		Subject:   pkix.Name{Country: []string{"FI"}, Organization: []string{"Esimerkki Oy"}},
	}
	signer.DefaultLinter() // built once, outside the measurement
	for _, k := range benchKeys(b) {
		b.Run(k.name, func(b *testing.B) {
			_, iss := signertest.PKI(b, k.key)
			ca := signer.New(iss, signertest.Profile(), signertest.NewRecorder(), nil, nil)
			var once sync.Once
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := ca.Issue(context.Background(), req); err != nil {
						once.Do(func() { b.Error(err) })
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
		})
	}
}
