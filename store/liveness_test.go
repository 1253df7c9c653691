package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testLocks: the right to publish an issuer's CRLs and an instance's liveness lock
// are held by one holder at a time and free the moment the holder lets go; the
// sweep fails at once what a gone instance left processing and nothing of a live
// one. A holder that dies is the child process of TestLocksDieWithTheirProcess.
func testLocks(t *testing.T, open func(t *testing.T) *SQL) {
	t.Run("two live holders never both hold the right to publish", func(t *testing.T) {
		w := newWorld(t, open)
		locks := make([]*Lock, 10)
		for _, err := range race(len(locks), func(i int) error {
			var err error
			locks[i], err = w.s.CRLPublisher(w.ctx, "production")
			return err
		}) {
			w.must(err)
		}
		var held *Lock
		for _, l := range locks {
			if l != nil {
				if held != nil {
					t.Fatal("two holders of production's right to publish")
				}
				held = l
			}
		}
		if held == nil {
			t.Fatal("nobody holds production's right to publish")
		}
		w.must(held.Check(w.ctx))
		other, err := w.s.CRLPublisher(w.ctx, "test")
		w.must(err)
		if other == nil {
			t.Fatal("the right to publish another issuer's CRLs is refused")
		}
		defer other.Release(w.ctx)

		w.must(held.Release(w.ctx))
		if err := held.Check(w.ctx); !errors.Is(err, ErrLockLost) {
			t.Errorf("a released right checks %v, want ErrLockLost", err)
		}
		next, err := w.s.CRLPublisher(w.ctx, "production")
		w.must(err)
		if next == nil {
			t.Fatal("a released right is not free at once")
		}
		w.must(next.Release(w.ctx))
	})
	t.Run("a holder whose session or file is gone no longer holds", func(t *testing.T) {
		w := newWorld(t, open)
		held, err := w.s.CRLPublisher(w.ctx, "production")
		w.must(err)
		if held == nil {
			t.Fatal("the free right is refused")
		}
		cut(t, w.s, held)
		if err := held.Check(w.ctx); !errors.Is(err, ErrLockLost) {
			t.Fatalf("the cut holder checks %v, want ErrLockLost", err)
		}
		next := waitLock(t, w.s, "production")
		w.must(next.Release(w.ctx))
	})
	t.Run("a gone instance's processing work fails at once, a live one's stays", func(t *testing.T) {
		w := newWorld(t, open)
		w.processingOrder("o-anonymous") // no instance: left to the time-based sweep
		inst, err := w.s.StartInstance(w.ctx)
		w.must(err)
		w.processingOrder("o-mine")
		w.pendingOrder("o-validating", "az1")
		w.must(w.s.StartChallenge(w.ctx, "az1-c0"))
		c, o, err := w.s.SweepOrphaned(w.ctx, swept, swept)
		w.must(err)
		if c != 0 || o != 0 {
			t.Fatalf("the live instance lost %d challenges and %d orders to the sweep", c, o)
		}
		w.must(inst.Renew(w.ctx))
		// The instance goes as a process does; the store knows nothing of it any
		// more. On PostgreSQL a lock found free is taken for a gone instance only
		// when it stays free for confirm (a live process re-takes a lock its
		// database restart dropped): set to 0 here, checked below.
		w.must(inst.Close(w.ctx))
		w.s.live.confirm = 0
		c, o, err = w.s.SweepOrphaned(w.ctx, swept, swept)
		w.must(err)
		if c != 1 || o != 1 {
			t.Fatalf("swept %d challenges and %d orders of the gone instance, want 1 and 1", c, o)
		}
		mustEqual(t, "order", w.orderStatus("o-mine"), "invalid")
		got, err := w.s.GetOrder(w.ctx, "o-mine")
		w.must(err)
		mustEqual(t, "order error", string(got.Error), string(swept))
		mustEqual(t, "challenge", w.challengeStatus("az1-c0"), "invalid")
		mustEqual(t, "its authorization", w.authzStatus("az1"), "invalid")
		mustEqual(t, "its order", w.orderStatus("o-validating"), "invalid")
		mustEqual(t, "order of no instance", w.orderStatus("o-anonymous"), "processing")
		c, o, err = w.s.SweepOrphaned(w.ctx, swept, swept)
		w.must(err)
		if c != 0 || o != 0 {
			t.Errorf("a second sweep failed %d challenges and %d orders, want none", c, o)
		}
	})
	t.Run("on PostgreSQL a free lock is confirmed before its instance is taken for gone", func(t *testing.T) {
		w := newWorld(t, open)
		if w.s.d.name != "postgres" {
			mustEqual(t, "SQLite's confirmation", w.s.live.confirm.String(), "0s")
			return
		}
		inst, err := w.s.StartInstance(w.ctx)
		w.must(err)
		w.processingOrder("o-mine")
		w.must(inst.Close(w.ctx))
		w.s.live.confirm = time.Hour
		for range 2 {
			if _, o, err := w.s.SweepOrphaned(w.ctx, swept, swept); err != nil || o != 0 {
				t.Fatalf("swept %d orders, %v, of an instance whose lock is not free for long; want none", o, err)
			}
		}
		w.s.live.confirm = 0
		if _, o, err := w.s.SweepOrphaned(w.ctx, swept, swept); err != nil || o != 1 {
			t.Fatalf("swept %d orders, %v, once confirmed; want 1", o, err)
		}
	})
}

