package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// RevocationNotice is the e-mail that tells a revoked certificate's holder
// (migration 0028): each revocation queues one, in its transaction, and a
// running server sends it.
type RevocationNotice struct {
	Serial      string
	CreatedAt   time.Time // when the revocation was recorded
	Attempts    int       // tries so far, counting the one just claimed
	NextAttempt time.Time
	DoneAt      time.Time // zero: still to be sent
	Outcome     string    // how it ended: "sent", "failed: …", "no recipients"
}

// queueNotice queues the notice of a revocation in its transaction.
func (s *SQL) queueNotice(ctx context.Context, tx *sql.Tx, serial string, at time.Time) error {
	_, err := s.exec(ctx, tx,
		`INSERT INTO revocation_notices (serial, created_at, attempts, next_attempt, lease_holder, lease_until, done_at, outcome)
		 VALUES (?, ?, 0, ?, '', 0, 0, '')`, serial, micros(at), micros(at))
	return err
}

// ClaimRevocationNotice takes the oldest notice that is due at now (not done,
// its next try not in the future, no other sender holding it), queued at or
// after since, for holder until now+lease, and counts the try. ErrNotFound when
// none is due. Two senders never hold one notice at once: the claim is a
// conditional UPDATE.
func (s *SQL) ClaimRevocationNotice(ctx context.Context, holder string, now, since time.Time, lease time.Duration) (*RevocationNotice, error) {
	due := func(q querier) (string, error) {
		var serial string
		err := q.QueryRowContext(ctx, s.d.rebind(
			`SELECT serial FROM revocation_notices
			 WHERE done_at = 0 AND next_attempt <= ? AND lease_until <= ? AND created_at >= ?
			 ORDER BY next_attempt, serial LIMIT 1`), micros(now), micros(now), micros(since)).Scan(&serial)
		return serial, err
	}
	// A read first: the sender polls, and an empty outbox takes no write lock.
	if _, err := due(s.q()); err != nil {
		return nil, s.fail("claim a revocation notice", err)
	}
	var claimed *RevocationNotice
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		claimed = nil
		serial, err := due(tx)
		if err != nil {
			return err
		}
		n, err := s.exec(ctx, tx,
			`UPDATE revocation_notices SET lease_holder = ?, lease_until = ?, attempts = attempts + 1
			 WHERE serial = ? AND done_at = 0 AND lease_until <= ?`, holder, micros(now.Add(lease)), serial, micros(now))
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("notice %s: %w", serial, ErrConflict)
		}
		claimed, err = scanNotice(tx.QueryRowContext(ctx, s.d.rebind(`SELECT `+noticeColumns+` FROM revocation_notices WHERE serial = ?`), serial))
		return err
	})
	if err != nil {
		return nil, s.fail("claim a revocation notice", err)
	}
	return claimed, nil
}

// FinishRevocationNotice records the end of holder's try at serial's notice:
// done (sent, or given up) with its outcome, or else to be tried again at next.
// ErrConflict when holder does not hold the notice (its lease passed and another
// sender took it, or it is done).
func (s *SQL) FinishRevocationNotice(ctx context.Context, serial, holder string, done bool, outcome string, now, next time.Time) error {
	serial = normalHex(serial)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var doneAt int64
		if done {
			doneAt = micros(now)
		}
		return s.transition(ctx, tx, "revocation_notices", "serial", serial,
			`UPDATE revocation_notices SET done_at = ?, outcome = ?, next_attempt = ?, lease_holder = '', lease_until = 0
			 WHERE serial = ? AND lease_holder = ? AND done_at = 0`, doneAt, outcome, micros(next), serial, holder)
	})
	if err != nil {
		return s.fail("finish the revocation notice of "+serial, err)
	}
	return nil
}

// GetRevocationNotice returns serial's notice; ErrNotFound if none was queued.
func (s *SQL) GetRevocationNotice(ctx context.Context, serial string) (*RevocationNotice, error) {
	n, err := scanNotice(s.q().QueryRowContext(ctx, s.d.rebind(`SELECT `+noticeColumns+` FROM revocation_notices WHERE serial = ?`), normalHex(serial)))
	if err != nil {
		return nil, s.fail("get the revocation notice of "+serial, err)
	}
	return n, nil
}

const noticeColumns = `serial, created_at, attempts, next_attempt, done_at, outcome`

func scanNotice(row scanner) (*RevocationNotice, error) {
	var n RevocationNotice
	var created, next, done int64
	if err := row.Scan(&n.Serial, &created, &n.Attempts, &next, &done, &n.Outcome); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	n.CreatedAt, n.NextAttempt, n.DoneAt = fromMicros(created), fromMicros(next), fromMicros(done)
	return &n, nil
}
