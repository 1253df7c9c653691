package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite" // registers the "sqlite" driver
)

// SQL is the store on a SQL database. It is safe for concurrent use, also by several
// processes on the same database.
type SQL struct {
	db *sql.DB
	// writer lets one of this process's SQLite writes run at a time, so that they
	// queue in order instead of polling the file lock (busy_timeout sleeps up to
	// 100 ms between tries); other processes still meet the file lock. nil on
	// PostgreSQL.
	writer chan struct{}
	// wconn is the one connection every SQLite write of this process runs on, held
	// by whoever holds writer (writeConn); nil until the first write and after an
	// error that may have left it unusable. wsync is its synchronous setting.
	wconn *sql.Conn
	wsync string
	d     *dialect
	// cur is set on the copy of the store that Tx methods run on: every statement
	// and every transaction helper then runs in that one transaction.
	cur *sql.Tx
	// secret seals and opens the EAB HMAC keys (eabsecret.go).
	secret *EABSecret
	// path is the SQLite file, absolute with symbolic links resolved, beside which
	// the lock files lie (liveness.go); "" on PostgreSQL.
	path string
	// live is the state of the locks that die with their holder (liveness.go).
	live *liveness
	// auditMAC seals each appended audit event under the audit key (KeyAudit);
	// nil: events are appended without a MAC.
	auditMAC func(AuditEvent) string
	// txRetried is told of every transaction run again (OnTxRetry); nil: none.
	txRetried func()
}

// q is where a read runs: the bound transaction (see cur), else the database.
func (s *SQL) q() querier {
	if s.cur != nil {
		return s.cur
	}
	return s.db
}

// on maps the database to the bound transaction, if any.
func (s *SQL) on(q querier) querier {
	if s.cur != nil && q == querier(s.db) {
		return s.cur
	}
	return q
}

// sqlitePragmas make one SQLite file safe to share between the server and the CLI:
// WAL lets readers run beside the writer, busy_timeout makes a writer wait for the
// lock instead of failing, IMMEDIATE transactions take the write lock at BEGIN so a
// transaction never fails half way when it turns from reading to writing, and
// synchronous FULL makes a committed issuance intent survive a power loss.
const sqlitePragmas = "_pragma=busy_timeout(10000)" +
	"&_pragma=journal_mode(WAL)" +
	"&_pragma=synchronous(FULL)" +
	"&_pragma=foreign_keys(1)" +
	"&_txlock=immediate"

