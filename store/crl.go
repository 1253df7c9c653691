package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// CRLEntry is one revoked serial as a CRL of its issuer lists it.
type CRLEntry struct {
	Serial         string // lower-case hex, as stored
	RevokedAt      time.Time
	Reason         int
	InvalidityDate time.Time // zero: not given
	NotAfter       time.Time // the certificate's; zero: unknown (listed for ever)
}

// CRLState is the last CRL published for an issuer. Who may publish the next one
// is a lock (CRLPublisher, liveness.go).
type CRLState struct {
	Issuer      string
	Number      int64 // CRLNumber; strictly increases
	ThisUpdate  time.Time
	NextUpdate  time.Time
	DER         []byte // nil when read by GetCRLState
	Entries     int64
	Revocations int64 // the issuer's revocation count this CRL covers
	PublishedBy string
	// FinalUntil is set when the issuer was retired (RetireGeneration): its next
	// CRL is its final one, valid until then; zero otherwise.
	FinalUntil time.Time
	// Final marks, in PublishCRL, the retired issuer's final CRL: its NextUpdate
	// must be FinalUntil, and after it nothing is published.
	Final bool
}

// SerialStatus is what the store knows of a serial this CA signed or may have
// signed: the certificate (or, when none was stored, its issuance intent) and its
// revocation.
type SerialStatus struct {
	Serial     string
	Issuer     string
	OrgOID     string
	KeyHash    string
	NotAfter   time.Time   // zero: unknown
	Certified  bool        // a certificate is stored; false: only a pending intent, possibly signed
	Revocation *Revocation // nil: not revoked
}

// revocationTarget is what a revocation copies from the certificate or intent.
type revocationTarget struct {
	serial, issuer, orgOID, keyHash string
	notAfter                        time.Time
	certified                       bool
}

// revocationTarget finds the stored certificate with serial or, failing that, the
// issuance intent that may have reached the issuer key. ErrNotFound if neither.
func (s *SQL) revocationTarget(ctx context.Context, q querier, serial string) (*revocationTarget, error) {
	t := revocationTarget{serial: serial, certified: true}
	var notAfter int64
	err := q.QueryRowContext(ctx, s.d.rebind(
		`SELECT issuer, org_oid, not_after, key_hash FROM certificates WHERE serial = ?`), serial).
		Scan(&t.issuer, &t.orgOID, &notAfter, &t.keyHash)
	if err == nil {
		t.notAfter = fromMicros(notAfter)
		return &t, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	var tbs []byte
	err = q.QueryRowContext(ctx, s.d.rebind(
		`SELECT i.issuer, o.org_oid, i.key_hash, i.lint_tbs FROM issuance_intents i JOIN orders o ON o.id = i.order_id
		 WHERE i.serial = ? AND i.status <> 'failed'`), serial).
		Scan(&t.issuer, &t.orgOID, &t.keyHash, &tbs)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("no certificate or issuance with serial %s: %w", serial, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	t.certified = false
	t.notAfter, _ = tbsNotAfter(tbs)
	return &t, nil
}

// tbsNotAfter reads notAfter from a TBSCertificate (RFC 5280 4.1), the intent's
// record of what the issuer was asked to sign. ok is false when tbs is empty or
// unreadable; the revocation then lists the serial for ever.
func tbsNotAfter(tbs []byte) (notAfter time.Time, ok bool) {
	in := cryptobyte.String(tbs)
	var t, validity cryptobyte.String
	if !in.ReadASN1(&t, cbasn1.SEQUENCE) ||
		!t.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) || // version
		!t.SkipASN1(cbasn1.INTEGER) || // serialNumber
		!t.SkipASN1(cbasn1.SEQUENCE) || // signature
		!t.SkipASN1(cbasn1.SEQUENCE) || // issuer
		!t.ReadASN1(&validity, cbasn1.SEQUENCE) {
		return time.Time{}, false
	}
	for range 2 { // notBefore, then notAfter
		var err bool
		switch {
		case validity.PeekASN1Tag(cbasn1.UTCTime):
			err = !validity.ReadASN1UTCTime(&notAfter)
		case validity.PeekASN1Tag(cbasn1.GeneralizedTime):
			err = !validity.ReadASN1GeneralizedTime(&notAfter)
		default:
			err = true
		}
		if err {
			return time.Time{}, false
		}
	}
	return notAfter.UTC(), true
}

// SerialStatus returns what is known of serial (OCSP, the operator CLI), or
// ErrNotFound when no certificate or possibly signed intent has it.
func (s *SQL) SerialStatus(ctx context.Context, serial string) (*SerialStatus, error) {
	serial = normalHex(serial)
	var st *SerialStatus
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		t, err := s.revocationTarget(ctx, tx, serial)
		if err != nil {
			return err
		}
		st = &SerialStatus{Serial: serial, Issuer: t.issuer, OrgOID: t.orgOID, KeyHash: t.keyHash,
			NotAfter: t.notAfter, Certified: t.certified}
		r, err := scanRevocation(tx.QueryRowContext(ctx, s.d.rebind(
			`SELECT `+revocationColumns+` FROM revocations WHERE serial = ?`), serial))
		switch {
		case err == nil:
			st.Revocation = r
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		return nil
	})
	if err != nil {
		return nil, s.fail("status of serial "+serial, err)
	}
	return st, nil
}