// cut ends a lock's hold from outside, as a dying holder's would end: on
// PostgreSQL its session is terminated by another; on SQLite its file is
// replaced.
func cut(t *testing.T, s *SQL, l *Lock) {
	t.Helper()
	if l.conn != nil {
		var pid int
		if err := l.conn.QueryRowContext(context.Background(), `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if _, err := s.db.Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.Remove(l.path); err != nil {
		t.Fatal(err)
	}
}

// waitLock takes the right to publish issuer's CRLs, waiting up to 5 s for it:
// PostgreSQL ends a terminated or orphaned session a moment after its client goes.
func waitLock(t *testing.T, s *SQL, issuer string) *Lock {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := s.CRLPublisher(context.Background(), issuer)
		if err != nil {
			t.Fatal(err)
		}
		if l != nil {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("the right to publish %s's CRLs is not free 5 s after its holder went", issuer)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The child of TestLocksDieWithTheirProcess: it opens the store, starts an
// instance, takes the right to publish production's CRLs, begins the finalize of
// an order, says so and waits to be killed.
const (
	childEnv       = "VARMENNE_LOCK_CHILD" // sqlite:<path> or postgres:<dsn>
	childSecretEnv = "VARMENNE_LOCK_CHILD_SECRET"
	childOrderEnv  = "VARMENNE_LOCK_CHILD_ORDER"
)

// lockChild runs the child when the environment asks for it (from TestMain).
func lockChild() bool {
	where := os.Getenv(childEnv)
	if where == "" {
		return false
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "lock child:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	secret, err := ParseEABSecret([]byte(os.Getenv(childSecretEnv)))
	if err != nil {
		fail(err)
	}
	var s *SQL
	if dsn, ok := strings.CutPrefix(where, "postgres:"); ok {
		s, err = OpenPostgres(ctx, dsn, secret)
	} else {
		s, err = OpenSQLite(ctx, strings.TrimPrefix(where, "sqlite:"), secret)
	}
	if err != nil {
		fail(err)
	}
	inst, err := s.StartInstance(ctx)
	if err != nil {
		fail(err)
	}
	l, err := s.CRLPublisher(ctx, "production")
	if err == nil && l == nil {
		err = errors.New("the right to publish is held by another")
	}
	if err != nil {
		fail(err)
	}
	if err := s.BeginFinalize(ctx, os.Getenv(childOrderEnv)); err != nil {
		fail(err)
	}
	fmt.Println("held", inst.ID)
	select {} // until killed
}

// TestLocksDieWithTheirProcess: a process holding the right to publish and an
// instance is SIGKILLed; the right is free at once (SQLite: when the kernel closes
// its files; PostgreSQL: when its session ends, waited for up to 5 s), and the
// order it was finalizing is failed by the next sweep. While it lives, neither is
// taken from it.
func TestLocksDieWithTheirProcess(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			secret, text := GenerateEABSecret()
			var where string
			open := func(t *testing.T) *SQL {
				var s *SQL
				var err error
				if dialect == "postgres" {
					dsn := cluster.NewDatabase(t)
					where = "postgres:" + dsn
					s, err = OpenPostgres(context.Background(), dsn, secret)
				} else {
					path := filepath.Join(t.TempDir(), "varmenne.db")
					where = "sqlite:" + path
					s, err = OpenSQLite(context.Background(), path, secret)
				}
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			w := newWorld(t, open)
			w.readyOrder("o-child")
			w.s.live.confirm = 0 // the confirmation is tested in the contract

			child := exec.Command(os.Args[0], "-test.run=^$")
			child.Env = append(os.Environ(), childEnv+"="+where, childSecretEnv+"="+string(text), childOrderEnv+"=o-child")
			child.Stderr = os.Stderr
			out, err := child.StdoutPipe()
			w.must(err)
			w.must(child.Start())
			defer child.Process.Kill()
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "held ") {
				t.Fatalf("the child said %q, %v", line, err)
			}

			if l, err := w.s.CRLPublisher(w.ctx, "production"); err != nil || l != nil {
				t.Fatalf("took the right to publish from a live holder (%v, %v)", l != nil, err)
			}
			if _, o, err := w.s.SweepOrphaned(w.ctx, swept, swept); err != nil || o != 0 {
				t.Fatalf("swept %d orders, %v, of a live instance; want none", o, err)
			}
			mustEqual(t, "the live child's order", w.orderStatus("o-child"), "processing")

			w.must(child.Process.Signal(syscall.SIGKILL))
			_ = child.Wait()
			if dialect == "sqlite" {
				// The kernel released the flock before the child's death was reported.
				l, err := w.s.CRLPublisher(w.ctx, "production")
				if err != nil || l == nil {
					t.Fatalf("the right to publish is not free once its holder died (%v)", err)
				}
				w.must(l.Release(w.ctx))
			} else {
				w.must(waitLock(t, w.s, "production").Release(w.ctx))
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				_, o, err := w.s.SweepOrphaned(w.ctx, swept, swept)
				w.must(err)
				if o == 1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the order of the killed instance is not swept 5 s after its death")
				}
				time.Sleep(20 * time.Millisecond)
			}
			mustEqual(t, "the killed child's order", w.orderStatus("o-child"), "invalid")
			if dialect == "sqlite" {
				if files, _ := filepath.Glob(w.s.path + ".instance-*"); len(files) != 0 {
					t.Errorf("the gone instance's lock file stays: %v", files)
				}
			}
		})
	}
}

var swept = []byte(`{"type":"urn:ietf:params:acme:error:serverInternal","detail":"interrupted"}`)
