package keys

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/acme"
)

// Test keys are public keys only: real ones from testdata (made once with openssl),
// and broken ones built from deterministic randomness so every run tests the same
// moduli.

func loadRSA(t *testing.T, file string) *rsa.PublicKey {
	t.Helper()
	data, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM block", file)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return pub.(*rsa.PublicKey)
}

func newRand(seed byte) *mrand.ChaCha8 {
	return mrand.NewChaCha8([32]byte{seed})
}

// randomBits returns a random number of exactly bits bits whose two top bits are set,
// so that the product of two such numbers has exactly 2·bits bits.
func randomBits(rng *mrand.ChaCha8, bits int) *big.Int {
	buf := make([]byte, (bits+7)/8)
	_, _ = rng.Read(buf)
	x := new(big.Int).SetBytes(buf)
	x.Rsh(x, uint(len(buf)*8-bits))
	x.SetBit(x, bits-1, 1)
	x.SetBit(x, bits-2, 1)
	return x
}

// nextPrime returns the smallest prime ≥ x.
func nextPrime(x *big.Int) *big.Int {
	p := new(big.Int).SetBit(x, 0, 1)
	for !p.ProbablyPrime(0) {
		p.Add(p, big.NewInt(2))
	}
	return p
}

func rsaKey(n *big.Int) *rsa.PublicKey { return &rsa.PublicKey{N: n, E: 65537} }

// modulusOfBits returns a number of exactly bits bits with no prime factor below 1000
// except those in factors, which it is divisible by: a modulus refused only for them.
func modulusOfBits(t *testing.T, rng *mrand.ChaCha8, bits int, factors ...int64) *big.Int {
	t.Helper()
	f := big.NewInt(1)
	for _, p := range factors {
		f.Mul(f, big.NewInt(p))
	}
	for range 1000 {
		r := randomBits(rng, bits)
		r.Div(r, f)
		if r.Bit(0) == 1 && new(big.Int).GCD(nil, nil, r, smallPrimeProduct).Cmp(big.NewInt(1)) == 0 {
			return r.Mul(r, f)
		}
	}
	t.Fatal("no modulus found")
	return nil
}

// fermatModulus returns p·q with p a 1024-bit prime and q the next prime after p+gap.
func fermatModulus(rng *mrand.ChaCha8, gap *big.Int) *big.Int {
	p := nextPrime(randomBits(rng, 1024))
	q := nextPrime(new(big.Int).Add(p, gap))
	return new(big.Int).Mul(p, q)
}

// rocaModulus returns the product of two 1024-bit primes built as Infineon's RSALib
// built them: k·M + (65537^a mod M), M the product of the primes 2 to 167.
func rocaModulus(rng *mrand.ChaCha8) *big.Int {
	m := rocaM()
	prime := func() *big.Int {
		for {
			k := new(big.Int).Div(randomBits(rng, 1024), m)
			a := big.NewInt(int64(rng.Uint64() % (1 << 20)))
			p := new(big.Int).Exp(big.NewInt(65537), a, m)
			p.Add(p, k.Mul(k, m))
			if p.BitLen() == 1024 && p.ProbablyPrime(0) {
				return p
			}
		}
	}
	return new(big.Int).Mul(prime(), prime())
}

// rocaM is M: the product of the primes 2 to 167.
func rocaM() *big.Int {
	m := big.NewInt(2)
	for _, r := range rocaPrimes {
		m.Mul(m, big.NewInt(int64(r)))
	}
	return m
}

func ecdsaKey(t *testing.T, c elliptic.Curve) *ecdsa.PublicKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &k.PublicKey
}

// secp256k1 is not in the standard library; a caller could still hand us its params.
var secp256k1 = func() *elliptic.CurveParams {
	hex := func(s string) *big.Int { n, _ := new(big.Int).SetString(s, 16); return n }
	return &elliptic.CurveParams{
		Name:    "secp256k1",
		BitSize: 256,
		P:       hex("fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f"),
		N:       hex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"),
		B:       big.NewInt(7),
		Gx:      hex("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"),
		Gy:      hex("483ada7726a48adbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8d483b8"),
	}
}()

// rule is one row: the key and, for each function, "" to accept or a detail fragment
// the refusal must carry.
type rule struct {
	name        string
	key         crypto.PublicKey
	accountWant string
	certWant    string
}

