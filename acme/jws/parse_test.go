package jws_test

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
)

// parts returns the three members of a flattened JWS body.
func parts(t testing.TB, body []byte) (protected, payload, signature string) {
	t.Helper()
	var m struct{ Protected, Payload, Signature string }
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m.Protected, m.Payload, m.Signature
}

func TestParse(t *testing.T) {
	k := keys()
	jwk256 := jwkJSON(t, k.p256)
	jwk384 := jwkJSON(t, k.p384)
	jwkRSA := jwkJSON(t, k.rsa)
	jwkEd := jwkJSON(t, k.ed)
	nonce, url := str("nonce", testNonce), str("url", testURL)
	// es256 signs a header made of members with the P-256 key.
	es256 := func(members ...string) []byte { return signed(t, k.p256, hdr(members...), `{}`) }
	withJWK := func(alg, jwk string) []byte {
		return es256(str("alg", alg), member("jwk", jwk), nonce, url)
	}

	valid := sign(t, k.p256, "", testNonce, testURL, `{}`)
	P, PL, S := parts(t, valid)
	raw := func(members ...string) []byte { return []byte(hdr(members...)) }
	set := func(name string, v any) []byte {
		return edit(t, valid, func(m map[string]any) { m[name] = v })
	}

	// A header whose standard-base64 encoding needs '+' or '/': '?' bytes encode to '/'.
	stdHeader := hdr(str("alg", "ES256"), member("jwk", jwk256), nonce, str("url", testURL+"?q=?????????"))
	stdProtected := base64.RawStdEncoding.EncodeToString([]byte(stdHeader))
	if !strings.ContainsAny(stdProtected, "+/") {
		t.Fatalf("test header does not exercise the standard alphabet: %s", stdProtected)
	}

	cases := []struct {
		name string
		body []byte
		kind acme.ErrorKind // "" means accepted
	}{
		// Accepted shapes.
		{"P-256 jwk with ES256 is accepted", valid, ""},
		{"P-384 jwk with ES384 is accepted", sign(t, k.p384, "", testNonce, testURL, `{}`), ""},
		{"RSA jwk with RS256 is accepted", sign(t, k.rsa, "", testNonce, testURL, `{}`), ""},
		{"Ed25519 jwk with EdDSA is accepted", sign(t, k.ed, "", testNonce, testURL, `{}`), ""},
		{"kid without jwk is accepted", sign(t, k.p256, testKID, testNonce, testURL, `{}`), ""},
		{"missing nonce is left to the nonce check", sign(t, k.p256, testKID, "", testURL, `{}`), ""},
		{"empty payload (POST-as-GET) is accepted", sign(t, k.p256, testKID, testNonce, testURL, ""), ""},
		{"jwk alg equal to the header alg is accepted", withJWK("ES256", strings.Replace(jwk256, "{", `{"alg":"ES256",`, 1)), ""},
		{"white space around the object is accepted", append(append([]byte("\n "), valid...), '\n'), ""},

		// Rule 1: exactly one flattened JWS object with protected, payload, signature.
		{"empty body", nil, acme.Malformed},
		{"white space only body", []byte(" \n"), acme.Malformed},
		{"compact serialization", []byte(P + "." + PL + "." + S), acme.Malformed},
		{"JSON array of a JWS", []byte("[" + string(valid) + "]"), acme.Malformed},
		{"JSON string", []byte(`"` + P + "." + PL + "." + S + `"`), acme.Malformed},
		{"truncated JSON", valid[:len(valid)-3], acme.Malformed},
		{"unprotected header member", set("header", map[string]any{"kid": testKID}), acme.Malformed},
		{"empty unprotected header member", set("header", map[string]any{}), acme.Malformed},
		{"general serialization with signatures array",
			raw(str("payload", PL), member("signatures", `[{"protected":"`+P+`","signature":"`+S+`"}]`)), acme.Malformed},
		{"general serialization with two signatures",
			raw(str("payload", PL), member("signatures", `[{"protected":"`+P+`","signature":"`+S+`"},{"protected":"`+P+`","signature":"`+S+`"}]`)), acme.Malformed},
		{"flattened JWS with an extra signatures member", set("signatures", []any{}), acme.Malformed},
		{"unknown extra member", set("extra", "x"), acme.Malformed},
		{"second JSON value after the object", append(append([]byte{}, valid...), "{}"...), acme.Malformed},
		{"protected missing", raw(str("payload", PL), str("signature", S)), acme.Malformed},
		{"payload missing", raw(str("protected", P), str("signature", S)), acme.Malformed},
		{"signature missing", raw(str("protected", P), str("payload", PL)), acme.Malformed},
		{"protected is a number", raw(member("protected", "1"), str("payload", PL), str("signature", S)), acme.Malformed},
		{"protected is null", raw(member("protected", "null"), str("payload", PL), str("signature", S)), acme.Malformed},

		// Rule 2: protected is base64url of one unambiguous JSON object with alg.
		{"protected with padding", set("protected", P+"="), acme.Malformed},
		{"protected in the standard base64 alphabet", set("protected", stdProtected), acme.Malformed},
		{"protected with a line break inside", set("protected", P[:8]+"\n"+P[8:]), acme.Malformed},
		{"protected with non-zero trailing bits", set("protected", b64(`{}`)[:2]+"B"), acme.Malformed},
		{"protected empty", set("protected", ""), acme.Malformed},
		{"protected is not JSON", set("protected", b64(`alg=ES256`)), acme.Malformed},
		{"protected is a JSON array", set("protected", b64(`[]`)), acme.Malformed},
		{"protected has data after the object", signed(t, k.p256, hdr(str("alg", "ES256"), member("jwk", jwk256), nonce, url)+`{}`, `{}`), acme.Malformed},
		{"alg missing", es256(member("jwk", jwk256), nonce, url), acme.Malformed},
		{"alg empty", es256(str("alg", ""), member("jwk", jwk256), nonce, url), acme.Malformed},
		{"alg not a string", es256(member("alg", `["ES256"]`), member("jwk", jwk256), nonce, url), acme.Malformed},
		{"crit header", es256(str("alg", "ES256"), member("jwk", jwk256), nonce, url, member("crit", `["b64"]`), member("b64", "false")), acme.Malformed},
		{"b64 false header (unencoded payload)", es256(str("alg", "ES256"), member("jwk", jwk256), nonce, url, member("b64", "false")), acme.Malformed},

		// Rule 3: alg outside the allow-list.
		{"alg none", withJWK("none", jwk256), acme.BadSignatureAlgorithm},
		{"alg HS256 on the outer JWS", withJWK("HS256", jwk256), acme.BadSignatureAlgorithm},
		{"alg RS512", withJWK("RS512", jwkRSA), acme.BadSignatureAlgorithm},
		{"alg PS256", withJWK("PS256", jwkRSA), acme.BadSignatureAlgorithm},
		{"alg ES512", withJWK("ES512", jwkJSON(t, k.p521)), acme.BadSignatureAlgorithm},
		{"alg in lower case", withJWK("es256", jwk256), acme.BadSignatureAlgorithm},

		// Rule 4: jwk xor kid, and a url.
		{"both jwk and kid", es256(str("alg", "ES256"), member("jwk", jwk256), str("kid", testKID), nonce, url), acme.Malformed},
		{"neither jwk nor kid", es256(str("alg", "ES256"), nonce, url), acme.Malformed},
		{"kid empty", es256(str("alg", "ES256"), str("kid", ""), nonce, url), acme.Malformed},
		{"kid not a string", es256(str("alg", "ES256"), member("kid", "1"), nonce, url), acme.Malformed},
		{"url missing", es256(str("alg", "ES256"), member("jwk", jwk256), nonce), acme.Malformed},
		{"url empty", es256(str("alg", "ES256"), member("jwk", jwk256), nonce, str("url", "")), acme.Malformed},
		{"url not a string", es256(str("alg", "ES256"), member("jwk", jwk256), nonce, member("url", `{"href":"x"}`)), acme.Malformed},
		{"nonce not a string", es256(str("alg", "ES256"), member("jwk", jwk256), member("nonce", "12"), url), acme.Malformed},

		// Rule 5: jwk is a supported public key that fits alg.
		{"jwk null", withJWK("ES256", "null"), acme.Malformed},
		{"jwk is a string", withJWK("ES256", `"`+b64(jwk256)+`"`), acme.Malformed},
		{"jwk without kty", withJWK("ES256", `{"crv":"P-256","x":"AAAA","y":"AAAA"}`), acme.Malformed},
		{"EC jwk with private d", withJWK("ES256", strings.Replace(jwk256, "{", `{"d":"`+b64("secret")+`",`, 1)), acme.Malformed},
		{"RSA jwk with private members", withJWK("RS256", strings.Replace(jwkRSA, "{", `{"d":"AQAB","p":"AQAB","q":"AQAB",`, 1)), acme.Malformed},
		{"Ed25519 jwk with private d", withJWK("EdDSA", strings.Replace(jwkEd, "{", `{"d":"`+b64("secret")+`",`, 1)), acme.Malformed},
		{"symmetric oct jwk", withJWK("ES256", `{"kty":"oct","k":"`+b64("0123456789abcdef0123456789abcdef")+`"}`), acme.Malformed},
		{"RS256 with an EC P-256 jwk", withJWK("RS256", jwk256), acme.BadSignatureAlgorithm},
		{"ES256 with a P-384 jwk", withJWK("ES256", jwk384), acme.BadSignatureAlgorithm},
		{"ES384 with a P-256 jwk", withJWK("ES384", jwk256), acme.BadSignatureAlgorithm},
		{"EdDSA with an RSA jwk", withJWK("EdDSA", jwkRSA), acme.BadSignatureAlgorithm},
		{"RS256 with an Ed25519 jwk", withJWK("RS256", jwkEd), acme.BadSignatureAlgorithm},
		{"jwk alg disagrees with the header alg", withJWK("ES256", strings.Replace(jwk256, "{", `{"alg":"ES384",`, 1)), acme.Malformed},
		{"jwk alg not a string", withJWK("ES256", strings.Replace(jwk256, "{", `{"alg":7,`, 1)), acme.Malformed},
		{"P-224 jwk", withJWK("ES256", ecJWK("P-224", k.p224)), acme.BadPublicKey},
		{"secp256k1 jwk", withJWK("ES256", ecJWK("secp256k1", k.p256)), acme.BadPublicKey},
		{"P-521 jwk", withJWK("ES256", jwkJSON(t, k.p521)), acme.BadPublicKey},
		{"X25519 jwk", withJWK("EdDSA", `{"kty":"OKP","crv":"X25519","x":"`+b64("0123456789abcdef0123456789abcdef")+`"}`), acme.BadPublicKey},
		{"unknown kty", withJWK("ES256", `{"kty":"DSA","y":"AQAB"}`), acme.BadPublicKey},
		{"EC point not on the curve", withJWK("ES256", offCurve(k)), acme.BadPublicKey},
		{"RSA jwk of 512 bits", withJWK("RS256", jwkJSON(t, k.rsa512)), acme.BadPublicKey},
		{"RSA jwk of 9000 bits", withJWK("RS256", jwkJSON(t, k.rsa9000)), acme.BadPublicKey},

		// Rule 6: signature and payload encoding.
		{"signature empty", set("signature", ""), acme.Malformed},
		{"signature not base64url", set("signature", "!!!!"), acme.Malformed},
		{"signature with padding", set("signature", S+"=="), acme.Malformed},
		{"signature in the standard alphabet", set("signature", "+/"+S[2:]), acme.Malformed},
		{"signature is a number", set("signature", 1), acme.Malformed},
		{"payload with padding", set("payload", "e30="), acme.Malformed},
		{"payload as raw JSON text", set("payload", `{}`), acme.Malformed},
		{"payload is null", set("payload", nil), acme.Malformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := jws.Parse(tc.body)
			wantKind(t, err, tc.kind)
			if tc.kind == "" && (m == nil || m.URL == "" || (m.JWK == nil) == (m.KID == "")) {
				t.Fatalf("accepted message is incomplete: %+v", m)
			}
		})
	}
}

