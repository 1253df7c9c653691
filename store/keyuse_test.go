package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync/atomic"
	"testing"
)

// TestIntentKeyUse: each step of the issuer key's use of an intent, alone and in
// the transaction of its audit event.
func TestIntentKeyUse(t *testing.T) { onBothDialects(t, testIntentKeyUse) }

// listed is the intent serial as intents list reads it, or fails.
func (w *world) listed(serial string) IssuanceIntent {
	w.t.Helper()
	list, err := w.s.IntentsWithoutCertificate(w.ctx)
	w.must(err)
	for _, in := range list {
		if in.Serial == serial {
			return in
		}
	}
	w.t.Fatalf("intent %s is not listed among %d intents without a certificate", serial, len(list))
	return IssuanceIntent{}
}

// intentDER is the certificate an intent keeps, whatever its state.
func (w *world) intentDER(serial string) []byte {
	w.t.Helper()
	var der []byte
	w.must(w.s.db.QueryRowContext(w.ctx, w.s.d.rebind(`SELECT der FROM issuance_intents WHERE serial = ?`), serial).Scan(&der))
	return der
}

func testIntentKeyUse(t *testing.T, open func(t *testing.T) *SQL) {
	der := []byte("der-bb01")
	sum := sha256.Sum256(der)
	sha := hex.EncodeToString(sum[:])
	signEnd := func(serial string, der []byte) func(tx *Tx) ([]AuditEvent, error) {
		return func(tx *Tx) ([]AuditEvent, error) {
			if err := tx.IntentSigned(serial, der); err != nil {
				return nil, err
			}
			return []AuditEvent{event("certificate.sign.end", "serial="+serial)}, nil
		}
	}
	signBegin := func(serial string) func(tx *Tx) ([]AuditEvent, error) {
		return func(tx *Tx) ([]AuditEvent, error) {
			if err := tx.BeginSigning(serial); err != nil {
				return nil, err
			}
			return []AuditEvent{event("certificate.sign.begin", "serial="+serial)}, nil
		}
	}

	t.Run("never asked, asked, signed, issued", func(t *testing.T) {
		w := newWorld(t, open)
		w.processingOrder("o-bb01")
		w.must(w.s.RecordIntent(w.ctx, intent("bb01", "o-bb01", "ee01")))
		if in := w.listed("bb01"); in.KeyUse != KeyNotAsked {
			t.Fatalf("recorded intent: key %q, want %q", in.KeyUse, KeyNotAsked)
		}
		_, err := w.s.Audited(w.ctx, testSeal, signBegin("bb01"))
		w.must(err)
		if in := w.listed("bb01"); in.KeyUse != KeyAsked {
			t.Fatalf("after sign.begin: key %q, want %q", in.KeyUse, KeyAsked)
		}
		if _, err := w.s.Audited(w.ctx, testSeal, signBegin("bb01")); !errors.Is(err, ErrConflict) {
			t.Errorf("asking twice: %v, want ErrConflict", err)
		}
		_, err = w.s.Audited(w.ctx, testSeal, signEnd("bb01", der))
		w.must(err)
		in := w.listed("bb01")
		if in.KeyUse != KeySigned || in.CertSHA256 != sha || string(in.DER) != string(der) || in.Status != IntentPending {
			t.Fatalf("after sign.end: %s key %q sha256 %q der %q, want pending, signed, %s and the certificate", in.Status, in.KeyUse, in.CertSHA256, in.DER, sha)
		}
		// A write whose commit went unacknowledged is tried again: the same
		// certificate is accepted, another is refused.
		w.must(w.s.IntentSigned(w.ctx, "bb01", der))
		if err := w.s.IntentSigned(w.ctx, "bb01", []byte("another")); !errors.Is(err, ErrConflict) {
			t.Errorf("another certificate for a signed intent: %v, want ErrConflict", err)
		}
		w.must(w.s.FinishIssuance(w.ctx, cert("bb01", "o-bb01", "ee01")))
		if got := w.intentStatus("bb01"); got != IntentIssued {
			t.Errorf("after FinishIssuance: %s, want issued", got)
		}
		if got := w.intentDER("bb01"); got != nil {
			t.Errorf("the issued intent still keeps %d bytes of certificate", len(got))
		}
	})
	t.Run("steps out of order are refused", func(t *testing.T) {
		w := newWorld(t, open)
		w.processingOrder("o-bb02")
		w.must(w.s.RecordIntent(w.ctx, intent("bb02", "o-bb02", "ee02")))
		if err := w.s.IntentSigned(w.ctx, "bb02", der); !errors.Is(err, ErrConflict) {
			t.Errorf("signed before asked: %v, want ErrConflict", err)
		}
		w.must(w.s.FailIntent(w.ctx, "bb02", "lint"))
		if err := w.s.BeginSigning(w.ctx, "bb02"); !errors.Is(err, ErrConflict) {
			t.Errorf("asking for a failed intent: %v, want ErrConflict", err)
		}
		if err := w.s.BeginSigning(w.ctx, "bbff"); !errors.Is(err, ErrNotFound) {
			t.Errorf("asking for an unknown intent: %v, want ErrNotFound", err)
		}
	})
	t.Run("a failed sign.begin event leaves the intent never asked", func(t *testing.T) {
		w := newWorld(t, open)
		w.processingOrder("o-bb03")
		w.must(w.s.RecordIntent(w.ctx, intent("bb03", "o-bb03", "ee03")))
		failAuditWrites(t, w.s)
		if _, err := w.s.Audited(w.ctx, testSeal, signBegin("bb03")); err == nil {
			t.Fatal("the intent was marked asked although its audit event could not be written")
		}
		if in := w.listed("bb03"); in.KeyUse != KeyNotAsked {
			t.Errorf("key %q, want %q: the key may not be asked", in.KeyUse, KeyNotAsked)
		}
	})
	t.Run("the signed mark is tried again until the database takes it", func(t *testing.T) {
		w := newWorld(t, open)
		w.processingOrder("o-bb04")
		w.must(w.s.RecordIntent(w.ctx, intent("bb04", "o-bb04", "ee04")))
		_, err := w.s.Audited(w.ctx, testSeal, signBegin("bb04"))
		w.must(err)
		failAuditWrites(t, w.s)
		var tries atomic.Int32
		err = RetrySigned(w.ctx, func(ctx context.Context) error {
			if tries.Add(1) == 3 {
				// The audit log is back.
				w.must(dropAuditTrigger(w.s))
			}
			_, err := w.s.Audited(ctx, testSeal, signEnd("bb04", der))
			return err
		}, nil)
		w.must(err)
		if n := tries.Load(); n != 3 {
			t.Errorf("%d tries, want 2 refused and the third taken", n)
		}
		if in := w.listed("bb04"); in.KeyUse != KeySigned {
			t.Errorf("key %q, want %q", in.KeyUse, KeySigned)
		}
		events, err := w.s.AuditEvents(w.ctx, 0, 10)
		w.must(err)
		if len(events) != 2 || events[1].Action != "certificate.sign.end" {
			t.Errorf("events %+v, want sign.begin and one sign.end", events)
		}
	})
	t.Run("a verdict of the database is not tried again", func(t *testing.T) {
		w := newWorld(t, open)
		var tries int
		err := RetrySigned(w.ctx, func(ctx context.Context) error {
			tries++
			_, err := w.s.Audited(ctx, testSeal, signEnd("bbfe", der))
			return err
		}, nil)
		if !errors.Is(err, ErrNotFound) || tries != 1 {
			t.Errorf("%d tries, %v; want one and ErrNotFound", tries, err)
		}
	})
}

