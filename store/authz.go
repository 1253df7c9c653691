package store

import (
	"context"
	"database/sql"
	"time"
)

// FindReusableAuthorization returns the account's valid authorization for name (a
// wildcard's base name when wildcard) whose validation happened at or after
// validatedSince and which expires after expiresAfter, with its challenges; of
// several, the one that lives longest. ErrNotFound when there is none. Another
// account's authorization is never returned.
func (s *SQL) FindReusableAuthorization(ctx context.Context, accountID, name string, wildcard bool, validatedSince, expiresAfter time.Time) (*Authorization, error) {
	var id string
	err := s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT a.id FROM authorizations a
		 WHERE a.account_id = ? AND a.name = ? AND a.wildcard = ? AND a.status = 'valid' AND a.expires > ?
		 AND EXISTS (SELECT 1 FROM challenges c WHERE c.authz_id = a.id AND c.status = 'valid' AND c.validated >= ?)
		 ORDER BY a.expires DESC, a.id LIMIT 1`),
		accountID, name, boolInt(wildcard), micros(expiresAfter), micros(validatedSince)).Scan(&id)
	if err != nil {
		if err == sql.ErrNoRows {
			return nil, s.fail("find reusable authorization for "+name, ErrNotFound)
		}
		return nil, s.fail("find reusable authorization for "+name, err)
	}
	return s.GetAuthorization(ctx, id)
}

// SetValidAuthorizationExpiry sets when a valid authorization expires: a valid one
// lives longer than a pending one. ErrConflict when it is not valid, ErrNotFound
// when it does not exist. Its commit does not wait for the disk (inRelaxedTx), as
// the challenge's outcome before it: lost in a crash, the authorization keeps its
// shorter, pending expiry, which only makes it reused for less long.
func (s *SQL) SetValidAuthorizationExpiry(ctx context.Context, authzID string, expires time.Time) error {
	err := s.inRelaxedTx(ctx, s.d.isolation, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "authorizations", "id", authzID,
			`UPDATE authorizations SET expires = ? WHERE status = 'valid' AND id = ?`, micros(expires), authzID)
	})
	if err != nil {
		return s.fail("set expiry of authorization "+authzID, err)
	}
	return nil
}
