package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/authority"
	"github.com/varmenne/varmenne/acme/jws"
	"github.com/varmenne/varmenne/acme/server"
	"github.com/varmenne/varmenne/policy/keys"
	"github.com/varmenne/varmenne/store"
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

// TestDebianWeakKeysAreRefused: with a list of Debian's weak keys loaded (the
// format of openssl-blacklist, as serve --weak-keys reads it), a listed key is
// refused as an account key (badPublicKey, no account made) and as a certificate
// key (badCSR, the order stays ready and nothing is signed), while an RSA key not
// listed still gets its account and its certificate.
func TestDebianWeakKeysAreRefused(t *testing.T) {
	t.Parallel()
	rsaKey := func(t *testing.T) *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	listedAccount, listedCert := rsaKey(t), rsaKey(t)
	list := filepath.Join(t.TempDir(), "blacklist.RSA-2048")
	text := "# two keys this test lists\n" + keys.WeakKeyEntry(&listedAccount.PublicKey) + "\n" + keys.WeakKeyEntry(&listedCert.PublicKey) + "\n"
	if err := os.WriteFile(list, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	weak, err := keys.ReadWeakKeys(list)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvAuthority(t, server.Config{}, nil, authority.Config{WeakKeys: weak})
	const detail = "predictable keys Debian's OpenSSL generated in 2006–2008 (CVE-2008-0166)"

	t.Run("newAccount with a listed account key → badPublicKey", func(t *testing.T) {
		r := e.post(t, listedAccount, "", e.dir.NewAccount, newAccountPayload(t, e.eab(t, orgA, listedAccount), "mailto:admin@"+domainA))
		if p := wantProblem(t, r, acme.BadPublicKey, http.StatusBadRequest); !strings.Contains(p.Detail, detail) {
			t.Errorf("detail %q does not say %q", p.Detail, detail)
		}
		tp, err := jws.Thumbprint(&jose.JSONWebKey{Key: listedAccount.Public()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.GetAccountByThumbprint(context.Background(), tp); err == nil {
			t.Error("an account was made with the listed key")
		}
	})
	t.Run("an RSA account key not listed is accepted", func(t *testing.T) {
		e.registerKey(t, orgA, rsaKey(t))
	})

	a := e.register(t, orgA)
	names := []string{"debian." + domainA}
	o := e.readyOrder(t, a, names...)
	t.Run("finalize with a listed key → badCSR, no certificate", func(t *testing.T) {
		r := e.as(t, a, o.obj.Finalize, finalizePayload(t, csrFor(t, listedCert, names...)))
		if p := wantProblem(t, r, acme.BadCSR, http.StatusBadRequest); !strings.Contains(p.Detail, detail) {
			t.Errorf("detail %q does not say %q", p.Detail, detail)
		}
		if got := decodeJSON[acme.Order](t, e.as(t, a, o.url, nil)); got.Status != acme.StatusReady || got.Certificate != "" {
			t.Errorf("after the refusal the order is %s with certificate %q, want ready and none", got.Status, got.Certificate)
		}
		certs, err := e.st.FindCertificates(context.Background(), store.CertificateFilter{OrgOID: orgA})
		if err != nil || len(certs) != 0 {
			t.Errorf("certificates of the organisation: %d, %v; want none", len(certs), err)
		}
		if intents, err := e.st.IntentsWithoutCertificate(context.Background()); err != nil || len(intents) != 0 {
			t.Errorf("issuance intents: %d, %v; want none (nothing was to be signed)", len(intents), err)
		}
	})
	t.Run("finalize with an RSA key not listed → a certificate", func(t *testing.T) {
		r := e.as(t, a, o.obj.Finalize, finalizePayload(t, csrFor(t, rsaKey(t), names...)))
		wantStatus(t, r, http.StatusOK)
		if got := e.poll(t, a, o, acme.StatusValid); got.Certificate == "" {
			t.Error("valid order without a certificate URL")
		}
	})
}