func runRules(t *testing.T, rows []rule) {
	t.Helper()
	for _, r := range rows {
		t.Run(r.name+"/account", func(t *testing.T) {
			expect(t, CheckAccountKey(r.key, nil), acme.BadPublicKey, r.accountWant)
		})
		t.Run(r.name+"/certificate", func(t *testing.T) {
			expect(t, CheckCertificateKey(r.key, nil), acme.BadCSR, r.certWant)
		})
	}
}

func expect(t *testing.T, err error, kind acme.ErrorKind, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("refused a good key: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("accepted; want a %s refusal containing %q", kind, want)
	}
	ae, ok := acme.AsError(err)
	if !ok || ae.Kind != kind {
		t.Fatalf("got %v (%T); want kind %s", err, err, kind)
	}
	if !strings.Contains(ae.Detail, want) {
		t.Fatalf("detail %q does not contain %q", ae.Detail, want)
	}
}

// same returns a row that both functions answer alike.
func same(name string, key crypto.PublicKey, want string) rule {
	return rule{name, key, want, want}
}

func TestRSASize(t *testing.T) {
	rng := newRand(1)
	const allowed = "use 2048, 3072 or 4096 bits"
	runRules(t, []rule{
		same("2048 bits accepted", loadRSA(t, "rsa2048.pem"), ""),
		same("3072 bits accepted", loadRSA(t, "rsa3072.pem"), ""),
		same("4096 bits accepted", loadRSA(t, "rsa4096.pem"), ""),
		same("1024 bits too small", rsaKey(modulusOfBits(t, rng, 1024)),
			"RSA key of 1024 bits is too small; "+allowed),
		same("2047 bits too small", rsaKey(modulusOfBits(t, rng, 2047)), "2047 bits is too small; "+allowed),
		same("2049 bits not a size", rsaKey(modulusOfBits(t, rng, 2049)), "2049 bits is not an accepted size; "+allowed),
		same("4097 bits too large", rsaKey(modulusOfBits(t, rng, 4097)), "4097 bits is too large; "+allowed),
		same("8192 bits too large", rsaKey(modulusOfBits(t, rng, 8192)), "8192 bits is too large; "+allowed),
		same("zero modulus", rsaKey(new(big.Int)), "not positive"),
		same("negative modulus", rsaKey(new(big.Int).Neg(loadRSA(t, "rsa2048.pem").N)), "not positive"),
	})
}

func TestRSAExponent(t *testing.T) {
	withE := func(e int) *rsa.PublicKey {
		k := *loadRSA(t, "rsa2048.pem")
		k.E = e
		return &k
	}
	runRules(t, []rule{
		same("65537 accepted", withE(65537), ""),
		same("3 refused", withE(3), "RSA public exponent 3 is not accepted; use 65537"),
		same("17 refused", withE(17), "exponent 17 is not accepted"),
		same("65539 refused", withE(65539), "exponent 65539 is not accepted"),
		same("1 refused", withE(1), "exponent 1 is not accepted"),
	})
}

func TestRSASmallFactor(t *testing.T) {
	rng := newRand(2)
	const want = "divisible by a small prime"
	runRules(t, []rule{
		same("sound 2048-bit modulus accepted", rsaKey(modulusOfBits(t, rng, 2048)), ""),
		same("factor 997 refused", rsaKey(modulusOfBits(t, rng, 2048, 997)), want),
		same("factor 991 in a 3072-bit modulus refused", rsaKey(modulusOfBits(t, rng, 3072, 991)), want),
		same("factor 3 refused", rsaKey(modulusOfBits(t, rng, 2048, 3)), want),
		same("even modulus refused", rsaKey(modulusOfBits(t, rng, 2048, 2)), want),
		same("factor 1009 is above the bound and accepted", rsaKey(modulusOfBits(t, rng, 2048, 1009)), ""),
	})
}

func TestRSAFermat(t *testing.T) {
	rng := newRand(3)
	const want = "too close together"
	runRules(t, []rule{
		same("primes 2^20 apart refused", rsaKey(fermatModulus(rng, new(big.Int).Lsh(big.NewInt(1), 20))), want),
		same("primes 2^500 apart refused", rsaKey(fermatModulus(rng, new(big.Int).Lsh(big.NewInt(1), 500))), want),
		same("next prime refused", rsaKey(fermatModulus(rng, big.NewInt(1))), want),
		// (p-q)²/8√n ≈ 2^33 rounds: far beyond the bound, so not found.
		same("primes 2^530 apart accepted", rsaKey(fermatModulus(rng, new(big.Int).Lsh(big.NewInt(1), 530))), ""),
	})
}

