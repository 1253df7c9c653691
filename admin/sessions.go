package admin

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// Console session defaults: a token login ends after SessionIdle without a
// request, and SessionLifetime after the login at the latest.
const (
	SessionIdle     = 30 * time.Minute
	SessionLifetime = 12 * time.Hour
)

// sessionKey is what the store keeps of a session cookie: the hex SHA-256 of its
// value, so a copy of the database logs no one in.
func sessionKey(cookie string) string {
	sum := sha256.Sum256([]byte(cookie))
	return hex.EncodeToString(sum[:])
}

// NewSession is a console token login just started.
type NewSession struct {
	// Cookie is the value the browser keeps; the store has only its hash.
	Cookie string
	// Lifetime is how long after the login the session ends at the latest.
	Lifetime time.Duration
}

// StartSession records a console token login of who, who authenticated already,
// and the login in the audit log.
func (s *Service) StartSession(ctx context.Context, who *store.Operator) (*NewSession, error) {
	cookie := base64.RawURLEncoding.EncodeToString(randomBytes(32))
	now := s.now()
	err := s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(who.Name, audit.Login{Credential: "console token login", Role: who.Role})},
			tx.CreateConsoleSession(store.ConsoleSession{IDHash: sessionKey(cookie), Operator: who.Name, Method: "token",
				CreatedAt: now, LastSeen: now, Idle: s.cfg.SessionIdle, ExpiresAt: now.Add(s.cfg.SessionLifetime)})
	})
	if err != nil {
		return nil, s.internal(ctx, "start the console session", err)
	}
	return &NewSession{Cookie: cookie, Lifetime: s.cfg.SessionLifetime}, nil
}

// errNoSession refuses a session cookie that is unknown, ended or of an operator
// no longer there.
var errNoSession = errorf(Unauthenticated, "the console session is unknown or has ended; log in again")

// Session is the operator of a live console session, found by its cookie; the
// request keeps it alive. A session that is not live is an Unauthenticated
// refusal.
func (s *Service) Session(ctx context.Context, cookie string) (*store.Operator, error) {
	sess, err := s.st.TouchConsoleSession(ctx, sessionKey(cookie), s.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, s.internal(ctx, "read the console session", err)
	}
	// Removing or disabling an operator deletes their sessions in the same
	// transaction; a session whose operator is gone or disabled is no session.
	who, err := s.st.GetOperator(ctx, sess.Operator)
	if err == nil && who.DisabledAt.IsZero() {
		return who, nil
	}
	return nil, errNoSession
}

// EndSession logs who out of the console: the session of cookie ends on every
// replica ("" when who has none, e.g. with a client certificate).
func (s *Service) EndSession(ctx context.Context, who *store.Operator, cookie string) error {
	err := s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		records := []audit.Record{audit.Done(who.Name, audit.Logout{Via: "console"})}
		if cookie == "" {
			return records, nil
		}
		return records, tx.DeleteConsoleSession(sessionKey(cookie))
	})
	if err != nil {
		return s.internal(ctx, "end the console session", err)
	}
	return nil
}

// SweepSessions deletes the console sessions no longer live (idle too long or past
// their lifetime); any number of replicas may sweep at once.
// It returns how many it deleted.
func (s *Service) SweepSessions(ctx context.Context) (int, error) {
	n, err := s.st.DeleteExpiredConsoleSessions(ctx, s.now())
	if n > 0 {
		s.log.DebugContext(ctx, "admin: expired console sessions deleted", "count", n)
	}
	return n, err
}

// Refused records in the audit log that a front end refused who's attempt at
// what, for the reason why (a CSRF token, say).
func (s *Service) Refused(ctx context.Context, who *store.Operator, what, why string) {
	s.note(ctx, audit.Refused(who.Name, audit.AccessDenied{What: what, Role: who.Role}, why))
}