// RevokeOrganisation revokes, in one transaction, every certificate of the
// organisation that is unexpired at now and not yet revoked, and every pending
// issuance intent of its orders (possibly signed), each with r's reason, people and
// times. blockKeys also blocks each of their keys (keyCompromise). It returns the
// serials it revoked, sorted; ErrNotFound if the organisation does not exist.
func (s *SQL) RevokeOrganisation(ctx context.Context, orgOID string, now time.Time, r Revocation, blockKeys bool) ([]string, error) {
	var revoked []string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		revoked = nil
		var n int
		if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM organisations WHERE oid = ?`), orgOID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("organisation %s: %w", orgOID, ErrNotFound)
		}
		targets, err := s.organisationTargets(ctx, tx, orgOID, now)
		if err != nil {
			return err
		}
		progress := progressOf(ctx)
		progress.Begin(len(targets))
		for _, t := range targets {
			if err := s.revoke(ctx, tx, t.serial, r); err != nil {
				return err
			}
			if blockKeys {
				b := BlockedKey{KeyHash: t.keyHash, Reason: "keyCompromise", Source: "revocation of " + t.serial, CreatedAt: r.RevokedAt}
				if err := s.blockKey(ctx, tx, b); err != nil {
					return err
				}
			}
			revoked = append(revoked, t.serial)
			progress.Add(1)
		}
		return nil
	})
	if err != nil {
		return nil, s.fail("revoke the certificates of organisation "+orgOID, err)
	}
	sort.Strings(revoked)
	return revoked, nil
}

// organisationTargets lists what RevokeOrganisation revokes. The rows are read in
// full before any insert: a connection cannot write while a result set is open.
func (s *SQL) organisationTargets(ctx context.Context, tx *sql.Tx, orgOID string, now time.Time) ([]revocationTarget, error) {
	var out []revocationTarget
	rows, err := tx.QueryContext(ctx, s.d.rebind(
		`SELECT c.serial, c.issuer, c.not_after, c.key_hash FROM certificates c
		 WHERE c.org_oid = ? AND c.not_after > ?
		 AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial)`), orgOID, micros(now))
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		t := revocationTarget{orgOID: orgOID, certified: true}
		var notAfter int64
		if err := rows.Scan(&t.serial, &t.issuer, &notAfter, &t.keyHash); err != nil {
			rows.Close()
			return nil, err
		}
		t.notAfter = fromMicros(notAfter)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()

	rows, err = tx.QueryContext(ctx, s.d.rebind(
		`SELECT i.serial, i.issuer, i.key_hash, i.lint_tbs FROM issuance_intents i JOIN orders o ON o.id = i.order_id
		 WHERE o.org_oid = ? AND i.status = 'pending'
		 AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = i.serial)
		 AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = i.serial)`), orgOID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		t := revocationTarget{orgOID: orgOID}
		var tbs []byte
		if err := rows.Scan(&t.serial, &t.issuer, &t.keyHash, &tbs); err != nil {
			return nil, err
		}
		if na, ok := tbsNotAfter(tbs); ok {
			if !na.After(now) {
				continue
			}
			t.notAfter = na
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevocationCount is the number of revocations of the issuer's certificates ever
// recorded. Revocations are never deleted, so the count grows with each one: a
// publisher compares it with the count its CRL covers.
func (s *SQL) RevocationCount(ctx context.Context, issuer string) (int64, error) {
	var n int64
	if err := s.q().QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM revocations WHERE issuer = ?`), issuer).Scan(&n); err != nil {
		return 0, s.fail("count revocations of issuer "+issuer, err)
	}
	return n, nil
}

