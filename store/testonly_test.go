package store

// What only the tests read or do to the store: kept beside the tests, out of the
// production API.

import (
	"context"
	"database/sql"
)

// CertificateSerials returns the serials of every stored certificate, for checks
// that compare what clients hold with what the store has.
func (s *SQL) CertificateSerials(ctx context.Context) ([]string, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT serial FROM certificates ORDER BY serial`)
	if err != nil {
		return nil, s.fail("list certificate serials", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, s.fail("list certificate serials", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list certificate serials", err)
	}
	return out, nil
}

// GetIntent returns the issuance intent for serial, or ErrNotFound.
func (s *SQL) GetIntent(ctx context.Context, serial string) (*IssuanceIntent, error) {
	var in IssuanceIntent
	var names string
	var created int64
	err := s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT serial, order_id, issuer, names, key_hash, lint_tbs, status, created_at
		 FROM issuance_intents WHERE serial = ?`), normalHex(serial)).
		Scan(&in.Serial, &in.OrderID, &in.Issuer, &names, &in.KeyHash, &in.LintTBS, &in.Status, &created)
	if err != nil {
		return nil, s.fail("get issuance intent "+serial, err)
	}
	if in.Names, err = fromList(names); err != nil {
		return nil, err
	}
	in.CreatedAt = fromMicros(created)
	return &in, nil
}

// AbandonIntent moves a pending intent to failed: the issuer never signed, so its
// key is free for another try (its serial stays used). ErrConflict if not pending.
func (s *SQL) AbandonIntent(ctx context.Context, serial string) error {
	serial = normalHex(serial)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "issuance_intents", "serial", serial,
			`UPDATE issuance_intents SET status = 'failed' WHERE status = 'pending' AND serial = ?`, serial)
	})
	if err != nil {
		return s.fail("abandon issuance intent "+serial, err)
	}
	return nil
}
