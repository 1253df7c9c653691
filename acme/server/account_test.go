package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
	"github.com/varmenne/varmenne/store"
)

// eabJWS builds an externalAccountBinding with a protected header given as a map and an
// HMAC-SHA256 over it, whatever alg the header claims.
func eabJWS(t *testing.T, protected map[string]any, payload, hmacKey []byte) json.RawMessage {
	t.Helper()
	p, pl := b64(mustJSON(t, protected)), b64(payload)
	mac := hmac.New(sha256.New, hmacKey)
	mac.Write([]byte(p + "." + pl))
	return mustJSON(t, map[string]string{"protected": p, "payload": pl, "signature": b64(mac.Sum(nil))})
}

// craftedJWK signs a newAccount request whose header carries jwk verbatim; the
// signature is made with an unrelated P-256 key, because these keys are refused
// before any signature is checked (and Go cannot sign with some of them).
func (e *env) craftedJWK(t *testing.T, jwk map[string]any, alg string) []byte {
	t.Helper()
	return signProtected(t, ecKey(t), map[string]any{
		"alg": alg, "jwk": jwk, "nonce": e.nonce(t), "url": e.dir.NewAccount,
	}, newAccountPayload(t, nil))
}

func coord(size int) string {
	b := make([]byte, size)
	_, _ = rand.Read(b)
	return b64(b)
}

