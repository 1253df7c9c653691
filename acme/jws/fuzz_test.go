package jws_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
	"github.com/varmenne/varmenne/strictjson"
)

// clientBodies are the request bodies real clients sent (testdata/clients/README);
// their EABs were made with hmacKey.
func clientBodies(f *testing.F) map[string][]byte {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "clients", "*.json"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no recorded client bodies: %v", err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

// wire is a flattened JWS read member by member, independently of the package.
type wire struct {
	protectedB64, payloadB64 string
	protected, payload, sig  []byte
}

func readWire(body []byte) (*wire, bool) {
	var m struct{ Protected, Payload, Signature string }
	if json.Unmarshal(body, &m) != nil {
		return nil, false
	}
	w := &wire{protectedB64: m.Protected, payloadB64: m.Payload}
	var err1, err2, err3 error
	w.protected, err1 = base64.RawURLEncoding.DecodeString(m.Protected)
	w.payload, err2 = base64.RawURLEncoding.DecodeString(m.Payload)
	w.sig, err3 = base64.RawURLEncoding.DecodeString(m.Signature)
	return w, err1 == nil && err2 == nil && err3 == nil
}

// verifyRFC7518 checks a JWS signature the way RFC 7518 section 3 defines it, with
// the standard library only: a second opinion on what go-jose decides.
func verifyRFC7518(alg string, pub crypto.PublicKey, input, sig []byte) bool {
	sum := func(h crypto.Hash) []byte { d := h.New(); d.Write(input); return d.Sum(nil) }
	ec := func(k *ecdsa.PublicKey, curve elliptic.Curve, h crypto.Hash) bool {
		size := (curve.Params().BitSize + 7) / 8
		if k.Curve != curve || len(sig) != 2*size {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		return ecdsa.Verify(k, sum(h), r, s)
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return ec(k, elliptic.P256(), crypto.SHA256)
		case "ES384":
			return ec(k, elliptic.P384(), crypto.SHA384)
		}
	case *rsa.PublicKey:
		return alg == "RS256" && rsa.VerifyPKCS1v15(k, crypto.SHA256, sum(crypto.SHA256), sig) == nil
	case ed25519.PublicKey:
		return alg == "EdDSA" && ed25519.Verify(k, input, sig)
	}
	return false
}

func origin(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Scheme + "://" + p.Host
}

// FuzzParse feeds arbitrary bodies to every parser. Nothing may panic, every refusal
// must be an *acme.Error (an untyped error would reach the client as serverInternal),
// and an accepted message must satisfy the rules Parse promises: an allowed alg, a
// url, jwk xor kid, a protected header without a duplicate member. A signature that
// Verify accepts must verify by RFC 7518 done independently, over exactly the payload
// Verify returns, and a signature that does verify is never called invalid.
//
// The seed corpus is testdata/fuzz/FuzzParse; the bodies real clients sent
// (testdata/clients) and bodies signed by fresh keys are added here. A kid request
// is verified with the key the same client sent in its newAccount.
func FuzzParse(f *testing.F) {
	k := keys()
	f.Add(sign(f, k.p256, "", testNonce, testURL, `{}`))
	f.Add(sign(f, k.ed, testKID, testNonce, testURL, ""))
	f.Add(sign(f, k.p384, "", "", testURL, `{"account":"x"}`))
	f.Add(sign(f, k.rsa, "", testNonce, testURL, `{"csr":"x"}`))
	f.Add([]byte(mustEAB(f, "HS384")))
	outer := jwstest.JWK(k.p256)
	accountKeys := map[string]*jose.JSONWebKey{origin(testURL): outer}
	for _, b := range clientBodies(f) {
		f.Add(b)
		if m, err := jws.Parse(b); err == nil && m.JWK != nil {
			accountKeys[origin(m.URL)] = m.JWK
		}
	}

	typed := func(t *testing.T, what string, err error) {
		if _, ok := acme.AsError(err); err != nil && !ok {
			t.Fatalf("%s returned untyped error %v", what, err)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := jws.Parse(body)
		typed(t, "Parse", err)
		if err == nil {
			if m.URL == "" || (m.JWK == nil) == (m.KID == "") || !slices.Contains(jws.Algorithms, m.Alg) {
				t.Fatalf("Parse accepted %+v", m)
			}
			w, ok := readWire(body)
			if !ok {
				t.Fatalf("Parse accepted a body whose members are not base64url")
			}
			if err := strictjson.CheckObject(w.protected); err != nil {
				t.Fatalf("Parse accepted a protected header that %v", err)
			}
			key := m.JWK
			if key == nil {
				key = accountKeys[origin(m.URL)]
			}
			if key != nil {
				payload, err := m.Verify(key)
				typed(t, "Verify", err)
				independent := verifyRFC7518(m.Alg, key.Public().Key, []byte(w.protectedB64+"."+w.payloadB64), w.sig)
				switch {
				case err == nil && !independent:
					t.Fatalf("Verify accepted a signature RFC 7518 does not")
				case err == nil && !bytes.Equal(payload, w.payload):
					t.Fatalf("Verify returned payload %q, the body carries %q", payload, w.payload)
				case err != nil && independent && acme.IsKind(err, acme.Malformed):
					t.Fatalf("Verify refused a signature that verifies: %v", err)
				}
			}
		}

		_, err = jws.ParseKeyChange(body)
		typed(t, "ParseKeyChange", err)

		e, err := jws.ParseEAB(body, testURL, outer)
		typed(t, "ParseEAB", err)
		if err == nil {
			typed(t, "VerifyMAC", e.VerifyMAC(hmacKey))
		}
	})
}

// FuzzNewAccountEAB fuzzes what a newAccount body reaches of the external account
// binding: the payload decoded as acme.DecodePayload does, its externalAccountBinding
// given to ParseEAB with the outer url and jwk, and VerifyMAC with the kid's HMAC key.
// The outer signature is not required to verify: an attacker signs whatever payload
// it likes with its own key, so every payload is reachable.
//
// Properties: every refusal is typed; an accepted binding names a MAC alg and a kid,
// carries no nonce, is bound to the outer url and binds the outer key; and VerifyMAC
// accepts exactly when an HMAC computed here over protected "." payload equals the
// signature. The recorded lego and certbot newAccount bodies verify.
func FuzzNewAccountEAB(f *testing.F) {
	k := keys()
	for _, alg := range []string{"HS256", "HS384", "HS512"} {
		eab, err := jwstest.EAB(k.p256, eabKID, hmacKey, testURL, alg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sign(f, k.p256, "", testNonce, testURL, `{"termsOfServiceAgreed":true,"externalAccountBinding":`+string(eab)+`}`))
	}
	bodies := clientBodies(f)
	for _, name := range []string{"lego-new-account.json", "certbot-new-account.json"} {
		b := bodies[name]
		f.Add(b)
		// The recorded bindings must verify, or the properties below test nothing real.
		m, err := jws.Parse(b)
		if err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		payload, err := m.Verify(m.JWK)
		if err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		var req acme.NewAccountRequest
		if err := acme.DecodePayload(payload, &req); err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		e, err := jws.ParseEAB(req.ExternalAccountBinding, m.URL, m.JWK)
		if err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		if err := e.VerifyMAC(hmacKey); err != nil {
			f.Fatalf("%s: %v", name, err)
		}
	}
	macs := map[string]func() hash.Hash{"HS256": sha256.New, "HS384": sha512.New384, "HS512": sha512.New}

	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := jws.Parse(body)
		if err != nil || m.JWK == nil {
			return // FuzzParse's ground
		}
		w, ok := readWire(body)
		if !ok {
			t.Fatal("Parse accepted a body whose members are not base64url")
		}
		var req acme.NewAccountRequest
		if err := acme.DecodePayload(w.payload, &req); err != nil {
			if _, ok := acme.AsError(err); !ok {
				t.Fatalf("DecodePayload returned untyped error %v", err)
			}
			return
		}
		e, err := jws.ParseEAB(req.ExternalAccountBinding, m.URL, m.JWK)
		if err != nil {
			if _, ok := acme.AsError(err); !ok {
				t.Fatalf("ParseEAB returned untyped error %v", err)
			}
			return
		}
		inner, ok := readWire(req.ExternalAccountBinding)
		if !ok {
			t.Fatal("ParseEAB accepted a binding whose members are not base64url")
		}
		var h map[string]json.RawMessage
		if err := json.Unmarshal(inner.protected, &h); err != nil {
			t.Fatalf("ParseEAB accepted protected header %q", inner.protected)
		}
		var hurl string
		json.Unmarshal(h["url"], &hurl)
		bound := &jose.JSONWebKey{}
		if err := bound.UnmarshalJSON(inner.payload); err != nil {
			t.Fatalf("ParseEAB accepted payload %q, which is not a JWK", inner.payload)
		}
		tp1, err1 := bound.Thumbprint(crypto.SHA256)
		tp2, err2 := m.JWK.Thumbprint(crypto.SHA256)
		switch {
		case macs[e.Alg] == nil || e.KID == "":
			t.Fatalf("ParseEAB accepted alg %q, kid %q", e.Alg, e.KID)
		case h["nonce"] != nil:
			t.Fatal("ParseEAB accepted a binding with a nonce")
		case hurl != m.URL:
			t.Fatalf("ParseEAB accepted url %q for a request to %q", hurl, m.URL)
		case err1 != nil || err2 != nil || !bytes.Equal(tp1, tp2):
			t.Fatal("ParseEAB accepted a binding of another key")
		}
		mac := hmac.New(macs[e.Alg], hmacKey)
		mac.Write([]byte(inner.protectedB64 + "." + inner.payloadB64))
		want := hmac.Equal(mac.Sum(nil), inner.sig)
		err = e.VerifyMAC(hmacKey)
		if got := err == nil; got != want {
			t.Fatalf("VerifyMAC = %v; the MAC computed here matches: %t", err, want)
		}
		if err != nil && !acme.IsKind(err, acme.Unauthorized) {
			t.Fatalf("a wrong MAC is %v, want unauthorized", err)
		}
	})
}
