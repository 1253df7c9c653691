package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/varmenne/varmenne/acme/nonce"
	"github.com/varmenne/varmenne/acme/server"
	"github.com/varmenne/varmenne/store"
)

// dbFlag adds --db, where the records are kept.
func dbFlag(fs *flag.FlagSet) *string {
	return fs.String("db", "", "database: empty for SQLite in the data directory; a postgres://USER@HOST:PORT/DB URL for PostgreSQL, which any number of serve replicas may share")
}

func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// openStore opens the records: PostgreSQL when db is a postgres:// URL, the SQLite
// file in dataDir when db is empty.
func openStore(ctx context.Context, db, dataDir string) (*store.SQL, error) {
	switch {
	case db == "":
		return store.OpenSQLite(ctx, dbPath(dataDir))
	case isPostgres(db):
		return store.OpenPostgres(ctx, db)
	default:
		// Not echoed: the value may hold a password.
		what := "a value without a URL scheme"
		if u, err := url.Parse(db); err == nil && u.Scheme != "" {
			what = "a " + u.Scheme + ":// URL"
		}
		return nil, fmt.Errorf("--db must be a postgres:// URL, or empty for SQLite in the data directory; it is %s", what)
	}
}

// openExisting opens the database for an operator command. SQLite must exist (serve
// creates it): a wrong --data would otherwise make a new, empty database.
func openExisting(ctx context.Context, db, dataDir string) (*store.SQL, error) {
	if db == "" {
		if _, err := os.Stat(dbPath(dataDir)); err != nil {
			return nil, fmt.Errorf("no database in %s: start \"varmenne serve --data %s\" once, or pass the right --data (or --db)", dataDir, dataDir)
		}
	}
	return openStore(ctx, db, dataDir)
}

// describeDB names the database for messages, without a password.
func describeDB(db, dataDir string) string {
	if db == "" {
		return dbPath(dataDir)
	}
	return redact(db)
}

func redact(db string) string {
	u, err := url.Parse(db)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// nonceCleanupEvery is how often a replica deletes expired shared nonces.
const nonceCleanupEvery = 5 * time.Minute

// newNonces is the nonce service: in memory for the single SQLite process, in the
// database when replicas share PostgreSQL, so that a nonce from one replica is
// accepted once by any.
func newNonces(ctx context.Context, st *store.SQL, db string, log *slog.Logger) server.Nonces {
	const ttl = time.Hour
	if !isPostgres(db) {
		return nonce.NewPool(1<<17, ttl)
	}
	n := nonce.NewShared(st, ttl, 0)
	go func() {
		t := time.NewTicker(nonceCleanupEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if removed, err := n.Cleanup(ctx); err != nil {
					log.Warn("deleting expired nonces failed", "err", err)
				} else {
					log.Debug("expired nonces deleted", "count", removed)
				}
			}
		}
	}()
	return n
}

// readyTimeout bounds the database check of /readyz.
const readyTimeout = 2 * time.Second

// opsHandler serves the operator endpoints: /healthz answers while the process
// runs; /readyz answers 200 only while the database does, so a load balancer
// sends no ACME requests to a replica that would fail them.
func opsHandler(db interface{ Ping(context.Context) error }, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := db.Ping(ctx); err != nil {
			log.Warn("not ready: the database does not answer", "err", err)
			w.Header().Set("Retry-After", "5")
			http.Error(w, "not ready: the database does not answer", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

// opsIdleTimeout closes an idle keep-alive connection of the operator listener.
var opsIdleTimeout = 30 * time.Second

// startOps serves opsHandler on addr, plain HTTP; addr "" serves nothing. It
// returns the address listened on and a function that stops the listener.
func startOps(addr string, db interface{ Ping(context.Context) error }, log *slog.Logger) (string, func(), error) {
	if addr == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("cannot listen on --ops-listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           opsHandler(db, log),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       opsIdleTimeout, // a monitor's kept-alive connection is closed when it goes quiet
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("operator listener failed", "err", err)
		}
	}()
	return ln.Addr().String(), func() { srv.Close() }, nil
}
