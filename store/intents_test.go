package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// onBothDialects runs fn on a fresh SQLite file and a fresh PostgreSQL database.
func onBothDialects(t *testing.T, fn func(t *testing.T, open func(t *testing.T) *SQL)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, openTempSQLite) })
	t.Run("postgres", func(t *testing.T) {
		fn(t, func(t *testing.T) *SQL {
			s, err := OpenPostgres(context.Background(), cluster.NewDatabase(t), testSecret)
			if err != nil {
				t.Fatal(err)
			}
			return s
		})
	})
}

func TestFailIntentAndIntentsWithoutCertificate(t *testing.T) {
	onBothDialects(t, testFailIntent)
}

func testFailIntent(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	w.issue("aa01", "ee01") // issued: has a certificate, never listed
	w.processingOrder("o-pending")
	w.must(w.s.RecordIntent(w.ctx, intent("aa02", "o-pending", "ee02")))
	w.processingOrder("o-lint")
	w.must(w.s.RecordIntent(w.ctx, intent("aa03", "o-lint", "ee03")))

	const reason = "certificate failed lint: e_missing_crl_distrib_point"
	w.must(w.s.FailIntent(w.ctx, "AA03", reason))

	t.Run("a failed intent frees its key", func(t *testing.T) {
		w.processingOrder("o-retry")
		w.must(w.s.RecordIntent(w.ctx, intent("aa04", "o-retry", "ee03")))
	})
	t.Run("only a pending intent can fail", func(t *testing.T) {
		for _, serial := range []string{"aa01", "aa03"} {
			if err := w.s.FailIntent(w.ctx, serial, "again"); !errors.Is(err, ErrConflict) {
				t.Errorf("FailIntent(%s) = %v, want ErrConflict", serial, err)
			}
		}
		if err := w.s.FailIntent(w.ctx, "ffff", "none"); !errors.Is(err, ErrNotFound) {
			t.Errorf("FailIntent(unknown) = %v, want ErrNotFound", err)
		}
	})
	t.Run("every intent without a certificate is listed, with status and reason", func(t *testing.T) {
		got, err := w.s.IntentsWithoutCertificate(context.Background())
		w.must(err)
		var serials []string
		for _, in := range got {
			serials = append(serials, in.Serial+"/"+in.Status)
			if in.Serial == "aa03" && in.Reason != reason {
				t.Errorf("aa03 reason = %q, want %q", in.Reason, reason)
			}
			if in.OrderID == "" || in.KeyHash == "" || len(in.Names) == 0 || in.CreatedAt.IsZero() {
				t.Errorf("intent %s is missing fields: %+v", in.Serial, in)
			}
		}
		slices.Sort(serials)
		want := []string{"aa02/pending", "aa03/failed", "aa04/pending"}
		if !slices.Equal(serials, want) {
			t.Errorf("listed %v, want %v", serials, want)
		}
	})
	t.Run("certificate serials", func(t *testing.T) {
		got, err := w.s.CertificateSerials(w.ctx)
		w.must(err)
		if !slices.Equal(got, []string{"aa01"}) {
			t.Errorf("serials = %v, want [aa01]", got)
		}
	})
}

func TestAppendAuditChainsEvents(t *testing.T) {
	onBothDialects(t, testAppendAudit)
}

func testAppendAudit(t *testing.T, open func(t *testing.T) *SQL) {
	s := open(t)
	defer s.Close()
	ctx := context.Background()
	seal := func(e AuditEvent) (string, error) {
		return strings.Join([]string{e.PrevHash, e.Action}, "|"), nil
	}
	for _, action := range []string{"a", "b", "c"} {
		if _, err := s.AppendAudit(ctx, AuditEvent{Time: t0, Actor: "alice", Action: action, Object: "o", Outcome: "ok"}, seal); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.AuditEvents(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d events, want 3", len(got))
	}
	for i, e := range got {
		if e.Seq != int64(i+1) {
			t.Errorf("event %d has seq %d", i, e.Seq)
		}
		prev := ""
		if i > 0 {
			prev = got[i-1].Hash
		}
		if e.PrevHash != prev {
			t.Errorf("event %d prev_hash %q, want %q", e.Seq, e.PrevHash, prev)
		}
		if !e.Time.Equal(t0.Truncate(1000)) {
			t.Errorf("event %d time %v, want %v", e.Seq, e.Time, t0)
		}
	}
	if got[2].Hash != "|a|b|c" {
		t.Errorf("last hash %q, want the chain |a|b|c", got[2].Hash)
	}
	if after, _ := s.AuditEvents(ctx, 2, 10); len(after) != 1 || after[0].Action != "c" {
		t.Errorf("events after 2 = %+v, want only c", after)
	}
}

// TestAppendAuditConcurrently: writers appending at once (replicas on one
// database) each get their own sequence number, and the chain stays linear.
func TestAppendAuditConcurrently(t *testing.T) {
	onBothDialects(t, func(t *testing.T, open func(t *testing.T) *SQL) {
		s := open(t)
		defer s.Close()
		ctx := context.Background()
		seal := func(e AuditEvent) (string, error) { return fmt.Sprintf("h%d<%s", e.Seq, e.PrevHash), nil }
		const writers, each = 32, 3 // 32 at once: as many as issuances at C = 32
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					_, err := s.AppendAudit(ctx, AuditEvent{Time: t0, Actor: fmt.Sprint("w", w), Action: fmt.Sprint("a", i), Outcome: "ok"}, seal)
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.AuditEvents(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != writers*each {
			t.Fatalf("%d events, want %d", len(got), writers*each)
		}
		for i, e := range got {
			if e.Seq != int64(i+1) || (i > 0 && e.PrevHash != got[i-1].Hash) {
				t.Fatalf("event %d (seq %d) does not follow event %d", i, e.Seq, i-1)
			}
		}
	})
}
