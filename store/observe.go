package store

import (
	"context"
	"database/sql"
)

// What the metrics (internal/metrics) read of the store at each scrape, and the
// hook that counts transaction retries. Nothing here changes a record.

// RevocationCount is how many certificates of an issuer were revoked with a reason.
type RevocationCount struct {
	Issuer string
	Reason int // RFC 5280 CRLReason code
	Count  int64
}

// RevocationCounts counts the revocations (never deleted) by issuer and reason.
func (s *SQL) RevocationCounts(ctx context.Context) ([]RevocationCount, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT issuer, reason, COUNT(*) FROM revocations GROUP BY issuer, reason ORDER BY issuer, reason`)
	if err != nil {
		return nil, s.fail("count revocations", err)
	}
	defer rows.Close()
	var out []RevocationCount
	for rows.Next() {
		var c RevocationCount
		if err := rows.Scan(&c.Issuer, &c.Reason, &c.Count); err != nil {
			return nil, s.fail("count revocations", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("count revocations", err)
	}
	return out, nil
}

// Organisation states OrganisationStates counts by.
const (
	OrgSuspended     = "suspended"       // an operator suspended it
	OrgLeftRegister  = "left_register"   // an earlier register import listed it, the last one does not
	OrgInRegister    = "in_register"     // the last register import listed it
	OrgNotInRegister = "not_in_register" // never listed by an import (added by hand)
)

// OrganisationStates counts the organisations by state (the constants above); a
// suspended organisation counts as suspended whatever the register says.
func (s *SQL) OrganisationStates(ctx context.Context) (map[string]int64, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT CASE
		WHEN suspended_at <> 0 THEN '`+OrgSuspended+`'
		WHEN register_left_at <> 0 THEN '`+OrgLeftRegister+`'
		WHEN register_synced_at <> 0 THEN '`+OrgInRegister+`'
		ELSE '`+OrgNotInRegister+`' END AS state, COUNT(*) FROM organisations GROUP BY state`)
	if err != nil {
		return nil, s.fail("count organisations", err)
	}
	defer rows.Close()
	out := map[string]int64{OrgSuspended: 0, OrgLeftRegister: 0, OrgInRegister: 0, OrgNotInRegister: 0}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, s.fail("count organisations", err)
		}
		out[state] = n
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("count organisations", err)
	}
	return out, nil
}

// PoolStats are the statistics of the store's connection pool (on SQLite, its
// write connection among them).
func (s *SQL) PoolStats() sql.DBStats { return s.db.Stats() }

// OnTxRetry makes the store call f each time it runs a transaction again after the
// database aborted it (serialization failure, deadlock, busy). f must not block.
// Call it before the store is used.
func (s *SQL) OnTxRetry(f func()) { s.txRetried = f }
