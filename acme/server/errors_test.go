package server_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
)

// TestProblemTypes is the index: one end-to-end case per problem type the server
// answers, each a complete RFC 7807 document (wantProblem) with its type's extras.
// The area tests (TestJWS, TestNewAccount, TestNewOrder, TestFinalize, TestRevoke …)
// go through each rule case by case.
func TestProblemTypes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	c := e.issue(t, a, "www."+domainA)
	newOrder := mustJSON(t, acme.NewOrderRequest{Identifiers: identifiers("api." + domainA)})

	t.Run("malformed", func(t *testing.T) {
		wantProblem(t, e.as(t, a, e.dir.NewOrder, []byte(`{"identifiers":"api.example.fi"}`)), acme.Malformed, http.StatusBadRequest)
	})
	t.Run("badNonce, with a fresh nonce that works", func(t *testing.T) {
		used := e.nonce(t)
		first, err := jwstest.Sign(a.key, a.kid, used, a.kid, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, e.postJWS(t, a.kid, first), http.StatusOK)
		again, err := jwstest.Sign(a.key, a.kid, used, e.dir.NewOrder, newOrder)
		if err != nil {
			t.Fatal(err)
		}
		r := e.postJWS(t, e.dir.NewOrder, again)
		wantProblem(t, r, acme.BadNonce, http.StatusBadRequest)
		fresh := r.header.Get("Replay-Nonce")
		if fresh == "" || fresh == used {
			t.Fatalf("badNonce came with Replay-Nonce %q", fresh)
		}
		retry, err := jwstest.Sign(a.key, a.kid, fresh, e.dir.NewOrder, newOrder)
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, e.postJWS(t, e.dir.NewOrder, retry), http.StatusCreated)
	})
	t.Run("badSignatureAlgorithm, listing the algorithms", func(t *testing.T) {
		body := signProtected(t, a.key, map[string]any{"alg": "none", "kid": a.kid, "nonce": e.nonce(t), "url": e.dir.NewOrder}, newOrder)
		p := wantProblem(t, e.postJWS(t, e.dir.NewOrder, body), acme.BadSignatureAlgorithm, http.StatusBadRequest)
		for _, alg := range []string{"ES256", "ES384", "RS256", "EdDSA"} {
			if !slices.Contains(p.Algorithms, alg) {
				t.Errorf("algorithms %v lack %s", p.Algorithms, alg)
			}
		}
	})
	t.Run("unauthorized", func(t *testing.T) {
		other := e.register(t, orgA)
		wantProblem(t, e.as(t, other, a.kid, nil), acme.Unauthorized, http.StatusForbidden)
	})
	t.Run("accountDoesNotExist", func(t *testing.T) {
		wantProblem(t, e.post(t, ecKey(t), "", e.dir.NewAccount, []byte(`{"onlyReturnExisting":true}`)), acme.AccountDoesNotExist, http.StatusBadRequest)
	})
	t.Run("externalAccountRequired", func(t *testing.T) {
		wantProblem(t, e.post(t, ecKey(t), "", e.dir.NewAccount, []byte(`{"termsOfServiceAgreed":true}`)), acme.ExternalAccountRequired, http.StatusForbidden)
	})
	t.Run("unsupportedIdentifier", func(t *testing.T) {
		wantProblem(t, e.as(t, a, e.dir.NewOrder, []byte(`{"identifiers":[{"type":"email","value":"a@example.fi"}]}`)), acme.UnsupportedIdentifier, http.StatusBadRequest)
	})
	t.Run("rejectedIdentifier, with a subproblem per identifier", func(t *testing.T) {
		bad := []string{"www." + domainB, "mail." + domainB}
		r := e.as(t, a, e.dir.NewOrder, mustJSON(t, acme.NewOrderRequest{Identifiers: identifiers(append([]string{"www." + domainA}, bad...)...)}))
		p := wantProblem(t, r, acme.RejectedIdentifier, http.StatusBadRequest)
		if len(p.Subproblems) != len(bad) {
			t.Fatalf("subproblems %+v, want one for each of %v", p.Subproblems, bad)
		}
		for i, sp := range p.Subproblems {
			if sp.Identifier == nil || sp.Identifier.Value != bad[i] || sp.Type != acme.RejectedIdentifier.URN() || !strings.Contains(sp.Detail, bad[i]) {
				t.Errorf("subproblem %d: %+v", i, sp)
			}
		}
	})
	t.Run("orderNotReady", func(t *testing.T) {
		o := e.newOrder(t, a, "pending."+domainA)
		wantProblem(t, e.as(t, a, o.obj.Finalize, finalizePayload(t, csrFor(t, ecKey(t), "pending."+domainA))), acme.OrderNotReady, http.StatusForbidden)
	})
	t.Run("badCSR", func(t *testing.T) {
		o := e.readyOrder(t, a, "csr."+domainA)
		wantProblem(t, e.as(t, a, o.obj.Finalize, finalizePayload(t, csrFor(t, ecKey(t), "other."+domainA))), acme.BadCSR, http.StatusBadRequest)
	})
	t.Run("badPublicKey", func(t *testing.T) {
		k := slowKey(t, rsa1024)
		wantProblem(t, e.post(t, k, "", e.dir.NewAccount, newAccountPayload(t, e.eab(t, orgA, k))), acme.BadPublicKey, http.StatusBadRequest)
	})
	t.Run("badRevocationReason", func(t *testing.T) {
		wantProblem(t, e.as(t, a, e.dir.RevokeCert, revokePayload(t, c.cert.Raw, reason(6))), acme.BadRevocationReason, http.StatusBadRequest)
	})
	t.Run("alreadyRevoked", func(t *testing.T) {
		wantStatus(t, e.as(t, a, e.dir.RevokeCert, revokePayload(t, c.cert.Raw, nil)), http.StatusOK)
		wantProblem(t, e.as(t, a, e.dir.RevokeCert, revokePayload(t, c.cert.Raw, nil)), acme.AlreadyRevoked, http.StatusBadRequest)
	})
	t.Run("unsupportedContact", func(t *testing.T) {
		k := ecKey(t)
		wantProblem(t, e.post(t, k, "", e.dir.NewAccount, newAccountPayload(t, e.eab(t, orgA, k), "tel:+358401234567")), acme.UnsupportedContact, http.StatusBadRequest)
	})
	t.Run("invalidContact", func(t *testing.T) {
		wantProblem(t, e.as(t, a, a.kid, []byte(`{"contact":["mailto:a@b.fi?subject=x"]}`)), acme.InvalidContact, http.StatusBadRequest)
	})
	t.Run("invalidProfile", func(t *testing.T) {
		wantProblem(t, e.as(t, a, e.dir.NewOrder, []byte(`{"identifiers":[{"type":"dns","value":"api.example.fi"}],"profile":"nope"}`)), acme.InvalidProfile, http.StatusBadRequest)
	})
	t.Run("serverInternal, without the error text", func(t *testing.T) {
		if err := e.st.Close(); err != nil {
			t.Fatal(err)
		}
		p := wantProblem(t, e.as(t, a, a.kid, nil), acme.ServerInternal, http.StatusInternalServerError)
		for _, word := range []string{"sql", "database", "closed"} {
			if strings.Contains(strings.ToLower(p.Detail), word) {
				t.Errorf("detail %q contains %q", p.Detail, word)
			}
		}
	})
}

