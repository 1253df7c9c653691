package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/varmenne/varmenne/store/pgtest"
)

// cluster is the package's private PostgreSQL server.
var cluster *pgtest.Cluster

func TestMain(m *testing.M) {
	if lockChild() { // the child of TestLocksDieWithTheirProcess (liveness_test.go)
		return
	}
	// The contract tests need no durability; fsync off keeps them fast on a busy
	// machine. The fault tests of replicas (test/e2e) run with the defaults.
	pgtest.Main(m, &cluster, "fsync=off", "synchronous_commit=off", "full_page_writes=off")
}

// TestPostgresContract runs the contract on copies of one migrated database.
func TestPostgresContract(t *testing.T) {
	ctx := context.Background()
	template := cluster.NewDatabase(t)
	s, err := OpenPostgres(ctx, template, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	name := dbName(t, template)
	testContract(t, func(t *testing.T) *SQL {
		s, err := OpenPostgres(ctx, cluster.NewDatabaseFrom(t, name), testSecret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func dbName(t *testing.T, dsn string) string {
	t.Helper()
	i := strings.LastIndex(dsn, "/")
	j := strings.Index(dsn, "?")
	if i < 0 || j < i {
		t.Fatalf("no database name in %s", dsn)
	}
	return dsn[i+1 : j]
}

// TestPostgresReplicasMigrateAtOnce: replicas starting together on an empty database
// all open it, and each migration is applied once.
func TestPostgresReplicasMigrateAtOnce(t *testing.T) {
	ctx := context.Background()
	dsn := cluster.NewDatabase(t)
	const replicas = 4
	stores := make([]*SQL, replicas)
	errs := race(replicas, func(i int) error {
		var err error
		stores[i], err = OpenPostgres(ctx, dsn, testSecret)
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	var applied, distinct int
	if err := stores[0].db.QueryRow("SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations").Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied != len(ms) || distinct != len(ms) {
		t.Errorf("%d migration records (%d distinct), want %d", applied, distinct, len(ms))
	}
	// Every replica works on the shared schema.
	for i, s := range stores {
		if err := s.AddOrganisation(ctx, Organisation{OID: fmt.Sprintf("1.2.246.10.%d", i)}); err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
}

func TestOpenPostgresRejects(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"an unparsable URL", func(*testing.T) string { return "postgres://%zz" }},
		{"a missing database", func(*testing.T) string { return cluster.DSN("no_such_database") }},
		{"a closed port", func(*testing.T) string { return "postgres://varmenne@127.0.0.1:1/x?sslmode=disable" }},
		{"a database with a newer schema", func(t *testing.T) string {
			dsn := cluster.NewDatabase(t)
			s, err := OpenPostgres(ctx, dsn, testSecret)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.db.Exec("INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)"); err != nil {
				t.Fatal(err)
			}
			return dsn
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenPostgres(ctx, tc.dsn(t), testSecret)
			if err == nil {
				s.Close()
				t.Fatal("opened, want an error")
			}
		})
	}
}

func TestWithConnectTimeout(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"URL gets a timeout", "postgres://u@h/db?sslmode=disable", "postgres://u@h/db?connect_timeout=5&sslmode=disable"},
		{"URL keeps its own", "postgres://u@h/db?connect_timeout=1", "postgres://u@h/db?connect_timeout=1"},
		{"key=value gets a timeout", "host=h dbname=db", "host=h dbname=db connect_timeout=5"},
		{"key=value keeps its own", "host=h connect_timeout=2", "host=h connect_timeout=2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := withConnectTimeout(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("withConnectTimeout(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestPostgresErrorMapping: the dialect reads PostgreSQL's SQLSTATEs, not messages.
func TestPostgresErrorMapping(t *testing.T) {
	d := postgresDialect
	cases := []struct {
		name       string
		err        error
		constraint string
		foreignKey bool
		retryable  bool
	}{
		{"unique violation names its constraint", &pq.Error{Code: "23505", Constraint: "certificates_key_hash_key"}, "certificates_key_hash_key", false, false},
		{"foreign key violation", &pq.Error{Code: "23503"}, "", true, false},
		{"serialization failure is retried", &pq.Error{Code: "40001"}, "", false, true},
		{"deadlock is retried", fmt.Errorf("wrapped: %w", &pq.Error{Code: "40P01"}), "", false, true},
		{"a lost connection is not retried", errors.New("driver: bad connection"), "", false, false},
		{"a check violation is none of these", &pq.Error{Code: "23514"}, "", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name, _ := d.uniqueConstraint(tc.err)
			if name != tc.constraint || d.foreignKey(tc.err) != tc.foreignKey || d.retryable(tc.err) != tc.retryable {
				t.Errorf("constraint %q, foreign key %v, retryable %v; want %q, %v, %v",
					name, d.foreignKey(tc.err), d.retryable(tc.err), tc.constraint, tc.foreignKey, tc.retryable)
			}
		})
	}
}

// TestPostgresSerializationRetry: two transactions that each read what the other
// writes cannot both commit at SERIALIZABLE; inTx runs the loser again, so both
// callers succeed and the result is one that a serial order gives.
func TestPostgresSerializationRetry(t *testing.T) {
	ctx := context.Background()
	s, err := OpenPostgres(ctx, cluster.NewDatabase(t), testSecret)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.db.Exec(`CREATE TABLE counter (n BIGINT NOT NULL); INSERT INTO counter VALUES (0)`); err != nil {
		t.Fatal(err)
	}
	// At least one of the transactions in each round commits, so this many writers
	// all finish within the bound.
	const writers = maxTxAttempts
	var attempts atomic.Int64
	errs := race(writers, func(int) error {
		return s.inTx(ctx, func(tx *sql.Tx) error {
			attempts.Add(1)
			var n int64
			if err := tx.QueryRowContext(ctx, "SELECT n FROM counter").Scan(&n); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "UPDATE counter SET n = $1", n+1)
			return err
		})
	})
	for _, err := range errs {
		if err != nil {
			t.Errorf("writer failed: %v", err)
		}
	}
	var n int
	if err := s.db.QueryRow("SELECT n FROM counter").Scan(&n); err != nil {
		t.Fatal(err)
	}
	// A lost update would leave the counter below the number of writers.
	if n != writers {
		t.Errorf("counter %d after %d increments", n, writers)
	}
	if attempts.Load() <= writers {
		t.Errorf("%d attempts for %d writers: no transaction was retried, so the test proved nothing", attempts.Load(), writers)
	}
	t.Logf("%d writers, %d attempts", writers, attempts.Load())
}

// TestPostgresLastAuthorizationsInterleaved forces the interleaving that READ
// COMMITTED alone gets wrong: the last two authorizations of an order are both
// marked valid before either transaction looks at the order. Each must then wait
// for the order's row lock, and the second to get it must see both valid.
func TestPostgresLastAuthorizationsInterleaved(t *testing.T) {
	ctx := context.Background()
	s, err := OpenPostgres(ctx, cluster.NewDatabase(t), testSecret)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := &world{t: t, s: s, ctx: ctx}
	w.must(s.AddOrganisation(ctx, Organisation{OID: org1, Name: "x", CreatedAt: t0}))
	w.eab("kid-bound", EABApproved)
	w.must(s.CreateAccount(ctx, account("acct-1", "thumb-1"), "kid-bound"))
	w.pendingOrder("o1", "az0", "az1")
	w.must(s.StartChallenge(ctx, "az0-c0"))
	w.must(s.StartChallenge(ctx, "az1-c0"))

	// Another session holds the order's row lock while both finish.
	holder, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.ExecContext(ctx, "SELECT id FROM orders WHERE id = 'o1' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for i := range 2 {
		go func() { errs <- s.FinishChallenge(ctx, fmt.Sprintf("az%d-c0", i), true, t0, nil) }()
	}
	waiting := 0
	for range 200 {
		if err := s.db.QueryRow(`SELECT COUNT(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if waiting != 2 {
		holder.Rollback()
		t.Fatalf("%d finishing transactions wait for the order's lock, want both", waiting)
	}
	if err := holder.Rollback(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("FinishChallenge: %v", err)
		}
	}
	mustEqual(t, "order", w.orderStatus("o1"), "ready")
}

// TestPostgresSealsPlaintextKeysInPlace: replicas of the new version start at
// once on a database whose EAB keys were stored in clear; the keys are sealed
// once, and every replica reads them.
func TestPostgresSealsPlaintextKeysInPlace(t *testing.T) {
	ctx := context.Background()
	dsn := cluster.NewDatabase(t)
	db, err := sql.Open(postgresDialect.driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	raw := &SQL{db: db, d: &postgresDialect}
	makeV22(t, raw)
	raw.Close()
	const replicas = 4
	stores := make([]*SQL, replicas)
	for i, err := range race(replicas, func(i int) (err error) {
		stores[i], err = OpenPostgres(ctx, dsn, testSecret)
		return err
	}) {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	for _, s := range stores {
		checkSealedInPlace(t, s)
	}
}

// TestPostgresReplicaWithAnotherSecret: a replica given another key file than
// the others is refused at its start, not at the first EAB binding it serves.
func TestPostgresReplicaWithAnotherSecret(t *testing.T) {
	ctx := context.Background()
	dsn := cluster.NewDatabase(t)
	s, err := OpenPostgres(ctx, dsn, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	other, _ := GenerateEABSecret()
	s, err = OpenPostgres(ctx, dsn, other)
	var mismatch *EABSecretMismatchError
	if !errors.As(err, &mismatch) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("err %v, want EABSecretMismatchError", err)
	}
}
