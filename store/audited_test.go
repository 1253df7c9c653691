package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
)

// testSeal is a stand-in for audit.Hash: the store only has to call it and keep
// what it returns.
func testSeal(e AuditEvent) (string, error) {
	return fmt.Sprintf("h%d<%s", e.Seq, e.PrevHash), nil
}

func event(action, object string) AuditEvent {
	return AuditEvent{Time: t0, Actor: "anna", Action: action, Object: object, Outcome: "ok"}
}

// failAuditWrites makes every insert into the audit log fail, as a full disk or a
// revoked grant would, so the tests can see what an audited change leaves behind.
func failAuditWrites(t *testing.T, s *SQL) {
	t.Helper()
	stmts := []string{`CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END`}
	if s.d.driver == "postgres" {
		stmts = []string{
			`CREATE FUNCTION audit_down() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$ LANGUAGE plpgsql`,
			`CREATE TRIGGER audit_down BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_down()`,
		}
	}
	for _, q := range stmts {
		if _, err := s.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

func testAudited(t *testing.T, open func(t *testing.T) *SQL) {
	suspend := func(tx *Tx) ([]AuditEvent, error) {
		if err := tx.SuspendOrganisation(org1, "anna", "unpaid", t0); err != nil {
			return nil, err
		}
		return []AuditEvent{event("organisation.suspend", "org="+org1)}, nil
	}
	suspended := func(w *world) bool {
		o, err := w.s.GetOrganisation(w.ctx, org1)
		w.must(err)
		return !o.SuspendedAt.IsZero()
	}
	events := func(w *world) []AuditEvent {
		list, err := w.s.AuditEvents(w.ctx, 0, 100)
		w.must(err)
		return list
	}

	t.Run("the change and its event commit together", func(t *testing.T) {
		w := newWorld(t, open)
		w.must(w.s.AppendAuditForTest(event("before", "")))
		stored, err := w.s.Audited(w.ctx, testSeal, suspend)
		w.must(err)
		if !suspended(w) {
			t.Fatal("the organisation is not suspended after the audited change")
		}
		log := events(w)
		if len(log) != 2 || len(stored) != 1 || log[1] != stored[0] {
			t.Fatalf("log %+v, stored %+v: want the suspension as event 2", log, stored)
		}
		if e := log[1]; e.Seq != 2 || e.PrevHash != log[0].Hash || e.Hash != "h2<"+log[0].Hash || e.Action != "organisation.suspend" {
			t.Fatalf("event %+v: want seq 2 chained to event 1 and sealed", e)
		}
	})
	t.Run("a failed audit write leaves nothing changed", func(t *testing.T) {
		w := newWorld(t, open)
		failAuditWrites(t, w.s)
		if _, err := w.s.Audited(w.ctx, testSeal, suspend); err == nil {
			t.Fatal("the change committed although its audit event could not be written")
		}
		if suspended(w) {
			t.Fatal("the organisation is suspended although the audit write failed")
		}
	})
	t.Run("a failed seal leaves nothing changed", func(t *testing.T) {
		w := newWorld(t, open)
		_, err := w.s.Audited(w.ctx, func(AuditEvent) (string, error) { return "", errors.New("no key") }, suspend)
		if err == nil || suspended(w) || len(events(w)) != 0 {
			t.Fatalf("err %v, suspended %t, %d events: want a refusal and nothing changed", err, suspended(w), len(events(w)))
		}
	})
	t.Run("a change without an event is refused", func(t *testing.T) {
		w := newWorld(t, open)
		_, err := w.s.Audited(w.ctx, testSeal, func(tx *Tx) ([]AuditEvent, error) {
			return nil, tx.SuspendOrganisation(org1, "anna", "unpaid", t0)
		})
		if !errors.Is(err, ErrNoAuditEvent) || suspended(w) {
			t.Fatalf("err %v, suspended %t: want ErrNoAuditEvent and nothing changed", err, suspended(w))
		}
	})
	t.Run("a refused change writes no event", func(t *testing.T) {
		w := newWorld(t, open)
		_, err := w.s.Audited(w.ctx, testSeal, func(tx *Tx) ([]AuditEvent, error) {
			return nil, tx.ResumeOrganisation(org1) // not suspended
		})
		if !errors.Is(err, ErrConflict) || len(events(w)) != 0 {
			t.Fatalf("err %v, %d events: want ErrConflict and no event", err, len(events(w)))
		}
	})
	t.Run("concurrent audited changes and appends keep one chain", func(t *testing.T) {
		w := newWorld(t, open)
		const n = 8
		var wg sync.WaitGroup
		errs := make(chan error, 3*n)
		for i := range n {
			wg.Add(3)
			go func() {
				defer wg.Done()
				_, err := w.s.Audited(context.Background(), testSeal, func(tx *Tx) ([]AuditEvent, error) {
					err := tx.AddOrganisation(Organisation{OID: "1.2.246.10.99." + strconv.Itoa(i), Name: "Org", CreatedAt: t0})
					return []AuditEvent{event("organisation.add", strconv.Itoa(i))}, err
				})
				errs <- err
			}()
			go func() {
				defer wg.Done()
				_, err := w.s.AppendAudit(context.Background(), event("account.create", strconv.Itoa(i)), testSeal)
				errs <- err
			}()
			go func() { // locks for the append after its change (PostgreSQL)
				defer wg.Done()
				_, err := w.s.AuditedRows(context.Background(), testSeal, func(tx *Tx) ([]AuditEvent, error) {
					err := tx.AddOrganisation(Organisation{OID: "1.2.246.10.98." + strconv.Itoa(i), Name: "Org", CreatedAt: t0})
					return []AuditEvent{event("organisation.add", "rows "+strconv.Itoa(i))}, err
				})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			w.must(err)
		}
		log := events(w)
		if len(log) != 3*n {
			t.Fatalf("%d events, want %d", len(log), 3*n)
		}
		for i, e := range log {
			prev := ""
			if i > 0 {
				prev = log[i-1].Hash
			}
			if e.Seq != int64(i+1) || e.PrevHash != prev {
				t.Fatalf("event %d: seq %d prev %q: the chain is broken", i+1, e.Seq, e.PrevHash)
			}
		}
	})
}

// AppendAuditForTest appends e sealed with testSeal.
func (s *SQL) AppendAuditForTest(e AuditEvent) error {
	_, err := s.AppendAudit(context.Background(), e, testSeal)
	return err
}