// CRLEntries returns, sorted by serial, the revocations a CRL of the issuer must
// list: those of certificates whose notAfter is at or after listedAfter (the
// caller's now less its lookback margin) or unknown. count is the issuer's
// RevocationCount read in the same snapshot.
func (s *SQL) CRLEntries(ctx context.Context, issuer string, listedAfter time.Time) (entries []CRLEntry, count int64, err error) {
	err = s.readTx(ctx, func(tx *sql.Tx) error {
		entries = nil
		if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM revocations WHERE issuer = ?`), issuer).Scan(&count); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, s.d.rebind(
			`SELECT serial, revoked_at, reason, invalidity_date, not_after FROM revocations
			 WHERE issuer = ? AND (not_after = 0 OR not_after >= ?) ORDER BY serial`), issuer, micros(listedAfter))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var e CRLEntry
			var revoked, invalidity, notAfter int64
			if err := rows.Scan(&e.Serial, &revoked, &e.Reason, &invalidity, &notAfter); err != nil {
				return err
			}
			e.RevokedAt, e.InvalidityDate, e.NotAfter = fromMicros(revoked), fromMicros(invalidity), fromMicros(notAfter)
			entries = append(entries, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, 0, s.fail("read the revocations of issuer "+issuer, err)
	}
	return entries, count, nil
}

// ensureCRLState makes the issuer's crl_state row (number 0: nothing published).
// lease_holder and lease_until are unused since migration 0025.
func (s *SQL) ensureCRLState(ctx context.Context, tx *sql.Tx, issuer string) error {
	_, err := s.exec(ctx, tx,
		`INSERT INTO crl_state (issuer, number, this_update, next_update, der, entries, revocations, published_by,
		 lease_holder, lease_until) VALUES (?, 0, 0, 0, NULL, 0, 0, '', '', 0) ON CONFLICT (issuer) DO NOTHING`, issuer)
	return err
}

// PublishCRL records st as the issuer's published CRL. The database enforces the
// order: the update happens only if st.Number is above the last published number
// and st.ThisUpdate is not before the last thisUpdate; otherwise ErrConflict, and
// the caller must not publish.
func (s *SQL) PublishCRL(ctx context.Context, st CRLState) error {
	switch {
	case st.Issuer == "":
		return errors.New("store: publish CRL: no issuer")
	case st.Number <= 0:
		return fmt.Errorf("store: publish CRL of %s: number %d is not positive", st.Issuer, st.Number)
	case len(st.DER) == 0:
		return fmt.Errorf("store: publish CRL of %s: no DER", st.Issuer)
	case !st.NextUpdate.After(st.ThisUpdate):
		return fmt.Errorf("store: publish CRL of %s: nextUpdate %s is not after thisUpdate %s", st.Issuer, st.NextUpdate, st.ThisUpdate)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.ensureCRLState(ctx, tx, st.Issuer); err != nil {
			return err
		}
		// A retired issuer (final_until set) publishes one CRL more, its final one,
		// valid until final_until; a CRL of any other kind is refused.
		final := `final_until = 0`
		if st.Final {
			final = `final_until > 0 AND final_until = ? AND next_update < final_until`
		}
		args := []any{st.Number, micros(st.ThisUpdate), micros(st.NextUpdate), st.DER, st.Entries, st.Revocations,
			st.PublishedBy, st.Issuer, st.Number, micros(st.ThisUpdate)}
		if st.Final {
			args = append(args, micros(st.NextUpdate))
		}
		n, err := s.exec(ctx, tx,
			`UPDATE crl_state SET number = ?, this_update = ?, next_update = ?, der = ?, entries = ?, revocations = ?,
			 published_by = ? WHERE issuer = ? AND number < ? AND this_update <= ? AND `+final, args...)
		if err != nil || n > 0 {
			return err
		}
		var last, lastThis, finalUntil, lastNext int64
		if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT number, this_update, final_until, next_update FROM crl_state WHERE issuer = ?`), st.Issuer).
			Scan(&last, &lastThis, &finalUntil, &lastNext); err != nil {
			return err
		}
		switch {
		case finalUntil != 0 && lastNext >= finalUntil:
			return fmt.Errorf("issuer %s is retired and its final CRL %d is published: %w", st.Issuer, last, ErrConflict)
		case finalUntil != 0 && !st.Final:
			return fmt.Errorf("issuer %s is retired: its next CRL is its final one, valid until %s: %w",
				st.Issuer, fromMicros(finalUntil).Format(time.RFC3339), ErrConflict)
		case finalUntil == 0 && st.Final:
			return fmt.Errorf("issuer %s is not retired: a CRL valid until %s is not its to publish: %w",
				st.Issuer, st.NextUpdate.UTC().Format(time.RFC3339), ErrConflict)
		case st.Final && micros(st.NextUpdate) != finalUntil:
			return fmt.Errorf("the final CRL of issuer %s must be valid until %s: %w", st.Issuer, fromMicros(finalUntil).Format(time.RFC3339), ErrConflict)
		}
		if st.Number <= last {
			return fmt.Errorf("CRL number %d is not above the last published %d: %w", st.Number, last, ErrConflict)
		}
		return fmt.Errorf("thisUpdate %s is before the last published %s: %w",
			st.ThisUpdate.UTC().Format(time.RFC3339), fromMicros(lastThis).Format(time.RFC3339), ErrConflict)
	})
	if err != nil {
		return s.fail("publish CRL of issuer "+st.Issuer, err)
	}
	return nil
}

