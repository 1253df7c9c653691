package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// AddNonces stores fresh replay nonces valid until expires. The batch may be lost
// in a database crash (it commits without waiting for the disk where the dialect
// allows): a lost nonce is refused as unknown, which clients answer by retrying.
func (s *SQL) AddNonces(ctx context.Context, values []string, expires time.Time) error {
	if len(values) == 0 {
		return nil
	}
	query := "INSERT INTO nonces (value, expires) VALUES " +
		strings.TrimSuffix(strings.Repeat("(?, ?), ", len(values)), ", ")
	args := make([]any, 0, 2*len(values))
	for _, v := range values {
		args = append(args, v, micros(expires))
	}
	err := s.runTxOn(ctx, &sql.TxOptions{}, true, func(tx *sql.Tx) error {
		_, err := s.exec(ctx, tx, query, args...)
		return err
	})
	if err != nil {
		return s.fail("add nonces", err)
	}
	return nil
}

// RedeemNonce consumes value if it is stored and unexpired at now, and reports
// whether it did. Of any number of concurrent callers, on any number of processes,
// exactly one gets true: the DELETE that removes the row.
func (s *SQL) RedeemNonce(ctx context.Context, value string, now time.Time) (bool, error) {
	n, err := s.exec(ctx, s.db, `DELETE FROM nonces WHERE value = ? AND expires > ?`, value, micros(now))
	if err != nil {
		return false, s.fail("redeem nonce", err)
	}
	return n == 1, nil
}

// DeleteExpiredNonces removes nonces expired at now and returns how many.
func (s *SQL) DeleteExpiredNonces(ctx context.Context, now time.Time) (int64, error) {
	n, err := s.exec(ctx, s.db, `DELETE FROM nonces WHERE expires <= ?`, micros(now))
	if err != nil {
		return 0, s.fail("delete expired nonces", err)
	}
	return n, nil
}
