package store

import (
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is everything that differs between the SQL databases the store runs on.
// Queries and migrations are written once, with ? placeholders and {{TYPE}} markers;
// a PostgreSQL dialect needs numbered placeholders, its own types and its own way of
// naming a violated constraint, and nothing else.
type dialect struct {
	name   string
	driver string // database/sql driver name
	// types replaces the {{NAME}} markers in migrations.
	types map[string]string
	// numbered placeholders ($1, $2, …) instead of ?.
	numbered bool
	// uniqueConstraint reports the name, in the <table>_<columns>_key form the
	// migrations use, of the unique constraint err violates.
	uniqueConstraint func(err error) (string, bool)
	// foreignKey reports whether err is a foreign key violation.
	foreignKey func(err error) bool
	// isolation is the level transactions run at; retryable reports a failure
	// (serialization, deadlock) after which the whole transaction may run again.
	isolation sql.IsolationLevel
	retryable func(err error) bool
	// readIsolation is the level of read-only transactions: one consistent
	// snapshot is all they need.
	readIsolation sql.IsolationLevel
	// lockingIsolation is the level of transactions that take the row locks their
	// decisions depend on (forUpdate) and leave the rest to constraints; each of
	// their statements sees what committed before it.
	lockingIsolation sql.IsolationLevel
	// forUpdate is appended to a SELECT to lock the rows it reads; "" where a
	// writing transaction holds the whole database (SQLite).
	forUpdate string
	// relaxedCommit, run first in a transaction, lets it commit without waiting for
	// the disk; "" where the dialect has no such setting.
	relaxedCommit string
	// auditLock, run before the append in a transaction (tx.go audited), makes appends to the
	// audit log wait for each other; "" where a writing transaction holds the whole
	// database (SQLite).
	auditLock string
	// strpos is the function giving the position of a string in another
	// (haystack, needle), 1-based, 0 when absent.
	strpos string
}

// sqliteDialect needs no retries: transactions begin IMMEDIATE, so writers queue on
// the database lock (busy_timeout) instead of failing at commit.
var sqliteDialect = dialect{
	name:   "sqlite",
	driver: "sqlite",
	types: map[string]string{
		"BLOB":   "BLOB",
		"BIGINT": "INTEGER",
		// An INTEGER PRIMARY KEY is the rowid, assigned in insertion order.
		"SERIAL": "INTEGER PRIMARY KEY",
	},
	uniqueConstraint: sqliteUniqueConstraint,
	foreignKey: func(err error) bool {
		var e *sqlite.Error
		return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	},
	isolation: sql.LevelDefault,
	retryable: func(error) bool { return false },
	strpos:    "instr",
}

// sqliteBusy reports whether err is SQLite's SQLITE_BUSY (any extended code).
func sqliteBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}

// sqliteUniqueConstraint derives the constraint name from SQLite's message
// "UNIQUE constraint failed: t.a, t.b", which names columns, not constraints.
func sqliteUniqueConstraint(err error) (string, bool) {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return "", false
	}
	if e.Code() != sqlite3.SQLITE_CONSTRAINT_UNIQUE && e.Code() != sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY {
		return "", false
	}
	const marker = "UNIQUE constraint failed: "
	_, cols, ok := strings.Cut(e.Error(), marker)
	if !ok {
		return "", false
	}
	cols, _, _ = strings.Cut(cols, " (") // the driver appends the result code
	var table string
	var names []string
	for _, c := range strings.Split(cols, ", ") {
		t, col, ok := strings.Cut(c, ".")
		if !ok || (table != "" && t != table) {
			return "", false
		}
		table = t
		names = append(names, col)
	}
	return table + "_" + strings.Join(names, "_") + "_key", true
}

// rebind rewrites ? placeholders for dialects that number them. The store's queries
// hold no ? inside string literals, so a plain scan is enough.
func (d *dialect) rebind(query string) string {
	if !d.numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// expand replaces the {{NAME}} type markers of a migration.
func (d *dialect) expand(migration string) (string, error) {
	pairs := make([]string, 0, 2*len(d.types))
	for k, v := range d.types {
		pairs = append(pairs, "{{"+k+"}}", v)
	}
	out := strings.NewReplacer(pairs...).Replace(migration)
	if i := strings.Index(out, "{{"); i >= 0 {
		end := min(len(out), i+20)
		return "", errors.New("unknown type marker " + strconv.Quote(out[i:end]) + " for dialect " + d.name)
	}
	return out, nil
}
