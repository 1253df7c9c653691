package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func testConsoleSessions(t *testing.T, open func(t *testing.T) *SQL) {
	session := func(hash, operator string) ConsoleSession {
		return ConsoleSession{IDHash: hash, Operator: operator, Method: "token", CreatedAt: t0, LastSeen: t0,
			Idle: 30 * time.Minute, ExpiresAt: t0.Add(12 * time.Hour)}
	}

	t.Run("a session is found by its hash and each touch moves its idle deadline", func(t *testing.T) {
		w := newWorld(t, open)
		w.must(w.s.CreateConsoleSession(w.ctx, session("AA01", "alice")))
		if err := w.s.CreateConsoleSession(w.ctx, session("aa01", "bob")); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("second session with the same hash: %v, want ErrDuplicate", err)
		}
		// Touched every 20 minutes, it outlives its 30-minute idle timeout.
		at := t0
		for i := 0; i < 5; i++ {
			at = at.Add(20 * time.Minute)
			got, err := w.s.TouchConsoleSession(w.ctx, "aa01", at)
			w.must(err)
			mustEqual(t, "operator", got.Operator, "alice")
			mustEqual(t, "method", got.Method, "token")
			mustEqual(t, "idle", got.Idle.String(), "30m0s")
			if !got.LastSeen.Equal(at) || !got.CreatedAt.Equal(t0) || !got.ExpiresAt.Equal(t0.Add(12*time.Hour)) {
				t.Fatalf("touch %d at %s: %+v", i, at, got)
			}
		}
		// Left alone for 30 minutes, it is gone, and a late touch does not revive it.
		if _, err := w.s.TouchConsoleSession(w.ctx, "aa01", at.Add(30*time.Minute)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("touch after 30 idle minutes: %v, want ErrNotFound", err)
		}
		if _, err := w.s.TouchConsoleSession(w.ctx, "aa01", at.Add(29*time.Minute)); err != nil {
			t.Fatalf("the refused touch changed the session: %v", err)
		}
		if _, err := w.s.TouchConsoleSession(w.ctx, "bb02", t0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown session: %v, want ErrNotFound", err)
		}
	})

	t.Run("the absolute lifetime ends a session however busy", func(t *testing.T) {
		w := newWorld(t, open)
		s := session("cc03", "alice")
		s.ExpiresAt = t0.Add(time.Hour)
		w.must(w.s.CreateConsoleSession(w.ctx, s))
		for at := t0.Add(10 * time.Minute); at.Before(s.ExpiresAt); at = at.Add(10 * time.Minute) {
			_, err := w.s.TouchConsoleSession(w.ctx, "cc03", at)
			w.must(err)
		}
		if _, err := w.s.TouchConsoleSession(w.ctx, "cc03", s.ExpiresAt); !errors.Is(err, ErrNotFound) {
			t.Fatalf("touch at the absolute expiry: %v, want ErrNotFound", err)
		}
	})

	t.Run("delete ends one session, the sweep only those no longer live", func(t *testing.T) {
		w := newWorld(t, open)
		w.must(w.s.CreateConsoleSession(w.ctx, session("d1", "alice")))
		w.must(w.s.CreateConsoleSession(w.ctx, session("d2", "alice")))
		idle := session("d3", "bob")
		idle.Idle = time.Minute
		w.must(w.s.CreateConsoleSession(w.ctx, idle))
		short := session("d4", "bob")
		short.ExpiresAt = t0.Add(2 * time.Minute)
		w.must(w.s.CreateConsoleSession(w.ctx, short))

		w.must(w.s.DeleteConsoleSession(w.ctx, "d1"))
		w.must(w.s.DeleteConsoleSession(w.ctx, "d1")) // ended already: no error
		if _, err := w.s.TouchConsoleSession(w.ctx, "d1", t0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("deleted session: %v, want ErrNotFound", err)
		}
		n, err := w.s.DeleteExpiredConsoleSessions(w.ctx, t0.Add(30*time.Second))
		w.must(err)
		mustEqual(t, "swept while all live", fmt.Sprint(n), "0")
		n, err = w.s.DeleteExpiredConsoleSessions(w.ctx, t0.Add(2*time.Minute))
		w.must(err)
		mustEqual(t, "swept at 2 minutes (d3 idle, d4 expired)", fmt.Sprint(n), "2")
		if _, err := w.s.TouchConsoleSession(w.ctx, "d2", t0.Add(2*time.Minute)); err != nil {
			t.Fatalf("the live session d2 after the sweep: %v", err)
		}
	})
}

// BenchmarkTouchConsoleSession is the store's share of every console request of a
// token login, on SQLite: 1,000 live sessions, each touch one of them.
func BenchmarkTouchConsoleSession(b *testing.B) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "varmenne.db"), testSecret)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 1000
	for i := 0; i < n; i++ {
		err := s.CreateConsoleSession(ctx, ConsoleSession{IDHash: fmt.Sprintf("%064x", i), Operator: "alice", Method: "token",
			CreatedAt: t0, LastSeen: t0, Idle: 30 * time.Minute, ExpiresAt: t0.Add(12 * time.Hour)})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.TouchConsoleSession(ctx, fmt.Sprintf("%064x", i%n), t0.Add(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUnknownCookieTakesNoWriteLock: a made-up or ended session cookie is answered
// while another transaction holds the write lock, so a flood of them cannot queue
// the server's writers; a live session is written at most every touchGranularity.
func TestUnknownCookieTakesNoWriteLock(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "varmenne.db"), testSecret)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateConsoleSession(ctx, ConsoleSession{IDHash: "aa", Operator: "anna", Method: "token", CreatedAt: t0, LastSeen: t0,
		Idle: time.Hour, ExpiresAt: t0.Add(12 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.inTx(ctx, func(*sql.Tx) error {
			close(held)
			select {
			case <-release:
				return nil
			case <-time.After(30 * time.Second):
				return errors.New("a touch of an unknown cookie waited for the write lock")
			}
		})
	}()
	<-held
	if _, err := s.TouchConsoleSession(ctx, "ab", t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("an unknown cookie: %v, want ErrNotFound", err)
	}
	c, err := s.TouchConsoleSession(ctx, "aa", t0.Add(time.Second))
	if err != nil || !c.LastSeen.Equal(t0) {
		t.Errorf("a live session touched within the granularity: %+v, %v; want it read, unchanged", c, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c, err := s.TouchConsoleSession(ctx, "aa", t0.Add(time.Minute)); err != nil || !c.LastSeen.Equal(t0.Add(time.Minute)) {
		t.Errorf("a live session touched after the granularity: %+v, %v; want LastSeen moved", c, err)
	}
}
