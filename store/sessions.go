package store

import (
	"context"
	"time"
)

// ConsoleSession is an operator's web console login (migration 0014).
type ConsoleSession struct {
	IDHash    string // lower-case hex SHA-256 of the cookie value; never the value
	Operator  string
	Method    string // "token", or "cert:" and the client certificate's fingerprint
	CreatedAt time.Time
	LastSeen  time.Time
	Idle      time.Duration // the session ends this long after LastSeen
	ExpiresAt time.Time     // and at the latest then
}

const consoleSessionColumns = `id_hash, operator, method, created_at, last_seen, idle_micros, expires_at`

// CreateConsoleSession records a new session; ErrDuplicate if its IDHash is taken.
func (s *SQL) CreateConsoleSession(ctx context.Context, c ConsoleSession) error {
	_, err := s.exec(ctx, s.db, `INSERT INTO console_sessions (`+consoleSessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		normalHex(c.IDHash), c.Operator, c.Method, micros(c.CreatedAt), micros(c.LastSeen), c.Idle.Microseconds(), micros(c.ExpiresAt))
	if err != nil {
		return s.fail("create console session", err)
	}
	return nil
}

// TouchConsoleSession returns the session with that IDHash and moves its LastSeen
// to now, if it is still live at now: before its ExpiresAt and less than its Idle
// after its LastSeen. Else ErrNotFound and nothing changes. The session is read
// first, without taking the write lock, so an unknown, ended or made-up cookie
// costs a read, never a write; a live session is written at most once every
// touchGranularity, which is all an idle limit of minutes needs.
func (s *SQL) TouchConsoleSession(ctx context.Context, idHash string, now time.Time) (*ConsoleSession, error) {
	at := micros(now)
	var c ConsoleSession
	var created, seen, idle, expires int64
	err := s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT `+consoleSessionColumns+` FROM console_sessions WHERE id_hash = ? AND expires_at > ? AND last_seen + idle_micros > ?`),
		normalHex(idHash), at, at).
		Scan(&c.IDHash, &c.Operator, &c.Method, &created, &seen, &idle, &expires)
	if err != nil {
		return nil, s.fail("touch console session", err)
	}
	if at-seen >= touchGranularity.Microseconds() {
		// The condition is checked again by the write: a session that ended
		// meanwhile (logout, sweep) is not brought back.
		n, err := s.exec(ctx, s.db, `UPDATE console_sessions SET last_seen = ? WHERE id_hash = ? AND expires_at > ? AND last_seen + idle_micros > ?`,
			at, c.IDHash, at, at)
		if err != nil {
			return nil, s.fail("touch console session", err)
		}
		if n == 0 {
			return nil, s.fail("touch console session", ErrNotFound)
		}
		seen = at
	}
	c.CreatedAt, c.LastSeen, c.ExpiresAt = fromMicros(created), fromMicros(seen), fromMicros(expires)
	c.Idle = time.Duration(idle) * time.Microsecond
	return &c, nil
}

// touchGranularity is how stale a session's LastSeen may be before a request
// writes it again.
const touchGranularity = 30 * time.Second

// DeleteConsoleSession ends the session with that IDHash; ending one that does not
// exist (ended already, on this or another replica) is no error.
func (s *SQL) DeleteConsoleSession(ctx context.Context, idHash string) error {
	if _, err := s.exec(ctx, s.db, `DELETE FROM console_sessions WHERE id_hash = ?`, normalHex(idHash)); err != nil {
		return s.fail("delete console session", err)
	}
	return nil
}

// DeleteExpiredConsoleSessions deletes every session no longer live at now (past
// its ExpiresAt or idle too long) and returns how many.
func (s *SQL) DeleteExpiredConsoleSessions(ctx context.Context, now time.Time) (int, error) {
	at := micros(now)
	n, err := s.exec(ctx, s.db, `DELETE FROM console_sessions WHERE expires_at <= ? OR last_seen + idle_micros <= ?`, at, at)
	if err != nil {
		return 0, s.fail("delete expired console sessions", err)
	}
	return int(n), nil
}