// goInternals returns what in detail is the server's Go internals, or "".
func goInternals(detail string) string {
	for _, marker := range []string{"Go struct field", "Go value of type", "acme.", "{optional:", "isCompound", "asn1: structure error"} {
		if strings.Contains(detail, marker) {
			return marker
		}
	}
	return ""
}

// TestDetailsNameNoGoInternals: a detail speaks to the person at the client, in JSON
// and ACME terms, never in the server's Go types (ROBUSTNESS 9, CONVENTIONS "Errors").
func TestDetailsNameNoGoInternals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	o := e.readyOrder(t, a, "www."+domainA)
	k := ecKey(t)
	cases := []struct {
		name, url string
		payload   []byte
		decodedBy string // "" when acme/server decodes the payload
	}{
		{"new-order identifiers as a string", e.dir.NewOrder, []byte(`{"identifiers":"www.example.fi"}`), ""},
		{"new-order identifier value as a number", e.dir.NewOrder, []byte(`{"identifiers":[{"type":"dns","value":1}]}`), ""},
		{"revoke reason as a string", e.dir.RevokeCert, []byte(`{"certificate":"AA","reason":"1"}`), ""},
		{"key-change inner account as a number", e.dir.KeyChange,
			signProtected(t, k, map[string]any{"alg": "ES256", "jwk": jwkMap(t, k), "url": e.dir.KeyChange}, []byte(`{"account":1}`)), ""},
		{"account update contact as a string", a.kid, []byte(`{"contact":"mailto:a@example.fi"}`), "acme/authority strictUnmarshal (account.go)"},
		{"finalize csr as a number", o.obj.Finalize, []byte(`{"csr":1}`), "acme/authority strictUnmarshal (account.go), called by Finalize"},
		{"finalize csr that is not DER", o.obj.Finalize, finalizePayload(t, b64([]byte("not a CSR at all"))), "acme/authority parseCSR (finalize.go)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.as(t, a, tc.url, tc.payload)
			var p *acme.Problem
			if strings.Contains(tc.name, "not DER") {
				p = wantProblem(t, r, acme.BadCSR, http.StatusBadRequest)
			} else {
				p = wantProblem(t, r, acme.Malformed, http.StatusBadRequest)
			}
			if m := goInternals(p.Detail); m != "" {
				t.Errorf("detail %q shows Go internals (%q); decoded by %s", p.Detail, m, tc.decodedBy)
			}
		})
	}
}
