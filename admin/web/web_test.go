package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/admin"
)

// TestProblem: each kind of refusal keeps the status and problem type the admin
// API has always answered with.
func TestProblem(t *testing.T) {
	tests := []struct {
		kind   admin.Kind
		status int
		typ    string
	}{
		{admin.Unauthenticated, 401, "unauthenticated"},
		{admin.Forbidden, 403, "forbidden"},
		{admin.DualControl, 403, "dualControl"},
		{admin.NotFound, 404, "notFound"},
		{admin.Conflict, 409, "conflict"},
		{admin.Gone, 410, "gone"},
		{admin.Malformed, 400, "malformed"},
		{admin.RateLimited, 429, "rateLimited"},
		{admin.Internal, 500, "serverInternal"},
		{admin.Kind(99), 500, "serverInternal"},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			if status, typ := Problem(tt.kind); status != tt.status || typ != tt.typ {
				t.Fatalf("Problem(%v) = %d %s, want %d %s", tt.kind, status, typ, tt.status, tt.typ)
			}
		})
	}
	if (&admin.Error{}).Kind != admin.Internal {
		t.Errorf("the zero Kind is not Internal")
	}
}

// TestHandler: /admin/ reaches the API and everything else the console, each
// answer with the security headers, each body capped.
func TestHandler(t *testing.T) {
	front := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, err := io.ReadAll(r.Body)
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				w.WriteHeader(http.StatusRequestEntityTooLarge)
			}
			io.WriteString(w, name)
		})
	}
	h := Handler(front("api"), front("console"), nil)
	tests := []struct {
		method, path string
		body         string
		status       int
		front        string
	}{
		{"GET", "/admin/v1/whoami", "", 200, "api"},
		{"POST", "/admin/v1/eab-requests", "{}", 200, "api"},
		{"GET", "/console/", "", 200, "console"},
		{"GET", "/", "", 200, "console"},
		{"POST", "/console/requests", strings.Repeat("x", MaxBody), 200, "console"},
		{"POST", "/console/requests", strings.Repeat("x", MaxBody+1), 413, "console"},
		{"POST", "/admin/v1/eab-requests", strings.Repeat("x", MaxBody+1), 413, "api"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s with %d bytes", tt.method, tt.path, len(tt.body)), func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body)))
			if w.Code != tt.status || w.Body.String() != tt.front {
				t.Fatalf("%d %q, want %d from the %s", w.Code, w.Body, tt.status, tt.front)
			}
			for _, hd := range []string{"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Cache-Control", "Strict-Transport-Security"} {
				if w.Header().Get(hd) == "" {
					t.Errorf("no %s", hd)
				}
			}
		})
	}
}

// TestSameOrigin: the one rule against cross-site requests, as both front ends
// apply it (Guard), for each combination of method and browser headers.
func TestSameOrigin(t *testing.T) {
	const own = "https://admin.example:14443"
	nav := map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
	with := func(h map[string]string, more map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			out[k] = v
		}
		for k, v := range more {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name    string
		method  string
		headers map[string]string
		allowed bool
	}{
		{"a program (no browser headers)", "POST", nil, true},
		{"a program reading", "GET", nil, true},
		{"a form of the console itself", "POST", map[string]string{"Origin": own, "Sec-Fetch-Site": "same-origin"}, true},
		{"own origin in upper case", "POST", map[string]string{"Origin": "https://ADMIN.example:14443"}, true},
		{"a typed address or bookmark", "GET", map[string]string{"Sec-Fetch-Site": "none"}, true},
		{"a browser without Fetch Metadata, own origin", "POST", map[string]string{"Origin": own}, true},
		{"another site's form", "POST", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, false},
		{"another site by Origin alone", "POST", map[string]string{"Origin": "https://evil.example"}, false},
		{"another site by Sec-Fetch-Site alone", "POST", map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"another port of this host (same-site)", "POST", map[string]string{"Origin": "https://admin.example:14000", "Sec-Fetch-Site": "same-site"}, false},
		{"a sibling subdomain (same-site)", "POST", map[string]string{"Origin": "https://www.admin.example:14443", "Sec-Fetch-Site": "same-site"}, false},
		{"plain http of this host and port", "POST", map[string]string{"Origin": "http://admin.example:14443"}, false},
		{"an opaque origin", "POST", map[string]string{"Origin": "null"}, false},
		{"an opaque origin from another site", "POST", map[string]string{"Origin": "null", "Sec-Fetch-Site": "cross-site"}, false},
		{"an opaque origin the browser calls its own page (no-referrer)", "POST", map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"}, true},
		{"same-origin Fetch Metadata but a foreign Origin", "POST", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"}, false},
		{"another site's form sent as a navigation", "POST", with(nav, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}), false},
		{"another site's DELETE", "DELETE", map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"another site's script reading", "GET", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty", "Origin": "https://evil.example"}, false},
		{"another site's image", "GET", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}, false},
		{"another site's frame", "GET", map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "iframe"}, false},
		{"a link from another site", "GET", with(nav, map[string]string{"Sec-Fetch-Site": "cross-site"}), true},
		{"a link from a same-site page", "HEAD", with(nav, map[string]string{"Sec-Fetch-Site": "same-site"}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, own+"/console/requests", nil)
			for k, v := range tt.headers {
				r.Header.Set(k, v)
			}
			err := SameOrigin(r)
			var e *admin.Error
			switch {
			case tt.allowed && err != nil:
				t.Fatalf("refused: %v", err)
			case !tt.allowed && (!errors.As(err, &e) || e.Kind != admin.Forbidden):
				t.Fatalf("%v, want a Forbidden refusal", err)
			case !tt.allowed && !strings.Contains(e.Detail, own):
				t.Errorf("the refusal does not name the listener's own origin: %s", e.Detail)
			}
			// Guard applies it before the front end sees the request.
			reached := false
			h := Guard(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }),
				func(w http.ResponseWriter, _ *http.Request, err error) { w.WriteHeader(http.StatusForbidden) })
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if reached != tt.allowed {
				t.Errorf("the front end was reached: %t, want %t (%d)", reached, tt.allowed, w.Code)
			}
		})
	}
}

// TestSameOriginDefaultPort: an origin with the scheme's default port written is
// the origin without it.
func TestSameOriginDefaultPort(t *testing.T) {
	for _, origin := range []string{"https://admin.example", "https://admin.example:443"} {
		r := httptest.NewRequest("POST", "https://admin.example/console/requests", nil)
		r.Header.Set("Origin", origin)
		if err := SameOrigin(r); err != nil {
			t.Errorf("Origin %s to https://admin.example: %v", origin, err)
		}
	}
}

// TestCredentialSource: the credential carries the connection's peer address,
// never a forwarding header.
func TestCredentialSource(t *testing.T) {
	r := httptest.NewRequest("GET", "/admin/v1/whoami", nil)
	r.RemoteAddr = "[2001:db8::7]:50000"
	r.Header.Set("X-Forwarded-For", "192.0.2.1")
	r.Header.Set("Authorization", "Bearer rita.secret")
	if c := Credential(r); c.Source != "2001:db8::7" || c.Token != "rita.secret" {
		t.Fatalf("Credential = %+v", c)
	}
}
