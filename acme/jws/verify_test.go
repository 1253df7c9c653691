package jws_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
)

func TestVerify(t *testing.T) {
	k := keys()
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	payload := `{"identifiers":[{"type":"dns","value":"www.example.fi"}]}`
	jwk256 := jwkJSON(t, k.p256)

	kidBody := sign(t, k.p256, testKID, testNonce, testURL, payload)
	P, _, _ := parts(t, kidBody)

	// An ES256 signature in ASN.1 DER, as crypto.Signer returns it, instead of r||s.
	derBody := func() []byte {
		pl := b64(payload)
		d := sha256.Sum256([]byte(P + "." + pl))
		der, err := ecdsa.SignASN1(rand.Reader, k.p256, d[:])
		if err != nil {
			t.Fatal(err)
		}
		return edit(t, kidBody, func(m map[string]any) { m["signature"] = base64.RawURLEncoding.EncodeToString(der) })
	}()

	cases := []struct {
		name    string
		body    []byte
		key     *jose.JSONWebKey // nil: the message's own jwk
		payload string
		kind    acme.ErrorKind
	}{
		{"RS256 with its jwk verifies", sign(t, k.rsa, "", testNonce, testURL, payload), nil, payload, ""},
		{"ES256 with its jwk verifies", sign(t, k.p256, "", testNonce, testURL, payload), nil, payload, ""},
		{"ES384 with its jwk verifies", sign(t, k.p384, "", testNonce, testURL, payload), nil, payload, ""},
		{"EdDSA with its jwk verifies", sign(t, k.ed, "", testNonce, testURL, payload), nil, payload, ""},
		{"kid message verifies with the account key", kidBody, jwstest.JWK(k.p256), payload, ""},
		{"a private account key is used by its public part", kidBody, &jose.JSONWebKey{Key: k.p256}, payload, ""},
		{"POST-as-GET returns an empty payload", sign(t, k.rsa, testKID, testNonce, testURL, ""), jwstest.JWK(k.rsa), "", ""},

		{"tampered payload", edit(t, kidBody, func(m map[string]any) { m["payload"] = b64(`{"identifiers":[]}`) }),
			jwstest.JWK(k.p256), "", acme.Malformed},
		{"tampered protected header", edit(t, kidBody, func(m map[string]any) {
			m["protected"] = b64(hdr(str("alg", "ES256"), str("kid", testKID), str("nonce", testNonce), str("url", testURL+"x")))
		}), jwstest.JWK(k.p256), "", acme.Malformed},
		{"signed by another key than the jwk",
			signed(t, other, hdr(str("alg", "ES256"), member("jwk", jwk256), str("nonce", testNonce), str("url", testURL)), payload),
			nil, "", acme.Malformed},
		{"kid message checked against another account key", kidBody, jwstest.JWK(other), "", acme.Malformed},
		{"ES256 signature in ASN.1 DER form", derBody, jwstest.JWK(k.p256), "", acme.Malformed},
		{"signature of the wrong length", edit(t, kidBody, func(m map[string]any) { m["signature"] = b64("short") }),
			jwstest.JWK(k.p256), "", acme.Malformed},

		// The alg must fit the account key found by kid.
		{"RS256 with an EC account key", signed(t, k.rsa, hdr(str("alg", "RS256"), str("kid", testKID), str("url", testURL)), payload),
			jwstest.JWK(k.p256), "", acme.BadSignatureAlgorithm},
		{"ES256 with a P-384 account key", kidBody, jwstest.JWK(k.p384), "", acme.BadSignatureAlgorithm},
		{"EdDSA with an RSA account key", sign(t, k.ed, testKID, testNonce, testURL, payload), jwstest.JWK(k.rsa), "", acme.BadSignatureAlgorithm},
		{"ES256 with an Ed25519 account key", kidBody, jwstest.JWK(k.ed), "", acme.BadSignatureAlgorithm},
		{"account key on an unsupported curve", kidBody, jwstest.JWK(k.p224), "", acme.BadPublicKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := jws.Parse(tc.body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			key := tc.key
			if key == nil {
				key = m.JWK
			}
			got, err := m.Verify(key)
			wantKind(t, err, tc.kind)
			if tc.kind != "" {
				if got != nil {
					t.Errorf("refused Verify returned payload %q", got)
				}
				return
			}
			if got == nil || string(got) != tc.payload {
				t.Errorf("payload = %q (nil %v), want %q", got, got == nil, tc.payload)
			}
		})
	}
}

func TestVerifyInvalidSignatureDetail(t *testing.T) {
	k := keys()
	body := edit(t, sign(t, k.ed, "", testNonce, testURL, `{}`), func(m map[string]any) { m["payload"] = b64(`{"x":1}`) })
	m, err := jws.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Verify(m.JWK)
	if ae, ok := acme.AsError(err); !ok || ae.Detail != "JWS signature is invalid" {
		t.Fatalf("got %v, want malformed %q", err, "JWS signature is invalid")
	}
}

