package store

import (
	"errors"
	"testing"
	"time"
)

// testRevocationNotices is the contract of the notice outbox (migration 0028):
// every revocation queues one, one sender at a time holds it, and it ends once.
func testRevocationNotices(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	w.issue("0a", "aa")
	w.issue("0b", "bb")
	w.must(w.s.Revoke(w.ctx, Revocation{Serial: "0a", RevokedAt: t0, Reason: 1}, nil))
	w.must(w.s.Revoke(w.ctx, Revocation{Serial: "0B", RevokedAt: t0.Add(time.Second), Reason: 1}, nil))
	day := 24 * time.Hour

	n, err := w.s.GetRevocationNotice(w.ctx, "0a")
	if err != nil || n.Attempts != 0 || !n.DoneAt.IsZero() || !n.CreatedAt.Equal(t0) {
		t.Fatalf("queued notice of 0a: %+v, %v; want one, not tried, queued at the revocation", n, err)
	}
	if _, err := w.s.GetRevocationNotice(w.ctx, "0c"); !errors.Is(err, ErrNotFound) {
		t.Errorf("notice of a serial never revoked: %v, want ErrNotFound", err)
	}

	now := t0.Add(time.Minute)
	a, err := w.s.ClaimRevocationNotice(w.ctx, "one", now, now.Add(-day), time.Minute)
	if err != nil || a.Serial != "0a" || a.Attempts != 1 {
		t.Fatalf("first claim: %+v, %v; want 0a, its first try", a, err)
	}
	b, err := w.s.ClaimRevocationNotice(w.ctx, "two", now, now.Add(-day), time.Minute)
	if err != nil || b.Serial != "0b" {
		t.Fatalf("second sender's claim: %+v, %v; want 0b (0a is held)", b, err)
	}
	if _, err := w.s.ClaimRevocationNotice(w.ctx, "three", now, now.Add(-day), time.Minute); !errors.Is(err, ErrNotFound) {
		t.Errorf("claim while both are held: %v, want ErrNotFound", err)
	}
	if err := w.s.FinishRevocationNotice(w.ctx, "0a", "two", true, "sent", now, now); !errors.Is(err, ErrConflict) {
		t.Errorf("finish by a sender that does not hold it: %v, want ErrConflict", err)
	}

	// A failed try is due again at next; a crashed sender's lease runs out.
	w.must(w.s.FinishRevocationNotice(w.ctx, "0a", "one", false, "", now, now.Add(20*time.Second)))
	if _, err := w.s.ClaimRevocationNotice(w.ctx, "one", now.Add(10*time.Second), now.Add(-day), time.Minute); !errors.Is(err, ErrNotFound) {
		t.Errorf("claim before the retry time and the other's lease: %v, want ErrNotFound", err)
	}
	later := now.Add(2 * time.Minute)
	d, err := w.s.ClaimRevocationNotice(w.ctx, "one", later, later.Add(-day), time.Minute)
	if err != nil || d.Serial != "0b" || d.Attempts != 2 {
		t.Fatalf("claim after two's lease ran out: %+v, %v; want 0b (due first), its second try", d, err)
	}
	c, err := w.s.ClaimRevocationNotice(w.ctx, "one", later, later.Add(-day), time.Minute)
	if err != nil || c.Serial != "0a" || c.Attempts != 2 {
		t.Fatalf("claim after the retry time: %+v, %v; want 0a, its second try", c, err)
	}
	w.must(w.s.FinishRevocationNotice(w.ctx, "0a", "one", true, "sent", later, later))
	w.must(w.s.FinishRevocationNotice(w.ctx, "0b", "one", true, "failed: 550 no such user", later, later))
	if _, err := w.s.ClaimRevocationNotice(w.ctx, "one", later.Add(time.Hour), later.Add(-day), time.Minute); !errors.Is(err, ErrNotFound) {
		t.Errorf("claim when all are done: %v, want ErrNotFound", err)
	}
	if n, err := w.s.GetRevocationNotice(w.ctx, "0b"); err != nil || n.Outcome != "failed: 550 no such user" || n.DoneAt.IsZero() {
		t.Errorf("finished notice: %+v, %v", n, err)
	}

	// A notice queued before since is not sent (an old queue when mail is first configured).
	w.issue("0c", "cc")
	w.must(w.s.Revoke(w.ctx, Revocation{Serial: "0c", RevokedAt: t0, Reason: 1}, nil))
	if _, err := w.s.ClaimRevocationNotice(w.ctx, "one", t0.Add(3*day), t0.Add(2*day), time.Minute); !errors.Is(err, ErrNotFound) {
		t.Errorf("claim of a notice older than since: %v, want ErrNotFound", err)
	}
}