// TestNewAccount covers newAccount refusals: EAB (ROBUSTNESS 26-32), unknown keys (34),
// weak keys (35) and contacts (36).
func TestNewAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.dir.NewAccount
	revokedKID, revokedHMAC := e.newEABWithStatus(t, orgA, store.EABRevoked)
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p224JWK := map[string]any{"kty": "EC", "crv": "P-224",
		"x": b64(p224.X.FillBytes(make([]byte, 28))), "y": b64(p224.Y.FillBytes(make([]byte, 28)))}
	// signed posts a newAccount payload made for key, signed by key with its jwk.
	type build func(t *testing.T, key crypto.Signer) []byte
	withEAB := func(eab func(t *testing.T, key crypto.Signer) json.RawMessage, contacts ...string) build {
		return func(t *testing.T, key crypto.Signer) []byte {
			return e.sign(t, key, "", url, newAccountPayload(t, eab(t, key), contacts...))
		}
	}
	goodEAB := func(t *testing.T, key crypto.Signer) json.RawMessage { return e.eab(t, orgA, key) }
	// craftedEAB changes a correct EAB header and MACs it with the right key.
	craftedEAB := func(change func(h map[string]any)) func(t *testing.T, key crypto.Signer) json.RawMessage {
		return func(t *testing.T, key crypto.Signer) json.RawMessage {
			kid, hmacKey := e.newEAB(t, orgA)
			h := map[string]any{"alg": "HS256", "kid": kid, "url": url}
			change(h)
			return eabJWS(t, h, mustJSON(t, jwstest.JWK(key)), hmacKey)
		}
	}
	raw := func(payload string) build {
		return func(t *testing.T, key crypto.Signer) []byte { return e.sign(t, key, "", url, []byte(payload)) }
	}
	withKey := func(k func(t *testing.T) crypto.Signer, b build) build {
		return func(t *testing.T, _ crypto.Signer) []byte { return b(t, k(t)) }
	}
	crafted := func(jwk map[string]any, alg string) build {
		return func(t *testing.T, _ crypto.Signer) []byte { return e.craftedJWK(t, jwk, alg) }
	}

	cases := []struct {
		name   string
		body   build
		kind   acme.ErrorKind
		status int
	}{
		{"no EAB → externalAccountRequired 403", raw(`{"termsOfServiceAgreed":true}`), acme.ExternalAccountRequired, http.StatusForbidden},
		{"EAB null → externalAccountRequired 403", raw(`{"externalAccountBinding":null}`), acme.ExternalAccountRequired, http.StatusForbidden},
		{"EAB with alg RS256 → malformed", withEAB(craftedEAB(func(h map[string]any) { h["alg"] = "RS256" })), acme.Malformed, 400},
		{"EAB with alg none → malformed", withEAB(craftedEAB(func(h map[string]any) { h["alg"] = "none" })), acme.Malformed, 400},
		{"EAB header with a nonce → malformed", withEAB(func(t *testing.T, key crypto.Signer) json.RawMessage {
			return craftedEAB(func(h map[string]any) { h["nonce"] = e.nonce(t) })(t, key)
		}), acme.Malformed, 400},
		{"EAB url ≠ outer url → malformed", withEAB(craftedEAB(func(h map[string]any) { h["url"] = e.dir.NewOrder })), acme.Malformed, 400},
		{"EAB url with a trailing slash → malformed", withEAB(craftedEAB(func(h map[string]any) { h["url"] = url + "/" })), acme.Malformed, 400},
		{"EAB without kid → malformed", withEAB(craftedEAB(func(h map[string]any) { delete(h, "kid") })), acme.Malformed, 400},
		{"EAB that is a string, not a JWS → malformed", raw(`{"externalAccountBinding":"eab"}`), acme.Malformed, 400},
		{"EAB kid unknown → unauthorized 403", withEAB(func(t *testing.T, key crypto.Signer) json.RawMessage {
			b, err := jwstest.EAB(key, "no-such-kid", []byte("0123456789abcdef0123456789abcdef"), url, "")
			if err != nil {
				t.Fatal(err)
			}
			return b
		}), acme.Unauthorized, http.StatusForbidden},
		{"EAB kid revoked → unauthorized 403", withEAB(func(t *testing.T, key crypto.Signer) json.RawMessage {
			b, err := jwstest.EAB(key, revokedKID, revokedHMAC, url, "")
			if err != nil {
				t.Fatal(err)
			}
			return b
		}), acme.Unauthorized, http.StatusForbidden},
		{"EAB MAC with the wrong HMAC key → unauthorized 403", withEAB(func(t *testing.T, key crypto.Signer) json.RawMessage {
			kid, _ := e.newEAB(t, orgA)
			b, err := jwstest.EAB(key, kid, []byte("not the key the CA issued"), url, "")
			if err != nil {
				t.Fatal(err)
			}
			return b
		}), acme.Unauthorized, http.StatusForbidden},
		{"EAB payload key ≠ outer jwk → unauthorized 403", withEAB(func(t *testing.T, _ crypto.Signer) json.RawMessage {
			return goodEAB(t, ecKey(t))
		}), acme.Unauthorized, http.StatusForbidden},
		{"onlyReturnExisting with an unknown key → accountDoesNotExist", raw(`{"onlyReturnExisting":true}`), acme.AccountDoesNotExist, 400},
		{"onlyReturnExisting with an unknown key and an EAB → accountDoesNotExist", func(t *testing.T, key crypto.Signer) []byte {
			return e.sign(t, key, "", url, mustJSON(t, map[string]any{"onlyReturnExisting": true, "externalAccountBinding": goodEAB(t, key)}))
		}, acme.AccountDoesNotExist, 400},

		// Account keys (ROBUSTNESS 35).
		{"RSA-1024 account key → badPublicKey", withKey(func(t *testing.T) crypto.Signer { return slowKey(t, rsa1024) }, withEAB(goodEAB)), acme.BadPublicKey, 400},
		{"RSA account key with e=3 → badPublicKey", withKey(func(t *testing.T) crypto.Signer { return slowKey(t, rsaE3) }, withEAB(goodEAB)), acme.BadPublicKey, 400},
		{"RSA-512 jwk → badPublicKey", crafted(map[string]any{"kty": "RSA", "n": coord(64), "e": "AQAB"}, "RS256"), acme.BadPublicKey, 400},
		{"P-224 jwk → badPublicKey", crafted(p224JWK, "ES256"), acme.BadPublicKey, 400},
		{"P-521 jwk → badPublicKey", crafted(map[string]any{"kty": "EC", "crv": "P-521", "x": coord(66), "y": coord(66)}, "ES256"), acme.BadPublicKey, 400},
		{"secp256k1 jwk → badPublicKey", crafted(map[string]any{"kty": "EC", "crv": "secp256k1", "x": coord(32), "y": coord(32)}, "ES256"), acme.BadPublicKey, 400},
		{"P-256 jwk with a point off the curve → badPublicKey", crafted(map[string]any{"kty": "EC", "crv": "P-256", "x": coord(32), "y": coord(32)}, "ES256"), acme.BadPublicKey, 400},
		{"X25519 jwk → badPublicKey", crafted(map[string]any{"kty": "OKP", "crv": "X25519", "x": coord(32)}, "EdDSA"), acme.BadPublicKey, 400},
		{"symmetric jwk → malformed", crafted(map[string]any{"kty": "oct", "k": coord(32)}, "ES256"), acme.Malformed, 400},

		// Contacts (ROBUSTNESS 36).
		{"contact tel: → unsupportedContact", withEAB(goodEAB, "tel:+358401234567"), acme.UnsupportedContact, 400},
		{"contact https: → unsupportedContact", withEAB(goodEAB, "https://example.fi/contact"), acme.UnsupportedContact, 400},
		{"mailto with two addresses → invalidContact", withEAB(goodEAB, "mailto:a@b.fi,c@d.fi"), acme.InvalidContact, 400},
		{"mailto with an hfield → invalidContact", withEAB(goodEAB, "mailto:a@b.fi?subject=x"), acme.InvalidContact, 400},
		{"mailto with a display name → invalidContact", withEAB(goodEAB, "mailto:Admin <a@b.fi>"), acme.InvalidContact, 400},
		{"mailto without a domain dot → invalidContact", withEAB(goodEAB, "mailto:admin@localhost"), acme.InvalidContact, 400},
		{"mailto without an address → invalidContact", withEAB(goodEAB, "mailto:"), acme.InvalidContact, 400},
		{"eleven contacts → invalidContact", withEAB(goodEAB, strings.Split(strings.Repeat("mailto:a@b.fi ", 11), " ")[:11]...), acme.InvalidContact, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := ecKey(t)
			wantProblem(t, e.postJWS(t, url, tc.body(t, key)), tc.kind, tc.status)
			// Nothing was created for the key.
			r := e.post(t, key, "", url, []byte(`{"onlyReturnExisting":true}`))
			wantProblem(t, r, acme.AccountDoesNotExist, 400)
		})
	}

	t.Run("a refused newAccount leaves its EAB key unused", func(t *testing.T) {
		key := ecKey(t)
		kid, hmacKey := e.newEAB(t, orgA)
		b, err := jwstest.EAB(key, kid, hmacKey, url, "")
		if err != nil {
			t.Fatal(err)
		}
		wantProblem(t, e.post(t, key, "", url, newAccountPayload(t, b, "tel:+358401234567")), acme.UnsupportedContact, 400)
		ek, err := e.st.GetEAB(context.Background(), kid)
		if err != nil || ek.Status != store.EABApproved {
			t.Fatalf("EAB key after a refusal: %+v, %v", ek, err)
		}
		wantStatus(t, e.post(t, key, "", url, newAccountPayload(t, b, "mailto:admin@"+domainA)), http.StatusCreated)
	})
}

