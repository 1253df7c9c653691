package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/internal/metrics"
	"github.com/varmenne/varmenne/store"
)

type pinger struct {
	err  error
	load store.RegisterLoad
}

func (p pinger) Ping(context.Context) error { return p.err }
func (p pinger) LastRegisterLoad(context.Context) (store.RegisterLoad, error) {
	return p.load, p.err
}

// TestReadyzSaysTheRegisterAge: /readyz carries the age of the store's copy of
// THL's register, once one was loaded.
func TestReadyzSaysTheRegisterAge(t *testing.T) {
	for _, tt := range []struct {
		name  string
		load  store.RegisterLoad
		wants []string
	}{
		{"never loaded", store.RegisterLoad{}, nil},
		{"loaded 2 h ago", store.RegisterLoad{Source: "r.json", LoadedAt: time.Now().Add(-2 * time.Hour), Records: 42},
			[]string{"register_age_seconds 7200\n", "register_records 42\n", "register_loaded_at "}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			opsHandler(pinger{load: tt.load}, slog.New(slog.DiscardHandler)).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			body := w.Body.String()
			if w.Code != http.StatusOK || !strings.HasPrefix(body, "ready\n") {
				t.Fatalf("/readyz %d %q", w.Code, body)
			}
			if tt.wants == nil && strings.Contains(body, "register") {
				t.Errorf("/readyz %q speaks of a register never loaded", body)
			}
			for _, want := range tt.wants {
				if !strings.Contains(body, want) {
					t.Errorf("/readyz %q lacks %q", body, want)
				}
			}
		})
	}
}

func TestOpsEndpoints(t *testing.T) {
	down := pinger{err: errors.New("dial tcp 10.0.0.5:5432: connect: connection refused")}
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

// TestOpsListenerClosesIdleConnections: a client that keeps its connection open
// and says nothing more is cut off, as on every other listener.
func TestOpsListenerClosesIdleConnections(t *testing.T) {
	defer func(d time.Duration) { opsIdleTimeout = d }(opsIdleTimeout)
	opsIdleTimeout = 200 * time.Millisecond
	addr, stop, err := startOps("127.0.0.1:0", pinger{}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: ops\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("the idle kept-alive connection was not closed: %v", err)
	}
}

// TestOpsListenerServesMetrics: /metrics on the ops listener answers in the
// Prometheus text format, beside /healthz; without metrics there is no /metrics.
func TestOpsListenerServesMetrics(t *testing.T) {
	m := metrics.New("test")
	m.OrderCreated("sote-server", "production")
	for _, tt := range []struct {
		name    string
		handler http.Handler
		path    string
		status  int
		want    string
	}{
		{"metrics are served", m.Handler(nil), "/metrics", http.StatusOK, `varmenne_orders_total{issuer="production",profile="sote-server"} 1`},
		{"healthz beside them", m.Handler(nil), "/healthz", http.StatusOK, "ok"},
		{"no metrics, no /metrics", nil, "/metrics", http.StatusNotFound, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, stop, err := startOps("127.0.0.1:0", pinger{}, tt.handler, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			resp, err := http.Get("http://" + addr + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.want) {
				t.Errorf("GET %s: %d %q; want %d with %q", tt.path, resp.StatusCode, body, tt.status, tt.want)
			}
		})
	}
}
