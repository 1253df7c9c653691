package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"time"
)

// serialAndKeyHash normalises an issuance's serial and key hash (hex), or says which is not hex.
func serialAndKeyHash(serial, keyHash string) (string, string, error) {
	s, err := hexKey("serial", serial)
	if err != nil {
		return "", "", err
	}
	k, err := hexKey("key hash", keyHash)
	return s, k, err
}

// RecordIntent records, with status pending and its key not asked (KeyNotAsked), that the issuer is about to sign
// serial for the intent's key. ErrDuplicate if the serial was ever used;
// ErrKeyInUse if the key is certified or held by another pending or issued intent.
func (s *SQL) RecordIntent(ctx context.Context, in IssuanceIntent) error {
	serial, keyHash, err := serialAndKeyHash(in.Serial, in.KeyHash)
	if err != nil {
		return err
	}
	// One statement: the certificates check and the insert cannot be split by
	// another writer, and the partial unique index covers concurrent intents.
	n, err := s.exec(ctx, s.db,
		`INSERT INTO issuance_intents (serial, order_id, issuer, names, key_hash, lint_tbs, status, key_use, created_at)
		 SELECT ?, ?, ?, ?, ?, ?, 'pending', 'none', ?
		 WHERE NOT EXISTS (SELECT 1 FROM certificates WHERE key_hash = ?)`,
		serial, in.OrderID, in.Issuer, list(in.Names), keyHash, blob(in.LintTBS), micros(in.CreatedAt), keyHash)
	if err == nil && n == 0 {
		err = ErrKeyInUse
	}
	if err != nil {
		return s.fail("record issuance intent "+serial, err)
	}
	return nil
}

// FinishIssuance stores the signed certificate, marks its pending intent (same
// serial) issued and moves its order from processing to valid, in one transaction.
// ErrDuplicate if the serial is taken, ErrKeyInUse if the key is certified,
// ErrConflict if the intent is not pending or the order not processing.
func (s *SQL) FinishIssuance(ctx context.Context, c Certificate) error {
	serial, keyHash, err := serialAndKeyHash(c.Serial, c.KeyHash)
	if err != nil {
		return err
	}
	// The certificate is signed: storing it must not fail on contention. Its
	// statements are an insert held by unique constraints and two conditional
	// updates that lock their rows, correct at READ COMMITTED, so concurrent
	// finalizes do not abort each other as SERIALIZABLE would; and a database
	// that is unreachable for a moment is tried again (RetrySigned).
	store := func(ctx context.Context) error {
		err := s.inLockingTx(ctx, func(tx *sql.Tx) error { return s.finishIssuance(ctx, tx, c, serial, keyHash) })
		if err != nil {
			return s.fail("finish issuance of "+serial, err)
		}
		return nil
	}
	return RetrySigned(ctx, store, func(ctx context.Context) bool { return s.finished(ctx, c, serial) })
}

