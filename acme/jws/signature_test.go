package jws_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
)

// sigBytes is the decoded signature of a flattened JWS body.
func sigBytes(t testing.TB, body []byte) []byte {
	t.Helper()
	_, _, s := parts(t, body)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withSig is body with its signature replaced by sig.
func withSig(t testing.TB, body, sig []byte) []byte {
	t.Helper()
	return edit(t, body, func(m map[string]any) { m["signature"] = base64.RawURLEncoding.EncodeToString(sig) })
}

// flipBit is a copy of b with bit i (counting from the first byte's top bit) inverted.
func flipBit(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i/8] ^= 0x80 >> (i % 8)
	return c
}

// TestVerifySignature checks Verify's signature checks per alg (RFC 7518 section 3):
// a genuine signature verifies, and any change to what was signed, to the signature or
// to its encoding is refused as an invalid signature.
func TestVerifySignature(t *testing.T) {
	k := keys()
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	const payload = `{"identifiers":[{"type":"dns","value":"www.example.fi"}]}`

	type tc struct {
		name string
		body []byte
		key  crypto.Signer // whose public key Verify gets
		kind acme.ErrorKind
	}
	var cases []tc
	for _, alg := range []struct {
		name string
		key  crypto.Signer
	}{{"RS256", k.rsa}, {"ES256", k.p256}, {"ES384", k.p384}, {"EdDSA", k.ed}} {
		body := sign(t, alg.key, testKID, testNonce, testURL, payload)
		sig := sigBytes(t, body)
		last := 8*len(sig) - 1
		cases = append(cases,
			tc{alg.name + " genuine signature verifies", body, alg.key, ""},
			tc{alg.name + " POST-as-GET verifies", sign(t, alg.key, testKID, testNonce, testURL, ""), alg.key, ""},
			tc{alg.name + " first signature bit flipped", withSig(t, body, flipBit(sig, 0)), alg.key, acme.Malformed},
			tc{alg.name + " middle signature bit flipped", withSig(t, body, flipBit(sig, last/2)), alg.key, acme.Malformed},
			tc{alg.name + " last signature bit flipped", withSig(t, body, flipBit(sig, last)), alg.key, acme.Malformed},
			tc{alg.name + " signature truncated by a byte", withSig(t, body, sig[:len(sig)-1]), alg.key, acme.Malformed},
			tc{alg.name + " signature extended by a zero byte", withSig(t, body, append(append([]byte{}, sig...), 0)), alg.key, acme.Malformed},
			tc{alg.name + " signature of all zero bytes", withSig(t, body, make([]byte, len(sig))), alg.key, acme.Malformed},
			tc{alg.name + " payload changed after signing", edit(t, body, func(m map[string]any) {
				m["payload"] = b64(`{"identifiers":[{"type":"dns","value":"www.example.fj"}]}`)
			}), alg.key, acme.Malformed},
			tc{alg.name + " payload emptied after signing", edit(t, body, func(m map[string]any) { m["payload"] = "" }), alg.key, acme.Malformed},
			tc{alg.name + " protected header changed after signing", edit(t, body, func(m map[string]any) {
				m["protected"] = b64(hdr(str("alg", alg.name), str("kid", testKID), str("nonce", testNonce), str("url", testURL+"x")))
			}), alg.key, acme.Malformed},
		)
	}

	es256 := sign(t, k.p256, testKID, testNonce, testURL, payload)
	rs := sigBytes(t, es256)
	der, err := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(rs[:32]), new(big.Int).SetBytes(rs[32:])})
	if err != nil {
		t.Fatal(err)
	}
	es384 := sign(t, k.p384, testKID, testNonce, testURL, payload)
	cases = append(cases,
		tc{"ES256 signature of 63 bytes", withSig(t, es256, rs[:63]), k.p256, acme.Malformed},
		tc{"ES256 signature of 65 bytes", withSig(t, es256, append(append([]byte{}, rs...), 0)), k.p256, acme.Malformed},
		tc{"ES256 signature with a leading zero byte (65 bytes)", withSig(t, es256, append([]byte{0}, rs...)), k.p256, acme.Malformed},
		tc{"ES256 signature R||S of P-384 size", withSig(t, es256, append(append(make([]byte, 16), rs[:32]...), append(make([]byte, 16), rs[32:]...)...)), k.p256, acme.Malformed},
		tc{"ES256 signature with R and S swapped", withSig(t, es256, append(append([]byte{}, rs[32:]...), rs[:32]...)), k.p256, acme.Malformed},
		tc{"ES256 signature DER-encoded instead of R||S", withSig(t, es256, der), k.p256, acme.Malformed},
		tc{"ES384 JWS verified with a P-256 key", es384, k.p256, acme.BadSignatureAlgorithm},
		tc{"ES256 JWS verified with a P-384 key", es256, k.p384, acme.BadSignatureAlgorithm},
		tc{"RS256 signature under a different RSA key", sign(t, otherRSA, testKID, testNonce, testURL, payload), k.rsa, acme.Malformed},
		tc{"ES256 signature under a different P-256 key", sign(t, mustEC(t), testKID, testNonce, testURL, payload), k.p256, acme.Malformed},
		tc{"EdDSA signature verified with an RSA key", sign(t, k.ed, testKID, testNonce, testURL, payload), k.rsa, acme.BadSignatureAlgorithm},
	)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := jws.Parse(c.body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := m.Verify(jwstest.JWK(c.key))
			wantKind(t, err, c.kind)
			if c.kind == acme.Malformed {
				if ae, _ := acme.AsError(err); ae.Detail != "JWS signature is invalid" {
					t.Errorf("detail %q, want %q", ae.Detail, "JWS signature is invalid")
				}
			}
			if c.kind != "" && got != nil {
				t.Errorf("refused Verify returned payload %q", got)
			}
		})
	}
}

