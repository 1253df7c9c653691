package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// RateLimitUse is the state of one rate limit window after a TakeRateLimit or a
// RateLimitCount.
type RateLimitUse struct {
	Allowed bool      // the use was counted (TakeRateLimit); the window is below max (RateLimitCount)
	Count   int       // uses counted in the window, this one included when allowed
	Reset   time.Time // when the window ends and the count starts again from 0
}

// rateWindow is the fixed window of length window that holds now. Windows are
// multiples of window since Go's zero time (hours on the hour, days at 00:00 UTC,
// weeks from Monday 00:00 UTC), so every replica computes the same one.
func rateWindow(window time.Duration, now time.Time) (start, end time.Time) {
	start = now.Truncate(window)
	return start, start.Add(window)
}

// TakeRateLimit counts one use of the limit name by subject in the fixed window of
// length window that holds now, unless max uses are counted there already. Of any
// number of concurrent callers, on any number of processes sharing the database, at
// most max are counted in one window: the count is one conditional upsert of one row.
func (s *SQL) TakeRateLimit(ctx context.Context, name, subject string, max int, window time.Duration, now time.Time) (RateLimitUse, error) {
	if max <= 0 || window <= 0 {
		return RateLimitUse{}, fmt.Errorf("store: rate limit %s: max %d and window %s must be positive", name, max, window)
	}
	start, end := rateWindow(window, now)
	use := RateLimitUse{Reset: end}
	var used int64
	unlock, err := s.lockWriter(ctx)
	if err != nil {
		return use, err
	}
	// A count lost in a crash of the machine lets one more request through: the
	// upsert need not wait for the disk (SQLite; see inRelaxedTx).
	pool := s.db
	if s.relaxed != nil {
		pool = s.relaxed
	}
	err = pool.QueryRowContext(ctx, s.d.rebind(
		`INSERT INTO rate_limits (name, subject, window_start, used, expires) VALUES (?, ?, ?, 1, ?)
		 ON CONFLICT (name, subject, window_start) DO UPDATE SET used = rate_limits.used + 1
		 WHERE rate_limits.used < ?
		 RETURNING used`),
		name, subject, micros(start), micros(end), int64(max)).Scan(&used)
	unlock()
	switch {
	case err == nil:
		use.Allowed, use.Count = true, int(used)
		return use, nil
	case !errors.Is(err, sql.ErrNoRows):
		return use, s.fail("take rate limit "+name, err)
	}
	// The window is full: nothing was written. Report its count.
	cur, err := s.RateLimitCount(ctx, name, subject, max, window, now)
	cur.Allowed = false
	return cur, err
}

// RateLimitCount reports the uses of the limit name by subject counted in the window
// that holds now, and whether they are below max; it counts nothing.
func (s *SQL) RateLimitCount(ctx context.Context, name, subject string, max int, window time.Duration, now time.Time) (RateLimitUse, error) {
	if window <= 0 {
		return RateLimitUse{}, fmt.Errorf("store: rate limit %s: window %s must be positive", name, window)
	}
	start, end := rateWindow(window, now)
	var used int64
	err := s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT used FROM rate_limits WHERE name = ? AND subject = ? AND window_start = ?`),
		name, subject, micros(start)).Scan(&used)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return RateLimitUse{}, s.fail("read rate limit "+name, err)
	}
	return RateLimitUse{Allowed: int(used) < max, Count: int(used), Reset: end}, nil
}

// DeleteExpiredRateLimits removes the windows that ended at or before now and
// returns how many.
func (s *SQL) DeleteExpiredRateLimits(ctx context.Context, now time.Time) (int64, error) {
	n, err := s.exec(ctx, s.db, `DELETE FROM rate_limits WHERE expires <= ?`, micros(now))
	if err != nil {
		return 0, s.fail("delete expired rate limits", err)
	}
	return n, nil
}

// PendingAuthorizations counts the account's authorizations that are pending and
// unexpired at now, and reports when the first of them expires (zero when none).
func (s *SQL) PendingAuthorizations(ctx context.Context, accountID string, now time.Time) (int, time.Time, error) {
	var n int64
	var first sql.NullInt64
	err := s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT COUNT(*), MIN(expires) FROM authorizations WHERE account_id = ? AND status = 'pending' AND expires > ?`),
		accountID, micros(now)).Scan(&n, &first)
	if err != nil {
		return 0, time.Time{}, s.fail("count pending authorizations of "+accountID, err)
	}
	var t time.Time
	if first.Valid {
		t = fromMicros(first.Int64)
	}
	return int(n), t, nil
}
