package e2e

import (
	"database/sql"
	"strings"
	"testing"

	_ "github.com/lib/pq"
)

// TestAuditVerifyFindsAnEditedRowOnPostgres: the built binary writes audit events
// to PostgreSQL (operators added), a row is edited directly in the database, and
// "varmenne audit verify" names that event as the first broken link.
func TestAuditVerifyFindsAnEditedRowOnPostgres(t *testing.T) {
	pg := postgresCluster(t)
	dsn := pg.NewDatabase(t)
	data := t.TempDir()
	if out, err := varmenne("operator", "bootstrap", "--db", dsn, "--data", data); err != nil {
		t.Fatalf("operator bootstrap: %v: %s", err, out)
	}
	for _, name := range []string{"anna", "bert", "cecilia"} {
		if out, err := varmenne("operator", "add", name, "--role", "auditor", "--token", "--db", dsn, "--data", data); err != nil {
			t.Fatalf("operator add %s: %v: %s", name, err, out)
		}
	}
	if out, err := varmenne("audit", "verify", "--db", dsn, "--data", data); err != nil || !strings.Contains(out, "intact: 4 events") {
		t.Fatalf("audit verify before the edit: %v: %s", err, out)
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE audit_log SET actor = 'mallory' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	out, err := varmenne("audit", "verify", "--db", dsn, "--data", data)
	if err == nil || !strings.Contains(out, "broken at event 2") || !strings.Contains(out, "events 1 to 1 are intact") {
		t.Fatalf("audit verify after editing event 2: %v: %s", err, out)
	}
}