// TestEABKeyBindsOneAccount: an EAB key creates one account, also under concurrency
// (ROBUSTNESS 6).
func TestEABKeyBindsOneAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	url := e.dir.NewAccount
	eabFor := func(t *testing.T, key crypto.Signer, kid string, hmacKey []byte) []byte {
		b, err := jwstest.EAB(key, kid, hmacKey, url, "")
		if err != nil {
			t.Fatal(err)
		}
		return newAccountPayload(t, b)
	}

	t.Run("used twice by two keys: the second gets unauthorized, one account exists", func(t *testing.T) {
		kid, hmacKey := e.newEAB(t, orgA)
		k1, k2 := ecKey(t), ecKey(t)
		r := e.post(t, k1, "", url, eabFor(t, k1, kid, hmacKey))
		wantStatus(t, r, http.StatusCreated)
		first := r.header.Get("Location")
		wantProblem(t, e.post(t, k2, "", url, eabFor(t, k2, kid, hmacKey)), acme.Unauthorized, http.StatusForbidden)
		wantProblem(t, e.post(t, k2, "", url, []byte(`{"onlyReturnExisting":true}`)), acme.AccountDoesNotExist, 400)
		ek, err := e.st.GetEAB(context.Background(), kid)
		if err != nil {
			t.Fatal(err)
		}
		if ek.Status != store.EABBound || !strings.HasSuffix(first, "/"+ek.AccountID) {
			t.Errorf("EAB key is %s bound to %q; want bound to %s", ek.Status, ek.AccountID, first)
		}
	})

	t.Run("the same account key again → 200 with the same Location", func(t *testing.T) {
		kid, hmacKey := e.newEAB(t, orgA)
		key := ecKey(t)
		r := e.post(t, key, "", url, eabFor(t, key, kid, hmacKey))
		wantStatus(t, r, http.StatusCreated)
		loc := r.header.Get("Location")
		kid2, hmacKey2 := e.newEAB(t, orgA)
		for _, tc := range []struct {
			name    string
			payload []byte
		}{
			{"with the same EAB", eabFor(t, key, kid, hmacKey)},
			{"with another EAB", eabFor(t, key, kid2, hmacKey2)},
			{"without EAB", []byte(`{}`)},
			{"onlyReturnExisting", []byte(`{"onlyReturnExisting":true}`)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := e.post(t, key, "", url, tc.payload)
				wantStatus(t, r, http.StatusOK)
				if got := r.header.Get("Location"); got != loc {
					t.Errorf("Location %q, want %q", got, loc)
				}
			})
		}
		// The second EAB key was not spent on an account that already existed.
		if ek, err := e.st.GetEAB(context.Background(), kid2); err != nil || ek.Status != store.EABApproved {
			t.Errorf("unused EAB key: %+v, %v", ek, err)
		}
	})

	t.Run("eight keys race for one EAB key: exactly one account", func(t *testing.T) {
		kid, hmacKey := e.newEAB(t, orgA)
		const n = 8
		bodies := make([][]byte, n)
		for i := range bodies {
			key := ecKey(t)
			bodies[i] = e.sign(t, key, "", url, eabFor(t, key, kid, hmacKey))
		}
		statuses := make([]int, n)
		var wg sync.WaitGroup
		for i := range bodies {
			wg.Go(func() {
				res, err := e.client.Post(url, "application/jose+json", strings.NewReader(string(bodies[i])))
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				statuses[i] = res.StatusCode
			})
		}
		wg.Wait()
		created, refused := 0, 0
		for _, s := range statuses {
			switch s {
			case http.StatusCreated:
				created++
			case http.StatusForbidden:
				refused++
			}
		}
		if created != 1 || refused != n-1 {
			t.Errorf("statuses %v: want one 201 and %d 403", statuses, n-1)
		}
	})
}

