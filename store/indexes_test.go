package store

import (
	"context"
	"database/sql"
	"strings"
	"testing"
)

// lookups are the reads the ACME and operator paths make, as the store writes them
// (with literals for the arguments). Each must find its rows through an index: by
// account, organisation, serial, name, key hash, revoked-and-unexpired, and the
// sweep of work a crashed replica left.
var lookups = []struct{ name, query string }{
	{"organisation by OID", `SELECT name FROM organisations WHERE oid = 'o'`},
	{"EAB key by kid", `SELECT org_oid FROM eab_keys WHERE kid = 'k'`},
	{"EAB keys of an organisation", `SELECT kid FROM eab_keys WHERE org_oid = 'o'`},
	{"account by id", `SELECT jwk FROM accounts WHERE id = 'a'`},
	{"account by key thumbprint", `SELECT id FROM accounts WHERE thumbprint = 't'`},
	{"accounts of an organisation", `SELECT COUNT(*) FROM accounts WHERE org_oid = 'o'`},
	{"orders of an account", `SELECT id FROM orders WHERE account_id = 'a' ORDER BY seq`},
	{"order by id", `SELECT status FROM orders WHERE id = 'x'`},
	{"authorizations of an order", `SELECT authz_id FROM order_authzs WHERE order_id = 'x' ORDER BY pos`},
	{"orders of an authorization", `SELECT id FROM orders WHERE id IN (SELECT order_id FROM order_authzs WHERE authz_id = 'z') ORDER BY id`},
	{"authorization by id", `SELECT name FROM authorizations WHERE id = 'z'`},
	{"reusable authorization by account and name", `SELECT a.id FROM authorizations a WHERE a.account_id = 'a' AND a.name = 'www.example.fi' AND a.wildcard = 0
		AND a.status = 'valid' AND a.expires > 0 AND EXISTS (SELECT 1 FROM challenges c WHERE c.authz_id = a.id AND c.status = 'valid' AND c.validated >= 0)
		ORDER BY a.expires DESC, a.id LIMIT 1`},
	{"pending authorizations of an account", `SELECT COUNT(*), MIN(expires) FROM authorizations WHERE account_id = 'a' AND status = 'pending' AND expires > 0`},
	{"challenges of an authorization", `SELECT id FROM challenges WHERE authz_id = 'z' ORDER BY pos`},
	{"challenge by id", `SELECT authz_id FROM challenges WHERE id = 'c'`},
	{"certificate by serial", `SELECT der FROM certificates WHERE serial = '01'`},
	{"certificate by key hash", `SELECT COUNT(*) FROM certificates WHERE key_hash = 'aa'`},
	{"blocked key by key hash", `SELECT COUNT(*) FROM blocked_keys WHERE key_hash = 'aa'`},
	{"unexpired certificates of an organisation", `SELECT c.serial FROM certificates c WHERE c.org_oid = 'o' AND c.not_after > 0
		AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial) ORDER BY c.not_after, c.serial`},
	{"unexpired certificates of an issuer", `SELECT c.serial FROM certificates c WHERE c.issuer = 'production' AND c.not_after > 0
		AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial)`},
	{"revocation by serial", `SELECT reason FROM revocations WHERE serial = '01'`},
	{"due revocation notices", `SELECT serial FROM revocation_notices WHERE done_at = 0 AND next_attempt <= 5 AND lease_until <= 5
		AND created_at >= 0 ORDER BY next_attempt, serial LIMIT 1`},
	{"revoked and unexpired, for an issuer's CRL", `SELECT serial, revoked_at, reason, invalidity_date, not_after FROM revocations
		WHERE issuer = 'production' AND (not_after = 0 OR not_after >= 0) ORDER BY serial`},
	{"revocations of an organisation", `SELECT serial FROM revocations WHERE org_oid = 'o'`},
	{"intent by serial", `SELECT status FROM issuance_intents WHERE serial = '01'`},
	{"intents without a certificate", `SELECT i.serial FROM issuance_intents i
		WHERE i.status <> 'issued' AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = i.serial) ORDER BY i.created_at, i.serial`},
	{"pending intents of an organisation", `SELECT i.serial FROM issuance_intents i JOIN orders o ON o.id = i.order_id
		WHERE o.org_oid = 'o' AND i.status = 'pending' AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = i.serial)
		AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = i.serial)`},
	{"stuck challenges", `SELECT id FROM challenges WHERE status = 'processing' AND processing_since < 1 ORDER BY id`},
	{"stuck orders without a certificate", `SELECT id FROM orders WHERE status = 'processing' AND processing_since < 1 AND cert_serial = ''
		AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.order_id = orders.id)`},
	{"nonce", `SELECT value FROM nonces WHERE value = 'n' AND expires > 0`},
	{"expired nonces", `SELECT value FROM nonces WHERE expires <= 0`},
	{"rate limit counter", `SELECT used FROM rate_limits WHERE name = 'l' AND subject = 's' AND window_start = 0`},
	{"expired rate limit counters", `SELECT name FROM rate_limits WHERE expires <= 0`},
	{"replacement by serial", `SELECT order_id FROM order_replaces WHERE serial = '01'`},
	{"renewal window by serial", `SELECT start_at FROM renewal_windows WHERE serial = '01'`},
	{"conformity certificates of an organisation", `SELECT system FROM conformity_certificates WHERE org_oid = 'o' ORDER BY expires DESC, system`},
	{"CRL state of an issuer", `SELECT number FROM crl_state WHERE issuer = 'production'`},
	{"audit log after a sequence number", `SELECT hash FROM audit_log WHERE seq > 0 ORDER BY seq LIMIT 10`},
	{"audit log of an actor", `SELECT hash FROM audit_log WHERE actor = 'anna' AND seq > 0 ORDER BY seq LIMIT 10`},
	{"certificates issued per day", `SELECT created_at / 86400000000, COUNT(*) FROM certificates WHERE created_at >= 0 AND created_at < 1 GROUP BY 1 ORDER BY 1`},
	{"unrevoked certificates expiring per day", `SELECT c.not_after / 86400000000, COUNT(*) FROM certificates c WHERE c.not_after >= 0 AND c.not_after < 1
		AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial) GROUP BY 1 ORDER BY 1`},
}