// TestVerifyAgreesWithGoJose checks Verify against go-jose, the reference: for random
// messages of every alg, genuine and mutated (one byte of the signature, payload or
// protected header changed, the ECDSA S replaced by N-S, another key), Parse and
// Verify accept exactly when go-jose's ParseSignedJSON and Verify do, and return the
// same payload.
func TestVerifyAgreesWithGoJose(t *testing.T) {
	k := keys()
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(19, 2026))
	n := 60
	if testing.Short() {
		n = 10
	}

	type signer struct {
		alg   string
		fresh func() crypto.Signer // a new key (RSA reuses two: generation is slow)
	}
	rsaKeys := []crypto.Signer{k.rsa, otherRSA}
	algs := []signer{
		{alg: "RS256", fresh: func() crypto.Signer { return rsaKeys[rng.IntN(2)] }},
		{alg: "ES256", fresh: func() crypto.Signer { return mustECOn(t, elliptic.P256()) }},
		{alg: "ES384", fresh: func() crypto.Signer { return mustECOn(t, elliptic.P384()) }},
		{alg: "EdDSA", fresh: func() crypto.Signer {
			_, ed, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			return ed
		}},
	}

	accepted, refused := 0, 0
	for _, a := range algs {
		for i := range n {
			key := a.fresh()
			kid := ""
			if rng.IntN(2) == 0 {
				kid = testKID
			}
			nonce := ""
			if rng.IntN(4) != 0 {
				nonce = testNonce
			}
			payload := ""
			if rng.IntN(5) != 0 { // otherwise POST-as-GET
				b, _ := json.Marshal(map[string]string{"value": randomText(rng, rng.IntN(300))})
				payload = string(b)
			}
			body := sign(t, key, kid, nonce, testURL+fmt.Sprint(i), payload)
			verifyKey := key
			if rng.IntN(8) == 0 {
				verifyKey = a.fresh() // a different key of the same type (for RSA, maybe the same)
			}

			variants := map[string][]byte{"genuine": body}
			for _, member := range []string{"signature", "payload", "protected"} {
				variants[member+" byte changed"] = mutateMember(t, rng, body, member)
			}
			if ec, ok := key.(*ecdsa.PrivateKey); ok {
				variants["S replaced by N-S"] = withSig(t, body, negateS(sigBytes(t, body), ec.Curve))
			}
			for name, v := range variants {
				ours, errOurs := parseVerify(v, kid, verifyKey)
				ref, errRef := goJoseVerify(v, a.alg, verifyKey)
				if (errOurs == nil) != (errRef == nil) || string(ours) != string(ref) {
					t.Fatalf("%s #%d %s: Verify = %q, %v; go-jose = %q, %v\nbody %s", a.alg, i, name, ours, errOurs, ref, errRef, v)
				}
				if errOurs == nil {
					accepted++
				} else {
					refused++
				}
			}
		}
	}
	// Both outcomes must be exercised, or agreement proves nothing.
	if accepted < n || refused < n {
		t.Fatalf("accepted %d, refused %d: the cross-check is one-sided", accepted, refused)
	}
	t.Logf("agreed on %d accepted and %d refused messages", accepted, refused)
}

// parseVerify is the server's path: Parse, the key from jwk or the account, Verify.
func parseVerify(body []byte, kid string, accountKey crypto.Signer) ([]byte, error) {
	m, err := jws.Parse(body)
	if err != nil {
		return nil, err
	}
	key := m.JWK
	if kid != "" || key == nil {
		key = jwstest.JWK(accountKey)
	}
	return m.Verify(key)
}

// goJoseVerify is the reference: go-jose's parse and verify with the same key. For a
// jwk message go-jose, like the server, verifies with the key the header carries.
func goJoseVerify(body []byte, alg string, accountKey crypto.Signer) ([]byte, error) {
	sig, err := jose.ParseSignedJSON(string(body), []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		return nil, err
	}
	var key any = accountKey.Public()
	if len(sig.Signatures) == 1 && sig.Signatures[0].Protected.JSONWebKey != nil {
		key = sig.Signatures[0].Protected.JSONWebKey.Key
	}
	p, err := sig.Verify(key)
	if err == nil && p == nil {
		p = []byte{}
	}
	return p, err
}

// mutateMember changes one byte of the decoded member (protected, payload, signature)
// and encodes it again, so the body still parses as far as the change allows.
func mutateMember(t testing.TB, rng *mrand.Rand, body []byte, member string) []byte {
	t.Helper()
	return edit(t, body, func(m map[string]any) {
		b, err := base64.RawURLEncoding.DecodeString(m[member].(string))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			b = []byte{byte(rng.IntN(256))}
		} else {
			b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(255))
		}
		m[member] = base64.RawURLEncoding.EncodeToString(b)
	})
}

// negateS turns an ECDSA R||S signature into R||(N-S), which verifies as well: ECDSA
// signatures are malleable and RFC 7518 does not require a low S.
func negateS(sig []byte, curve elliptic.Curve) []byte {
	size := len(sig) / 2
	s := new(big.Int).SetBytes(sig[size:])
	s.Sub(curve.Params().N, s)
	out := append([]byte{}, sig[:size]...)
	return append(out, s.FillBytes(make([]byte, size))...)
}

func randomText(rng *mrand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789.-äö\"\\ "
	r := []rune(alphabet)
	out := make([]rune, n)
	for i := range out {
		out[i] = r[rng.IntN(len(r))]
	}
	return string(out)
}

func mustECOn(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
