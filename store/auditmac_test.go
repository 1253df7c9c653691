package store

import (
	"errors"
	"testing"
)

// testMAC stands in for audit.Key.MAC: the store only calls it on the event as
// it will be stored and keeps what it returns.
func testMAC(e AuditEvent) string { return "mac(" + e.Hash + ")" }

func TestKeyedAuditLog(t *testing.T) { onBothDialects(t, testKeyedAuditLog) }

func testKeyedAuditLog(t *testing.T, open func(t *testing.T) *SQL) {
	suspend := func(tx *Tx) ([]AuditEvent, error) {
		if err := tx.SuspendOrganisation(org1, "anna", "unpaid", t0); err != nil {
			return nil, err
		}
		return []AuditEvent{event("organisation.suspend", "org="+org1)}, nil
	}
	t.Run("the MAC is written with the change, in its transaction", func(t *testing.T) {
		w := newWorld(t, open)
		w.must(w.s.AppendAuditForTest(event("before the key", "")))
		w.s.KeyAudit(testMAC)
		stored, err := w.s.Audited(w.ctx, testSeal, suspend)
		w.must(err)
		log, err := w.s.AuditEvents(w.ctx, 0, 10)
		w.must(err)
		if len(log) != 2 || log[0].MAC != "" || log[1].MAC != testMAC(log[1]) || stored[0] != log[1] {
			t.Fatalf("log %+v: want event 1 unkeyed and event 2 with its MAC, as Audited returned it", log)
		}
		last, err := w.s.LastAuditEvent(w.ctx, true)
		if err != nil || last.Seq != 2 {
			t.Fatalf("last keyed event %+v, %v; want 2", last, err)
		}
	})
	t.Run("a failed audit write leaves no change and no MAC", func(t *testing.T) {
		w := newWorld(t, open)
		w.s.KeyAudit(testMAC)
		failAuditWrites(t, w.s)
		if _, err := w.s.Audited(w.ctx, testSeal, suspend); err == nil {
			t.Fatal("the change committed although its audit event could not be written")
		}
		if _, err := w.s.LastAuditEvent(w.ctx, false); !errors.Is(err, ErrNotFound) {
			t.Fatalf("LastAuditEvent of an empty log: %v, want ErrNotFound", err)
		}
	})
	t.Run("no unkeyed append after a keyed event", func(t *testing.T) {
		w := newWorld(t, open)
		w.s.KeyAudit(testMAC)
		w.must(w.s.AppendAuditForTest(event("keyed", "")))
		w.s.KeyAudit(nil)
		if err := w.s.AppendAuditForTest(event("unkeyed", "")); !errors.Is(err, ErrAuditKeyed) {
			t.Fatalf("AppendAudit without the key: %v, want ErrAuditKeyed", err)
		}
		if _, err := w.s.Audited(w.ctx, testSeal, suspend); !errors.Is(err, ErrAuditKeyed) {
			t.Fatalf("Audited without the key: %v, want ErrAuditKeyed", err)
		}
	})
}
