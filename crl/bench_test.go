package crl

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/bench/heap"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/signer/pkcs11"
	"github.com/varmenne/varmenne/signer/pkcs11/softhsmtest"
)

// benchIssuer is an RSA-4096 issuer with a file key, as the development PKI makes
// them; an HSM key is the same crypto.Signer to Build.
var benchIssuer = sync.OnceValues(func() (Issuer, error) {
	key, err := filekey.Generate("rsa-4096")
	if err != nil {
		return Issuer{}, err
	}
	return benchIssuerWith(key)
})

// benchIssuerWith is a self-signed bench issuer on key.
func benchIssuerWith(key crypto.Signer) (Issuer, error) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "varmenne bench issuer"},
		NotBefore: t0.AddDate(-1, 0, 0), NotAfter: t0.AddDate(5, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return Issuer{}, err
	}
	cert, err := x509.ParseCertificate(der)
	return Issuer{Name: "production", Cert: cert, Key: key, CRLURL: "http://127.0.0.1:14080/crl/production.crl"}, err
}

// BenchmarkCRL builds and checks, as a publication does, a full CRL of 10 000,
// 100 000 and 1 000 000 SOTE serials signed by an RSA-4096 key. It reports the
// seconds per CRL, the CRL's size and the peak heap above what the entries
// themselves hold.
func BenchmarkCRL(b *testing.B) {
	is, err := benchIssuer()
	if err != nil {
		b.Fatal(err)
	}
	benchCRL(b, is)
}

// BenchmarkCRLSoftHSM is BenchmarkCRL with the RSA-4096 issuer key in SoftHSM2,
// made in a private token for the run. Only -bench runs it, so go test is not slower.
func BenchmarkCRLSoftHSM(b *testing.B) {
	if err := softhsmtest.Check(); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	conf, err := softhsmtest.Config(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Setenv("SOFTHSM2_CONF", conf)
	tok, err := softhsmtest.NewToken(conf, "varmenne-crl-bench")
	if err != nil {
		b.Fatal(err)
	}
	pool, err := pkcs11.Open(pkcs11.Config{Module: softhsmtest.Module, TokenLabel: tok.Label, PIN: tok.PIN, Sessions: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pool.Close() })
	key, err := pool.Generate(context.Background(), "crl-bench", "rsa-4096")
	if err != nil {
		b.Fatal(err)
	}
	is, err := benchIssuerWith(key)
	if err != nil {
		b.Fatal(err)
	}
	benchCRL(b, is)
}

func benchCRL(b *testing.B, is Issuer) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(itoa(n), func(b *testing.B) {
			entries := make([]Entry, n)
			for i := range entries {
				serial, err := signer.NewSerial(t0.Add(-time.Duration(i)*time.Second), rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				entries[i] = Entry{Serial: serial, RevokedAt: t0.Add(-time.Duration(i) * time.Second), Reason: []int{0, 1, 3, 4, 5, 9}[i%6]}
				if i%10 == 0 {
					entries[i].InvalidityDate = t0.Add(-48 * time.Hour)
				}
			}
			tmpl := Template{Number: big.NewInt(1), ThisUpdate: t0, NextUpdate: t0.Add(MaxValidity), DistributionPoint: is.CRLURL}
			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)
			peak := heap.Start(2 * time.Millisecond)
			var size int
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				der, err := Build(is.Cert, is.Key, tmpl, entries)
				if err != nil {
					b.Fatal(err)
				}
				if err := Check(der, is.Cert, tmpl, entries, t0); err != nil {
					b.Fatal(err)
				}
				size = len(der)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			top := peak.Stop()
			b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/crl")
			b.ReportMetric(float64(size)/(1<<20), "crl-MB")
			b.ReportMetric(float64(top-min(top, base.HeapAlloc))/(1<<20), "peak-heap-MB")
		})
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

// BenchmarkCRLRepublish republishes, as the publisher does after one more
// revocation, a CRL of 10 000, 100 000 and 1 000 000 entries from a List that holds
// the previous CRL's entries: List.Set with one entry more, Build and Check.
func BenchmarkCRLRepublish(b *testing.B) {
	is, err := benchIssuer()
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(itoa(n), func(b *testing.B) {
			entries := make([]Entry, n+1)
			for i := range entries {
				at := t0.Add(-time.Duration(n+1-i) * time.Second)
				serial, err := signer.NewSerial(at, rand.Reader)
				if err != nil {
					b.Fatal(err)
				}
				entries[i] = Entry{Serial: serial, RevokedAt: at, Reason: []int{0, 1, 3, 4, 5, 9}[i%6]}
			}
			tmpl := Template{Number: big.NewInt(2), ThisUpdate: t0, NextUpdate: t0.Add(MaxValidity), DistributionPoint: is.CRLURL}
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				var l List
				if err := l.Set(entries[:n]); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := l.Set(entries); err != nil {
					b.Fatal(err)
				}
				der, err := l.Build(is.Cert, is.Key, tmpl)
				if err != nil {
					b.Fatal(err)
				}
				if err := Check(der, is.Cert, tmpl, entries, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
