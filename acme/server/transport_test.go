package server_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/server"
)

// TestTransport covers what is refused before any JWS is read: method, content type,
// body size and unknown paths (ROBUSTNESS 1, 2, 23).
func TestTransport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	o := e.newOrder(t, a, "www."+domainA)
	valid := func() []byte { return e.sign(t, a.key, a.kid, e.dir.NewOrder, nil) }

	t.Run("content type", func(t *testing.T) {
		for _, tc := range []struct{ name, ct string }{
			{"no Content-Type → malformed 415", ""},
			{"application/json → malformed 415", "application/json"},
			{"text/plain → malformed 415", "text/plain"},
			{"unparsable Content-Type → malformed 415", "application/jose+json; ;="},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantProblem(t, e.postRaw(t, e.dir.NewOrder, tc.ct, valid()), acme.Malformed, http.StatusUnsupportedMediaType)
			})
		}
		t.Run("application/jose+json with parameters is accepted", func(t *testing.T) {
			r := e.postRaw(t, e.dir.NewOrder, "application/jose+json; charset=utf-8",
				e.sign(t, a.key, a.kid, e.dir.NewOrder, mustJSON(t, acme.NewOrderRequest{Identifiers: identifiers("api." + domainA)})))
			wantStatus(t, r, http.StatusCreated)
		})
	})

	for _, size := range []struct {
		name string
		n    int
	}{{"64 KiB + 1", server.DefaultMaxBody + 1}, {"4 MiB", 4 << 20}} {
		t.Run("body of "+size.name+" → malformed 413, and the server goes on serving", func(t *testing.T) {
			big := append([]byte(`{"protected":"`), bytes.Repeat([]byte("A"), size.n)...)[:size.n]
			wantProblem(t, e.postJWS(t, e.dir.NewOrder, big), acme.Malformed, http.StatusRequestEntityTooLarge)
			// The same client (a kept-alive connection if there is one) is served next.
			wantStatus(t, e.as(t, a, o.url, nil), http.StatusOK)
		})
	}
	t.Run("body of exactly 64 KiB is read and judged as a JWS → malformed 400", func(t *testing.T) {
		body := append([]byte(`{"protected":"`), bytes.Repeat([]byte("A"), server.DefaultMaxBody)...)
		body = append(body[:server.DefaultMaxBody-2], '"', '}')
		wantProblem(t, e.postJWS(t, e.dir.NewOrder, body), acme.Malformed, http.StatusBadRequest)
	})

	t.Run("method", func(t *testing.T) {
		for _, tc := range []struct {
			name, method, url, allow string
		}{
			{"GET new-order → malformed 405, Allow: POST", http.MethodGet, e.dir.NewOrder, "POST"},
			{"GET new-account → malformed 405, Allow: POST", http.MethodGet, e.dir.NewAccount, "POST"},
			{"GET an order URL → malformed 405, Allow: POST", http.MethodGet, o.url, "POST"},
			{"GET an authz URL → malformed 405, Allow: POST", http.MethodGet, o.obj.Authorizations[0], "POST"},
			{"PUT the account URL → malformed 405, Allow: POST", http.MethodPut, a.kid, "POST"},
			{"POST the directory → malformed 405, Allow: GET", http.MethodPost, e.url(server.DirectoryPath), "GET"},
			{"POST new-nonce → malformed 405, Allow: GET, HEAD", http.MethodPost, e.dir.NewNonce, "GET, HEAD"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req, err := http.NewRequest(tc.method, tc.url, nil)
				if err != nil {
					t.Fatal(err)
				}
				r := e.do(t, req)
				wantProblem(t, r, acme.Malformed, http.StatusMethodNotAllowed)
				if got := r.header.Get("Allow"); got != tc.allow {
					t.Errorf("Allow %q, want %q", got, tc.allow)
				}
			})
		}
	})

	t.Run("unknown path", func(t *testing.T) {
		for _, tc := range []struct{ name, method, path string }{
			{"GET an unknown path → 404 problem", http.MethodGet, "/nothing-here"},
			{"POST an unknown ACME path → 404 problem", http.MethodPost, "/acme/new-thing"},
			{"POST an order's unknown sub-resource → 404 problem", http.MethodPost, strings.TrimPrefix(o.url, e.base) + "/cancel"},
			{"POST new-order with a trailing slash → 404 problem", http.MethodPost, "/acme/new-order/"},
			{"POST a path with // → 404 problem, not a redirect", http.MethodPost, "/acme//new-order"},
			{"POST a path with /./ → 404 problem, not a redirect", http.MethodPost, "/acme/./new-order"},
			{"POST a path with /../ → 404 problem, not a redirect", http.MethodPost, "/acme/order/../new-order"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				req, err := http.NewRequest(tc.method, e.url(tc.path), nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/jose+json")
				wantProblem(t, e.do(t, req), acme.Malformed, http.StatusNotFound)
			})
		}
	})

	t.Run("new-nonce", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodHead, e.dir.NewNonce, nil)
		r := e.do(t, req)
		wantStatus(t, r, http.StatusOK)
		if got := r.header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("HEAD new-nonce Cache-Control %q, want no-store", got)
		}
		r = e.get(t, e.dir.NewNonce)
		wantStatus(t, r, http.StatusNoContent)
	})
}
