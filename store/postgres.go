package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/lib/pq"
)

// postgresDialect runs every read-write transaction SERIALIZABLE: the store's
// invariants are conditional updates and "insert unless exists" checks that two
// replicas may run at once, and only SERIALIZABLE makes PostgreSQL refuse an
// interleaving that a single writer could not produce. A refused transaction
// (40001) or a deadlock victim (40P01) is run again by inTx, a bounded number of
// times. Single statements outside a transaction, and the transactions of
// inLockingTx, run READ COMMITTED; each of those is protected by a unique
// constraint or by the row locks it takes.
var postgresDialect = dialect{
	name:   "postgres",
	driver: "postgres",
	types: map[string]string{
		"BLOB":   "BYTEA",
		"BIGINT": "BIGINT",
		"SERIAL": "BIGSERIAL PRIMARY KEY",
	},
	numbered: true,
	uniqueConstraint: func(err error) (string, bool) {
		var e *pq.Error
		if errors.As(err, &e) && e.Code == "23505" {
			// The constraint or unique index name, as the migrations spell it.
			return e.Constraint, true
		}
		return "", false
	},
	foreignKey: func(err error) bool {
		var e *pq.Error
		return errors.As(err, &e) && e.Code == "23503"
	},
	isolation: sql.LevelSerializable,
	// A read-only snapshot is consistent at REPEATABLE READ, never aborts, and takes
	// no predicate locks that would make writers abort.
	readIsolation: sql.LevelRepeatableRead,
	// The hot transactions of validation (StartChallenge, FinishChallenge) lock
	// rows instead: at SERIALIZABLE their reads of small, busy indexes made many
	// concurrent validations abort again and again.
	lockingIsolation: sql.LevelReadCommitted,
	forUpdate:        " FOR UPDATE",
	strpos:           "strpos",
	retryable: func(err error) bool {
		var e *pq.Error
		return errors.As(err, &e) && (e.Code == "40001" || e.Code == "40P01")
	},
	// A transaction whose loss in a crash is harmless (inRelaxedTx: replay nonces,
	// orders, challenges, the start of a finalize) commits without waiting for the
	// disk; the next durable commit of the server waits for it too.
	relaxedCommit: "SET LOCAL synchronous_commit = off",
	// Appends to the hash-chained audit log queue on one transaction lock instead
	// of aborting each other: at SERIALIZABLE every two concurrent appends (each
	// reads the last event) conflict, and 32 concurrent issuances exhausted the
	// retries of some.
	auditLock: fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", auditLock),
}

// auditLock is the advisory lock key of audit log appends ("varmenne" + 1).
const auditLock int64 = migrationLock + 1

// Connection pool of one process. A replica rarely needs more than a few
// connections at once; many replicas times many connections is what exhausts a
// PostgreSQL server, so the cap is low and a pooler (PgBouncer in transaction mode)
// goes in front when there are more replicas than max_connections/maxOpenConns.
const (
	maxOpenConns = 20
	// Connections are renewed so that after a failover the pool reaches the new
	// primary even where the old one still answers.
	connMaxLifetime = 30 * time.Minute
	connMaxIdleTime = 5 * time.Minute
	// connectTimeout bounds a dial to an unreachable server, so a request during an
	// outage fails in seconds instead of hanging; a DSN may set its own.
	connectTimeout = "5"
)

// migrationLock is the pg_advisory_lock key that serialises migrations of replicas
// starting at once (an arbitrary constant: "varmenne" in ASCII, truncated).
const migrationLock int64 = 0x7661726d656e6e

// OpenPostgres connects to the PostgreSQL database at dsn (a postgres:// URL or a
// lib/pq key=value string) and applies the migrations it lacks. Any number of
// processes may open the same database at once: migrations run under an advisory
// lock, so exactly one of them applies each. secret seals the EAB HMAC keys; every
// replica must be given the same one.
func OpenPostgres(ctx context.Context, dsn string, secret *EABSecret) (*SQL, error) {
	if secret == nil {
		return nil, errNoSecret
	}
	dsn, err := withConnectTimeout(dsn)
	if err != nil {
		return nil, err
	}
	db, err := openCached(postgresDialect.driver, dsn, false)
	if err != nil {
		return nil, fmt.Errorf("store: open PostgreSQL: %w", err)
	}
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxOpenConns)
	db.SetConnMaxLifetime(connMaxLifetime)
	db.SetConnMaxIdleTime(connMaxIdleTime)
	s := &SQL{db: db, d: &postgresDialect, secret: secret, live: newLiveness(orphanConfirm)}
	if err := s.migrateLocked(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open PostgreSQL: %w", err)
	}
	if err := s.checkEABSecret(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open PostgreSQL: %w", err)
	}
	return s, nil
}

// migrateLocked runs migrate while holding the migration advisory lock on a
// connection of its own. The lock belongs to the session, so it is released even if
// this process dies half way (PostgreSQL ends the session); migrate itself commits
// each migration with its record, so a second runner skips what the first applied.
func (s *SQL) migrateLocked(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		// Unlock even when ctx is done; if that fails, closing the session does it.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(uctx, "SELECT pg_advisory_unlock($1)", migrationLock); err != nil {
			// ErrBadConn makes database/sql close the session instead of pooling it.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	return s.migrate(ctx)
}

// withConnectTimeout adds connect_timeout to a DSN that has none.
func withConnectTimeout(dsn string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			// Not echoed: the URL may hold a password.
			return "", errors.New("store: the PostgreSQL URL cannot be parsed")
		}
		q := u.Query()
		if q.Get("connect_timeout") == "" {
			q.Set("connect_timeout", connectTimeout)
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	if strings.Contains(dsn, "connect_timeout=") {
		return dsn, nil
	}
	return strings.TrimSpace(dsn + " connect_timeout=" + connectTimeout), nil
}