// searches names the index a hot lookup must search, where another index would
// serve it with a longer scan (the planner's choice without statistics).
var searches = map[string]string{
	// Every new order asks; by account and status alone it reads all the account's
	// valid authorizations.
	"reusable authorization by account and name": "authorizations_reuse_idx",
}

// testLookupIndexes asks each dialect's planner how it would run every lookup and
// fails on a read of a whole table. PostgreSQL plans with sequential scans and hash
// and merge joins priced out, so a plan that still reads a table, or a whole index
// that is not partial, has no index to use; SQLite's query plan names a full table scan "SCAN t" (a scan of a
// partial index, "SCAN t USING INDEX", reads only the rows the index holds).
func testLookupIndexes(t *testing.T, open func(t *testing.T) *SQL) {
	s := open(t)
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	partial := map[string]bool{} // PostgreSQL's partial indexes: reading one whole reads only its rows
	if s.d.name != "sqlite" {
		rows, err := s.db.QueryContext(ctx, `SELECT indexrelid::regclass::text FROM pg_index WHERE indpred IS NOT NULL`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			partial[n] = true
		}
		rows.Close()
	}
	for _, l := range lookups {
		t.Run(l.name, func(t *testing.T) {
			plan, err := queryPlan(ctx, s, l.query)
			if err != nil {
				t.Fatalf("planning %s: %v", l.query, err)
			}
			for i, line := range plan {
				if fullScan(s.d.name, plan, i, partial) {
					t.Errorf("the lookup reads a whole table or index (%s):\n%s", strings.TrimSpace(line), strings.Join(plan, "\n"))
				}
			}
			if index := searches[l.name]; index != "" && !strings.Contains(strings.Join(plan, "\n"), " "+index+" ") {
				t.Errorf("the lookup does not search %s:\n%s", index, strings.Join(plan, "\n"))
			}
		})
	}
}

func queryPlan(ctx context.Context, s *SQL, query string) ([]string, error) {
	var plan []string
	err := s.runTx(ctx, &sql.TxOptions{ReadOnly: true}, func(tx *sql.Tx) error {
		prefix := "EXPLAIN QUERY PLAN "
		if s.d.name != "sqlite" {
			prefix = "EXPLAIN "
			// Empty tables make any plan cheap; price out the plans that read whole
			// tables (sequential scans, and hash and merge joins, which read their
			// inner side whole), so what remains shows whether an index serves.
			for _, set := range []string{"enable_seqscan", "enable_hashjoin", "enable_mergejoin"} {
				if _, err := tx.ExecContext(ctx, "SET LOCAL "+set+" = off"); err != nil {
					return err
				}
			}
		}
		rows, err := tx.QueryContext(ctx, prefix+query)
		if err != nil {
			return err
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		for rows.Next() {
			dest := make([]any, len(cols))
			for i := range dest {
				dest[i] = new(sql.NullString)
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			plan = append(plan, dest[len(dest)-1].(*sql.NullString).String) // the plan text is the last column
		}
		return rows.Err()
	})
	return plan, err
}

// fullScan reports whether plan line i reads a whole table, or a whole index that is
// not partial: SQLite's "SCAN t" without an index; PostgreSQL's Seq Scan, or an
// index scan node without an Index Cond on a full index.
func fullScan(dialect string, plan []string, i int, partial map[string]bool) bool {
	line := strings.TrimSpace(plan[i])
	if dialect == "sqlite" {
		return strings.HasPrefix(line, "SCAN ") && !strings.Contains(line, " USING ") && !strings.HasPrefix(line, "SCAN CONSTANT ROW")
	}
	if strings.Contains(line, "Seq Scan") {
		return true
	}
	_, rest, ok := strings.Cut(line, "Index Scan using ")
	if !ok {
		_, rest, ok = strings.Cut(line, "Index Only Scan using ")
	}
	if !ok {
		return false
	}
	index, _, _ := strings.Cut(rest, " ")
	if partial[index] {
		return false
	}
	for _, detail := range plan[i+1:] {
		if strings.Contains(detail, "->") {
			break
		}
		if strings.Contains(detail, "Index Cond:") {
			return false
		}
	}
	return true
}
