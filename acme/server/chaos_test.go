package server_test

import (
	"net/http"
	"testing"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/server"
)

// TestChaosRejectNonces: the test-only knob refuses the configured share of valid
// nonces with badNonce and a fresh Replay-Nonce, so a client that retries gets through.
func TestChaosRejectNonces(t *testing.T) {
	t.Run("ratio 1 refuses every valid nonce, each answer carrying a fresh one", func(t *testing.T) {
		e := newEnvConfig(t, server.Config{ChaosRejectNonces: 1})
		key := ecKey(t)
		seen := map[string]bool{}
		for range 5 {
			r := e.post(t, key, "", e.dir.NewAccount, newAccountPayload(t, e.eab(t, orgA, key)))
			wantProblem(t, r, acme.BadNonce, http.StatusBadRequest)
			n := r.header.Get("Replay-Nonce")
			if seen[n] {
				t.Fatalf("Replay-Nonce %q given twice", n)
			}
			seen[n] = true
		}
	})
	t.Run("ratio 0 refuses none", func(t *testing.T) {
		e := newEnvConfig(t, server.Config{ChaosRejectNonces: 0})
		a := e.register(t, orgA)
		for range 20 {
			wantStatus(t, e.as(t, a, a.kid+"/orders", nil), http.StatusOK)
		}
	})
	t.Run("ratio 0.5 refuses some and accepts some; a retry gets through", func(t *testing.T) {
		e := newEnvConfig(t, server.Config{ChaosRejectNonces: 0.5})
		// Register with retries, as a client does on badNonce.
		key := ecKey(t)
		eab := e.eab(t, orgA, key)
		var kid string
		for try := 0; kid == "" && try < 64; try++ {
			r := e.post(t, key, "", e.dir.NewAccount, newAccountPayload(t, eab))
			if r.status == http.StatusCreated {
				kid = r.header.Get("Location")
				continue
			}
			wantProblem(t, r, acme.BadNonce, http.StatusBadRequest)
		}
		if kid == "" {
			t.Fatal("64 newAccount attempts at ratio 0.5 were all refused")
		}
		// 200 requests: both outcomes occur unless something is broken (chance 2^-199).
		refused, accepted := 0, 0
		for range 200 {
			r := e.post(t, key, kid, kid+"/orders", nil)
			switch r.status {
			case http.StatusOK:
				accepted++
			default:
				wantProblem(t, r, acme.BadNonce, http.StatusBadRequest)
				refused++
			}
		}
		t.Logf("ratio 0.5: %d refused, %d accepted of 200", refused, accepted)
		if refused == 0 || accepted == 0 {
			t.Fatalf("%d refused, %d accepted of 200 at ratio 0.5", refused, accepted)
		}
	})
	t.Run("ratio 0.1 refuses exactly every tenth valid nonce, never two in a row", func(t *testing.T) {
		e := newEnvConfig(t, server.Config{ChaosRejectNonces: 0.1})
		key := ecKey(t)
		eab := e.eab(t, orgA, key)
		var kid string
		for try := 0; kid == "" && try < 2; try++ { // the first nine nonces are accepted
			if r := e.post(t, key, "", e.dir.NewAccount, newAccountPayload(t, eab)); r.status == http.StatusCreated {
				kid = r.header.Get("Location")
			}
		}
		if kid == "" {
			t.Fatal("newAccount refused twice in a row at ratio 0.1")
		}
		refused, last := 0, false
		for i := range 100 {
			r := e.post(t, key, kid, kid+"/orders", nil)
			bad := r.status != http.StatusOK
			if bad {
				wantProblem(t, r, acme.BadNonce, http.StatusBadRequest)
				refused++
				if last {
					t.Fatalf("request %d: a second refusal in a row", i)
				}
			}
			last = bad
		}
		if refused != 10 {
			t.Fatalf("%d of 100 refused at ratio 0.1, want 10", refused)
		}
	})
}