// TestDeactivatedAccount: after deactivation every request with the account's key is
// refused with unauthorized (RFC 8555 7.3.6, ROBUSTNESS 15).
func TestDeactivatedAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	c := e.issue(t, a, "www."+domainA)
	o := e.newOrder(t, a, "api."+domainA)

	// A contact update that sends the current status along (acmez does) is accepted.
	r := e.as(t, a, a.kid, []byte(`{"status":"valid","contact":["mailto:ops@example.fi"]}`))
	wantStatus(t, r, http.StatusOK)
	if got := decodeJSON[acme.Account](t, r); got.Status != acme.StatusValid || !slices.Equal(got.Contact, []string{"mailto:ops@example.fi"}) {
		t.Fatalf("after a contact update with status valid: status %q, contacts %q", got.Status, got.Contact)
	}

	r = e.as(t, a, a.kid, []byte(`{"status":"deactivated"}`))
	wantStatus(t, r, http.StatusOK)
	if got := decodeJSON[acme.Account](t, r).Status; got != acme.StatusDeactivated {
		t.Fatalf("status after deactivation %q", got)
	}
	revoke := mustJSON(t, acme.RevokeRequest{Certificate: b64(c.cert.Raw)})
	for _, tc := range []struct {
		name, url string
		payload   []byte
	}{
		{"POST-as-GET the account", a.kid, nil},
		{"deactivate again", a.kid, []byte(`{"status":"deactivated"}`)},
		{"update contacts", a.kid, []byte(`{"contact":["mailto:new@example.fi"]}`)},
		{"new-order", e.dir.NewOrder, mustJSON(t, acme.NewOrderRequest{Identifiers: identifiers("www." + domainA)})},
		{"read an order", o.url, nil},
		{"answer a challenge", o.challenges[0], []byte("{}")},
		{"download a certificate", c.certURL, nil},
		{"revoke a certificate", e.dir.RevokeCert, revoke},
		{"key change", e.dir.KeyChange, []byte("{}")},
	} {
		t.Run(tc.name+" → unauthorized 403", func(t *testing.T) {
			wantProblem(t, e.as(t, a, tc.url, tc.payload), acme.Unauthorized, http.StatusForbidden)
		})
	}
	t.Run("newAccount with the deactivated account's key → unauthorized 403", func(t *testing.T) {
		r := e.post(t, a.key, "", e.dir.NewAccount, newAccountPayload(t, e.eab(t, orgA, a.key)))
		wantProblem(t, r, acme.Unauthorized, http.StatusForbidden)
	})
	if got := e.val.callsFor("api." + domainA); got != 0 {
		t.Errorf("a deactivated account started %d validations", got)
	}
}

