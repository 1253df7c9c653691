package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
)

type countingNonces struct{ n int }

func (c *countingNonces) Issue(context.Context) (string, error) {
	c.n++
	return fmt.Sprintf("nonce-%d", c.n), nil
}

func (c *countingNonces) Redeem(context.Context, string) error { return nil }

// TestProblemRendering: every error kind is rendered as an RFC 7807 document with its
// URN and status; anything untyped becomes a generic serverInternal.
func TestProblemRendering(t *testing.T) {
	s := New(Config{BaseURL: "https://acme.example/"}, nil, &countingNonces{}, nil)
	render := func(err error) (*httptest.ResponseRecorder, acme.Problem) {
		t.Helper()
		w := httptest.NewRecorder()
		s.problem(w, httptest.NewRequest(http.MethodPost, "/acme/new-order", nil), err)
		if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("Content-Type %q", ct)
		}
		var p acme.Problem
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
			t.Fatalf("problem does not decode: %v: %s", err, w.Body)
		}
		if p.Status != w.Code {
			t.Errorf("status member %d, HTTP status %d", p.Status, w.Code)
		}
		return w, p
	}

	kinds := []struct {
		kind   acme.ErrorKind
		status int
	}{
		{acme.AccountDoesNotExist, 400}, {acme.AlreadyReplaced, 409}, {acme.AlreadyRevoked, 400},
		{acme.BadCSR, 400}, {acme.BadNonce, 400}, {acme.BadPublicKey, 400}, {acme.BadRevocationReason, 400},
		{acme.BadSignatureAlgorithm, 400}, {acme.CAA, 403}, {acme.Compound, 403}, {acme.Connection, 400},
		{acme.DNS, 400}, {acme.ExternalAccountRequired, 403}, {acme.IncorrectResponse, 403},
		{acme.InvalidContact, 400}, {acme.InvalidProfile, 400}, {acme.Malformed, 400},
		{acme.OrderNotReady, 403}, {acme.RateLimited, 429}, {acme.RejectedIdentifier, 400},
		{acme.ServerInternal, 500}, {acme.TLS, 400}, {acme.Unauthorized, 403},
		{acme.UnsupportedContact, 400}, {acme.UnsupportedIdentifier, 400}, {acme.UserActionRequired, 403},
	}
	for _, tc := range kinds {
		t.Run(string(tc.kind)+" is "+fmt.Sprint(tc.status), func(t *testing.T) {
			// Wrapped, as the layers below return it.
			w, p := render(fmt.Errorf("somewhere: %w", acme.Errorf(tc.kind, "what went wrong")))
			if w.Code != tc.status || p.Type != "urn:ietf:params:acme:error:"+string(tc.kind) || p.Detail != "what went wrong" {
				t.Errorf("got %d %+v", w.Code, p)
			}
		})
	}

	t.Run("an untyped error is a generic serverInternal", func(t *testing.T) {
		w, p := render(fmt.Errorf("store: get account: %w", errors.New("sql: database is closed")))
		if w.Code != 500 || p.Type != acme.ServerInternal.URN() || p.Detail == "" {
			t.Fatalf("got %d %+v", w.Code, p)
		}
		if strings.Contains(w.Body.String(), "sql") || strings.Contains(w.Body.String(), "store") {
			t.Errorf("the problem leaks the error: %s", w.Body)
		}
	})
	t.Run("an explicit status wins", func(t *testing.T) {
		w, _ := render(acme.Errorf(acme.Malformed, "too big").WithStatus(http.StatusRequestEntityTooLarge))
		if w.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("got %d", w.Code)
		}
	})
	t.Run("a conflict names the account that holds the key", func(t *testing.T) {
		e := acme.Errorf(acme.Malformed, "the new key already belongs to an account").WithStatus(409)
		e.Location = "AAAAAAAAAAAAAAAAAAAAAA"
		w, _ := render(e)
		if got := w.Header().Get("Location"); got != "https://acme.example/acme/account/AAAAAAAAAAAAAAAAAAAAAA" {
			t.Errorf("Location %q", got)
		}
	})
	t.Run("a rate limit refusal says when to retry, in whole seconds rounded up", func(t *testing.T) {
		e := acme.Errorf(acme.RateLimited, "too many new orders")
		e.RetryAfter = 90*time.Second + 300*time.Millisecond
		w, p := render(e)
		if w.Code != http.StatusTooManyRequests || p.Type != acme.RateLimited.URN() {
			t.Errorf("got %d %+v", w.Code, p)
		}
		if got := w.Header().Get("Retry-After"); got != "91" {
			t.Errorf("Retry-After %q, want 91", got)
		}
	})
	t.Run("other problems carry no Retry-After", func(t *testing.T) {
		w, _ := render(acme.Errorf(acme.Malformed, "bad"))
		if got := w.Header().Get("Retry-After"); got != "" {
			t.Errorf("Retry-After %q on malformed", got)
		}
	})
	t.Run("subproblems and algorithms are rendered", func(t *testing.T) {
		id := acme.Identifier{Type: "dns", Value: "a_b.example.fi"}
		e := &acme.Error{Kind: acme.RejectedIdentifier, Detail: "refused",
			Subproblems: []acme.Subproblem{{Type: acme.Malformed.URN(), Detail: "underscore", Identifier: &id}},
			Algorithms:  []string{"ES256"}}
		_, p := render(e)
		if len(p.Subproblems) != 1 || *p.Subproblems[0].Identifier != id || len(p.Algorithms) != 1 {
			t.Errorf("got %+v", p)
		}
	})
}

// TestJSONProblem: payload errors are told in JSON terms, not the server's Go types.
func TestJSONProblem(t *testing.T) {
	for _, tc := range []struct {
		name, payload string
		into          any
		want          string
	}{
		{"identifiers as a string", `{"identifiers":"www.example.fi"}`, &acme.NewOrderRequest{}, `member "identifiers" cannot be a JSON string`},
		{"a nested member of the wrong type", `{"identifiers":[{"type":"dns","value":7}]}`, &acme.NewOrderRequest{}, `member "identifiers.value" cannot be a JSON number`},
		{"an array for an object", `[]`, &acme.NewAccountRequest{}, `a JSON array is not what this request takes`},
		{"broken JSON", `{"a":`, &acme.NewAccountRequest{}, `unexpected end of JSON input`},
		{"a member twice, which parsers read differently", `{"termsOfServiceAgreed":false,"termsOfServiceAgreed":true}`, &acme.NewAccountRequest{},
			`duplicate member "termsOfServiceAgreed"`},
		{"a member twice deep inside", `{"identifiers":[{"type":"dns","value":"a.fi","value":"b.fi"}]}`, &acme.NewOrderRequest{}, `duplicate member "value"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := decode([]byte(tc.payload), tc.into)
			ae, ok := acme.AsError(err)
			if !ok || ae.Kind != acme.Malformed {
				t.Fatalf("decode: %v", err)
			}
			if !strings.Contains(ae.Detail, tc.want) {
				t.Errorf("detail %q, want it to say %q", ae.Detail, tc.want)
			}
			for _, internal := range []string{"Go ", "acme.", "Request", "struct"} {
				if strings.Contains(ae.Detail, internal) {
					t.Errorf("detail %q names the server's Go types (%q)", ae.Detail, internal)
				}
			}
		})
	}
}
