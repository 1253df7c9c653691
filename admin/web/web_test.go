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