// OpenSQLite opens the SQLite database at path and applies migrations. A missing
// file is created readable and writable by its owner only, whatever the umask;
// SQLite gives its -wal and -shm files the same mode. secret seals the EAB HMAC
// keys; it must be the one the database's keys are sealed with.
func OpenSQLite(ctx context.Context, path string, secret *EABSecret) (*SQL, error) {
	if path == "" || strings.Contains(path, "?") {
		// The driver splits its options off at '?'; such a path would be misread.
		return nil, fmt.Errorf("store: unusable SQLite path %q", path)
	}
	if secret == nil {
		return nil, errNoSecret
	}
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// The lock files of every process on this database must be the same files,
	// whatever path each opened it by.
	abs, err := filepath.Abs(path)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// Commits sync with fdatasync, as SQLite's own builds for Linux do: the data and
	// the size a read needs, not the timestamps, so a commit is as durable and
	// waits for less. Where it is unavailable (macOS, Windows) fsync stays.
	_, _ = sqlite.Fdatasync(true)
	db, err := openCached(sqliteDialect.driver, path+"?"+sqlitePragmas, true)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// Keep the connections of concurrent requests open between them: a new one
	// reads the schema again and has none of the statements its predecessor
	// prepared (stmtcache.go). database/sql keeps 2 by default.
	db.SetMaxIdleConns(sqliteIdleConns)
	s := &SQL{db: db, writer: make(chan struct{}, 1), d: &sqliteDialect, secret: secret,
		path: abs, live: newLiveness(0)}
	// Two processes opening a new file at once (the server and the CLI) race to
	// switch it to WAL, and SQLite answers the loser SQLITE_BUSY at once, without
	// waiting for busy_timeout: that first step is tried again.
	for attempt := 1; ; attempt++ {
		err := s.openSQLite(ctx)
		if err == nil {
			return s, nil
		}
		if !sqliteBusy(err) || attempt == sqliteOpenAttempts || ctx.Err() != nil {
			s.Close()
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		time.Sleep(time.Duration(attempt) * 10 * time.Millisecond)
	}
}

// sqliteIdleConns is how many idle connections each SQLite pool keeps.
const sqliteIdleConns = 16

// sqliteOpenAttempts bounds the tries of openSQLite (about 5 s in all).
const sqliteOpenAttempts = 30

// openSQLite checks the journal mode and applies migrations.
func (s *SQL) openSQLite(ctx context.Context) error {
	// A file system without shared memory support silently keeps the rollback
	// journal, and then the CLI and the server would block each other's reads.
	var mode string
	if err := s.q().QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	if err := s.migrate(ctx); err != nil {
		return err
	}
	return s.checkEABSecret(ctx)
}

// errNoSecret refuses to open a store without the secret of its EAB keys.
var errNoSecret = errors.New("store: no EAB secret given: the store seals EAB HMAC keys with it")

// Close closes the database.
func (s *SQL) Close() error {
	if s.writer != nil {
		s.writer <- struct{}{}
		s.dropWriteConn()
		<-s.writer
	}
	return s.db.Close()
}

// Ping checks that the database answers.
func (s *SQL) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int64
	name    string
	sql     string
	// run is a migration in Go, run in the migration's transaction after sql.
	run func(s *SQL, ctx context.Context, tx *sql.Tx) error
}

// goMigrations are the migrations that need more than SQL: they share the
// numbering and the bookkeeping of the files.
var goMigrations = []migration{
	{version: 23, name: "0023_seal_eab_keys (Go)", run: (*SQL).sealEABKeys},
}

// migrations returns the embedded migrations and goMigrations in version order. A
// file is named NNNN_what.sql; versions must be unique.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive version and _", base)
		}
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	ms = append(ms, goMigrations...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	return ms, nil
}

// migrate applies every migration not yet recorded in schema_migrations, each in its
// own transaction with its record, so a failed migration leaves nothing behind and
// a second opener (the CLI beside the server) finds it applied.
func (s *SQL) migrate(ctx context.Context) error { return s.migrateTo(ctx, math.MaxInt64) }

// migrateTo is migrate up to and including version last (tests build older
// databases with it).
func (s *SQL) migrateTo(ctx context.Context, last int64) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	create, err := s.d.expand(`CREATE TABLE IF NOT EXISTS schema_migrations (
		version    {{BIGINT}} NOT NULL PRIMARY KEY,
		applied_at {{BIGINT}} NOT NULL
	)`)
	if err != nil {
		return err
	}
	if err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, create)
		return err
	}); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	// An older binary must not write to a schema it does not know.
	var newest int64
	if err := s.q().QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&newest); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if known := ms[len(ms)-1].version; newest > known {
		return fmt.Errorf("database schema version %d is newer than this program knows (%d); upgrade varmenne", newest, known)
	}
	for _, m := range ms {
		if m.version > last {
			break
		}
		body, err := s.d.expand(m.sql)
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		err = s.inTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, s.d.rebind("SELECT COUNT(*) FROM schema_migrations WHERE version = ?"), m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if body != "" {
				if _, err := tx.ExecContext(ctx, body); err != nil {
					return err
				}
			}
			if m.run != nil {
				if err := m.run(s, ctx, tx); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, s.d.rebind("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"),
				m.version, time.Now().UnixMicro())
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

// maxTxAttempts bounds the runs of a transaction the database aborted for
// serialization or deadlock. Between runs a random pause, doubling up to
// maxTxBackoff, spreads competing transactions apart: under load PostgreSQL's
// SERIALIZABLE aborts some transactions that did not really conflict (its predicate
// locks cover index pages, and whole small tables), and retrying at once would
// meet the same competitors again.
const (
	maxTxAttempts  = 10
	firstTxBackoff = 2 * time.Millisecond
	maxTxBackoff   = 250 * time.Millisecond
)

// inTx runs fn in one read-write transaction and commits it, or rolls it back when fn
// fails. fn may run more than once, so it must not have effects outside tx.
func (s *SQL) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.retryTx(ctx, s.d.isolation, fn)
}

