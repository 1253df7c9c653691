package store

import (
	"context"
	"database/sql"
	"testing"
)

// stmtCacheDialects opens a store of each dialect for the statement cache's tests.
func stmtCacheDialects(t *testing.T) map[string]*SQL {
	t.Helper()
	pg, err := OpenPostgres(context.Background(), cluster.NewDatabase(t), testSecret)
	if err != nil {
		t.Fatal(err)
	}
	lite := openTempSQLite(t)
	t.Cleanup(func() { pg.Close(); lite.Close() })
	return map[string]*SQL{"sqlite": lite, "postgres": pg}
}

// cachedStatements returns how many statements conn keeps prepared.
func cachedStatements(t *testing.T, ctx context.Context, conn *sql.Conn) int {
	t.Helper()
	n := -1
	if err := conn.Raw(func(dc any) error {
		c, ok := dc.(*cachingConn)
		if !ok {
			t.Fatalf("the driver connection is a %T, not the caching one", dc)
		}
		c.mu.Lock()
		n = len(c.stmts)
		c.mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// A statement run again on the same connection is the prepared one, and a query
// nested in a loop over the rows of the same query (which would reset the
// statement under the loop) reads its own rows while the loop reads all of its.
func TestStatementCacheReuseAndNesting(t *testing.T) {
	ctx := context.Background()
	for name, s := range stmtCacheDialects(t) {
		t.Run(name, func(t *testing.T) {
			for _, q := range []string{
				`CREATE TABLE cache_probe (id INTEGER NOT NULL PRIMARY KEY, v TEXT NOT NULL)`,
				`INSERT INTO cache_probe (id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c')`,
			} {
				if _, err := s.db.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			conn, err := s.db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			query := s.d.rebind(`SELECT id, v FROM cache_probe WHERE id >= ? ORDER BY id`)
			before := cachedStatements(t, ctx, conn)
			for range 3 {
				var id int
				var v string
				if err := conn.QueryRowContext(ctx, query, 2).Scan(&id, &v); err != nil || id != 2 || v != "b" {
					t.Fatalf("first row from 2: %d %q %v, want 2 b", id, v, err)
				}
			}
			if got := cachedStatements(t, ctx, conn); got != before+1 {
				t.Fatalf("%d statements cached after running one three times, want %d", got, before+1)
			}
			if name == "postgres" {
				// lib/pq cannot read a second result while the first is open on
				// one connection; the nesting below is SQLite's case.
				return
			}
			rows, err := conn.QueryContext(ctx, query, 1)
			if err != nil {
				t.Fatal(err)
			}
			var outer, inner []string
			for rows.Next() {
				var id int
				var v string
				if err := rows.Scan(&id, &v); err != nil {
					t.Fatal(err)
				}
				outer = append(outer, v)
				if len(outer) > 3 {
					// The nested run reset the loop's statement: it starts over.
					break
				}
				if id == 1 {
					nested, err := conn.QueryContext(ctx, query, 3)
					if err != nil {
						t.Fatal(err)
					}
					for nested.Next() {
						if err := nested.Scan(&id, &v); err != nil {
							t.Fatal(err)
						}
						inner = append(inner, v)
						if len(inner) > 3 {
							break
						}
					}
					if err := nested.Close(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
			if got, want := len(outer), 3; got != want || outer[0] != "a" || outer[2] != "c" {
				t.Errorf("outer loop read %v, want [a b c]", outer)
			}
			if len(inner) != 1 || inner[0] != "c" {
				t.Errorf("nested query read %v, want [c]", inner)
			}
		})
	}
}

// A cached statement the database refuses after the table changed under it
// (PostgreSQL: "cached plan must not change result type") is dropped, so the
// next run prepares it anew and succeeds; on SQLite the change is invisible.
func TestStatementCacheDropsAFailedStatement(t *testing.T) {
	ctx := context.Background()
	for name, s := range stmtCacheDialects(t) {
		t.Run(name, func(t *testing.T) {
			if _, err := s.db.ExecContext(ctx, `CREATE TABLE cache_change (id INTEGER NOT NULL PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			if _, err := s.db.ExecContext(ctx, s.d.rebind(`INSERT INTO cache_change (id, v) VALUES (?, ?)`), 1, "a"); err != nil {
				t.Fatal(err)
			}
			conn, err := s.db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			query := s.d.rebind(`SELECT * FROM cache_change WHERE id = ?`)
			read := func() ([]any, error) {
				rows, err := conn.QueryContext(ctx, query, 1)
				if err != nil {
					return nil, err
				}
				defer rows.Close()
				cols, err := rows.Columns()
				if err != nil {
					return nil, err
				}
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if !rows.Next() {
					return nil, rows.Err()
				}
				return vals, rows.Scan(ptrs...)
			}
			if vals, err := read(); err != nil || len(vals) != 2 {
				t.Fatalf("before the change: %v %v, want 2 columns", vals, err)
			}
			if _, err := conn.ExecContext(ctx, `ALTER TABLE cache_change ADD COLUMN w TEXT NOT NULL DEFAULT 'x'`); err != nil {
				t.Fatal(err)
			}
			vals, err := read()
			if err != nil {
				// PostgreSQL refuses the stale plan once; the cache drops it.
				if vals, err = read(); err != nil {
					t.Fatalf("the run after the refused one: %v", err)
				}
			}
			if len(vals) != 3 {
				t.Fatalf("after the change: %v, want 3 columns", vals)
			}
		})
	}
}

// Counts grow with what the store runs.
func TestStatementCounts(t *testing.T) {
	ctx := context.Background()
	s := openTempSQLite(t)
	defer s.Close()
	before := Counts()
	if _, err := s.KeyBlocked(ctx, "00ff"); err != nil {
		t.Fatal(err)
	}
	if err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM nonces WHERE value = ?`, "none")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	after := Counts()
	if after.Statements-before.Statements < 2 || after.Commits-before.Commits < 1 {
		t.Errorf("counts went from %+v to %+v: want 2 statements and 1 commit more at least", before, after)
	}
}
