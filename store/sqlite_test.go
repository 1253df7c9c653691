package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func openTempSQLite(t *testing.T) *SQL {
	t.Helper()
	s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "varmenne.db"), testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSQLiteContract runs the contract on copies of one migrated file: migrating
// a new file costs far more than the cases themselves under -race, and opening a
// copy still runs the migration check of a reopen.
func TestSQLiteContract(t *testing.T) {
	template := filepath.Join(t.TempDir(), "template.db")
	s, err := OpenSQLite(context.Background(), template, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	// Closing the last connection checkpoints the WAL into the file itself.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	schema, err := os.ReadFile(template)
	if err != nil {
		t.Fatal(err)
	}
	testContract(t, func(t *testing.T) *SQL {
		path := filepath.Join(t.TempDir(), "varmenne.db")
		if err := os.WriteFile(path, schema, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := OpenSQLite(context.Background(), path, testSecret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestOpenSQLiteSettings(t *testing.T) {
	s := openTempSQLite(t)
	defer s.Close()
	cases := []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"busy_timeout", "10000"},
		{"foreign_keys", "1"},
		{"synchronous", "2"}, // FULL
	}
	for _, tc := range cases {
		t.Run(tc.pragma+" is "+tc.want, func(t *testing.T) {
			var got string
			if err := s.db.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("PRAGMA %s = %s, want %s", tc.pragma, got, tc.want)
			}
		})
	}
	// Writes run on one connection, durable (synchronous FULL) or relaxed (NORMAL)
	// as each asks, whatever the one before it was.
	ctx := context.Background()
	synchronous := func(t *testing.T, relaxed bool) string {
		t.Helper()
		var got string
		if err := s.retryTxOn(ctx, s.d.isolation, relaxed, func(tx *sql.Tx) error {
			return tx.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&got)
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for i, relaxed := range []bool{true, true, false, false, true, false} {
		want := map[bool]string{false: "2", true: "1"}[relaxed] // FULL, NORMAL
		t.Run(fmt.Sprintf("write %d (relaxed %v): synchronous is %s", i+1, relaxed, want), func(t *testing.T) {
			if got := synchronous(t, relaxed); got != want {
				t.Errorf("PRAGMA synchronous = %s in the transaction, want %s", got, want)
			}
		})
	}
	t.Run("a statement on its own is durable after a relaxed transaction", func(t *testing.T) {
		synchronous(t, true)
		if _, err := s.exec(ctx, s.db, "CREATE TABLE IF NOT EXISTS durable_probe (x INTEGER)"); err != nil {
			t.Fatal(err)
		}
		if s.wsync != "FULL" {
			t.Errorf("the write connection is at synchronous %s after a statement on its own, want FULL", s.wsync)
		}
	})
	t.Run("a closed write connection is replaced", func(t *testing.T) {
		s.wconn.Close() // as if the driver had dropped it
		if got := synchronous(t, false); got != "2" {
			t.Errorf("PRAGMA synchronous = %s, want 2", got)
		}
	})
	t.Run("a write connection handed back relaxed is set anew", func(t *testing.T) {
		synchronous(t, true)
		// Closing a *sql.Conn hands its connection back to the pool, still at
		// NORMAL; the next write connection may be that one.
		s.wconn.Close()
		if got := synchronous(t, false); got != "2" {
			t.Errorf("a durable write ran at synchronous %s, want 2 (FULL)", got)
		}
	})
	t.Run("Ping answers", func(t *testing.T) {
		if err := s.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOpenSQLiteRejects(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		path func(t *testing.T) string
	}{
		{"an empty path", func(*testing.T) string { return "" }},
		{"a path with a query separator", func(t *testing.T) string { return filepath.Join(t.TempDir(), "a?b.db") }},
		{"a path in a missing directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "no", "such", "x.db") }},
		{"a database with a newer schema", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "new.db")
			s, err := OpenSQLite(ctx, path, testSecret)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.db.Exec("INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)"); err != nil {
				t.Fatal(err)
			}
			return path
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenSQLite(ctx, tc.path(t), testSecret)
			if err == nil {
				s.Close()
				t.Fatal("opened, want an error")
			}
		})
	}
}

func TestSQLiteReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "varmenne.db")
	s, err := OpenSQLite(ctx, path, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddOrganisation(ctx, Organisation{OID: org1, Name: "Kept"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for round := range 2 {
		s, err := OpenSQLite(ctx, path, testSecret)
		if err != nil {
			t.Fatalf("reopen %d: %v", round, err)
		}
		ms, err := migrations()
		if err != nil {
			t.Fatal(err)
		}
		var applied int
		if err := s.db.QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&applied); err != nil {
			t.Fatal(err)
		}
		o, err := s.GetOrganisation(ctx, org1)
		s.Close()
		cases := []struct {
			name string
			ok   bool
			msg  string
		}{
			{"each migration recorded once", applied == len(ms), fmt.Sprintf("%d migrations recorded, want %d", applied, len(ms))},
			{"data kept", err == nil && o.Name == "Kept", fmt.Sprintf("organisation %+v, %v", o, err)},
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("reopen %d: %s", round, tc.name), func(t *testing.T) {
				if !tc.ok {
					t.Error(tc.msg)
				}
			})
		}
	}
}

// TestSQLiteTwoHandles is the server and the CLI on one file: two *SQL writing at
// once must both succeed, never SQLITE_BUSY, and see each other's writes.
func TestSQLiteTwoHandles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	var handles [2]*SQL
	// Both open the new file at once, so the migrations race too.
	errs := race(2, func(i int) error {
		var err error
		handles[i], err = OpenSQLite(ctx, path, testSecret)
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer handles[i].Close()
	}
	const perHandle = 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	for h, s := range handles {
		// Each goroutine writes organisations, EAB keys and accounts, so the
		// transactions of the two handles interleave.
		for g := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perHandle {
					id := fmt.Sprintf("%d-%d-%d", h, g, i)
					oid := "1.2.246.10." + id
					err := errors.Join(
						s.AddOrganisation(ctx, Organisation{OID: oid}),
						s.CreateEAB(ctx, EABKey{KID: "kid-" + id, OrgOID: oid, HMACKey: []byte("k"), Status: EABApproved}),
						s.CreateAccount(ctx, Account{ID: "acct-" + id, Thumbprint: "t-" + id, JWK: []byte("{}"),
							OrgOID: oid, Status: "valid"}, "kid-"+id),
					)
					if err != nil {
						mu.Lock()
						failures = append(failures, err)
						mu.Unlock()
					}
				}
			}()
		}
	}
	wg.Wait()
	for _, err := range failures {
		t.Errorf("concurrent write: %v", err)
	}
	for h, s := range handles {
		var n int
		if err := s.db.QueryRow("SELECT COUNT(*) FROM accounts").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if want := 2 * 2 * perHandle; n != want {
			t.Errorf("handle %d sees %d accounts, want %d", h, n, want)
		}
	}
}