// inLockingTx is inTx for a transaction that is correct without serializable
// isolation: it locks (s.d.forUpdate) every row its decision reads that a
// concurrent writer could change, and constraints settle the rest.
func (s *SQL) inLockingTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.retryTx(ctx, s.d.lockingIsolation, fn)
}

// inRelaxedTx runs a transaction whose commit may be lost in a crash
// of the machine without harm, because nothing outside the database acts on it
// before a later durable commit: an order created, a challenge started or finished,
// an order moving to processing before its issuance intent is recorded. A client
// that saw the lost change meets "not found" or a stale status and starts again. Its
// commit does not wait for the disk (SQLite synchronous NORMAL, PostgreSQL
// synchronous_commit off); the next durable commit makes it durable too.
// level is the transaction's isolation level, as inTx (s.d.isolation) or
// inLockingTx (s.d.lockingIsolation) would run it.
func (s *SQL) inRelaxedTx(ctx context.Context, level sql.IsolationLevel, fn func(tx *sql.Tx) error) error {
	return s.retryTxOn(ctx, level, true, fn)
}

func (s *SQL) retryTx(ctx context.Context, level sql.IsolationLevel, fn func(tx *sql.Tx) error) error {
	return s.retryTxOn(ctx, level, false, fn)
}

func (s *SQL) retryTxOn(ctx context.Context, level sql.IsolationLevel, relaxed bool, fn func(tx *sql.Tx) error) error {
	if s.cur != nil {
		// Part of a larger transaction (Tx), which is retried as a whole.
		return fn(s.cur)
	}
	backoff := firstTxBackoff
	for attempt := 1; ; attempt++ {
		err := s.runTxOn(ctx, &sql.TxOptions{Isolation: level}, relaxed, fn)
		if err == nil || attempt == maxTxAttempts || !s.d.retryable(err) || ctx.Err() != nil {
			return err
		}
		if s.txRetried != nil {
			s.txRetried()
		}
		select {
		case <-time.After(rand.N(backoff)):
		case <-ctx.Done():
			return err
		}
		backoff = min(2*backoff, maxTxBackoff)
	}
}

// readTx runs fn in a read-only transaction, so what it reads is one snapshot.
func (s *SQL) readTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.runTx(ctx, &sql.TxOptions{Isolation: s.d.readIsolation, ReadOnly: true}, fn)
}

func (s *SQL) runTx(ctx context.Context, opts *sql.TxOptions, fn func(tx *sql.Tx) error) error {
	return s.runTxOn(ctx, opts, false, fn)
}