func TestVerifyCallerErrors(t *testing.T) {
	k := keys()
	m, err := jws.Parse(sign(t, k.p256, testKID, testNonce, testURL, `{}`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		m    *jws.Message
		key  *jose.JSONWebKey
	}{
		{"nil key", m, nil},
		{"key without Key", m, &jose.JSONWebKey{}},
		{"symmetric key", m, &jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef")}},
		{"message not from Parse", &jws.Message{Alg: "ES256"}, jwstest.JWK(k.p256)},
		{"zero message", &jws.Message{}, jwstest.JWK(k.p256)},
		{"nil message", nil, jwstest.JWK(k.p256)},
		{"message not from Parse with a copied header", &jws.Message{Alg: m.Alg, URL: m.URL, KID: m.KID, Nonce: m.Nonce}, jwstest.JWK(k.p256)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.m.Verify(tc.key)
			if err == nil {
				t.Fatal("Verify succeeded")
			}
			// A caller bug is not a client refusal: the server must answer serverInternal.
			if _, ok := acme.AsError(err); ok {
				t.Fatalf("got client-facing %v for a caller bug", err)
			}
		})
	}
}

func TestParseKeyChange(t *testing.T) {
	k := keys()
	const keyChangeURL = "https://acme.test/acme/key-change"
	inner := `{"account":"` + testKID + `","oldKey":` + jwkJSON(t, k.rsa) + `}`
	jwk := member("jwk", jwkJSON(t, k.p256))
	url := str("url", keyChangeURL)
	es256 := func(members ...string) []byte { return signed(t, k.p256, hdr(members...), inner) }

	cases := []struct {
		name string
		body []byte
		kind acme.ErrorKind
	}{
		{"jwk without nonce is accepted", sign(t, k.p256, "", "", keyChangeURL, inner), ""},
		{"Ed25519 new key is accepted", sign(t, k.ed, "", "", keyChangeURL, inner), ""},
		{"kid instead of jwk", sign(t, k.p256, testKID, "", keyChangeURL, inner), acme.Malformed},
		{"nonce present", sign(t, k.p256, "", testNonce, keyChangeURL, inner), acme.Malformed},
		{"empty nonce present", es256(str("alg", "ES256"), jwk, str("nonce", ""), url), acme.Malformed},
		{"both jwk and kid", es256(str("alg", "ES256"), jwk, str("kid", testKID), url), acme.Malformed},
		{"url missing", es256(str("alg", "ES256"), jwk), acme.Malformed},
		{"alg none", es256(str("alg", "none"), jwk, url), acme.BadSignatureAlgorithm},
		{"alg does not fit the new key", es256(str("alg", "ES384"), jwk, url), acme.BadSignatureAlgorithm},
		{"private key as the new key", es256(str("alg", "ES256"), member("jwk", `{"kty":"EC","crv":"P-256","d":"AAAA","x":"AAAA","y":"AAAA"}`), url), acme.Malformed},
		{"unprotected header", edit(t, sign(t, k.p256, "", "", keyChangeURL, inner), func(m map[string]any) { m["header"] = map[string]any{} }), acme.Malformed},
		{"duplicate url", es256(str("alg", "ES256"), jwk, url, str("url", testURL)), acme.Malformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := jws.ParseKeyChange(tc.body)
			wantKind(t, err, tc.kind)
			if tc.kind != "" {
				return
			}
			if m.JWK == nil || m.KID != "" || m.Nonce != "" || m.URL != keyChangeURL {
				t.Fatalf("got JWK %v KID %q Nonce %q URL %q", m.JWK != nil, m.KID, m.Nonce, m.URL)
			}
			got, err := m.Verify(m.JWK)
			if err != nil || string(got) != inner {
				t.Fatalf("Verify = %q, %v", got, err)
			}
		})
	}
}

func TestThumbprint(t *testing.T) {
	// RFC 7638 section 3.1.
	const rfcJWK = `{"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}`
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON([]byte(rfcJWK)); err != nil {
		t.Fatal(err)
	}
	got, err := jws.Thumbprint(&k)
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; err != nil || got != want {
		t.Fatalf("Thumbprint = %q, %v; want %q", got, err, want)
	}
	if _, err := jws.Thumbprint(nil); err == nil {
		t.Error("Thumbprint(nil) succeeded")
	}
}

func TestKeyEqual(t *testing.T) {
	k := keys()
	edCopy := ed25519.PublicKey(append([]byte{}, k.ed.Public().(ed25519.PublicKey)...))
	cases := []struct {
		name string
		a, b *jose.JSONWebKey
		want bool
	}{
		{"same EC key from two JWK values", jwstest.JWK(k.p256), jwstest.JWK(k.p256), true},
		{"private and public halves of one key", &jose.JSONWebKey{Key: k.rsa}, jwstest.JWK(k.rsa), true},
		{"same Ed25519 key in separate memory", jwstest.JWK(k.ed), &jose.JSONWebKey{Key: edCopy}, true},
		{"JWK metadata does not matter", &jose.JSONWebKey{Key: k.p384.Public(), KeyID: "a", Algorithm: "ES384"}, jwstest.JWK(k.p384), true},
		{"two different P-256 keys", jwstest.JWK(k.p256), jwstest.JWK(mustEC(t)), false},
		{"RSA and EC keys", jwstest.JWK(k.rsa), jwstest.JWK(k.p256), false},
		{"nil and a key", nil, jwstest.JWK(k.p256), false},
		{"both nil", nil, nil, false},
		{"symmetric keys", &jose.JSONWebKey{Key: []byte("k")}, &jose.JSONWebKey{Key: []byte("k")}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := jws.KeyEqual(tc.a, tc.b); got != tc.want {
				t.Fatalf("KeyEqual = %v, want %v", got, tc.want)
			}
		})
	}
}

func mustEC(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
