package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/varmenne/varmenne/acme/nonce"
	"github.com/varmenne/varmenne/acme/server"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// dbFlags are the flags of every command that opens the records: where they are
// (--db), the secret that seals their EAB HMAC keys (--eab-secret-file) and the
// key of the audit log's MACs (--audit-key-file).
type dbFlags struct {
	url          string
	secretFile   string
	auditKeyFile string

	// unkeyed opens the records without the audit key ("audit verify
	// --chain-only"): nothing may then be appended to a keyed log.
	unkeyed bool
	// auditKey is the audit key open read, or nil.
	auditKey *audit.Key
}

// dbFlag adds --db, --eab-secret-file and --audit-key-file.
func dbFlag(fs *flag.FlagSet) *dbFlags {
	var f dbFlags
	fs.StringVar(&f.url, "db", "", "database: empty for SQLite in the data directory; a postgres://USER@HOST:PORT/DB URL for PostgreSQL, which any number of serve replicas may share")
	fs.StringVar(&f.secretFile, "eab-secret-file", "", "file of the secret that seals the EAB HMAC keys in the database (default: DATA/"+eabSecretFile+", made on first start, 0600); PostgreSQL replicas and the operator commands must all be given the same one")
	fs.StringVar(&f.auditKeyFile, "audit-key-file", "", "file of the key of the audit log's MACs (default: DATA/"+auditKeyFile+", made on first start, 0600); PostgreSQL replicas and the operator commands must all be given the same one; keep a copy off the database host's backups")
	return &f
}

func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// openFor says what a command may make when it opens the records.
type openFor int

const (
	// existing: an operator command; the database (SQLite) and the EAB secret's key
	// file exist, made by the first start.
	existing openFor = iota
	// creating: serve, init, operator bootstrap; the first of them makes the data
	// directory (0700), the database and the key file (0600).
	creating
)

// open is the one way every command opens the records: PostgreSQL when --db is a
// postgres:// URL, else the SQLite file in dataDir. It refuses a data directory or
// a secret in it that group or others may use (datadir.go), and opens the store
// with the EAB secret of --eab-secret-file.
func (f *dbFlags) open(ctx context.Context, dataDir string, mode openFor) (*store.SQL, error) {
	if f.url != "" && !isPostgres(f.url) {
		// Not echoed: the value may hold a password.
		what := "a value without a URL scheme"
		if u, err := url.Parse(f.url); err == nil && u.Scheme != "" {
			what = "a " + u.Scheme + ":// URL"
		}
		return nil, fmt.Errorf("--db must be a postgres:// URL, or empty for SQLite in the data directory; it is %s", what)
	}
	if mode == creating {
		if err := makeDataDir(dataDir); err != nil {
			return nil, err
		}
	} else if f.url == "" {
		if _, err := os.Stat(dbPath(dataDir)); err != nil {
			return nil, fmt.Errorf("no database in %s: start \"varmenne serve --data %s\" once, or pass the right --data (or --db)", dataDir, dataDir)
		}
	}
	secretPath := f.secretPath(dataDir)
	if err := checkDataDir(dataDir, secretPath, f.auditKeyPath(dataDir)); err != nil {
		return nil, err
	}
	secret, made, err := f.secret(secretPath, mode)
	if err != nil {
		return nil, err
	}
	var st *store.SQL
	if f.url == "" {
		st, err = store.OpenSQLite(ctx, dbPath(dataDir), secret)
	} else {
		st, err = store.OpenPostgres(ctx, f.url, secret)
	}
	var mismatch *store.EABSecretMismatchError
	if errors.As(err, &mismatch) {
		if made {
			// The file this start made is of no use to this database.
			os.Remove(secretPath)
			return nil, fmt.Errorf("%s was missing, and the EAB keys of the database are sealed with EAB secret %s: restore that key file (PostgreSQL replicas: give each the same --eab-secret-file)", secretPath, mismatch.Database)
		}
		return nil, fmt.Errorf("the EAB secret in %s (%s) is not the one the EAB keys of the database are sealed with (%s): give the key file it was made with (--eab-secret-file)", secretPath, mismatch.Given, mismatch.Database)
	}
	if err != nil {
		return nil, fmt.Errorf("opening the database %s: %w", describeDB(f.url, dataDir), err)
	}
	if f.unkeyed {
		return st, nil
	}
	if err := f.keyAudit(ctx, st, dataDir, mode); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// openForVerify opens the records for "audit verify": as an operator command
// does, except that a key which does not check the log is the verification's to
// report, not a refusal to open.
func (f *dbFlags) openForVerify(ctx context.Context, dataDir string) (*store.SQL, error) {
	unkeyed := f.unkeyed
	f.unkeyed = true
	st, err := f.open(ctx, dataDir, existing)
	f.unkeyed = unkeyed
	if err != nil || unkeyed {
		return st, err
	}
	key, err := audit.ReadKeyFile(f.auditKeyPath(dataDir))
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("no audit key: %s is missing; give --audit-key-file, the key file serve uses (or --chain-only to check the hash chain alone)", f.auditKeyPath(dataDir))
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	f.auditKey = key
	return st, nil
}

// auditKeyFile is the default key file of the audit key, in the data directory.
const auditKeyFile = "audit-key"

func (f *dbFlags) auditKeyPath(dataDir string) string {
	if f.auditKeyFile != "" {
		return f.auditKeyFile
	}
	return filepath.Join(dataDir, auditKeyFile)
}

// keyAudit reads the audit key (a creating command makes it when it is missing)
// and makes st seal every audit event with it. A key that does not check the
// log's last keyed event is refused: events written under it could not be
// verified with the key the log was keyed with.
func (f *dbFlags) keyAudit(ctx context.Context, st *store.SQL, dataDir string, mode openFor) error {
	path := f.auditKeyPath(dataDir)
	key, err := audit.ReadKeyFile(path)
	made := false
	if errors.Is(err, fs.ErrNotExist) {
		if mode != creating {
			return fmt.Errorf("no audit key: %s is missing; give --audit-key-file, the key file serve uses (it makes %s on its first start)", path, filepath.Join("DATA", auditKeyFile))
		}
		key, err = audit.CreateKeyFile(path)
		made = err == nil
		if errors.Is(err, fs.ErrExist) { // a replica starting at once made it first
			key, err = audit.ReadKeyFile(path)
		}
	}
	if err != nil {
		return fmt.Errorf("the audit key: %w", err)
	}
	last, err := st.LastAuditEvent(ctx, true)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("reading the audit log: %w", err)
	}
	if err == nil && !key.Check(last) {
		if made {
			os.Remove(path) // of no use to this database
			return fmt.Errorf("%s was missing, and the audit log of the database is keyed with another audit key: restore that key file (PostgreSQL replicas: give each the same --audit-key-file)", path)
		}
		return fmt.Errorf("the audit key in %s (%s) does not check the audit log's last keyed event (%d): give the key file the log is keyed with (--audit-key-file), or run \"varmenne audit verify\" if the log was rewritten", path, key.ID(), last.Seq)
	}
	st.KeyAudit(key.MAC)
	f.auditKey = key
	return nil
}

