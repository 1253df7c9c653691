package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/acme"
)

// TestServerInternal: with the database gone, requests fail with a generic
// serverInternal that carries no Go error text, and the real error goes to the log
// (ROBUSTNESS 9, 92, 96).
func TestServerInternal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	o := e.newOrder(t, a, "www."+domainA)
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}

	leaks := []string{"sql", "database", "closed", "store:", "sqlite", "err"}
	for _, tc := range []struct {
		name string
		send func(t *testing.T) *response
	}{
		{"POST-as-GET the account", func(t *testing.T) *response { return e.as(t, a, a.kid, nil) }},
		{"read an order", func(t *testing.T) *response { return e.as(t, a, o.url, nil) }},
		{"new-order", func(t *testing.T) *response {
			return e.as(t, a, e.dir.NewOrder, mustJSON(t, acme.NewOrderRequest{Identifiers: identifiers("api." + domainA)}))
		}},
		{"new-account with an unknown key", func(t *testing.T) *response {
			key := ecKey(t)
			return e.post(t, key, "", e.dir.NewAccount, newAccountPayload(t, nil))
		}},
	} {
		t.Run(tc.name+" → serverInternal 500 with a generic detail", func(t *testing.T) {
			p := wantProblem(t, tc.send(t), acme.ServerInternal, http.StatusInternalServerError)
			for _, word := range leaks {
				if strings.Contains(strings.ToLower(p.Detail), word) {
					t.Errorf("serverInternal detail %q contains %q", p.Detail, word)
				}
			}
		})
	}
	t.Run("the real error is in the log", func(t *testing.T) {
		if !strings.Contains(e.log.String(), "database is closed") {
			t.Errorf("the log does not carry the database error:\n%s", e.log.String())
		}
	})
	t.Run("nonces are still issued", func(t *testing.T) {
		if e.nonce(t) == "" {
			t.Error("no nonce")
		}
	})
}
