package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// The sweepers fail what has been processing for longer than any live validation or
// issuance can take: a replica that died, or a database that was down while a
// result was recorded, would otherwise leave it processing for good (ROBUSTNESS 76).
// Every change is conditional on the row still being processing since before
// olderThan, so any number of replicas may sweep at once and a result recorded
// meanwhile wins. processing_since is the clock of the process that started the
// processing; rows already processing before migration 0008 count as processing
// since 0.

// SweepStuckChallenges makes each challenge processing since before olderThan
// invalid with problem, exactly as FinishChallenge records a failed validation: its
// pending authorization becomes invalid, and so do the pending orders that hold it.
// It returns how many challenges it failed.
func (s *SQL) SweepStuckChallenges(ctx context.Context, olderThan time.Time, problem []byte) (int, error) {
	ids, err := s.column(ctx, s.db,
		`SELECT id FROM challenges WHERE status = 'processing' AND processing_since < ? ORDER BY id`, micros(olderThan))
	if err != nil {
		return 0, s.fail("find stuck challenges", err)
	}
	return s.failChallenges(ctx, ids, problem, olderThan)
}

// failChallenges makes each of the challenges ids, processing since before
// olderThan, invalid with problem as a failed validation. One finished meanwhile (by
// its validation or another sweeper) is left as it is. It returns how many it failed.
func (s *SQL) failChallenges(ctx context.Context, ids []string, problem []byte, olderThan time.Time) (int, error) {
	failed := 0
	for _, id := range ids {
		err := s.inLockingTx(ctx, func(tx *sql.Tx) error {
			return s.finishChallenge(ctx, tx, id, false, time.Now(), problem, olderThan)
		})
		switch {
		case err == nil:
			failed++
		case errors.Is(err, ErrConflict), errors.Is(err, ErrNotFound):
			// Finished meanwhile, by its validation or another sweeper.
		default:
			return failed, s.fail("fail interrupted challenge "+id, err)
		}
	}
	return failed, nil
}

// SweepStuckOrders makes each order processing since before olderThan, and with no
// certificate, invalid with problem. Its issuance intents stay as they are: a
// certificate that was signed but not stored remains visible to the reconciliation
// (varmenne intents list). It returns how many orders it failed.
func (s *SQL) SweepStuckOrders(ctx context.Context, olderThan time.Time, problem []byte) (int, error) {
	n, err := s.exec(ctx, s.db,
		`UPDATE orders SET status = 'invalid', error = ?
		 WHERE status = 'processing' AND processing_since < ? AND cert_serial = ''
		 AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.order_id = orders.id)`,
		blob(problem), micros(olderThan))
	if err != nil {
		return 0, s.fail("sweep stuck orders", err)
	}
	return int(n), s.freeUnaskedIntents(ctx)
}

// unaskedReason is why freeUnaskedIntents fails an intent.
const unaskedReason = "the issuance was interrupted before the issuer key was asked to sign"

// freeUnaskedIntents fails the pending intents the key was never asked to sign
// (key_use 'none') whose order a sweep made invalid: no certificate can exist for
// them, so their key is free for a new order. An intent the key was asked for, or
// signed, stays pending for the reconciliation (varmenne intents list). Marking an
// intent asked is conditional on it still being pending, so a sweep and a late
// signer cannot both win.
func (s *SQL) freeUnaskedIntents(ctx context.Context) error {
	if _, err := s.exec(ctx, s.db,
		`UPDATE issuance_intents SET status = 'failed', reason = ?
		 WHERE status = 'pending' AND key_use = 'none'
		 AND order_id IN (SELECT id FROM orders WHERE status = 'invalid')`, unaskedReason); err != nil {
		return s.fail("free the intents the key was never asked to sign", err)
	}
	return nil
}