func TestFermatFactorRounds(t *testing.T) {
	// Rounds needed for p·q: (p+q)/2 - ⌈√(pq)⌉ + 1, worked out for the rows below.
	tests := []struct {
		name   string
		p, q   int64
		rounds int
		found  bool
	}{
		{"close primes in one round", 1000003, 1000033, 1, true},
		{"a square in one round", 1000003, 1000003, 1, true},
		{"needs 3 rounds, given 3", 1000003, 1004027, 3, true},
		{"needs 3 rounds, given 2", 1000003, 1004027, 2, false},
		{"needs 100 rounds, given 100", 1000003, 1028389, fermatRounds, true},
		{"needs 101 rounds, given 100", 1000003, 1028509, fermatRounds, false},
		{"distant primes never within 100 rounds", 3, 1000003, fermatRounds, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := big.NewInt(tt.p * tt.q)
			f := fermatFactor(n, tt.rounds)
			if (f != nil) != tt.found {
				t.Fatalf("fermatFactor(%d, %d) = %v; want found=%v", n, tt.rounds, f, tt.found)
			}
			if f != nil && f.Int64() != tt.p {
				t.Fatalf("factor %v; want %d", f, tt.p)
			}
		})
	}
}

func TestRSAROCA(t *testing.T) {
	roca := rocaModulus(newRand(4))
	generated, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	const want = "ROCA fingerprint (CVE-2017-15361)"
	runRules(t, []rule{
		same("Infineon-style primes refused", rsaKey(roca), want),
		same("freshly generated key accepted", &generated.PublicKey, ""),
		same("openssl 2048-bit key accepted", loadRSA(t, "rsa2048.pem"), ""),
		same("openssl 4096-bit key accepted", loadRSA(t, "rsa4096.pem"), ""),
	})
}

func TestROCAFingerprint(t *testing.T) {
	roca := rocaModulus(newRand(5))
	m := rocaM()
	// Moving the residue mod 157 alone, to a quadratic non-residue, leaves the subgroup
	// generated by 65537 mod 157 (of index 2, so the quadratic residues).
	broken := new(big.Int).Set(roca)
	step := new(big.Int).Div(m, big.NewInt(157))
	for big.Jacobi(broken, big.NewInt(157)) != -1 {
		broken.Add(broken, step)
	}
	tests := []struct {
		name string
		n    *big.Int
		want bool
	}{
		{"RSALib-style modulus", roca, true},
		{"RSALib-style modulus plus M", new(big.Int).Add(roca, m), true},
		{"residue mod 157 outside the subgroup", broken, false},
		{"openssl 3072-bit modulus", loadRSA(t, "rsa3072.pem").N, false},
		{"65537 itself", big.NewInt(65537), true},
		{"65537 squared", big.NewInt(65537 * 65537), true},
		{"divisible by 3", big.NewInt(3 * 65537), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hasROCAFingerprint(tt.n); got != tt.want {
				t.Fatalf("hasROCAFingerprint = %v; want %v", got, tt.want)
			}
		})
	}
}

func TestECDSA(t *testing.T) {
	p256 := ecdsaKey(t, elliptic.P256())
	offCurve := &ecdsa.PublicKey{Curve: elliptic.P256(), X: p256.X, Y: new(big.Int).Add(p256.Y, big.NewInt(1))}
	infinity := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int), Y: new(big.Int)}
	xPlusP := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).Add(p256.X, elliptic.P256().Params().P), Y: p256.Y}
	yMinusP := &ecdsa.PublicKey{Curve: elliptic.P256(), X: p256.X, Y: new(big.Int).Sub(p256.Y, elliptic.P256().Params().P)}
	noY := &ecdsa.PublicKey{Curve: elliptic.P256(), X: p256.X}
	params := &ecdsa.PublicKey{Curve: elliptic.P256().Params(), X: p256.X, Y: p256.Y}
	k1 := &ecdsa.PublicKey{Curve: secp256k1, X: secp256k1.Gx, Y: secp256k1.Gy}
	const invalid = "not a valid point on P-256"
	runRules(t, []rule{
		same("P-256 accepted", p256, ""),
		same("P-384 accepted", ecdsaKey(t, elliptic.P384()), ""),
		same("P-224 refused", ecdsaKey(t, elliptic.P224()), "curve P-224 is not accepted; use P-256 or P-384"),
		same("P-521 refused", ecdsaKey(t, elliptic.P521()), "curve P-521 is not accepted"),
		same("secp256k1 refused", k1, "curve secp256k1 is not accepted"),
		same("P-256 params without the standard implementation refused", params, "non-standard implementation of P-256"),
		same("point off the curve refused", offCurve, invalid),
		same("point at infinity refused", infinity, invalid),
		same("x coordinate not below p refused", xPlusP, invalid),
		same("negative y coordinate refused", yMinusP, invalid),
		same("missing y coordinate refused", noY, "has no point"),
		same("no curve refused", &ecdsa.PublicKey{X: p256.X, Y: p256.Y}, "names no curve"),
		same("nil ECDSA key refused", (*ecdsa.PublicKey)(nil), "empty"),
	})
}