// finishIssuance is FinishIssuance's statements in tx.
func (s *SQL) finishIssuance(ctx context.Context, tx *sql.Tx, c Certificate, serial, keyHash string) error {
	if _, err := s.exec(ctx, tx,
		`INSERT INTO certificates (serial, issuer, der, names, key_hash, not_before, not_after,
		 org_oid, account_id, order_id, profile, created_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		serial, c.Issuer, c.DER, list(c.Names), keyHash, micros(c.NotBefore), micros(c.NotAfter),
		c.OrgOID, c.AccountID, c.OrderID, c.Profile, micros(c.CreatedAt)); err != nil {
		return err
	}
	// A certificate is stored only for a serial that was recorded before
	// signing; the intent's copy of a signed certificate is no longer needed.
	if err := s.transition(ctx, tx, "issuance_intents", "serial", serial,
		`UPDATE issuance_intents SET status = 'issued', der = NULL WHERE status = 'pending' AND serial = ?`, serial); err != nil {
		return err
	}
	return s.transition(ctx, tx, "orders", "id", c.OrderID,
		`UPDATE orders SET status = 'valid', cert_serial = ? WHERE status = 'processing' AND id = ?`,
		serial, c.OrderID)
}

// finishRetry bounds how long a write about a signed certificate is tried again.
const finishRetry = 15 * time.Second

// RetrySigned runs write, a write about a certificate the issuer key has signed
// (marking its intent signed, storing it), until it succeeds, the database gives a
// verdict (a constraint or a state, see finalError), or ctx ends or finishRetry
// passes: the certificate exists, so a database that is back within seconds must
// not lose its record. write gets the context bounded by finishRetry and must
// return the store's errors (SQL.fail). A database down for longer fails the write;
// the intent stays, and its serial is revocable. committed, when not nil, says
// whether what write writes is in the database: a try whose answer was lost may
// have committed, and the verdict of the next (a duplicate) then means success.
func RetrySigned(ctx context.Context, write func(ctx context.Context) error, committed func(ctx context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, finishRetry)
	defer cancel()
	backoff := firstTxBackoff
	for tried := false; ; tried = true {
		err := write(ctx)
		if err == nil {
			return nil
		}
		// A try that failed without a verdict may have committed all the same: the
		// connection broke after the database took the commit and before its answer
		// came. The next try then meets its own rows; finding them is success.
		if finalError(err) && tried && committed != nil && committed(ctx) {
			return nil
		}
		if finalError(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return err
		}
		backoff = min(2*backoff, maxTxBackoff)
	}
}

// finished reports whether c is stored, byte for byte, with its order valid and
// naming it: what FinishIssuance commits.
func (s *SQL) finished(ctx context.Context, c Certificate, serial string) bool {
	var der []byte
	var status, certSerial string
	err := s.db.QueryRowContext(ctx, s.d.rebind(
		`SELECT c.der, o.status, o.cert_serial FROM certificates c JOIN orders o ON o.id = c.order_id
		 WHERE c.serial = ? AND c.order_id = ?`), serial, c.OrderID).Scan(&der, &status, &certSerial)
	return err == nil && bytes.Equal(der, c.DER) && status == "valid" && certSerial == serial
}

// finalError reports whether err is a verdict of the database (a constraint or a
// state) rather than a failure to reach it, which trying again cannot change.
func finalError(err error) bool {
	return errors.Is(err, ErrDuplicate) || errors.Is(err, ErrConflict) || errors.Is(err, ErrKeyInUse) ||
		errors.Is(err, ErrNotFound) || errors.Is(err, ErrAlreadyReplaced)
}

// GetCertificate returns the certificate with that serial, or ErrNotFound.
func (s *SQL) GetCertificate(ctx context.Context, serial string) (*Certificate, error) {
	var c Certificate
	var names string
	var notBefore, notAfter, created int64
	err := s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT serial, issuer, der, names, key_hash, not_before, not_after, org_oid, account_id,
		 order_id, profile, created_at FROM certificates WHERE serial = ?`), normalHex(serial)).
		Scan(&c.Serial, &c.Issuer, &c.DER, &names, &c.KeyHash, &notBefore, &notAfter, &c.OrgOID, &c.AccountID,
			&c.OrderID, &c.Profile, &created)
	if err != nil {
		return nil, s.fail("get certificate "+serial, err)
	}
	if c.Names, err = fromList(names); err != nil {
		return nil, err
	}
	c.NotBefore, c.NotAfter, c.CreatedAt = fromMicros(notBefore), fromMicros(notAfter), fromMicros(created)
	return &c, nil
}

// KeyCertified reports whether a certificate for the key with that hash exists.
func (s *SQL) KeyCertified(ctx context.Context, keyHash string) (bool, error) {
	return s.exists(ctx, "key certified", `SELECT COUNT(*) FROM certificates WHERE key_hash = ?`, normalHex(keyHash))
}

// BlockKey records a blocked key; blocking a key again changes nothing.
func (s *SQL) BlockKey(ctx context.Context, b BlockedKey) error {
	if err := s.blockKey(ctx, s.db, b); err != nil {
		return s.fail("block key "+b.KeyHash, err)
	}
	return nil
}