// TestParseDuplicateMembers checks that ambiguous JSON is refused by our own check,
// with a detail naming the member, and not merely by a later parser.
func TestParseDuplicateMembers(t *testing.T) {
	k := keys()
	jwk256 := jwkJSON(t, k.p256)
	nonce, url := str("nonce", testNonce), str("url", testURL)
	es256 := func(members ...string) []byte { return signed(t, k.p256, hdr(members...), `{}`) }
	P, PL, S := parts(t, sign(t, k.p256, "", testNonce, testURL, `{}`))
	raw := func(members ...string) []byte { return []byte(hdr(members...)) }

	cases := []struct {
		name   string
		body   []byte
		member string // the duplicate the detail must name
	}{
		{"duplicate signature member", raw(str("protected", P), str("payload", PL), str("signature", S), str("signature", S)), "signature"},
		{"duplicate member differing in case", raw(str("protected", P), str("payload", PL), str("signature", S), str("Signature", S)), "Signature"},
		{"duplicate alg in protected", es256(str("alg", "ES256"), member("jwk", jwk256), nonce, url, str("alg", "none")), "alg"},
		{"duplicate alg written with an escape", es256(str("alg", "ES256"), member("jwk", jwk256), nonce, url, str(`\u0061lg`, "none")), "alg"},
		{"duplicate url in protected", es256(str("alg", "ES256"), member("jwk", jwk256), nonce, url, str("url", "https://evil.test/")), "url"},
		{"duplicate nonce in protected", es256(str("alg", "ES256"), member("jwk", jwk256), nonce, nonce, url), "nonce"},
		{"duplicate kid in protected", es256(str("alg", "ES256"), str("kid", testKID), str("kid", testKID+"2"), nonce, url), "kid"},
		{"duplicate url differing only in case", es256(str("alg", "ES256"), member("jwk", jwk256), nonce, url, str("URL", "https://evil.test/")), "URL"},
		{"duplicate kid differing by Unicode case folding (Kelvin sign)", es256(str("alg", "ES256"), str("kid", testKID), str("\u212aid", testKID+"2"), nonce, url), "\u212aid"},
		{"duplicate member inside jwk", es256(str("alg", "ES256"), member("jwk", strings.Replace(jwk256, "{", `{"x":"AAAA",`, 1)), nonce, url), "x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := jws.Parse(tc.body)
			wantKind(t, err, acme.Malformed)
			if ae, _ := acme.AsError(err); !strings.Contains(ae.Detail, `duplicate member "`+tc.member+`"`) {
				t.Errorf("detail %q does not name the duplicate %q", ae.Detail, tc.member)
			}
		})
	}
}

