package thl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/store"
)

// clock is a fake clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeSource answers loads with what the test sets.
type fakeSource struct {
	mu      sync.Mutex
	entries []Entry
	err     error
	loads   int
}

func (f *fakeSource) Load(ctx context.Context) ([]Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	if f.err != nil {
		return nil, f.err
	}
	return f.entries, nil
}

func (f *fakeSource) set(entries []Entry, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries, f.err = entries, err
}

var now0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// memStore is the store's part in a fake: each load replaces the copy and its time,
// and a record is read as store.SQL.GetRegisterRecord gives it.
type memStore struct {
	mu      sync.Mutex
	now     func() time.Time
	entries map[string]Entry
	at      time.Time
	fail    error
}

func (m *memStore) write(_ context.Context, entries []Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	m.entries, m.at = map[string]Entry{}, m.now()
	for _, e := range entries {
		m.entries[e.OID] = e
	}
	return nil
}

func (m *memStore) GetRegisterRecord(_ context.Context, oid string) (store.RegisterRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := store.RegisterRecord{Load: store.RegisterLoad{LoadedAt: m.at, Records: len(m.entries)}}
	if e, ok := m.entries[oid]; ok {
		rec.Known, rec.LongName = true, e.LongName
		rec.Register = store.OrganisationRegister{OrgOID: oid, Abbreviation: e.Abbreviation, BusinessID: e.BusinessID, Sector: string(e.Sector),
			Intermediary: e.Intermediary, Status: string(e.Status), BeginDate: e.BeginDate, ExpirationDate: e.ExpirationDate, Parent: e.Parent, SyncedAt: m.at}
	}
	return rec, nil
}

// testRegister is a register that loads into a memStore, and the store's copy
// (Stored) the lookups read.
type testRegister struct {
	*Register
	*Stored
	mem *memStore
}

func newTestRegister(t *testing.T, src Loader, c *clock) *testRegister {
	t.Helper()
	mem := &memStore{now: c.Now}
	r, err := NewRegister(Config{Source: src, Store: mem.write, Refresh: 24 * time.Hour, MaxStale: 72 * time.Hour, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &testRegister{Register: r, Stored: NewStored(mem, 72*time.Hour, c.Now), mem: mem}
}

func TestLookupActiveRules(t *testing.T) {
	c := &clock{t: now0}
	r := newTestRegister(t, &fakeSource{entries: sample}, c)
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		oid    string
		active bool
		reason string
	}{
		{"a private pharmacy is active", "1.2.246.10.12345678.10.0", true, ""},
		{"a public hospital district without an expiration date is active", "1.2.246.10.23456789.10.0", true, ""},
		{"a unit with a parent is active", "1.2.246.10.23456789.10.1001", true, ""},
		{"a Kanta intermediary is active", "1.2.246.10.34567890.10.0", true, ""},
		{"an organisation that expired is not", "1.2.246.10.45678901.10.0", false, "ended on 2020-12-31"},
		{"a passive organisation is not", "1.2.246.10.56789012.10.0", false, "is passive"},
		{"an organisation that has not begun is not", "1.2.246.10.67890123.10.0", false, "begins on 2099-01-01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := r.Lookup(context.Background(), tt.oid)
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			if e.OID != tt.oid {
				t.Errorf("Lookup returned %s", e.OID)
			}
			if got := e.ActiveAt(c.Now()); got != tt.active {
				t.Errorf("ActiveAt = %v, want %v", got, tt.active)
			}
			if got := e.InactiveReason(c.Now()); got != tt.reason {
				t.Errorf("InactiveReason = %q, want %q", got, tt.reason)
			}
		})
	}
	t.Run("an OID the register lacks is ErrNotListed", func(t *testing.T) {
		_, err := r.Lookup(context.Background(), "1.2.246.10.99999999.10.0")
		if !errors.Is(err, ErrNotListed) || !strings.Contains(err.Error(), "1.2.246.10.99999999.10.0") {
			t.Errorf("Lookup: %v, want ErrNotListed naming the OID", err)
		}
	})
}

func TestEntryActiveBoundaries(t *testing.T) {
	e := Entry{Status: StatusActive, BeginDate: date(2026, 1, 1, 0, 0, 0), ExpirationDate: date(2026, 12, 31, 23, 59, 59)}
	tests := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"the instant it begins", e.BeginDate, true},
		{"just before it begins", e.BeginDate.Add(-time.Nanosecond), false},
		{"the instant it expires", e.ExpirationDate, true},
		{"just after it expires", e.ExpirationDate.Add(time.Nanosecond), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.ActiveAt(tt.at); got != tt.want {
				t.Errorf("ActiveAt(%s) = %v, want %v", tt.at, got, tt.want)
			}
		})
	}
}

