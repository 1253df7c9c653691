package server_test

import (
	"bytes"
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/acme"
)

// rawRSA signs with an RSA key whose primes crypto/rsa refuses to use (too close
// together, or one of them tiny), so that a CSR can carry such a key: PKCS #1 v1.5
// with SHA-256, computed with math/big.
type rawRSA struct {
	pub *rsa.PublicKey
	d   *big.Int
}

func newRawRSA(p, q *big.Int) *rawRSA {
	one := big.NewInt(1)
	p1, q1 := new(big.Int).Sub(p, one), new(big.Int).Sub(q, one)
	lambda := new(big.Int).Div(new(big.Int).Mul(p1, q1), new(big.Int).GCD(nil, nil, p1, q1))
	return &rawRSA{pub: &rsa.PublicKey{N: new(big.Int).Mul(p, q), E: 65537}, d: new(big.Int).ModInverse(big.NewInt(65537), lambda)}
}

func (k *rawRSA) Public() crypto.PublicKey { return k.pub }

func (k *rawRSA) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if opts.HashFunc() != crypto.SHA256 || len(digest) != sha256.Size {
		return nil, errors.New("rawRSA signs SHA-256 digests only")
	}
	sha256Prefix := []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}
	size := (k.pub.N.BitLen() + 7) / 8
	t := append(sha256Prefix, digest...)
	em := make([]byte, size)
	em[1] = 1
	for i := 2; i < size-len(t)-1; i++ {
		em[i] = 0xff
	}
	copy(em[size-len(t):], t)
	s := new(big.Int).Exp(new(big.Int).SetBytes(em), k.d, k.pub.N)
	return s.FillBytes(make([]byte, size)), nil
}

func prime(t *testing.T, bits int) *big.Int {
	t.Helper()
	p, err := rand.Prime(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func nextPrimeAfter(x *big.Int) *big.Int {
	p := new(big.Int).Add(x, big.NewInt(1))
	for !p.ProbablyPrime(20) {
		p.Add(p, big.NewInt(1))
	}
	return p
}

// rocaPrime is a 1024-bit prime as Infineon's RSALib made them (CVE-2017-15361):
// k·M + (65537^a mod M), M the product of the primes from 2 to 167.
func rocaPrime(t *testing.T) *big.Int {
	t.Helper()
	m := big.NewInt(1)
	for p := int64(2); p <= 167; p++ {
		if big.NewInt(p).ProbablyPrime(0) {
			m.Mul(m, big.NewInt(p))
		}
	}
	for range 1 << 20 {
		r, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 1024))
		k := new(big.Int).Div(r.SetBit(r, 1023, 1), m)
		a, _ := rand.Int(rand.Reader, big.NewInt(1<<20))
		p := new(big.Int).Exp(big.NewInt(65537), a, m)
		p.Add(p, k.Mul(k, m))
		if p.BitLen() == 1024 && p.ProbablyPrime(20) {
			return p
		}
	}
	t.Fatal("no ROCA-structured prime found")
	return nil
}

// TestFinalizeRefusesWeakKeys: the key rules hold at the ACME endpoint, with the
// default chain and with a profile whose chain has no keys (nor names) plugin: a CSR
// whose key has a small prime factor, primes close enough for Fermat's method, the
// ROCA structure, or an ECDSA point off its curve is refused with badCSR.
func TestFinalizeRefusesWeakKeys(t *testing.T) {
	t.Parallel()
	for _, env := range []struct {
		name string
		new  func(t *testing.T) *env
	}{
		{"the default chain", newEnv},
		{"a chain without names and keys", func(t *testing.T) *env { return newEnvPlugins(t, "validity") }},
	} {
		t.Run(env.name, func(t *testing.T) {
			t.Parallel()
			testWeakKeys(t, env.new(t))
		})
	}
}

func testWeakKeys(t *testing.T, e *env) {
	a := e.register(t, orgA)
	names := []string{"weak." + domainA}
	o := e.readyOrder(t, a, names...)

	smallFactor := func(t *testing.T) crypto.Signer {
		for {
			q := prime(t, 2038)
			if k := newRawRSA(big.NewInt(997), q); k.pub.N.BitLen() == 2048 {
				return k
			}
		}
	}
	fermat := func(t *testing.T) crypto.Signer {
		p := prime(t, 1024)
		return newRawRSA(p, nextPrimeAfter(new(big.Int).Add(p, new(big.Int).Lsh(big.NewInt(1), 100))))
	}
	roca := func(t *testing.T) crypto.Signer {
		for { // two 1024-bit primes make a 2047-bit modulus about half the time
			if k := newRawRSA(rocaPrime(t), rocaPrime(t)); k.pub.N.BitLen() == 2048 {
				return k
			}
		}
	}

	t.Run("an ECDSA point off the curve → badCSR", func(t *testing.T) {
		k := ecKey(t)
		der, err := b64Decode(csrFor(t, k, names...))
		if err != nil {
			t.Fatal(err)
		}
		point := elliptic.Marshal(k.Curve, k.X, k.Y) //nolint:staticcheck // the raw point, to find it in the DER
		i := bytes.Index(der, point)
		if i < 0 {
			t.Fatal("the CSR does not hold the public point")
		}
		der[i+len(point)-1] ^= 1 // y changes: the point leaves the curve
		p := wantProblem(t, e.as(t, a, o.obj.Finalize, finalizePayload(t, b64(der))), acme.BadCSR, http.StatusBadRequest)
		if p.Detail == "" {
			t.Error("no detail")
		}
	})
	for _, tt := range []struct {
		name   string
		key    func(t *testing.T) crypto.Signer
		detail string
	}{
		{"a modulus with the prime factor 997 → badCSR", smallFactor, "divisible by a small prime"},
		{"primes 2^100 apart, found by Fermat's method → badCSR", fermat, "too close together"},
		{"primes of the ROCA structure → badCSR", roca, "ROCA"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := wantProblem(t, e.as(t, a, o.obj.Finalize, finalizePayload(t, csrFor(t, tt.key(t), names...))), acme.BadCSR, http.StatusBadRequest)
			if !strings.Contains(p.Detail, tt.detail) {
				t.Errorf("detail %q does not say %q", p.Detail, tt.detail)
			}
			if got := decodeJSON[acme.Order](t, e.as(t, a, o.url, nil)).Status; got != acme.StatusReady {
				t.Errorf("after a refused finalize the order is %s, want ready", got)
			}
		})
	}
}
