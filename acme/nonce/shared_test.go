package nonce

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/store"
	"github.com/varmenne/varmenne/store/pgtest"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster, "fsync=off") }

// backends are the databases Shared runs on; each call makes a new empty one.
var backends = []struct {
	name string
	open func(t *testing.T) *store.SQL
}{
	{"postgres", func(t *testing.T) *store.SQL {
		s, err := store.OpenPostgres(context.Background(), cluster.NewDatabase(t), eabSecret)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
	{"sqlite", func(t *testing.T) *store.SQL {
		s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "varmenne.db"), eabSecret)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

// countingStore counts the batches written.
type countingStore struct {
	Store
	adds atomic.Int64
}

func (c *countingStore) AddNonces(ctx context.Context, values []string, expires time.Time) error {
	c.adds.Add(1)
	return c.Store.AddNonces(ctx, values, expires)
}

func sharedIssue(t *testing.T, s *Shared) string {
	t.Helper()
	n, err := s.Issue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSharedAcrossReplicas(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			replicas := []*Shared{NewShared(st, time.Hour, 8), NewShared(st, time.Hour, 8), NewShared(st, time.Hour, 8)}
			a, bb := replicas[0], replicas[1]
			fromA := sharedIssue(t, a)
			used := sharedIssue(t, a)
			if err := bb.Redeem(ctx, used); err != nil {
				t.Fatalf("redeem on another replica: %v", err)
			}
			cases := []struct {
				name     string
				replica  *Shared
				nonce    string
				accepted bool
			}{
				{"a nonce from A is accepted by B", bb, fromA, true},
				{"and then refused by A", a, fromA, false},
				{"and by C", replicas[2], fromA, false},
				{"a used nonce is refused by the replica that issued it", a, used, false},
				{"an unknown nonce of the right form is refused", a, a.prefix + "AAAAAAAAAAAAAAAAAAAAAA", false},
				{"an empty nonce is refused", a, "", false},
				{"a nonce of the wrong length is refused", a, "abc", false},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					err := tc.replica.Redeem(ctx, tc.nonce)
					if tc.accepted && err != nil {
						t.Fatalf("want accepted, got %v", err)
					}
					if !tc.accepted && !acme.IsKind(err, acme.BadNonce) {
						t.Fatalf("want badNonce, got %v", err)
					}
				})
			}

			// Three replicas redeem each of many nonces at once: each nonce is
			// accepted exactly once.
			const rounds = 40
			nonces := make([]string, rounds)
			for i := range nonces {
				nonces[i] = sharedIssue(t, replicas[i%3])
			}
			accepted := make([]atomic.Int64, rounds)
			var wg sync.WaitGroup
			start := make(chan struct{})
			var unexpected atomic.Value
			for _, r := range replicas {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for i, n := range nonces {
						err := r.Redeem(ctx, n)
						switch {
						case err == nil:
							accepted[i].Add(1)
						case !acme.IsKind(err, acme.BadNonce):
							unexpected.Store(err)
						}
					}
				}()
			}
			close(start)
			wg.Wait()
			if err := unexpected.Load(); err != nil {
				t.Fatalf("redeem failed: %v", err)
			}
			for i := range accepted {
				if got := accepted[i].Load(); got != 1 {
					t.Errorf("nonce %d accepted %d times by 3 concurrent replicas, want once", i, got)
				}
			}
		})
	}
}

func TestSharedExpiry(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			now := time.Unix(1_700_000_000, 0)
			clock := func() time.Time { return now }
			a, other := NewShared(st, time.Minute, 4), NewShared(st, time.Minute, 4)
			a.now, other.now = clock, clock
			old := sharedIssue(t, a)
			now = now.Add(time.Minute)
			if err := other.Redeem(ctx, old); !acme.IsKind(err, acme.BadNonce) {
				t.Fatalf("expired nonce: want badNonce, got %v", err)
			}
			// The batch is stale too: a fresh nonce comes from a new batch and lives.
			fresh := sharedIssue(t, a)
			if fresh == old {
				t.Fatal("issued the same nonce twice")
			}
			removed, err := other.Cleanup(ctx)
			if err != nil || removed != 4 {
				t.Errorf("cleanup removed %d, %v; want the 4 of the expired batch", removed, err)
			}
			if err := other.Redeem(ctx, fresh); err != nil {
				t.Fatalf("fresh nonce after cleanup: %v", err)
			}
		})
	}
}

// TestSharedBatches: issuing a batch's worth of nonces writes to the database once,
// and a batch is not handed out past half its lifetime.
func TestSharedBatches(t *testing.T) {
	st := &countingStore{Store: backends[0].open(t)}
	now := time.Unix(1_700_000_000, 0)
	s := NewShared(st, time.Hour, 16)
	s.now = func() time.Time { return now }
	seen := map[string]bool{}
	for range 16 {
		n := sharedIssue(t, s)
		if seen[n] || len(n) != Len {
			t.Fatalf("nonce %q repeated or of length %d, want %d", n, len(n), Len)
		}
		seen[n] = true
	}
	steps := []struct {
		name string
		do   func()
		adds int64
	}{
		{"16 nonces, one write", func() {}, 1},
		{"the 17th starts a new batch", func() { sharedIssue(t, s) }, 2},
		{"within the batch's fresh half, no write", func() { now = now.Add(29 * time.Minute); sharedIssue(t, s) }, 2},
		{"after half the lifetime, a new batch", func() { now = now.Add(2 * time.Minute); sharedIssue(t, s) }, 3},
	}
	for _, st2 := range steps {
		t.Run(st2.name, func(t *testing.T) {
			st2.do()
			if got := st.adds.Load(); got != st2.adds {
				t.Errorf("%d batches written, want %d", got, st2.adds)
			}
		})
	}
}

// TestSharedDatabaseDown: without a database, Issue and Redeem fail with an error
// that is not an ACME problem, which the server answers as serverInternal.
func TestSharedDatabaseDown(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			s := NewShared(st, time.Hour, 4)
			n := sharedIssue(t, s)
			st.Close()
			for range 3 { // the rest of the batch is still in memory
				sharedIssue(t, s)
			}
			if _, err := s.Issue(ctx); err == nil {
				t.Error("Issue succeeded with the database closed")
			} else if _, isProblem := acme.AsError(err); isProblem {
				t.Errorf("Issue: %v is an ACME problem, want an internal error", err)
			}
			err := s.Redeem(ctx, n)
			if err == nil {
				t.Error("Redeem succeeded with the database closed")
			} else if _, isProblem := acme.AsError(err); isProblem {
				t.Errorf("Redeem: %v is an ACME problem, want an internal error", err)
			}
		})
	}
}

func BenchmarkSharedIssueRedeem(b *testing.B) {
	s, err := store.OpenPostgres(context.Background(), cluster.NewDatabase(b), eabSecret)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	n := NewShared(s, time.Hour, 0)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v, err := n.Issue(ctx)
			if err == nil {
				err = n.Redeem(ctx, v)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// eabSecret seals the EAB keys of the stores the tests open.
var eabSecret, _ = store.GenerateEABSecret()