func TestEd25519(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(newRand(6))
	if err != nil {
		t.Fatal(err)
	}
	runRules(t, []rule{
		{"Ed25519 accepted for accounts, refused for certificates", pub, "",
			"Ed25519 keys cannot be certified; SOTE certificates need an RSA"},
		{"31-byte Ed25519 key refused", pub[:31], "is 31 bytes, not 32", "cannot be certified"},
	})
}

func TestUnknownKeys(t *testing.T) {
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	runRules(t, []rule{
		{"X25519 key refused", x25519.PublicKey(), "use RSA (2048, 3072 or 4096 bits), ECDSA (P-256 or P-384) or Ed25519",
			"use RSA (2048, 3072 or 4096 bits) or ECDSA (P-256 or P-384)"},
		same("RSA key by value refused", *loadRSA(t, "rsa2048.pem"), "this key type is not accepted"),
		same("private key refused", &rsa.PrivateKey{}, "this key type is not accepted"),
		same("nil refused", nil, "this key type is not accepted"),
		same("nil RSA key refused", (*rsa.PublicKey)(nil), "empty"),
		same("RSA key without modulus refused", &rsa.PublicKey{E: 65537}, "empty"),
	})
}

// TestSmallPrivateScalarsAreRefused: the review's P-256 key with private scalar
// 12345 was certified; keys whose scalar is ±n, n ≤ 2^16, are refused on both
// curves, at the ends of the range and inside it, and ordinary keys pass.
func TestSmallPrivateScalarsAreRefused(t *testing.T) {
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		for _, n := range []int64{1, 2, 3, 12345, 65535, 1 << 16} {
			for _, neg := range []bool{false, true} {
				d := big.NewInt(n)
				if neg {
					d.Sub(c.Params().N, d)
				}
				x, y := c.ScalarBaseMult(d.Bytes())
				err := CheckCertificateKey(&ecdsa.PublicKey{Curve: c, X: x, Y: y}, nil)
				if err == nil || !strings.Contains(err.Error(), "private scalar is a small number") {
					t.Errorf("%s scalar %d (negated %t): %v, want a refusal", c.Params().Name, n, neg, err)
				}
			}
		}
		x, y := c.ScalarBaseMult(big.NewInt(1<<16 + 1).Bytes())
		if err := CheckCertificateKey(&ecdsa.PublicKey{Curve: c, X: x, Y: y}, nil); err != nil {
			t.Errorf("%s scalar 2^16+1, outside the range: %v", c.Params().Name, err)
		}
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckCertificateKey(&k.PublicKey, nil); err != nil {
			t.Errorf("a generated %s key: %v", c.Params().Name, err)
		}
	}
}

// TestSmallScalarTableIsWhole: the embedded table holds every multiple once per
// curve, sorted, so a binary search finds each.
func TestSmallScalarTableIsWhole(t *testing.T) {
	if len(smallScalars) != 2*maxSmallScalar*smallRecord {
		t.Fatalf("the table has %d bytes, want %d: run go generate ./policy/keys", len(smallScalars), 2*maxSmallScalar*smallRecord)
	}
	for c, table := range smallTables {
		seen := make([]bool, maxSmallScalar)
		var last uint32
		for i := range maxSmallScalar {
			p := binary.BigEndian.Uint32(table[i*smallRecord:])
			if p < last {
				t.Fatalf("%s: record %d is out of order", c.Params().Name, i)
			}
			last = p
			seen[binary.BigEndian.Uint16(table[i*smallRecord+4:])] = true
		}
		for k, ok := range seen {
			if !ok {
				t.Fatalf("%s: multiple %d is missing", c.Params().Name, k+1)
			}
		}
	}
}
