package server_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
)

// mutate decodes a flattened JWS, lets f change its members and encodes it again.
func mutate(t *testing.T, body []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	return mustJSON(t, m)
}

// jwkMap is key's public JWK as a JSON object a test may change.
func jwkMap(t *testing.T, key crypto.Signer) map[string]any {
	t.Helper()
	b, err := jwstest.JWK(key).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestJWS covers the linear request check: structure, alg, key, signature, nonce, url
// and payload shape (ROBUSTNESS 4-25).
func TestJWS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	gone := e.register(t, orgA)
	wantStatus(t, e.as(t, gone, gone.kid, []byte(`{"status":"deactivated"}`)), http.StatusOK)
	c := e.issue(t, a, "www."+domainA)
	o := e.newOrder(t, a, "api."+domainA)
	ordersURL := decodeJSON[acme.Account](t, e.as(t, a, a.kid, nil)).Orders

	newOrder := e.dir.NewOrder
	orderPayload := mustJSON(t, acme.NewOrderRequest{Identifiers: identifiers("api." + domainA)})
	// kidHeader is a correct protected header for url with changes applied (nil deletes).
	kidHeader := func(t *testing.T, url string, changes map[string]any) map[string]any {
		h := map[string]any{"alg": "ES256", "kid": a.kid, "nonce": e.nonce(t), "url": url}
		for k, v := range changes {
			if v == nil {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		return h
	}
	// withKid signs a new-order request with a changed header.
	withKid := func(changes map[string]any) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			return signProtected(t, a.key, kidHeader(t, newOrder, changes), orderPayload)
		}
	}
	// newAccountWith signs a newAccount request by a fresh key with a changed header.
	newAccountWith := func(key crypto.Signer, changes func(t *testing.T, h map[string]any)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			h := map[string]any{"alg": "ES256", "jwk": jwkMap(t, key), "nonce": e.nonce(t), "url": e.dir.NewAccount}
			changes(t, h)
			return signProtected(t, key, h, newAccountPayload(t, e.eab(t, orgA, key)))
		}
	}
	// rawHeader signs a protected header given verbatim, for duplicates.
	rawHeader := func(format string) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			h := strings.NewReplacer("KID", a.kid, "NONCE", e.nonce(t), "URL", newOrder).Replace(format)
			return signProtectedJSON(t, a.key, []byte(h), orderPayload)
		}
	}
	valid := func(t *testing.T) []byte { return e.sign(t, a.key, a.kid, newOrder, orderPayload) }
	withMembers := func(f func(m map[string]any)) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return mutate(t, valid(t), f) }
	}
	signedBy := func(key crypto.Signer, kid, url string, payload []byte) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return e.sign(t, key, kid, url, payload) }
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fresh := ecKey(t)

	cases := []struct {
		name   string
		url    string // "" is new-order
		body   func(t *testing.T) []byte
		kind   acme.ErrorKind
		status int
	}{
		// Structure.
		{name: "unprotected header member → malformed", body: withMembers(func(m map[string]any) {
			m["header"] = map[string]any{"kid": a.kid}
		}), kind: acme.Malformed},
		{name: "general serialization with a signatures array → malformed", body: withMembers(func(m map[string]any) {
			m["signatures"] = []any{map[string]any{"protected": m["protected"], "signature": m["signature"]}}
			delete(m, "protected")
			delete(m, "signature")
		}), kind: acme.Malformed},
		{name: "two signatures → malformed", body: withMembers(func(m map[string]any) {
			sig := map[string]any{"protected": m["protected"], "signature": m["signature"]}
			m["signatures"] = []any{sig, sig}
			delete(m, "protected")
			delete(m, "signature")
		}), kind: acme.Malformed},
		{name: "compact serialization → malformed", body: func(t *testing.T) []byte {
			var m map[string]string
			if err := json.Unmarshal(valid(t), &m); err != nil {
				t.Fatal(err)
			}
			return []byte(m["protected"] + "." + m["payload"] + "." + m["signature"])
		}, kind: acme.Malformed},
		{name: "empty signature → malformed", body: withMembers(func(m map[string]any) { m["signature"] = "" }), kind: acme.Malformed},
		{name: "signature not base64url → malformed", body: withMembers(func(m map[string]any) {
			m["signature"] = strings.ReplaceAll(m["signature"].(string), "_", "/") + "+/="
		}), kind: acme.Malformed},
		{name: "signature missing → malformed", body: withMembers(func(m map[string]any) { delete(m, "signature") }), kind: acme.Malformed},
		{name: "extra top-level member → malformed", body: withMembers(func(m map[string]any) { m["x"] = 1 }), kind: acme.Malformed},
		{name: "body not JSON → malformed", body: func(*testing.T) []byte { return []byte("hello") }, kind: acme.Malformed},
		{name: "empty body → malformed", body: func(*testing.T) []byte { return nil }, kind: acme.Malformed},

		// Algorithm.
		{name: "alg none → badSignatureAlgorithm", body: withKid(map[string]any{"alg": "none"}), kind: acme.BadSignatureAlgorithm},
		{name: "alg HS256 → badSignatureAlgorithm", body: withKid(map[string]any{"alg": "HS256"}), kind: acme.BadSignatureAlgorithm},
		{name: "alg missing → malformed", body: withKid(map[string]any{"alg": nil}), kind: acme.Malformed},
		{name: "alg not a string → malformed", body: withKid(map[string]any{"alg": 256}), kind: acme.Malformed},
		{name: "RS256 header on an EC account key (kid) → badSignatureAlgorithm", body: withKid(map[string]any{"alg": "RS256"}), kind: acme.BadSignatureAlgorithm},
		{name: "RS256 header with an EC jwk → badSignatureAlgorithm", url: e.dir.NewAccount,
			body: newAccountWith(fresh, func(_ *testing.T, h map[string]any) { h["alg"] = "RS256" }), kind: acme.BadSignatureAlgorithm},
		{name: "ES256 header with a P-384 jwk → badSignatureAlgorithm", url: e.dir.NewAccount,
			body: newAccountWith(p384, func(_ *testing.T, h map[string]any) { h["alg"] = "ES256" }), kind: acme.BadSignatureAlgorithm},
		{name: "jwk alg member disagreeing with the header alg → malformed", url: e.dir.NewAccount,
			body: newAccountWith(fresh, func(_ *testing.T, h map[string]any) { h["jwk"].(map[string]any)["alg"] = "ES384" }), kind: acme.Malformed},
		{name: "jwk with private key material → malformed", url: e.dir.NewAccount,
			body: newAccountWith(fresh, func(_ *testing.T, h map[string]any) { h["jwk"].(map[string]any)["d"] = "AAAA" }), kind: acme.Malformed},

		// Which key.
		{name: "both jwk and kid → malformed", body: withKid(map[string]any{"jwk": jwkMap(t, a.key)}), kind: acme.Malformed},
		{name: "neither jwk nor kid → malformed", body: withKid(map[string]any{"kid": nil}), kind: acme.Malformed},
		{name: "jwk on new-order → malformed", body: signedBy(a.key, "", newOrder, orderPayload), kind: acme.Malformed},
		{name: "jwk on finalize → malformed", url: o.obj.Finalize,
			body: signedBy(a.key, "", o.obj.Finalize, finalizePayload(t, "x")), kind: acme.Malformed},
		{name: "jwk on a challenge → malformed", url: o.challenges[0],
			body: signedBy(a.key, "", o.challenges[0], []byte("{}")), kind: acme.Malformed},
		{name: "jwk on the account URL → malformed", url: a.kid, body: signedBy(a.key, "", a.kid, nil), kind: acme.Malformed},
		{name: "jwk on key-change → malformed", url: e.dir.KeyChange, body: signedBy(a.key, "", e.dir.KeyChange, []byte("{}")), kind: acme.Malformed},
		{name: "kid on new-account → malformed", url: e.dir.NewAccount,
			body: signedBy(a.key, a.kid, e.dir.NewAccount, newAccountPayload(t, nil)), kind: acme.Malformed},
		{name: "kid on another host → malformed", body: withKid(map[string]any{"kid": strings.Replace(a.kid, "127.0.0.1", "localhost", 1)}), kind: acme.Malformed},
		{name: "kid with https instead of http → malformed", body: withKid(map[string]any{"kid": strings.Replace(a.kid, "http:", "https:", 1)}), kind: acme.Malformed},
		{name: "kid under another path prefix → malformed", body: withKid(map[string]any{"kid": strings.Replace(a.kid, "/acme/account/", "/other/acme/account/", 1)}), kind: acme.Malformed},
		{name: "kid with trailing garbage → malformed", body: withKid(map[string]any{"kid": a.kid + "x"}), kind: acme.Malformed},
		{name: "kid naming the account's orders list → malformed", body: withKid(map[string]any{"kid": a.kid + "/orders"}), kind: acme.Malformed},
		{name: "kid that is only the account id → malformed", body: withKid(map[string]any{"kid": a.id()}), kind: acme.Malformed},
		{name: "empty kid → malformed", body: withKid(map[string]any{"kid": ""}), kind: acme.Malformed},
		{name: "kid not a string → malformed", body: withKid(map[string]any{"kid": 7}), kind: acme.Malformed},
		{name: "kid of an unknown account → accountDoesNotExist", body: withKid(map[string]any{"kid": e.base + "/acme/account/" + randomID()}), kind: acme.AccountDoesNotExist},
		{name: "kid of a deactivated account → unauthorized 403", body: signedBy(gone.key, gone.kid, newOrder, orderPayload), kind: acme.Unauthorized, status: http.StatusForbidden},

		// Signature.
		{name: "tampered payload → malformed", body: withMembers(func(m map[string]any) {
			m["payload"] = b64(mustJSON(t, acme.NewOrderRequest{Identifiers: identifiers("evil." + domainA)}))
		}), kind: acme.Malformed},
		{name: "tampered protected header → malformed", body: withMembers(func(m map[string]any) {
			m["protected"] = b64([]byte(`{"alg":"ES256","kid":"` + a.kid + `","nonce":"` + e.nonce(t) + `","url":"` + newOrder + `"}`))
		}), kind: acme.Malformed},
		{name: "kid of the account, signed by another key → malformed", body: signedBy(fresh, a.kid, newOrder, orderPayload), kind: acme.Malformed},

		// Nonce.
		{name: "missing nonce → badNonce", body: withKid(map[string]any{"nonce": nil}), kind: acme.BadNonce},
		{name: "empty nonce → badNonce", body: withKid(map[string]any{"nonce": ""}), kind: acme.BadNonce},
		{name: "nonce not base64url → badNonce", body: withKid(map[string]any{"nonce": strings.Repeat("!", 26)}), kind: acme.BadNonce},
		{name: "nonce of the wrong length → badNonce", body: withKid(map[string]any{"nonce": "abcd"}), kind: acme.BadNonce},
		{name: "nonce with an unknown instance prefix → badNonce", body: func(t *testing.T) []byte {
			n := []byte(e.nonce(t))
			n[0] = map[bool]byte{true: 'B', false: 'A'}[n[0] == 'A']
			return signProtected(t, a.key, kidHeader(t, newOrder, map[string]any{"nonce": string(n)}), orderPayload)
		}, kind: acme.BadNonce},
		{name: "nonce this instance never issued → badNonce", body: func(t *testing.T) []byte {
			n := []byte(e.nonce(t))
			n[10] = map[bool]byte{true: 'B', false: 'A'}[n[10] == 'A']
			return signProtected(t, a.key, kidHeader(t, newOrder, map[string]any{"nonce": string(n)}), orderPayload)
		}, kind: acme.BadNonce},
		{name: "nonce reused → badNonce", body: func(t *testing.T) []byte {
			h := kidHeader(t, a.kid, nil)
			wantStatus(t, e.postJWS(t, a.kid, signProtected(t, a.key, h, nil)), http.StatusOK)
			h["url"] = newOrder
			return signProtected(t, a.key, h, orderPayload)
		}, kind: acme.BadNonce},
		{name: "nonce not a string → malformed", body: withKid(map[string]any{"nonce": 12}), kind: acme.Malformed},

		// URL.
		{name: "url missing → malformed", body: withKid(map[string]any{"url": nil}), kind: acme.Malformed},
		{name: "url with a trailing slash → malformed", body: withKid(map[string]any{"url": newOrder + "/"}), kind: acme.Malformed},
		{name: "url with a query → malformed", body: withKid(map[string]any{"url": newOrder + "?x=1"}), kind: acme.Malformed},
		{name: "url on another host → malformed", body: withKid(map[string]any{"url": strings.Replace(newOrder, "127.0.0.1", "localhost", 1)}), kind: acme.Malformed},
		{name: "url with https instead of http → malformed", body: withKid(map[string]any{"url": strings.Replace(newOrder, "http:", "https:", 1)}), kind: acme.Malformed},
		{name: "url of another resource → malformed", body: withKid(map[string]any{"url": e.dir.RevokeCert}), kind: acme.Malformed},
		{name: "request URL with a query the url lacks → malformed", url: newOrder + "?x=1", body: valid, kind: acme.Malformed},
		{name: "JWS signed for new-order replayed to finalize with a fresh nonce → malformed", url: o.obj.Finalize,
			body: signedBy(a.key, a.kid, newOrder, orderPayload), kind: acme.Malformed},

		// Protected header shape.
		{name: "duplicate nonce member in the protected header → malformed",
			body: rawHeader(`{"alg":"ES256","kid":"KID","nonce":"NONCE","nonce":"NONCE","url":"URL"}`), kind: acme.Malformed},
		{name: "duplicate url member in the protected header → malformed",
			body: rawHeader(`{"alg":"ES256","kid":"KID","nonce":"NONCE","url":"https://elsewhere.example/","url":"URL"}`), kind: acme.Malformed},
		{name: "alg and Alg in the protected header → malformed",
			body: rawHeader(`{"alg":"ES256","Alg":"none","kid":"KID","nonce":"NONCE","url":"URL"}`), kind: acme.Malformed},
		{name: "crit member → malformed", body: withKid(map[string]any{"crit": []string{"b64"}, "b64": false}), kind: acme.Malformed},
		{name: "protected header not an object → malformed", body: withMembers(func(m map[string]any) { m["protected"] = b64([]byte(`["alg"]`)) }), kind: acme.Malformed},

		// Payload.
		{name: "POST-as-GET with payload {} on an order → malformed", url: o.url, body: signedBy(a.key, a.kid, o.url, []byte("{}")), kind: acme.Malformed},
		{name: "POST-as-GET with payload {} on an authz → malformed", url: o.obj.Authorizations[0],
			body: signedBy(a.key, a.kid, o.obj.Authorizations[0], []byte("{}")), kind: acme.Malformed},
		{name: "POST-as-GET with payload {} on a cert → malformed", url: c.certURL, body: signedBy(a.key, a.kid, c.certURL, []byte("{}")), kind: acme.Malformed},
		{name: "POST-as-GET with payload {} on the orders list → malformed", url: ordersURL, body: signedBy(a.key, a.kid, ordersURL, []byte("{}")), kind: acme.Malformed},
		{name: "new-order payload not JSON → malformed", body: signedBy(a.key, a.kid, newOrder, []byte("identifiers=www")), kind: acme.Malformed},
		{name: "new-order identifiers as a string → malformed", body: signedBy(a.key, a.kid, newOrder, []byte(`{"identifiers":"www.example.fi"}`)), kind: acme.Malformed},
		{name: "new-order identifier value as a number → malformed", body: signedBy(a.key, a.kid, newOrder, []byte(`{"identifiers":[{"type":"dns","value":7}]}`)), kind: acme.Malformed},
		{name: "new-order with an empty payload → malformed", body: signedBy(a.key, a.kid, newOrder, nil), kind: acme.Malformed},
		{name: "new-account payload a JSON array → malformed", url: e.dir.NewAccount, body: signedBy(fresh, "", e.dir.NewAccount, []byte(`[]`)), kind: acme.Malformed},
		{name: "challenge payload that is not an object → malformed", url: o.challenges[0],
			body: signedBy(a.key, a.kid, o.challenges[0], []byte(`"go"`)), kind: acme.Malformed},
		{name: "challenge payload that is broken JSON → malformed", url: o.challenges[0],
			body: signedBy(a.key, a.kid, o.challenges[0], []byte(`{"a":`)), kind: acme.Malformed},
		{name: "account update with contact as a string → malformed", url: a.kid,
			body: signedBy(a.key, a.kid, a.kid, []byte(`{"contact":"mailto:x@example.fi"}`)), kind: acme.Malformed},
		{name: "account update to status revoked → malformed", url: a.kid,
			body: signedBy(a.key, a.kid, a.kid, []byte(`{"status":"revoked"}`)), kind: acme.Malformed},
		{name: "revoke payload not JSON → malformed", url: e.dir.RevokeCert,
			body: signedBy(a.key, a.kid, e.dir.RevokeCert, []byte(`nope`)), kind: acme.Malformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			if url == "" {
				url = newOrder
			}
			status := tc.status
			if status == 0 {
				status = http.StatusBadRequest
			}
			p := wantProblem(t, e.postJWS(t, url, tc.body(t)), tc.kind, status)
			if tc.kind == acme.BadSignatureAlgorithm {
				if !slices.Contains(p.Algorithms, "ES256") || !slices.Contains(p.Algorithms, "RS256") {
					t.Errorf("badSignatureAlgorithm lists algorithms %v, want ES256 and RS256 among them", p.Algorithms)
				}
				if slices.Contains(p.Algorithms, "none") || slices.Contains(p.Algorithms, "HS256") {
					t.Errorf("badSignatureAlgorithm lists %v", p.Algorithms)
				}
			}
		})
	}

	// Nothing above created an order or validated a challenge.
	r := e.as(t, a, ordersURL, nil)
	wantStatus(t, r, http.StatusOK)
	if got := decodeJSON[acme.OrdersList](t, r).Orders; len(got) != 2 {
		t.Errorf("after the refusals the account has %d orders, want the 2 it made: %v", len(got), got)
	}
	if got := e.val.callsFor("api." + domainA); got != 0 {
		t.Errorf("a refused challenge POST started %d validations", got)
	}
}

