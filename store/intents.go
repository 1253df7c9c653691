package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
)

// FailIntent moves a pending intent to failed and records why: the issuer never
// signed (a lint refusal, a request that ended first), so its key is free for
// another try; its serial stays used. ErrConflict if the intent is not pending.
func (s *SQL) FailIntent(ctx context.Context, serial, reason string) error {
	serial = normalHex(serial)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "issuance_intents", "serial", serial,
			`UPDATE issuance_intents SET status = 'failed', reason = ? WHERE status = 'pending' AND serial = ?`,
			reason, serial)
	})
	if err != nil {
		return s.fail("fail issuance intent "+serial, err)
	}
	return nil
}

// BeginSigning marks a pending intent whose key was never asked as asked: the issuer
// key may be asked to sign its serial only once this has committed, together with
// its certificate.sign.begin event (run it in an audited Tx). ErrConflict if the
// intent is not pending or was asked before.
func (s *SQL) BeginSigning(ctx context.Context, serial string) error {
	serial = normalHex(serial)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// A retired issuer generation's key signs nothing again: its retirement
		// and this step take the same audit lock, so one of them sees the other.
		err := s.transition(ctx, tx, "issuance_intents", "serial", serial,
			`UPDATE issuance_intents SET key_use = 'asked' WHERE status = 'pending' AND key_use = 'none' AND serial = ?
			 AND NOT EXISTS (SELECT 1 FROM issuer_generations g WHERE g.name = issuance_intents.issuer AND g.state = 'retired')`,
			serial)
		if errors.Is(err, ErrConflict) {
			var retired int
			if tx.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM issuance_intents i JOIN issuer_generations g
				ON g.name = i.issuer WHERE i.serial = ? AND g.state = 'retired'`), serial).Scan(&retired) == nil && retired > 0 {
				return fmt.Errorf("issuance_intents %s: %w", serial, ErrIssuerRetired)
			}
		}
		return err
	})
	if err != nil {
		return s.fail("begin signing "+serial, err)
	}
	return nil
}

// IntentSigned marks an asked intent signed and keeps its certificate, der, with it
// until FinishIssuance stores the certificate: a certificate signed but never stored
// can then be found, delivered or revoked. It is written together with the
// certificate.sign.end event (run it in an audited Tx). Marking the same certificate
// again changes nothing, so a write whose commit was not acknowledged can be tried
// again. ErrConflict if the intent is not pending and asked.
func (s *SQL) IntentSigned(ctx context.Context, serial string, der []byte) error {
	serial = normalHex(serial)
	sum := sha256.Sum256(der)
	sha := hex.EncodeToString(sum[:])
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "issuance_intents", "serial", serial,
			`UPDATE issuance_intents SET key_use = 'signed', cert_sha256 = ?, der = ?
			 WHERE status = 'pending' AND (key_use = 'asked' OR (key_use = 'signed' AND cert_sha256 = ?)) AND serial = ?`,
			sha, der, sha, serial)
	})
	if err != nil {
		return s.fail("mark signed "+serial, err)
	}
	return nil
}

// IntentsWithoutCertificate returns every intent whose serial has no stored
// certificate, oldest first: pending ones (the process may have stopped between
// recording and storing; the reconciler must find out whether the key signed) and
// failed ones (never signed, with their reason), each with how far the issuer key
// got (KeyUse) and, when it signed, the certificate. LintTBS is left out. An intent
// becomes issued in the transaction that stores its certificate, so issued ones are
// not read (issuance_intents_unissued_idx).
func (s *SQL) IntentsWithoutCertificate(ctx context.Context) ([]IssuanceIntent, error) {
	rows, err := s.q().QueryContext(ctx, s.d.rebind(
		`SELECT i.serial, i.order_id, i.issuer, i.names, i.key_hash, i.status, i.reason, i.created_at,
		 i.key_use, i.cert_sha256, i.der
		 FROM issuance_intents i
		 WHERE i.status <> 'issued' AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = i.serial)
		 ORDER BY i.created_at, i.serial`))
	if err != nil {
		return nil, s.fail("list intents without certificate", err)
	}
	defer rows.Close()
	var out []IssuanceIntent
	for rows.Next() {
		var in IssuanceIntent
		var names string
		var created int64
		if err := rows.Scan(&in.Serial, &in.OrderID, &in.Issuer, &names, &in.KeyHash, &in.Status, &in.Reason, &created,
			&in.KeyUse, &in.CertSHA256, &in.DER); err != nil {
			return nil, s.fail("list intents without certificate", err)
		}
		if in.Names, err = fromList(names); err != nil {
			return nil, err
		}
		in.CreatedAt = fromMicros(created)
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list intents without certificate", err)
	}
	return out, nil
}