func (s *SQL) blockKey(ctx context.Context, q querier, b BlockedKey) error {
	keyHash, err := hexKey("key hash", b.KeyHash)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, q,
		`INSERT INTO blocked_keys (key_hash, reason, source, created_at) VALUES (?, ?, ?, ?)
		 ON CONFLICT (key_hash) DO NOTHING`,
		keyHash, b.Reason, b.Source, micros(b.CreatedAt))
	return err
}

// KeyBlocked reports whether the key with that hash is blocked.
func (s *SQL) KeyBlocked(ctx context.Context, keyHash string) (bool, error) {
	return s.exists(ctx, "key blocked", `SELECT COUNT(*) FROM blocked_keys WHERE key_hash = ?`, normalHex(keyHash))
}

// Revoke records the revocation of serial and, when block is not nil, blocks its key,
// in one transaction. The serial is a stored certificate's or, when the certificate
// was never stored, that of an issuance intent that may have reached the issuer key
// (not failed): such a certificate may exist, so it must be revocable and listed.
// ErrNotFound if neither exists, ErrDuplicate if it is already revoked.
func (s *SQL) Revoke(ctx context.Context, r Revocation, block *BlockedKey) error {
	serial := normalHex(r.Serial)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.revoke(ctx, tx, serial, r); err != nil {
			return err
		}
		if block == nil {
			return nil
		}
		return s.blockKey(ctx, tx, *block)
	})
	if err != nil {
		return s.fail("revoke "+serial, err)
	}
	return nil
}

// revoke inserts the revocation row of serial, copying from the certificate (or
// the intent) what CRLs need: issuer, organisation and notAfter; and queues the
// notice to the holder (notices.go).
func (s *SQL) revoke(ctx context.Context, tx *sql.Tx, serial string, r Revocation) error {
	t, err := s.revocationTarget(ctx, tx, serial)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, tx,
		`INSERT INTO revocations (serial, issuer, org_oid, not_after, revoked_at, requested_at, reason,
		 invalidity_date, requested_by, identified_by, performed_by, note, received_by)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		serial, t.issuer, t.orgOID, micros(t.notAfter), micros(r.RevokedAt), micros(r.RequestedAt), r.Reason,
		micros(r.InvalidityDate), r.RequestedBy, r.IdentifiedBy, r.PerformedBy, r.Note, r.ReceivedBy)
	if err != nil {
		return err
	}
	return s.queueNotice(ctx, tx, serial, r.RevokedAt)
}

// GetRevocation returns the revocation of serial, or ErrNotFound if it is not revoked.
func (s *SQL) GetRevocation(ctx context.Context, serial string) (*Revocation, error) {
	r, err := scanRevocation(s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT `+revocationColumns+` FROM revocations WHERE serial = ?`), normalHex(serial)))
	if err != nil {
		return nil, s.fail("get revocation of "+serial, err)
	}
	return r, nil
}

const revocationColumns = `serial, revoked_at, reason, requested_by, identified_by, performed_by, note,
	requested_at, invalidity_date, received_by`

func scanRevocation(row interface{ Scan(...any) error }) (*Revocation, error) {
	var r Revocation
	var revoked, requested, invalidity int64
	if err := row.Scan(&r.Serial, &revoked, &r.Reason, &r.RequestedBy, &r.IdentifiedBy, &r.PerformedBy, &r.Note,
		&requested, &invalidity, &r.ReceivedBy); err != nil {
		return nil, err
	}
	r.RevokedAt, r.RequestedAt, r.InvalidityDate = fromMicros(revoked), fromMicros(requested), fromMicros(invalidity)
	return &r, nil
}

func (s *SQL) exists(ctx context.Context, op, query string, args ...any) (bool, error) {
	var n int
	if err := s.q().QueryRowContext(ctx, s.d.rebind(query), args...).Scan(&n); err != nil {
		return false, s.fail(op, err)
	}
	return n > 0, nil
}