// TestKeyChange covers key rollover (RFC 8555 7.3.5, ROBUSTNESS 37-38).
func TestKeyChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	other := e.register(t, orgA)
	url := e.dir.KeyChange

	// inner is a key-change inner JWS by newKey, with header and payload changes.
	inner := func(t *testing.T, newKey crypto.Signer, header func(h map[string]any), payload func(p map[string]any)) []byte {
		h := map[string]any{"alg": "ES256", "jwk": jwkMap(t, newKey), "url": url}
		p := map[string]any{"account": a.kid, "oldKey": jwkMap(t, a.key)}
		if header != nil {
			header(h)
		}
		if payload != nil {
			payload(p)
		}
		return signProtected(t, newKey, h, mustJSON(t, p))
	}
	cases := []struct {
		name   string
		inner  func(t *testing.T) []byte
		kind   acme.ErrorKind
		status int
	}{
		{"inner JWS with kid instead of jwk → malformed", func(t *testing.T) []byte {
			return inner(t, ecKey(t), func(h map[string]any) { delete(h, "jwk"); h["kid"] = a.kid }, nil)
		}, acme.Malformed, 400},
		{"inner JWS with a nonce → malformed", func(t *testing.T) []byte {
			return inner(t, ecKey(t), func(h map[string]any) { h["nonce"] = e.nonce(t) }, nil)
		}, acme.Malformed, 400},
		{"inner url ≠ outer url → malformed", func(t *testing.T) []byte {
			return inner(t, ecKey(t), func(h map[string]any) { h["url"] = e.dir.NewAccount }, nil)
		}, acme.Malformed, 400},
		{"inner url missing → malformed", func(t *testing.T) []byte {
			return inner(t, ecKey(t), func(h map[string]any) { delete(h, "url") }, nil)
		}, acme.Malformed, 400},
		{"inner account ≠ outer kid → malformed", func(t *testing.T) []byte {
			return inner(t, ecKey(t), nil, func(p map[string]any) { p["account"] = other.kid })
		}, acme.Malformed, 400},
		{"oldKey ≠ the current key → malformed", func(t *testing.T) []byte {
			return inner(t, ecKey(t), nil, func(p map[string]any) { p["oldKey"] = jwkMap(t, ecKey(t)) })
		}, acme.Malformed, 400},
		{"oldKey missing → malformed", func(t *testing.T) []byte {
			return inner(t, ecKey(t), nil, func(p map[string]any) { delete(p, "oldKey") })
		}, acme.Malformed, 400},
		{"inner signed by another key than its jwk → malformed", func(t *testing.T) []byte {
			body := inner(t, ecKey(t), nil, nil)
			return mutate(t, body, func(m map[string]any) {
				m["signature"] = b64(make([]byte, 64))
			})
		}, acme.Malformed, 400},
		{"inner alg none → badSignatureAlgorithm", func(t *testing.T) []byte {
			return inner(t, ecKey(t), func(h map[string]any) { h["alg"] = "none" }, nil)
		}, acme.BadSignatureAlgorithm, 400},
		{"inner payload not JSON → malformed", func(t *testing.T) []byte {
			k := ecKey(t)
			return signProtected(t, k, map[string]any{"alg": "ES256", "jwk": jwkMap(t, k), "url": url}, []byte("account"))
		}, acme.Malformed, 400},
		{"outer payload not a JWS → malformed", func(*testing.T) []byte { return []byte(`{"account":"x"}`) }, acme.Malformed, 400},
		{"empty outer payload → malformed", func(*testing.T) []byte { return nil }, acme.Malformed, 400},
		{"new key RSA-1024 → badPublicKey", func(t *testing.T) []byte {
			k := slowKey(t, rsa1024)
			return inner(t, k, func(h map[string]any) { h["alg"] = "RS256" }, nil)
		}, acme.BadPublicKey, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.as(t, a, url, tc.inner(t)), tc.kind, tc.status)
			wantStatus(t, e.as(t, a, a.kid, nil), http.StatusOK) // the old key still works
		})
	}

	t.Run("new key already another account's → 409 with that account's Location", func(t *testing.T) {
		r := e.as(t, a, url, inner(t, other.key, nil, nil))
		wantProblem(t, r, acme.Malformed, http.StatusConflict)
		if got := r.header.Get("Location"); got != other.kid {
			t.Errorf("Location %q, want %q", got, other.kid)
		}
	})

	t.Run("a successful key change retires the old key", func(t *testing.T) {
		newKey := ecKey(t)
		r := e.as(t, a, url, inner(t, newKey, nil, nil))
		wantStatus(t, r, http.StatusOK)
		if got := r.header.Get("Location"); got != a.kid {
			t.Errorf("Location %q, want %q", got, a.kid)
		}
		wantProblem(t, e.as(t, a, a.kid, nil), acme.Malformed, 400)
		wantProblem(t, e.post(t, a.key, "", e.dir.NewAccount, []byte(`{"onlyReturnExisting":true}`)), acme.AccountDoesNotExist, 400)
		wantStatus(t, e.post(t, newKey, a.kid, a.kid, nil), http.StatusOK)
		r = e.post(t, newKey, "", e.dir.NewAccount, []byte(`{"onlyReturnExisting":true}`))
		wantStatus(t, r, http.StatusOK)
		if got := r.header.Get("Location"); got != a.kid {
			t.Errorf("the new key finds %q, want %q", got, a.kid)
		}
		a.key = newKey
		wantStatus(t, e.as(t, a, e.dir.NewOrder, mustJSON(t, acme.NewOrderRequest{Identifiers: identifiers("www." + domainA)})), http.StatusCreated)
	})
}