func TestRefreshKeepsLastGood(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: now0}
	src := &fakeSource{entries: sample}
	r := newTestRegister(t, src, c)
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	loaded := c.Now()
	c.Add(24 * time.Hour)
	src.set(nil, errors.New("GET https://koodistopalvelu.example/: 503 Service Unavailable"))
	if err := r.Refresh(ctx); err == nil {
		t.Fatal("Refresh succeeded with a failing source")
	}
	t.Run("lookups answer from the last good copy", func(t *testing.T) {
		e, err := r.Lookup(context.Background(), "1.2.246.10.12345678.10.0")
		if err != nil || e.LongName != "Helsingin VI apteekki" {
			t.Errorf("Lookup = %+v, %v; want the pharmacy", e, err)
		}
	})
	t.Run("the state names the last good load and the failure", func(t *testing.T) {
		s := r.State()
		if !s.LoadedAt.Equal(loaded) || s.Organisations != len(sample) || s.LastErr == nil || s.Stale {
			t.Errorf("State = %+v; want loaded at %s, %d organisations, an error, not stale", s, loaded, len(sample))
		}
	})
	t.Run("a refresh that succeeds replaces the copy", func(t *testing.T) {
		src.set(sample[:1], nil)
		if err := r.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Lookup(context.Background(), "1.2.246.10.23456789.10.0"); !errors.Is(err, ErrNotListed) {
			t.Errorf("an organisation dropped from the register is still found (%v)", err)
		}
		if s := r.State(); s.LastErr != nil || s.Organisations != 1 {
			t.Errorf("State = %+v after a good load", s)
		}
	})
}

func TestStaleRegisterFailsClosed(t *testing.T) {
	ctx := context.Background()
	const oid = "1.2.246.10.12345678.10.0"
	c := &clock{t: now0}
	src := &fakeSource{entries: sample}
	r := newTestRegister(t, src, c)

	t.Run("before the first load", func(t *testing.T) {
		_, err := r.Lookup(context.Background(), oid)
		var stale *StaleError
		if !errors.As(err, &stale) || !strings.Contains(err.Error(), "has never been loaded") || !strings.Contains(err.Error(), "issuance is paused") {
			t.Errorf("Lookup: %v, want a StaleError saying it was never loaded", err)
		}
	})
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	src.set(nil, errors.New("connection refused"))
	steps := []struct {
		name    string
		advance time.Duration
		stale   bool
	}{
		{"a day later, after a failed refresh", 24 * time.Hour, false},
		{"exactly at the maximum staleness", 48 * time.Hour, false},
		{"just past the maximum staleness", time.Nanosecond, true},
		{"a week later", 7 * 24 * time.Hour, true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			c.Add(st.advance)
			r.Refresh(ctx)
			_, err := r.Lookup(context.Background(), oid)
			var stale *StaleError
			if got := errors.As(err, &stale); got != st.stale {
				t.Fatalf("Lookup: %v; stale %v, want %v", err, got, st.stale)
			}
			if st.stale {
				for _, w := range []string{"last loaded at 2026-06-01T12:00:00Z", "issuance is paused until it can be refreshed"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				if st := r.State(); st.LastErr == nil || !st.Stale {
					t.Errorf("the register's state lacks the last failure: %+v", st)
				}
			}
		})
	}
	t.Run("a successful refresh ends the pause", func(t *testing.T) {
		src.set(sample, nil)
		if err := r.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Lookup(context.Background(), oid); err != nil {
			t.Errorf("Lookup after a good refresh: %v", err)
		}
	})
}

func TestNewRegisterRefusesConfig(t *testing.T) {
	src := &fakeSource{entries: sample}
	write := (&memStore{now: time.Now}).write
	tests := []struct {
		name  string
		cfg   Config
		wants string
	}{
		{"no source", Config{Store: write}, "needs a source and a store"},
		{"no store", Config{Source: src}, "needs a source and a store"},
		{"staleness not longer than refresh", Config{Source: src, Store: write, Refresh: 24 * time.Hour, MaxStale: 24 * time.Hour}, "must be longer than its refresh interval"},
		{"a negative refresh", Config{Source: src, Store: write, Refresh: -time.Hour}, "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRegister(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wants) {
				t.Errorf("NewRegister: %v, want an error saying %q", err, tt.wants)
			}
		})
	}
	t.Run("defaults are 24h and 72h", func(t *testing.T) {
		r, err := NewRegister(Config{Source: src, Store: write})
		if err != nil {
			t.Fatal(err)
		}
		if r.refresh != DefaultRefresh || r.maxStale != DefaultMaxStale || DefaultRefresh != 24*time.Hour || DefaultMaxStale != 72*time.Hour {
			t.Errorf("refresh %s, max stale %s", r.refresh, r.maxStale)
		}
	})
}

