package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"
)

// RenewalWindow is a suggested renewal window (RFC 9773) an operator set for a
// certificate, in place of the default one its lifetime gives.
type RenewalWindow struct {
	Serial string // lower-case hex
	Start  time.Time
	End    time.Time
	Reason string // why, as the operator said it
	SetBy  string // the operator
	SetAt  time.Time
}

// RenewalSelector chooses the certificates MoveRenewalWindows moves: exactly one of
// its fields is set.
type RenewalSelector struct {
	Serial string // one certificate (lower-case hex)
	OrgOID string // every certificate of an organisation
	Issuer string // every certificate of an issuer, by its name in configuration
}

func (sel RenewalSelector) where() (string, string, error) {
	n := 0
	var clause, arg string
	for _, c := range []struct{ col, v string }{{"serial", normalHex(sel.Serial)}, {"org_oid", sel.OrgOID}, {"issuer", sel.Issuer}} {
		if c.v != "" {
			n++
			clause, arg = "c."+c.col+" = ?", c.v
		}
	}
	if n != 1 {
		return "", "", errors.New("store: a renewal selector names exactly one of a serial, an organisation or an issuer")
	}
	return clause, arg, nil
}

// MoveRenewalWindows sets w's window, reason, operator and time on every selected
// certificate that is unexpired at now and not revoked (a revoked certificate's
// window is always in the past), replacing any window set before, in one
// transaction. It returns the serials it set, sorted. ErrNotFound when the selected
// serial or organisation does not exist; an issuer with no such certificates gives
// an empty list.
func (s *SQL) MoveRenewalWindows(ctx context.Context, sel RenewalSelector, w RenewalWindow, now time.Time) ([]string, error) {
	clause, arg, err := sel.where()
	if err != nil {
		return nil, err
	}
	if !w.End.After(w.Start) {
		return nil, fmt.Errorf("store: renewal window ends (%s) before it starts (%s)", w.End, w.Start)
	}
	var serials []string
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		var exists int
		switch {
		case sel.Serial != "":
			err = tx.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM certificates WHERE serial = ?`), arg).Scan(&exists)
		case sel.OrgOID != "":
			err = tx.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM organisations WHERE oid = ?`), arg).Scan(&exists)
		default:
			exists = 1
		}
		if err != nil {
			return err
		}
		if exists == 0 {
			return fmt.Errorf("%s: %w", arg, ErrNotFound)
		}
		serials, err = s.column(ctx, tx, `SELECT c.serial FROM certificates c WHERE `+clause+` AND c.not_after > ?
			AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial)`, arg, micros(now))
		if err != nil {
			return err
		}
		for _, serial := range serials {
			if _, err := s.exec(ctx, tx,
				`INSERT INTO renewal_windows (serial, start_at, end_at, reason, set_by, set_at) VALUES (?, ?, ?, ?, ?, ?)
				 ON CONFLICT (serial) DO UPDATE SET start_at = excluded.start_at, end_at = excluded.end_at,
				 reason = excluded.reason, set_by = excluded.set_by, set_at = excluded.set_at`,
				serial, micros(w.Start), micros(w.End), w.Reason, w.SetBy, micros(w.SetAt)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.fail("move renewal windows", err)
	}
	sort.Strings(serials)
	return serials, nil
}

// GetRenewalWindow returns the window an operator set for the certificate, or
// ErrNotFound when none was set.
func (s *SQL) GetRenewalWindow(ctx context.Context, serial string) (*RenewalWindow, error) {
	w := RenewalWindow{}
	var start, end, setAt int64
	err := s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT serial, start_at, end_at, reason, set_by, set_at FROM renewal_windows WHERE serial = ?`), normalHex(serial)).
		Scan(&w.Serial, &start, &end, &w.Reason, &w.SetBy, &setAt)
	if err != nil {
		return nil, s.fail("get renewal window of "+serial, err)
	}
	w.Start, w.End, w.SetAt = fromMicros(start), fromMicros(end), fromMicros(setAt)
	return &w, nil
}

// claimReplacement records, in CreateOrder's transaction, that order o replaces the
// certificate o.ReplacesSerial. An order of the claim that never reached finalize
// (pending, ready, or invalid) gives it up: a pending or ready one becomes invalid,
// so it can no longer be finalized. A processing or valid one keeps it, and the
// unique constraint on order_replaces.serial refuses the new claim
// (ErrAlreadyReplaced), also when two orders claim at once.
func (s *SQL) claimReplacement(ctx context.Context, tx *sql.Tx, o Order) error {
	serial, err := hexKey("serial", o.ReplacesSerial)
	if err != nil {
		return err
	}
	if _, err := s.exec(ctx, tx,
		`UPDATE orders SET status = 'invalid'
		 WHERE status IN ('pending', 'ready') AND id IN (SELECT order_id FROM order_replaces WHERE serial = ?)`, serial); err != nil {
		return err
	}
	if _, err := s.exec(ctx, tx,
		`DELETE FROM order_replaces WHERE serial = ?
		 AND order_id IN (SELECT id FROM orders WHERE status = 'invalid')`, serial); err != nil {
		return err
	}
	_, err = s.exec(ctx, tx, `INSERT INTO order_replaces (order_id, serial, cert_id) VALUES (?, ?, ?)`,
		o.ID, serial, o.Replaces)
	return err
}
