package jws_test

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	xacme "golang.org/x/crypto/acme"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws"
)

// fakeCA answers golang.org/x/crypto/acme with just enough ACME to run its requests
// through this package the way acme/server does: Parse, find the key, Verify, check
// the nonce and url, then EAB or key change.
type fakeCA struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	nonces  map[string]bool
	next    int
	acctKey *jose.JSONWebKey
}

func newFakeCA(t *testing.T) *fakeCA {
	ca := &fakeCA{t: t, nonces: map[string]bool{}}
	ca.srv = httptest.NewServer(http.HandlerFunc(ca.serve))
	t.Cleanup(ca.srv.Close)
	return ca
}

func (ca *fakeCA) url(path string) string { return ca.srv.URL + path }

func (ca *fakeCA) serve(w http.ResponseWriter, r *http.Request) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	ca.next++
	n := fmt.Sprintf("nonce-%d", ca.next)
	ca.nonces[n] = true
	w.Header().Set("Replay-Nonce", n)
	w.Header().Set("Content-Type", "application/json")

	if r.URL.Path == "/dir" {
		_ = json.NewEncoder(w).Encode(acme.Directory{
			NewNonce: ca.url("/nonce"), NewAccount: ca.url("/new-account"), NewOrder: ca.url("/new-order"),
			RevokeCert: ca.url("/revoke"), KeyChange: ca.url("/key-change"),
		})
		return
	}
	if r.Method != http.MethodPost {
		return // newNonce
	}
	body, _ := io.ReadAll(r.Body)
	status, resp, err := ca.post(r.URL.Path, body)
	if err != nil {
		ca.t.Errorf("%s: %v", r.URL.Path, err)
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"type": "urn:ietf:params:acme:error:malformed", "detail": err.Error()})
		return
	}
	if r.URL.Path == "/new-account" {
		w.Header().Set("Location", ca.url("/acct/1"))
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(resp))
}

func (ca *fakeCA) post(path string, body []byte) (int, string, error) {
	m, err := jws.Parse(body)
	if err != nil {
		return 0, "", err
	}
	key := m.JWK
	if m.KID != "" {
		if m.KID != ca.url("/acct/1") || ca.acctKey == nil {
			return 0, "", fmt.Errorf("unknown kid %q", m.KID)
		}
		key = ca.acctKey
	}
	payload, err := m.Verify(key)
	if err != nil {
		return 0, "", err
	}
	if !ca.nonces[m.Nonce] {
		return 0, "", fmt.Errorf("nonce %q was not issued or is reused", m.Nonce)
	}
	delete(ca.nonces, m.Nonce)
	if m.URL != ca.url(path) {
		return 0, "", fmt.Errorf("url %q, request went to %q", m.URL, ca.url(path))
	}

	switch path {
	case "/new-account":
		var req acme.NewAccountRequest
		if err := json.Unmarshal(payload, &req); err != nil || m.JWK == nil {
			return 0, "", fmt.Errorf("newAccount: %s, jwk %v", payload, m.JWK != nil)
		}
		e, err := jws.ParseEAB(req.ExternalAccountBinding, m.URL, m.JWK)
		if err != nil {
			return 0, "", err
		}
		if err := e.VerifyMAC(hmacKey); err != nil || e.KID != eabKID {
			return 0, "", fmt.Errorf("EAB kid %q: %v", e.KID, err)
		}
		ca.acctKey = m.JWK
		return http.StatusCreated, `{"status":"valid"}`, nil
	case "/acct/1":
		return http.StatusOK, `{"status":"valid"}`, nil
	case "/authz/1":
		if len(payload) != 0 {
			return 0, "", fmt.Errorf("POST-as-GET payload %q", payload)
		}
		return http.StatusOK, `{"status":"valid","identifier":{"type":"dns","value":"www.example.fi"}}`, nil
	case "/key-change":
		inner, err := jws.ParseKeyChange(payload)
		if err != nil {
			return 0, "", err
		}
		innerPayload, err := inner.Verify(inner.JWK)
		if err != nil {
			return 0, "", err
		}
		var kc acme.KeyChangeInner
		if err := json.Unmarshal(innerPayload, &kc); err != nil {
			return 0, "", err
		}
		var oldKey jose.JSONWebKey
		if err := oldKey.UnmarshalJSON(kc.OldKey); err != nil {
			return 0, "", err
		}
		if inner.URL != m.URL || kc.Account != m.KID || !jws.KeyEqual(&oldKey, ca.acctKey) {
			return 0, "", fmt.Errorf("key change does not match the outer JWS: %s", innerPayload)
		}
		ca.acctKey = inner.JWK
		return http.StatusOK, `{"status":"valid"}`, nil
	}
	return 0, "", fmt.Errorf("no such resource")
}

// TestXCryptoACMEClient runs golang.org/x/crypto/acme's real request bodies (it signs
// RS256, ES256 and ES384; it has no Ed25519) through Parse, Verify, ParseEAB and
// ParseKeyChange: jwk and kid requests, an EAB, POST-as-GET and a key rollover.
func TestXCryptoACMEClient(t *testing.T) {
	k := keys()
	cases := []struct {
		name        string
		key, newKey crypto.Signer
	}{
		{"RSA account rolls over to P-256", k.rsa, k.p256},
		{"P-256 account rolls over to P-384", k.p256, k.p384},
		{"P-384 account rolls over to RSA", k.p384, k.rsa},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ca := newFakeCA(t)
			ctx := context.Background()
			c := &xacme.Client{Key: tc.key, DirectoryURL: ca.url("/dir")}
			acct := &xacme.Account{
				Contact:                []string{"mailto:admin@example.fi"},
				ExternalAccountBinding: &xacme.ExternalAccountBinding{KID: eabKID, Key: hmacKey},
			}
			if _, err := c.Register(ctx, acct, xacme.AcceptTOS); err != nil {
				t.Fatalf("Register (jwk, EAB): %v", err)
			}
			if _, err := c.UpdateReg(ctx, &xacme.Account{Contact: []string{"mailto:it@example.fi"}}); err != nil {
				t.Fatalf("UpdateReg (kid): %v", err)
			}
			if _, err := c.GetAuthorization(ctx, ca.url("/authz/1")); err != nil {
				t.Fatalf("GetAuthorization (POST-as-GET): %v", err)
			}
			if err := c.AccountKeyRollover(ctx, tc.newKey); err != nil {
				t.Fatalf("AccountKeyRollover: %v", err)
			}
			if _, err := c.UpdateReg(ctx, &xacme.Account{Contact: []string{"mailto:it@example.fi"}}); err != nil {
				t.Fatalf("UpdateReg with the new key: %v", err)
			}
		})
	}
}
