package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
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
	// A count lost in a crash of the machine lets one more request through: the
	// upsert need not wait for the disk (SQLite; see inRelaxedTx).
	q, unlock, err := s.lockWrite(ctx, true)
	if err != nil {
		return use, err
	}
	err = q.QueryRowContext(ctx, s.d.rebind(
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
// returns how many. It leaves tallies (TallyPrefix): their summaries claim them.
func (s *SQL) DeleteExpiredRateLimits(ctx context.Context, now time.Time) (int64, error) {
	n, err := s.exec(ctx, s.db, `DELETE FROM rate_limits WHERE expires <= ? AND name NOT LIKE '`+TallyPrefix+`%'`, micros(now))
	if err != nil {
		return 0, s.fail("delete expired rate limits", err)
	}
	return n, nil
}

// TallyPrefix starts the name of a tally: a rate limit window that outlives its
// end until a summary claims it. TakeRateLimit and RateLimitCount count a tally like
// any limit, so its count is exact across replicas; DeleteExpiredRateLimits leaves
// it; EndedTallies lists the ended ones and ClaimTally removes one and returns its
// count, in the transaction that records the summary, so each ended window is
// summarised once, by one replica, and no count is dropped unread.
const TallyPrefix = "tally:"

// Tally is the count of one tally window.
type Tally struct {
	Name, Subject string
	Start, End    time.Time
	Count         int
}

// EndedTallies lists at most limit windows of the tally name that ended at or
// before endedBy, oldest first.
func (s *SQL) EndedTallies(ctx context.Context, name string, endedBy time.Time, limit int) ([]Tally, error) {
	if !strings.HasPrefix(name, TallyPrefix) {
		return nil, fmt.Errorf("store: %s is not a tally: its name must start with %s", name, TallyPrefix)
	}
	rows, err := s.q().QueryContext(ctx, s.d.rebind(
		`SELECT subject, window_start, expires, used FROM rate_limits WHERE name = ? AND expires <= ?
		 ORDER BY window_start, subject LIMIT ?`), name, micros(endedBy), limit)
	if err != nil {
		return nil, s.fail("list ended tallies "+name, err)
	}
	defer rows.Close()
	var out []Tally
	for rows.Next() {
		var start, end, used int64
		t := Tally{Name: name}
		if err := rows.Scan(&t.Subject, &start, &end, &used); err != nil {
			return nil, s.fail("list ended tallies "+name, err)
		}
		t.Start, t.End, t.Count = fromMicros(start), fromMicros(end), int(used)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list ended tallies "+name, err)
	}
	return out, nil
}

// ClaimTally removes the tally window of name and subject that starts at start and
// returns its count; ErrNotFound when there is none (another replica claimed it).
// Run it in the transaction that records the summary (Tx.ClaimTally).
func (s *SQL) ClaimTally(ctx context.Context, name, subject string, start time.Time) (int, error) {
	if !strings.HasPrefix(name, TallyPrefix) {
		return 0, fmt.Errorf("store: %s is not a tally: its name must start with %s", name, TallyPrefix)
	}
	q := s.on(s.db)
	if q == querier(s.db) {
		w, unlock, err := s.lockWrite(ctx, false)
		if err != nil {
			return 0, err
		}
		defer unlock()
		q = w
	}
	var used int64
	err := q.QueryRowContext(ctx, s.d.rebind(
		`DELETE FROM rate_limits WHERE name = ? AND subject = ? AND window_start = ? RETURNING used`),
		name, subject, micros(start)).Scan(&used)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, ErrNotFound
	case err != nil:
		return 0, s.fail("claim tally "+name, err)
	}
	return int(used), nil
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
