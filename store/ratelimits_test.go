package store

import (
	"errors"
	"testing"
	"time"
)

// testRateLimits is the contract of the shared rate limit counters and of the count
// of pending authorizations.
func testRateLimits(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	const hour = time.Hour
	// now is inside the window [start, start+1h).
	start := t0.Truncate(hour)
	now := start.Add(10 * time.Minute)

	t.Run("counts up to the limit, then refuses without counting", func(t *testing.T) {
		for i := 1; i <= 3; i++ {
			u, err := w.s.TakeRateLimit(w.ctx, "orders", "acct-1", 3, hour, now)
			if err != nil || !u.Allowed || u.Count != i || !u.Reset.Equal(start.Add(hour)) {
				t.Fatalf("use %d: %+v, %v; want allowed, count %d, reset %v", i, u, err, i, start.Add(hour))
			}
		}
		u, err := w.s.TakeRateLimit(w.ctx, "orders", "acct-1", 3, hour, now.Add(time.Minute))
		if err != nil || u.Allowed || u.Count != 3 || !u.Reset.Equal(start.Add(hour)) {
			t.Fatalf("fourth use: %+v, %v; want refused at count 3, reset %v", u, err, start.Add(hour))
		}
		if u, _ := w.s.RateLimitCount(w.ctx, "orders", "acct-1", 3, hour, now); u.Count != 3 || u.Allowed {
			t.Errorf("after a refusal the window holds %+v, want count 3, not below the limit", u)
		}
	})
	t.Run("a raised limit counts on from the stored count", func(t *testing.T) {
		u, err := w.s.TakeRateLimit(w.ctx, "orders", "acct-1", 4, hour, now)
		if err != nil || !u.Allowed || u.Count != 4 {
			t.Errorf("with limit 4: %+v, %v; want allowed, count 4", u, err)
		}
	})
	t.Run("the next window starts from zero", func(t *testing.T) {
		u, err := w.s.TakeRateLimit(w.ctx, "orders", "acct-1", 3, hour, start.Add(hour))
		if err != nil || !u.Allowed || u.Count != 1 || !u.Reset.Equal(start.Add(2*hour)) {
			t.Errorf("in the next window: %+v, %v; want allowed, count 1", u, err)
		}
	})
	t.Run("other subjects and other limits are counted apart", func(t *testing.T) {
		for _, c := range []struct{ name, subject string }{{"orders", "acct-2"}, {"certificates", "acct-1"}} {
			u, err := w.s.TakeRateLimit(w.ctx, c.name, c.subject, 3, hour, now)
			if err != nil || !u.Allowed || u.Count != 1 {
				t.Errorf("%s of %s: %+v, %v; want allowed, count 1", c.name, c.subject, u, err)
			}
		}
	})
	t.Run("a count of an unused window is zero and counts nothing", func(t *testing.T) {
		for range 2 {
			u, err := w.s.RateLimitCount(w.ctx, "failed", "acct-1 a.example.fi", 1, hour, now)
			if err != nil || !u.Allowed || u.Count != 0 {
				t.Fatalf("RateLimitCount = %+v, %v; want count 0, below the limit", u, err)
			}
		}
	})
	t.Run("of concurrent callers exactly the limit are counted", func(t *testing.T) {
		const callers, max = 24, 7
		uses := make([]RateLimitUse, callers)
		for _, err := range race(callers, func(i int) error {
			var err error
			uses[i], err = w.s.TakeRateLimit(w.ctx, "race", "org1", max, hour, now)
			return err
		}) {
			if err != nil {
				t.Fatal(err)
			}
		}
		allowed, seen := 0, map[int]bool{}
		for _, u := range uses {
			if u.Allowed {
				allowed++
				if seen[u.Count] {
					t.Errorf("two callers were both counted as use %d", u.Count)
				}
				seen[u.Count] = true
			} else if u.Count != max {
				t.Errorf("a refused caller saw count %d, want %d", u.Count, max)
			}
		}
		if allowed != max {
			t.Errorf("%d of %d concurrent callers were counted, want %d", allowed, callers, max)
		}
		if u, _ := w.s.RateLimitCount(w.ctx, "race", "org1", max, hour, now); u.Count != max {
			t.Errorf("stored count %d, want %d", u.Count, max)
		}
	})
	t.Run("cleanup removes exactly the ended windows", func(t *testing.T) {
		// Windows: orders/acct-1 now and next hour, orders/acct-2, certificates/acct-1, race/org1.
		n, err := w.s.DeleteExpiredRateLimits(w.ctx, start.Add(hour))
		if err != nil || n != 4 {
			t.Errorf("DeleteExpiredRateLimits(end of window) = %d, %v; want 4", n, err)
		}
		if u, _ := w.s.RateLimitCount(w.ctx, "orders", "acct-1", 3, hour, start.Add(hour)); u.Count != 1 {
			t.Errorf("the next window's count is %d after cleanup, want 1", u.Count)
		}
	})
	t.Run("a limit of zero is refused", func(t *testing.T) {
		if _, err := w.s.TakeRateLimit(w.ctx, "orders", "acct-1", 0, hour, now); err == nil {
			t.Error("TakeRateLimit with max 0 succeeded")
		}
	})

	t.Run("tallies outlive their window until claimed, once", func(t *testing.T) {
		w := newWorld(t, open)
		const tally, window = TallyPrefix + "logins", 15 * time.Minute
		start := t0.Truncate(window)
		uses := []struct {
			name, subject string
			at            time.Time
		}{
			{tally, "192.0.2.2", start},
			{tally, "192.0.2.1", start.Add(window)}, // the next window
			{"orders", "acct-1", start},             // no tally
		}
		for i := range 5 {
			uses = append(uses, struct {
				name, subject string
				at            time.Time
			}{tally, "192.0.2.1", start.Add(time.Duration(i) * time.Minute)})
		}
		for _, u := range uses {
			if _, err := w.s.TakeRateLimit(w.ctx, u.name, u.subject, 1<<30, window, u.at); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := w.s.EndedTallies(w.ctx, tally, start.Add(window-time.Microsecond), 10); err != nil || len(got) != 0 {
			t.Fatalf("before the window ends: %+v, %v; want none", got, err)
		}
		// The sweep of ended rate limits leaves the tallies.
		if n, err := w.s.DeleteExpiredRateLimits(w.ctx, start.Add(window)); err != nil || n != 1 {
			t.Fatalf("DeleteExpiredRateLimits = %d, %v; want 1 (the orders window only)", n, err)
		}
		got, err := w.s.EndedTallies(w.ctx, tally, start.Add(window), 10)
		if err != nil || len(got) != 2 || got[0].Subject != "192.0.2.1" || got[0].Count != 5 || got[1].Count != 1 ||
			!got[0].Start.Equal(start) || !got[0].End.Equal(start.Add(window)) {
			t.Fatalf("ended tallies %+v, %v; want 192.0.2.1 with 5 and 192.0.2.2 with 1 in [%v, %v)", got, err, start, start.Add(window))
		}
		if got, _ := w.s.EndedTallies(w.ctx, tally, start.Add(window), 1); len(got) != 1 {
			t.Errorf("limit 1 lists %d", len(got))
		}
		// Of concurrent claims of one window exactly one gets its count.
		counts := make([]int, 8)
		errs := race(len(counts), func(i int) error {
			var err error
			counts[i], err = w.s.ClaimTally(w.ctx, tally, "192.0.2.1", start)
			return err
		})
		claimed := 0
		for i, err := range errs {
			switch {
			case err == nil && counts[i] == 5:
				claimed++
			case !errors.Is(err, ErrNotFound):
				t.Errorf("claim %d: %d, %v; want 5 once, else ErrNotFound", i, counts[i], err)
			}
		}
		if claimed != 1 {
			t.Errorf("%d claims got the count, want 1", claimed)
		}
		if got, _ := w.s.EndedTallies(w.ctx, tally, start.Add(2*window), 10); len(got) != 2 || got[0].Subject != "192.0.2.2" || got[1].Count != 1 {
			t.Errorf("after the claim: %+v; want 192.0.2.2's window and 192.0.2.1's next", got)
		}
		if _, err := w.s.EndedTallies(w.ctx, "orders", start.Add(window), 10); err == nil {
			t.Errorf("EndedTallies of a limit that is no tally succeeded")
		}
	})

	t.Run("pending authorizations of an account", func(t *testing.T) {
		w := newWorld(t, open)
		n, first, err := w.s.PendingAuthorizations(w.ctx, "acct-1", t0)
		if err != nil || n != 0 || !first.IsZero() {
			t.Fatalf("with none: %d, %v, %v", n, first, err)
		}
		w.pendingOrder("o1", "p1", "p2")
		w.readyOrder("o2") // a valid authorization does not count
		later := authz("p3", 1)
		later.Expires = t0.Add(3 * time.Hour)
		w.must(w.s.CreateOrder(w.ctx, order("o3", "pending", "p3"), []Authorization{later}))
		n, first, err = w.s.PendingAuthorizations(w.ctx, "acct-1", t0)
		if err != nil || n != 3 || !first.Equal(t0.Add(time.Hour).Truncate(time.Microsecond)) {
			t.Errorf("PendingAuthorizations = %d, first expiry %v, %v; want 3, %v", n, first, err, t0.Add(time.Hour))
		}
		// An hour later p1 and p2 have expired.
		if n, _, _ := w.s.PendingAuthorizations(w.ctx, "acct-1", t0.Add(time.Hour)); n != 1 {
			t.Errorf("after the first expiry: %d pending, want 1", n)
		}
		if n, _, _ := w.s.PendingAuthorizations(w.ctx, "acct-2", t0); n != 0 {
			t.Errorf("another account: %d pending, want 0", n)
		}
	})
}
