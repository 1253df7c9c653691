package jws_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"testing"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
)

const (
	eabURL = "https://acme.test/acme/new-account"
	eabKID = "kid-1"
)

var hmacKey = []byte("0123456789abcdef0123456789abcdef")

// macJWS makes an EAB-shaped flattened JWS with a verbatim protected header and an
// HMAC-SHA256 over it, whatever alg the header names.
func macJWS(t testing.TB, protected, payload string) json.RawMessage {
	t.Helper()
	p, pl := b64(protected), b64(payload)
	mac := hmac.New(sha256.New, hmacKey)
	mac.Write([]byte(p + "." + pl))
	b, err := json.Marshal(map[string]string{"protected": p, "payload": pl, "signature": b64(string(mac.Sum(nil)))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustEAB(t testing.TB, alg string) json.RawMessage {
	t.Helper()
	b, err := jwstest.EAB(keys().p256, eabKID, hmacKey, eabURL, alg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseEAB(t *testing.T) {
	k := keys()
	outer := jwstest.JWK(k.p256)
	accountJWK := jwkJSON(t, k.p256)
	kid, url := str("kid", eabKID), str("url", eabURL)
	hs256 := func(members ...string) json.RawMessage { return macJWS(t, hdr(members...), accountJWK) }

	cases := []struct {
		name string
		raw  json.RawMessage
		kind acme.ErrorKind
	}{
		{"HS256 is accepted", mustEAB(t, "HS256"), ""},
		{"HS384 is accepted", mustEAB(t, "HS384"), ""},
		{"HS512 is accepted", mustEAB(t, "HS512"), ""},

		// ROBUSTNESS 27: a non-MAC alg.
		{"alg RS256", hs256(str("alg", "RS256"), kid, url), acme.Malformed},
		{"alg ES256", hs256(str("alg", "ES256"), kid, url), acme.Malformed},
		{"alg none", hs256(str("alg", "none"), kid, url), acme.Malformed},
		{"alg in lower case", hs256(str("alg", "hs256"), kid, url), acme.Malformed},
		{"alg missing", hs256(kid, url), acme.Malformed},
		{"alg not a string", hs256(member("alg", "256"), kid, url), acme.Malformed},

		// ROBUSTNESS 28: nonce in the protected header.
		{"nonce present", hs256(str("alg", "HS256"), kid, str("nonce", testNonce), url), acme.Malformed},
		{"empty nonce present", hs256(str("alg", "HS256"), kid, str("nonce", ""), url), acme.Malformed},

		// ROBUSTNESS 29: url differs from the outer url.
		{"url with a trailing slash", hs256(str("alg", "HS256"), kid, str("url", eabURL+"/")), acme.Malformed},
		{"url of another endpoint", hs256(str("alg", "HS256"), kid, str("url", testURL)), acme.Malformed},
		{"url missing", hs256(str("alg", "HS256"), kid), acme.Malformed},

		// ROBUSTNESS 32: the bound key is not the outer key (unauthorized, see ParseEAB).
		{"payload is another key of the same type", macJWS(t, hdr(str("alg", "HS256"), kid, url), jwkJSON(t, mustEC(t))), acme.Unauthorized},
		{"payload is a key of another type", macJWS(t, hdr(str("alg", "HS256"), kid, url), jwkJSON(t, k.rsa)), acme.Unauthorized},

		// Structure.
		{"kid missing", hs256(str("alg", "HS256"), url), acme.Malformed},
		{"kid empty", hs256(str("alg", "HS256"), str("kid", ""), url), acme.Malformed},
		{"duplicate kid", hs256(str("alg", "HS256"), kid, str("kid", "kid-2"), url), acme.Malformed},
		{"crit header", hs256(str("alg", "HS256"), kid, url, member("crit", `["b64"]`), member("b64", "false")), acme.Malformed},
		{"payload is a private key", macJWS(t, hdr(str("alg", "HS256"), kid, url), `{"kty":"EC","crv":"P-256","d":"AAAA","x":"AAAA","y":"AAAA"}`), acme.Malformed},
		{"payload is not JSON", macJWS(t, hdr(str("alg", "HS256"), kid, url), `not a key`), acme.Malformed},
		{"payload is empty", macJWS(t, hdr(str("alg", "HS256"), kid, url), ``), acme.Malformed},
		{"payload has a duplicate member", macJWS(t, hdr(str("alg", "HS256"), kid, url), `{"kty":"EC","kty":"RSA"}`), acme.Malformed},
		{"unprotected header", json.RawMessage(edit(t, mustEAB(t, ""), func(m map[string]any) { m["header"] = map[string]any{"kid": eabKID} })), acme.Malformed},
		{"general serialization", json.RawMessage(`{"payload":"e30","signatures":[{"protected":"e30","signature":"AAAA"}]}`), acme.Malformed},
		{"empty signature", json.RawMessage(edit(t, mustEAB(t, ""), func(m map[string]any) { m["signature"] = "" })), acme.Malformed},
		{"compact serialization as a JSON string", json.RawMessage(`"e30.e30.AAAA"`), acme.Malformed},
		{"null", json.RawMessage(`null`), acme.Malformed},
		{"empty", nil, acme.Malformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := jws.ParseEAB(tc.raw, eabURL, outer)
			wantKind(t, err, tc.kind)
			if tc.kind != "" {
				return
			}
			if e.KID != eabKID || e.Alg == "" {
				t.Errorf("got KID %q Alg %q", e.KID, e.Alg)
			}
			if err := e.VerifyMAC(hmacKey); err != nil {
				t.Errorf("VerifyMAC: %v", err)
			}
		})
	}
}

func TestEABVerifyMAC(t *testing.T) {
	outer := jwstest.JWK(keys().p256)
	relabelled := func(alg string) json.RawMessage {
		// An HS256 MAC under a header that claims alg.
		return macJWS(t, hdr(str("alg", alg), str("kid", eabKID), str("url", eabURL)), jwkJSON(t, keys().p256))
	}
	truncated := edit(t, mustEAB(t, "HS256"), func(m map[string]any) { m["signature"] = m["signature"].(string)[:20] })

	cases := []struct {
		name string
		raw  json.RawMessage
		key  []byte
		kind acme.ErrorKind
	}{
		{"HS256 with the right key", mustEAB(t, "HS256"), hmacKey, ""},
		{"HS384 with the right key", mustEAB(t, "HS384"), hmacKey, ""},
		{"HS512 with the right key", mustEAB(t, "HS512"), hmacKey, ""},
		{"HS256 with the wrong key", mustEAB(t, "HS256"), []byte("another key, also of 32 bytes!!!"), acme.Unauthorized},
		{"HS512 with the wrong key", mustEAB(t, "HS512"), hmacKey[1:], acme.Unauthorized},
		{"MAC truncated", truncated, hmacKey, acme.Unauthorized},
		{"HS256 MAC labelled HS512", relabelled("HS512"), hmacKey, acme.Unauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := jws.ParseEAB(tc.raw, eabURL, outer)
			if err != nil {
				t.Fatalf("ParseEAB: %v", err)
			}
			wantKind(t, e.VerifyMAC(tc.key), tc.kind)
		})
	}

	t.Run("empty HMAC key is a caller bug, not a client refusal", func(t *testing.T) {
		e, err := jws.ParseEAB(mustEAB(t, ""), eabURL, outer)
		if err != nil {
			t.Fatal(err)
		}
		err = e.VerifyMAC(nil)
		if _, ok := acme.AsError(err); err == nil || ok {
			t.Fatalf("got %v, want a plain error", err)
		}
	})
	t.Run("missing outer key is a caller bug, not a client refusal", func(t *testing.T) {
		_, err := jws.ParseEAB(mustEAB(t, ""), eabURL, nil)
		if _, ok := acme.AsError(err); err == nil || ok {
			t.Fatalf("got %v, want a plain error", err)
		}
	})
}