// TestRunRetriesAfterFailure: after a failed first load, Run tries again at the retry
// interval and the register becomes usable.
func TestRunRetriesAfterFailure(t *testing.T) {
	loaded := make(chan struct{})
	var once sync.Once
	calls := 0
	src := LoaderFunc(func(ctx context.Context) ([]Entry, error) {
		calls++
		if calls == 1 {
			return nil, errors.New("the code service is down")
		}
		once.Do(func() { close(loaded) })
		return sample, nil
	})
	mem := &memStore{now: time.Now}
	r, err := NewRegister(Config{Source: src, Store: mem.write, Refresh: time.Hour, MaxStale: 3 * time.Hour, Retry: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.Refresh(ctx); err == nil {
		t.Fatal("the first load succeeded")
	}
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	select {
	case <-loaded:
	case <-time.After(30 * time.Second):
		t.Fatal("Run never retried the failed load")
	}
	cancel()
	<-done
	if _, err := NewStored(mem, 3*time.Hour, nil).Lookup(context.Background(), "1.2.246.10.12345678.10.0"); err != nil {
		t.Errorf("Lookup after the retry: %v", err)
	}
}

// TestALoadTheStoreCannotTakeFails: a load the database does not take is a failed
// refresh: the error is returned, and the copy in the store stays the last good one
// (until it is too old).
func TestALoadTheStoreCannotTakeFails(t *testing.T) {
	c := &clock{t: now0}
	src := &fakeSource{entries: sample}
	r := newTestRegister(t, src, c)
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.Add(48 * time.Hour)
	r.mem.mu.Lock()
	r.mem.fail = errors.New("database is down")
	r.mem.mu.Unlock()
	src.set(nil, nil) // a load listing nobody would make everyone look gone; it never reaches the store
	err := r.Refresh(context.Background())
	if err == nil || !strings.Contains(err.Error(), "writing the register into the database") || !strings.Contains(err.Error(), "database is down") {
		t.Fatalf("Refresh with the database down = %v", err)
	}
	if st := r.State(); st.LastErr == nil || !st.LoadedAt.Equal(now0) {
		t.Errorf("state after the failed write: %+v", st)
	}
	if _, err := r.Lookup(context.Background(), "1.2.246.10.12345678.10.0"); err != nil {
		t.Errorf("the last good copy (48 h old) no longer answers: %v", err)
	}
	c.Add(25 * time.Hour)
	var stale *StaleError
	if _, err := r.Lookup(context.Background(), "1.2.246.10.12345678.10.0"); !errors.As(err, &stale) {
		t.Errorf("a 73 h old copy answered: %v, want a StaleError", err)
	}
}

// TestOnFailure: the alert hook hears of each failed load, after the register's
// lock is released (it may read State), and of no good one; Stale says when the
// stored copy is too old to answer.
func TestOnFailure(t *testing.T) {
	c := &clock{t: now0}
	src := &fakeSource{entries: sample}
	mem := &memStore{now: c.Now}
	var failures []error
	var r *Register
	r, err := NewRegister(Config{Source: src, Store: mem.write, Refresh: 24 * time.Hour, MaxStale: 72 * time.Hour, Now: c.Now,
		OnFailure: func(err error) {
			_ = r.State() // would deadlock under the lock
			failures = append(failures, err)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(context.Background()); err != nil || len(failures) != 0 {
		t.Fatalf("a good load: %v, %d failures reported", err, len(failures))
	}
	src.set(nil, errors.New("503 Service Unavailable"))
	if err := r.Refresh(context.Background()); err == nil || len(failures) != 1 || failures[0] != err {
		t.Fatalf("a failed load: %v; reported %v", err, failures)
	}
	stored := NewStored(mem, 72*time.Hour, c.Now)
	if stored.Stale(c.Now()) || !stored.Stale(time.Time{}) || !stored.Stale(c.Now().Add(-73*time.Hour)) {
		t.Fatal("Stale: want a fresh copy fresh, and a copy never loaded or 73 h old stale")
	}
}

// TestReadAnswersAsLookup: the register record read with the organisation
// (Stored.Read) is judged by the rules Lookup applies to the one it reads: listed
// and active, inactive, not listed, and stale.
func TestReadAnswersAsLookup(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: now0}
	r := newTestRegister(t, &fakeSource{entries: sample}, c)
	oids := []string{"1.2.246.10.12345678.10.0", "1.2.246.10.56789012.10.0", "1.2.246.10.99999999.10.0"}
	same := func(when string) {
		t.Helper()
		for _, oid := range oids {
			rec, err := r.mem.GetRegisterRecord(ctx, oid)
			if err != nil {
				t.Fatal(err)
			}
			want, wantErr := r.Lookup(ctx, oid)
			got, gotErr := r.Read(oid, rec).Lookup(ctx, oid)
			if got != want || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Errorf("%s, %s: Read answered %+v, %v; Lookup %+v, %v", when, oid, got, gotErr, want, wantErr)
			}
		}
	}
	same("never loaded")
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	same("loaded")
	c.Add(73 * time.Hour)
	same("stale")

	// A record answers for its own organisation only: another is looked up.
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	rec, _ := r.mem.GetRegisterRecord(ctx, oids[2]) // not listed
	if _, err := r.Read(oids[2], rec).Lookup(ctx, oids[0]); err != nil {
		t.Errorf("another organisation was judged from this record: %v", err)
	}
}