// offCurve is a P-256 JWK whose point is not on the curve.
func offCurve(k testKeys) string {
	j := ecJWK("P-256", k.p256)
	var m map[string]string
	_ = json.Unmarshal([]byte(j), &m)
	m["y"] = m["x"]
	b, _ := json.Marshal(m)
	return string(b)
}

func TestParseFields(t *testing.T) {
	k := keys()
	cases := []struct {
		name       string
		body       []byte
		alg, nonce string
		kid        string
		jwk        crypto.Signer // the key the header's jwk must equal; nil: no jwk
	}{
		{"jwk header fills JWK and leaves KID empty", sign(t, k.p256, "", testNonce, testURL, `{}`), "ES256", testNonce, "", k.p256},
		{"RSA jwk header yields the RSA key", sign(t, k.rsa, "", testNonce, testURL, `{}`), "RS256", testNonce, "", k.rsa},
		{"kid header fills KID and leaves JWK nil", sign(t, k.p384, testKID, testNonce, testURL, `{}`), "ES384", testNonce, testKID, nil},
		{"absent nonce is empty", sign(t, k.ed, testKID, "", testURL, `{}`), "EdDSA", "", testKID, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := jws.Parse(tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if m.Alg != tc.alg || m.Nonce != tc.nonce || m.URL != testURL || m.KID != tc.kid {
				t.Errorf("got Alg %q Nonce %q URL %q KID %q", m.Alg, m.Nonce, m.URL, m.KID)
			}
			switch {
			case tc.jwk == nil && m.JWK != nil:
				t.Errorf("JWK = %v, want nil", m.JWK)
			case tc.jwk != nil && !jws.KeyEqual(m.JWK, jwstest.JWK(tc.jwk)):
				t.Errorf("JWK is not the signing key")
			}
		})
	}
}