// eabSecretFile is the default key file of the EAB secret, in the data directory.
const eabSecretFile = "eab-secret.key"

func (f *dbFlags) secretPath(dataDir string) string {
	if f.secretFile != "" {
		return f.secretFile
	}
	return filepath.Join(dataDir, eabSecretFile)
}

// secret reads the EAB secret from path; a creating command makes it when it is
// missing (made), and takes the one a replica starting at once made first.
func (f *dbFlags) secret(path string, mode openFor) (secret *store.EABSecret, made bool, err error) {
	secret, err = store.ReadEABSecretFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return secret, false, err
	}
	if mode != creating {
		return nil, false, fmt.Errorf("no EAB secret: %s is missing; give --eab-secret-file, the key file serve uses (it makes %s on its first start)", path, filepath.Join("DATA", eabSecretFile))
	}
	secret, err = store.CreateEABSecretFile(path)
	if errors.Is(err, fs.ErrExist) {
		secret, err = store.ReadEABSecretFile(path)
		return secret, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("making the EAB secret: %w", err)
	}
	return secret, true, nil
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

// opsStore is what the operator endpoints read; *store.SQL is one.
type opsStore interface {
	Ping(context.Context) error
	LastRegisterLoad(context.Context) (store.RegisterLoad, error)
}

// opsHandler serves the operator endpoints: /healthz answers while the process
// runs; /readyz answers 200 only while the database does, so a load balancer
// sends no ACME requests to a replica that would fail them.
func opsHandler(db opsStore, log *slog.Logger) http.Handler {
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
		// The age of the store's copy of THL's register: one figure for every
		// replica (a register too old pauses issuance; alerting is the monitor's).
		if l, err := db.LastRegisterLoad(ctx); err == nil && !l.LoadedAt.IsZero() {
			fmt.Fprintf(w, "register_loaded_at %s\nregister_age_seconds %d\nregister_records %d\n",
				l.LoadedAt.UTC().Format(time.RFC3339), int64(time.Since(l.LoadedAt)/time.Second), l.Records)
		}
	})
	return mux
}

// withMetrics serves metrics on GET /metrics beside ops.
func withMetrics(ops, metrics http.Handler) http.Handler {
	if metrics == nil {
		return ops
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.Handle("/", ops)
	return mux
}

// opsIdleTimeout closes an idle keep-alive connection of the operator listener.
var opsIdleTimeout = 30 * time.Second

// startOps serves opsHandler on addr, plain HTTP, with metrics (Prometheus) on
// /metrics when it is not nil; addr "" serves nothing. It returns the address
// listened on and a function that stops the listener.
func startOps(addr string, db opsStore, metrics http.Handler, log *slog.Logger) (string, func(), error) {
	if addr == "" {
		return "", func() {}, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("cannot listen on --ops-listen %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           withMetrics(opsHandler(db, log), metrics),
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
