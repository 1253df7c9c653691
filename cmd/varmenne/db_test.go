package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type pinger struct{ err error }

func (p pinger) Ping(context.Context) error { return p.err }

func TestOpsEndpoints(t *testing.T) {
	down := pinger{errors.New("dial tcp 10.0.0.5:5432: connect: connection refused")}
	tests := []struct {
		name       string
		db         pinger
		method     string
		path       string
		status     int
		retryAfter bool
	}{
		{"healthz answers while the process runs", pinger{}, http.MethodGet, "/healthz", http.StatusOK, false},
		{"healthz does not ask the database", down, http.MethodGet, "/healthz", http.StatusOK, false},
		{"readyz is ready while the database answers", pinger{}, http.MethodGet, "/readyz", http.StatusOK, false},
		{"readyz is 503 with Retry-After while it does not", down, http.MethodGet, "/readyz", http.StatusServiceUnavailable, true},
		{"readyz refuses POST", pinger{}, http.MethodPost, "/readyz", http.StatusMethodNotAllowed, false},
		{"other paths are not found", pinger{}, http.MethodGet, "/metrics", http.StatusNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			opsHandler(tt.db, slog.New(slog.DiscardHandler)).ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
			if w.Code != tt.status {
				t.Errorf("status %d, want %d", w.Code, tt.status)
			}
			if got := w.Header().Get("Retry-After") != ""; got != tt.retryAfter {
				t.Errorf("Retry-After %q, want one: %v", w.Header().Get("Retry-After"), tt.retryAfter)
			}
			if strings.Contains(w.Body.String(), "10.0.0.5") {
				t.Errorf("body %q reveals the database address", w.Body.String())
			}
		})
	}
}

func TestOpenStoreRefusesUnknownDatabases(t *testing.T) {
	tests := []struct {
		name string
		db   string
	}{
		{"another database's URL", "mysql://varmenne:s3cret@db.example/varmenne"},
		{"a file path", "/var/lib/varmenne/varmenne.db"},
		{"a key=value string", "host=db.example password=s3cret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := (&dbFlags{url: tt.db}).open(context.Background(), t.TempDir(), creating)
			if err == nil {
				st.Close()
				t.Fatal("opened, want a refusal")
			}
			if !strings.Contains(err.Error(), "--db") || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q: want one naming --db without the password", err)
			}
		})
	}
}

func TestDescribeDB(t *testing.T) {
	tests := []struct{ name, db, want string }{
		{"SQLite is the file in the data directory", "", "data/varmenne.db"},
		{"PostgreSQL without its password", "postgres://varmenne:s3cret@db.example:5432/varmenne", "postgres://varmenne:xxxxx@db.example:5432/varmenne"},
		{"PostgreSQL without a password", "postgresql://varmenne@db.example/varmenne?sslmode=verify-full", "postgresql://varmenne@db.example/varmenne?sslmode=verify-full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describeDB(tt.db, "data"); got != tt.want {
				t.Errorf("describeDB(%q) = %q, want %q", tt.db, got, tt.want)
			}
		})
	}
}