const crlStateColumns = `issuer, number, this_update, next_update, entries, revocations, published_by, final_until`

func scanCRLState(row interface{ Scan(...any) error }, der *[]byte) (*CRLState, error) {
	var st CRLState
	var this, next, final int64
	dest := []any{&st.Issuer, &st.Number, &this, &next, &st.Entries, &st.Revocations, &st.PublishedBy, &final}
	if der != nil {
		dest = append(dest, der)
	}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	st.ThisUpdate, st.NextUpdate, st.FinalUntil = fromMicros(this), fromMicros(next), fromMicros(final)
	return &st, nil
}

// GetCRLState returns the issuer's last published CRL without its DER (cheap
// enough to poll), or ErrNotFound if none was published and the issuer is not
// retired (a retired issuer that never published has Number 0 and FinalUntil).
func (s *SQL) GetCRLState(ctx context.Context, issuer string) (*CRLState, error) {
	st, err := scanCRLState(s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT `+crlStateColumns+` FROM crl_state WHERE issuer = ? AND (number > 0 OR final_until > 0)`), issuer), nil)
	if err != nil {
		return nil, s.fail("CRL state of issuer "+issuer, err)
	}
	return st, nil
}

// GetPublishedCRL is GetCRLState with the CRL's DER.
func (s *SQL) GetPublishedCRL(ctx context.Context, issuer string) (*CRLState, error) {
	var der []byte
	st, err := scanCRLState(s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT `+crlStateColumns+`, der FROM crl_state WHERE issuer = ? AND number > 0`), issuer), &der)
	if err != nil {
		return nil, s.fail("published CRL of issuer "+issuer, err)
	}
	st.DER = der
	return st, nil
}