// runTxOn runs fn in one transaction; relaxed: one whose commit need not wait for
// the disk (see inRelaxedTx).
func (s *SQL) runTxOn(ctx context.Context, opts *sql.TxOptions, relaxed bool, fn func(tx *sql.Tx) error) error {
	if s.cur != nil {
		return fn(s.cur)
	}
	if !opts.ReadOnly {
		unlock, err := s.lockWriter(ctx)
		if err != nil {
			return err
		}
		defer unlock()
	}
	var tx *sql.Tx
	var err error
	if s.writer != nil && !opts.ReadOnly {
		tx, err = s.beginWrite(ctx, opts, relaxed)
	} else {
		tx, err = s.db.BeginTx(ctx, opts)
	}
	if err != nil {
		return err
	}
	if relaxed && s.d.relaxedCommit != "" {
		if _, err := tx.ExecContext(ctx, s.d.relaxedCommit); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Every SQLite write of this process runs on one connection (wconn), since the
// writes queue for writer anyway. A connection drops its whole page cache when a
// read transaction finds the log changed by another connection since its last one;
// writes spread over a pool found it changed nearly every time and read the pages
// of every b-tree they touched again (pread). On one connection a write finds its
// pages where the previous write left them: 44 % fewer preads per certificate.
// Reads stay on the pool, beside the writer.
//
// Durability is set per write on that connection: synchronous FULL for a durable
// commit, NORMAL for a relaxed one (inRelaxedTx), which in WAL mode does not wait
// for the disk; the next FULL commit makes it durable with its own, since the log
// is written in order. SQLite refuses to change synchronous inside a transaction,
// so it is set before BEGIN, and only when it differs.

// writeConn returns the write connection set to synchronous FULL, or NORMAL when
// relaxed. The caller holds writer.
func (s *SQL) writeConn(ctx context.Context, relaxed bool) (*sql.Conn, error) {
	want := "FULL"
	if relaxed {
		want = "NORMAL"
	}
	if s.wconn == nil {
		c, err := s.db.Conn(ctx)
		if err != nil {
			return nil, err
		}
		// Set synchronous on first use: the connection may be a former write
		// connection, handed back to the pool at NORMAL.
		s.wconn, s.wsync = c, ""
	}
	if s.wsync != want {
		if _, err := s.wconn.ExecContext(ctx, "PRAGMA synchronous = "+want); err != nil {
			s.dropWriteConn()
			return nil, err
		}
		s.wsync = want
	}
	return s.wconn, nil
}

// dropWriteConn lets go of the write connection: database/sql takes it back into
// the pool (or discards it when the driver found it broken), and the next write
// takes one from the pool and sets its synchronous anew. The caller holds writer.
func (s *SQL) dropWriteConn() {
	if s.wconn != nil {
		s.wconn.Close()
		s.wconn = nil
	}
}

// beginWrite begins a SQLite write transaction on the write connection. A
// connection that cannot begin one (closed under it, or broken) is replaced once.
func (s *SQL) beginWrite(ctx context.Context, opts *sql.TxOptions, relaxed bool) (*sql.Tx, error) {
	for attempt := 1; ; attempt++ {
		c, err := s.writeConn(ctx, relaxed)
		var tx *sql.Tx
		if err == nil {
			if tx, err = c.BeginTx(ctx, opts); err == nil {
				return tx, nil
			}
		}
		if ctx.Err() != nil || sqliteBusy(err) {
			return nil, err // the connection is fine; retryTx decides
		}
		s.dropWriteConn()
		if attempt == 2 {
			return nil, err
		}
	}
}

// lockWrite waits for this process's turn to write and returns where a statement
// on its own writes: on SQLite the write connection, durable unless relaxed; on
// PostgreSQL the database (durable). unlock ends the turn.
func (s *SQL) lockWrite(ctx context.Context, relaxed bool) (q querier, unlock func(), err error) {
	if s.writer == nil {
		return s.db, func() {}, nil
	}
	if unlock, err = s.lockWriter(ctx); err != nil {
		return nil, nil, err
	}
	c, err := s.writeConn(ctx, relaxed)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return c, unlock, nil
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// lockWriter waits until this process may write to a SQLite database (see
// SQL.writer) and returns the function that lets the next writer go; it returns at
// once on PostgreSQL.
func (s *SQL) lockWriter(ctx context.Context) (func(), error) {
	if s.writer == nil {
		return func() {}, nil
	}
	select {
	case s.writer <- struct{}{}:
		return func() { <-s.writer }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// exec runs a statement and returns the number of rows it changed. A statement on
// its own (q is the database, not a transaction) waits for the writer's turn.
func (s *SQL) exec(ctx context.Context, q querier, query string, args ...any) (int64, error) {
	q = s.on(q)
	if q == querier(s.db) {
		w, unlock, err := s.lockWrite(ctx, false)
		if err != nil {
			return 0, err
		}
		defer unlock()
		q = w
	}
	res, err := q.ExecContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// constraintErrors names the unique constraints whose violation means something
// other than ErrDuplicate.
var constraintErrors = map[string]error{
	"certificates_key_hash_key":     ErrKeyInUse,
	"issuance_intents_key_hash_key": ErrKeyInUse,
	// The second of two challenges of one authorization started at once.
	"challenges_authz_id_key": ErrConflict,
	// A certificate replaced by an order that reached finalize (migration 0011).
	"order_replaces_serial_key": ErrAlreadyReplaced,
}

// fail turns a database error into the store's sentinel errors where it is a
// constraint violation, and wraps it as an internal failure otherwise.
func (s *SQL) fail(op string, err error) error {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrDuplicate), errors.Is(err, ErrConflict), errors.Is(err, ErrKeyInUse),
		errors.Is(err, ErrAlreadyReplaced), errors.Is(err, ErrIssuerRetired):
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	if name, ok := s.d.uniqueConstraint(err); ok {
		if sentinel, ok := constraintErrors[name]; ok {
			return fmt.Errorf("%s: %w", op, sentinel)
		}
		return fmt.Errorf("%s: %w (%s)", op, ErrDuplicate, name)
	}
	if s.d.foreignKey(err) {
		return fmt.Errorf("%s: %w (a referenced record is missing)", op, ErrNotFound)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// transition runs a conditional UPDATE meant to change the row of table whose keyCol
// is key, and explains zero changed rows: ErrNotFound when the row is missing,
// ErrConflict when it is in another state. The explanation is read in the same
// transaction, after the write has decided.
func (s *SQL) transition(ctx context.Context, tx *sql.Tx, table, keyCol, key, query string, args ...any) error {
	n, err := s.exec(ctx, tx, query, args...)
	if err != nil || n > 0 {
		return err
	}
	var found int
	err = tx.QueryRowContext(ctx, s.d.rebind("SELECT COUNT(*) FROM "+table+" WHERE "+keyCol+" = ?"), key).Scan(&found)
	switch {
	case err != nil:
		return err
	case found == 0:
		return fmt.Errorf("%s %s: %w", table, key, ErrNotFound)
	default:
		return fmt.Errorf("%s %s: %w", table, key, ErrConflict)
	}
}

// Encodings of the values the database has no type for.

// micros stores a time as unix microseconds UTC; the zero time is 0.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// list stores a []string as a JSON array; nil and empty both become "[]".
func list(v []string) string {
	if len(v) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(v) // a []string always marshals
	return string(b)
}

// fromList reads a JSON array back; an empty list is nil.
func fromList(s string) ([]string, error) {
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("store: bad list %q: %w", s, err)
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}

// blob stores empty bytes as NULL so that nil and empty read back alike (as nil).
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// hexKey normalises a serial or key hash to lower-case hex, so that "AB" and "ab" can
// never pass a unique constraint as two keys. Odd lengths are allowed: a serial may
// come from big.Int.Text(16).
func hexKey(what, v string) (string, error) {
	v = normalHex(v)
	if v == "" || strings.Trim(v, "0123456789abcdef") != "" {
		return "", fmt.Errorf("store: %s %q is not hex", what, v)
	}
	return v, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// normalHex lower-cases a serial or key hash used for a lookup.
func normalHex(v string) string { return strings.ToLower(v) }

// NormalSerial is a certificate serial (hex) as the store records it.
func NormalSerial(serial string) string { return normalHex(serial) }