// TestBadSignatureKeepsNonce: a JWS whose signature does not verify must not burn the
// nonce, so an attacker replaying a mangled copy cannot make the client's request fail
// (ROBUSTNESS 16).
func TestBadSignatureKeepsNonce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	n := e.nonce(t)
	payload := mustJSON(t, acme.NewOrderRequest{Identifiers: identifiers("www." + domainA)})
	good, err := jwstest.Sign(a.key, a.kid, n, e.dir.NewOrder, payload)
	if err != nil {
		t.Fatal(err)
	}
	tampered := mutate(t, good, func(m map[string]any) {
		m["payload"] = b64(mustJSON(t, acme.NewOrderRequest{Identifiers: identifiers("evil." + domainA)}))
	})
	wantProblem(t, e.postJWS(t, e.dir.NewOrder, tampered), acme.Malformed, http.StatusBadRequest)
	r := e.postJWS(t, e.dir.NewOrder, good)
	wantStatus(t, r, http.StatusCreated)
	if got := decodeJSON[acme.Order](t, r).Identifiers; len(got) != 1 || got[0].Value != "www."+domainA {
		t.Errorf("order identifiers %v", got)
	}
	// And now it is spent.
	wantProblem(t, e.postJWS(t, e.dir.NewOrder, good), acme.BadNonce, http.StatusBadRequest)
}
