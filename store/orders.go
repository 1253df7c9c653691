package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// CreateOrder inserts the new authorizations authzs (with their challenges), the
// order and its links to o.AuthzIDs in one transaction. o.AuthzIDs may also name
// authorizations that already exist (reuse); an unknown one is ErrNotFound and
// nothing is stored. A challenge's AuthzID is taken from its authorization.
func (s *SQL) CreateOrder(ctx context.Context, o Order, authzs []Authorization) error {
	err := s.inRelaxedTx(ctx, s.d.isolation, func(tx *sql.Tx) error {
		for _, a := range authzs {
			if _, err := s.exec(ctx, tx,
				`INSERT INTO authorizations (id, account_id, name, wildcard, status, expires, created_at)
				 VALUES (?, ?, ?, ?, ?, ?, ?)`,
				a.ID, a.AccountID, a.Name, boolInt(a.Wildcard), a.Status, micros(a.Expires), micros(a.CreatedAt)); err != nil {
				return err
			}
			// The challenges of one authorization in one statement.
			if len(a.Challenges) == 0 {
				continue
			}
			args := make([]any, 0, 8*len(a.Challenges))
			for i, c := range a.Challenges {
				args = append(args, c.ID, a.ID, i, c.Type, c.Token, c.Status, micros(c.Validated), blob(c.Error))
			}
			if _, err := s.exec(ctx, tx,
				`INSERT INTO challenges (id, authz_id, pos, type, token, status, validated, error) VALUES `+
					valueRows(len(a.Challenges), 8), args...); err != nil {
				return err
			}
		}
		if _, err := s.exec(ctx, tx,
			`INSERT INTO orders (id, account_id, org_oid, status, expires, names, profile,
			 not_before, not_after, error, cert_serial, created_at)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			o.ID, o.AccountID, o.OrgOID, o.Status, micros(o.Expires), list(o.Names), o.Profile,
			micros(o.NotBefore), micros(o.NotAfter), blob(o.Error), o.CertSerial, micros(o.CreatedAt)); err != nil {
			return err
		}
		if o.ReplacesSerial != "" {
			if err := s.claimReplacement(ctx, tx, o); err != nil { // renewal.go
				return err
			}
		}
		if len(o.AuthzIDs) == 0 {
			return nil
		}
		args := make([]any, 0, 3*len(o.AuthzIDs))
		for i, id := range o.AuthzIDs {
			args = append(args, o.ID, id, i)
		}
		_, err := s.exec(ctx, tx, `INSERT INTO order_authzs (order_id, authz_id, pos) VALUES `+valueRows(len(o.AuthzIDs), 3), args...)
		return err
	})
	if err != nil {
		return s.fail("create order "+o.ID, err)
	}
	return nil
}

// valueRows is the VALUES list of a multi-row INSERT: rows groups of cols
// placeholders, "(?, ?), (?, ?)".
func valueRows(rows, cols int) string {
	row := "(" + strings.Repeat("?, ", cols-1) + "?)"
	return strings.Repeat(row+", ", rows-1) + row
}

// GetOrder returns the order with that id, its AuthzIDs in position order, or
// ErrNotFound. One statement reads the order with its authorizations and the
// certificate it replaces, so what it returns is one snapshot without a transaction
// around several reads.
func (s *SQL) GetOrder(ctx context.Context, id string) (*Order, error) {
	var o Order
	var names, authzs string
	var expires, notBefore, notAfter, created int64
	err := s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT o.id, o.account_id, o.org_oid, o.status, o.expires, o.names, o.profile, o.not_before, o.not_after,
		 o.error, o.cert_serial, o.created_at,
		 COALESCE((SELECT string_agg(l.authz_id, ' ' ORDER BY l.pos) FROM order_authzs l WHERE l.order_id = o.id), ''),
		 COALESCE(r.cert_id, ''), COALESCE(r.serial, '')
		 FROM orders o LEFT JOIN order_replaces r ON r.order_id = o.id WHERE o.id = ?`), id).
		Scan(&o.ID, &o.AccountID, &o.OrgOID, &o.Status, &expires, &names, &o.Profile, &notBefore, &notAfter,
			&o.Error, &o.CertSerial, &created, &authzs, &o.Replaces, &o.ReplacesSerial)
	if err == nil {
		o.Names, err = fromList(names)
	}
	if err != nil {
		return nil, s.fail("get order "+id, err)
	}
	o.Expires, o.NotBefore, o.NotAfter, o.CreatedAt = fromMicros(expires), fromMicros(notBefore), fromMicros(notAfter), fromMicros(created)
	// Authorization ids are base64url: a space never occurs in one.
	if authzs != "" {
		o.AuthzIDs = strings.Fields(authzs)
	}
	return &o, nil
}

// ListOrderIDs returns the ids of the account's orders in creation order.
func (s *SQL) ListOrderIDs(ctx context.Context, accountID string) ([]string, error) {
	ids, err := s.column(ctx, s.db, `SELECT id FROM orders WHERE account_id = ? ORDER BY seq`, accountID)
	if err != nil {
		return nil, s.fail("list orders of account "+accountID, err)
	}
	return ids, nil
}

// column runs a query returning one text column.
func (s *SQL) column(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := s.on(q).QueryContext(ctx, s.d.rebind(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// GetAuthorization returns the authorization with its challenges in creation order,
// or ErrNotFound. One statement joins them, so what it returns is one snapshot
// without a transaction around several reads.
func (s *SQL) GetAuthorization(ctx context.Context, id string) (*Authorization, error) {
	a, err := s.authorizationWhere(ctx, `a.id = ?`, id)
	if err != nil {
		return nil, s.fail("get authorization "+id, err)
	}
	return a, nil
}

// GetChallengeAuthorization returns the challenge with that id and its
// authorization (with all of its challenges), read in one statement, or
// ErrNotFound.
func (s *SQL) GetChallengeAuthorization(ctx context.Context, challengeID string) (*Challenge, *Authorization, error) {
	a, err := s.authorizationWhere(ctx, `a.id = (SELECT authz_id FROM challenges WHERE id = ?)`, challengeID)
	if err != nil {
		return nil, nil, s.fail("get challenge "+challengeID, err)
	}
	for i := range a.Challenges {
		if a.Challenges[i].ID == challengeID {
			c := a.Challenges[i]
			return &c, a, nil
		}
	}
	return nil, nil, s.fail("get challenge "+challengeID, sql.ErrNoRows)
}

// authorizationWhere reads the authorization that where (on authorizations a)
// selects, joined with its challenges in creation order; sql.ErrNoRows when none.
func (s *SQL) authorizationWhere(ctx context.Context, where string, args ...any) (*Authorization, error) {
	var a Authorization
	rows, err := s.q().QueryContext(ctx, s.d.rebind(
		`SELECT a.id, a.account_id, a.name, a.wildcard, a.status, a.expires, a.created_at,
		 c.id, c.authz_id, c.type, c.token, c.status, c.validated, c.error, c.evidence
		 FROM authorizations a LEFT JOIN challenges c ON c.authz_id = a.id WHERE `+where+` ORDER BY c.pos`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		var wildcard, expires, created int64
		var cid, cauthz, ctype, ctoken, cstatus, cevidence sql.NullString
		var cvalidated sql.NullInt64
		var cerror []byte
		if err := rows.Scan(&a.ID, &a.AccountID, &a.Name, &wildcard, &a.Status, &expires, &created,
			&cid, &cauthz, &ctype, &ctoken, &cstatus, &cvalidated, &cerror, &cevidence); err != nil {
			return nil, err
		}
		found = true
		a.Wildcard, a.Expires, a.CreatedAt = wildcard != 0, fromMicros(expires), fromMicros(created)
		if !cid.Valid { // an authorization without challenges
			continue
		}
		a.Challenges = append(a.Challenges, Challenge{ID: cid.String, AuthzID: cauthz.String, Type: ctype.String,
			Token: ctoken.String, Status: cstatus.String, Validated: fromMicros(cvalidated.Int64), Error: cerror,
			Evidence: cevidence.String})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !found {
		return nil, sql.ErrNoRows
	}
	return &a, nil
}

const challengeColumns = `id, authz_id, type, token, status, validated, error, evidence`

func scanChallenge(row scanner) (*Challenge, error) {
	var c Challenge
	var validated int64
	if err := row.Scan(&c.ID, &c.AuthzID, &c.Type, &c.Token, &c.Status, &validated, &c.Error, &c.Evidence); err != nil {
		return nil, err
	}
	c.Validated = fromMicros(validated)
	return &c, nil
}

// GetChallenge returns the challenge with that id, or ErrNotFound.
func (s *SQL) GetChallenge(ctx context.Context, id string) (*Challenge, error) {
	c, err := scanChallenge(s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT `+challengeColumns+` FROM challenges WHERE id = ?`), id))
	if err != nil {
		return nil, s.fail("get challenge "+id, err)
	}
	return c, nil
}

// StartChallenge moves the challenge from pending to processing, only while its
// authorization is pending and no other challenge of it is processing; otherwise
// ErrConflict and nothing changes.
func (s *SQL) StartChallenge(ctx context.Context, challengeID string) error {
	// No row lock needed: the NOT EXISTS answers the common case, and the partial
	// unique index on processing challenges settles a race the statement cannot see.
	err := s.inRelaxedTx(ctx, s.d.lockingIsolation, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "challenges", "id", challengeID,
			`UPDATE challenges SET status = 'processing', processing_since = ?, processing_by = ?
			 WHERE status = 'pending'
			 AND EXISTS (SELECT 1 FROM authorizations a WHERE a.id = challenges.authz_id AND a.status = 'pending')
			 AND NOT EXISTS (SELECT 1 FROM challenges c WHERE c.authz_id = challenges.authz_id AND c.status = 'processing')
			 AND id = ?`, processingSince(), s.processingBy(), challengeID)
	})
	if err != nil {
		return s.fail("start challenge "+challengeID, err)
	}
	return nil
}

// FinishChallenge records the outcome of a processing challenge (else ErrConflict)
// and carries it up in the same transaction: the pending authorization becomes valid
// or invalid; then each pending order linked to it becomes invalid with it, or ready
// once all of its authorizations are valid. An order's Error stays empty: the client
// reads the problem from the authorization's challenge.
func (s *SQL) FinishChallenge(ctx context.Context, challengeID string, valid bool, validated time.Time, problem []byte) error {
	err := s.inRelaxedTx(ctx, s.d.lockingIsolation, func(tx *sql.Tx) error {
		return s.finishChallenge(ctx, tx, challengeID, valid, validated, problem, time.Time{})
	})
	if err != nil {
		return s.fail("finish challenge "+challengeID, err)
	}
	return nil
}

// FinishChallengeValid is FinishChallenge of a challenge that proved control, whose
// authorization, becoming valid, is given its longer lifetime (expires) in the
// same statement: a valid authorization lives longer than a pending one. Its commit
// does not wait for the disk, as FinishChallenge's: lost in a crash, the challenge
// is still processing and the sweep fails it.
func (s *SQL) FinishChallengeValid(ctx context.Context, challengeID string, validated, expires time.Time) error {
	err := s.inRelaxedTx(ctx, s.d.lockingIsolation, func(tx *sql.Tx) error {
		return s.finishChallengeExpiring(ctx, tx, challengeID, true, validated, nil, time.Time{}, expires)
	})
	if err != nil {
		return s.fail("finish challenge "+challengeID, err)
	}
	return nil
}

// finishChallenge is FinishChallenge in tx. A nonzero startedBefore finishes the
// challenge only if it has been processing since before then (else ErrConflict).
func (s *SQL) finishChallenge(ctx context.Context, tx *sql.Tx, challengeID string, valid bool, validated time.Time, problem []byte, startedBefore time.Time) error {
	return s.finishChallengeExpiring(ctx, tx, challengeID, valid, validated, problem, startedBefore, time.Time{})
}

// finishChallengeExpiring is finishChallenge that, with a nonzero validExpires,
// sets the expiry of the authorization it makes valid.
func (s *SQL) finishChallengeExpiring(ctx context.Context, tx *sql.Tx, challengeID string, valid bool, validated time.Time, problem []byte, startedBefore, validExpires time.Time) error {
	status := "invalid"
	if valid {
		status = "valid"
	}
	query := `UPDATE challenges SET status = ?, validated = ?, error = ? WHERE status = 'processing' AND id = ?`
	args := []any{status, micros(validated), blob(problem), challengeID}
	if !startedBefore.IsZero() {
		query += ` AND processing_since < ?`
		args = append(args, micros(startedBefore))
	}
	if err := s.transition(ctx, tx, "challenges", "id", challengeID, query, args...); err != nil {
		return err
	}
	var authzID string
	if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT authz_id FROM challenges WHERE id = ?`), challengeID).Scan(&authzID); err != nil {
		return err
	}
	// An authorization that left pending meanwhile (deactivated) keeps its state,
	// and so do its orders.
	var n int64
	var err error
	if valid && !validExpires.IsZero() {
		n, err = s.exec(ctx, tx, `UPDATE authorizations SET status = ?, expires = ? WHERE status = 'pending' AND id = ?`,
			status, micros(validExpires), authzID)
	} else {
		n, err = s.exec(ctx, tx, `UPDATE authorizations SET status = ? WHERE status = 'pending' AND id = ?`, status, authzID)
	}
	if err != nil || n == 0 {
		return err
	}
	if !valid {
		_, err = s.exec(ctx, tx,
			`UPDATE orders SET status = 'invalid'
			 WHERE status = 'pending'
			 AND id IN (SELECT order_id FROM order_authzs WHERE authz_id = ?)`, authzID)
		return err
	}
	// Two last authorizations of an order finishing at once: each locks the
	// order before looking at its other authorizations, so the second looks
	// after the first committed and sees both valid.
	rows, err := tx.QueryContext(ctx, s.d.rebind(
		`SELECT id FROM orders WHERE id IN (SELECT order_id FROM order_authzs WHERE authz_id = ?) ORDER BY id`+s.d.forUpdate), authzID)
	if err != nil {
		return err
	}
	if err := rows.Close(); err != nil {
		return err
	}
	_, err = s.exec(ctx, tx,
		`UPDATE orders SET status = 'ready'
		 WHERE status = 'pending'
		 AND id IN (SELECT order_id FROM order_authzs WHERE authz_id = ?)
		 AND NOT EXISTS (
			SELECT 1 FROM order_authzs l JOIN authorizations a ON a.id = l.authz_id
			WHERE l.order_id = orders.id AND a.status <> 'valid')`, authzID)
	return err
}

// processingSince is when a challenge or an order becomes processing: this
// process's clock, which the sweeper's ages are measured against. Beside it the
// row records processingBy, this process's instance (liveness.go), so that the
// sweeper fails it as soon as the process is gone.
func processingSince() int64 { return time.Now().UnixMicro() }

// BeginFinalize moves the order from ready to processing; ErrConflict if it is not
// ready, so of concurrent finalize requests exactly one proceeds.
func (s *SQL) BeginFinalize(ctx context.Context, orderID string) error {
	err := s.inRelaxedTx(ctx, s.d.isolation, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "orders", "id", orderID,
			`UPDATE orders SET status = 'processing', processing_since = ?, processing_by = ? WHERE status = 'ready' AND id = ?`,
			processingSince(), s.processingBy(), orderID)
	})
	if err != nil {
		return s.fail("begin finalize of order "+orderID, err)
	}
	return nil
}

// FailOrder moves the order from processing to invalid with the problem document;
// ErrConflict if it is not processing.
func (s *SQL) FailOrder(ctx context.Context, orderID string, problem []byte) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "orders", "id", orderID,
			`UPDATE orders SET status = 'invalid', error = ? WHERE status = 'processing' AND id = ?`,
			blob(problem), orderID)
	})
	if err != nil {
		return s.fail("fail order "+orderID, err)
	}
	return nil
}