// TestAuditedOrder: an order exists only with its order.create event.
func TestAuditedOrder(t *testing.T) { onBothDialects(t, testAuditedOrder) }

func testAuditedOrder(t *testing.T, open func(t *testing.T) *SQL) {
	create := func(tx *Tx) ([]AuditEvent, error) {
		if err := tx.CreateOrder(order("o-new", "pending", "a-new"), []Authorization{authz("a-new", 2)}); err != nil {
			return nil, err
		}
		return []AuditEvent{event("order.create", "order=o-new")}, nil
	}
	t.Run("with its event", func(t *testing.T) {
		w := newWorld(t, open)
		_, err := w.s.Audited(w.ctx, testSeal, create)
		w.must(err)
		if got := w.orderStatus("o-new"); got != "pending" {
			t.Errorf("order %s, want pending", got)
		}
	})
	t.Run("without its event nothing is created", func(t *testing.T) {
		w := newWorld(t, open)
		failAuditWrites(t, w.s)
		if _, err := w.s.Audited(w.ctx, testSeal, create); err == nil {
			t.Fatal("the order was created although its audit event could not be written")
		}
		for what, err := range map[string]error{
			"order":         func() error { _, err := w.s.GetOrder(w.ctx, "o-new"); return err }(),
			"authorization": func() error { _, err := w.s.GetAuthorization(w.ctx, "a-new"); return err }(),
			"challenge":     func() error { _, err := w.s.GetChallenge(w.ctx, "a-new-c0"); return err }(),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", what, err)
			}
		}
	})
}

// dropAuditTrigger undoes failAuditWrites.
func dropAuditTrigger(s *SQL) error {
	q := `DROP TRIGGER audit_down`
	if s.d.driver == "postgres" {
		q = `DROP TRIGGER audit_down ON audit_log`
	}
	_, err := s.db.Exec(q)
	return err
}
