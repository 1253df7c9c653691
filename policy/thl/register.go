package thl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Register defaults (the --register-refresh and --register-max-stale flags).
const (
	DefaultRefresh  = 24 * time.Hour
	DefaultMaxStale = 72 * time.Hour
	// DefaultRetry is how soon a failed load is tried again (never later than the
	// refresh interval).
	DefaultRetry = 5 * time.Minute
)

// ErrNotListed: the register has no record with that OID.
var ErrNotListed = errors.New("not in THL's SOTE organisation register")

// StaleError is a lookup in a register copy that was never loaded or whose last good
// load is older than the allowed staleness: lookups fail closed until a load succeeds.
type StaleError struct {
	LoadedAt time.Time // zero: never loaded
	MaxStale time.Duration
}

func (e *StaleError) Error() string {
	if e.LoadedAt.IsZero() {
		return "the THL register has never been loaded into this CA; issuance is paused until it can be loaded"
	}
	return fmt.Sprintf("the THL register was last loaded at %s, more than %s ago; issuance is paused until it can be refreshed",
		e.LoadedAt.UTC().Format(time.RFC3339), e.MaxStale)
}

// Loader loads the whole register; Source is the real one.
type Loader interface {
	Load(ctx context.Context) ([]Entry, error)
}

// LoaderFunc adapts a function to Loader.
type LoaderFunc func(ctx context.Context) ([]Entry, error)

// Load calls f.
func (f LoaderFunc) Load(ctx context.Context) ([]Entry, error) { return f(ctx) }

// Config configures a Register.
type Config struct {
	Source Loader
	// Store writes a good load into the store, where every replica reads it
	// (Stored); required. A load it cannot write counts as failed.
	Store    func(ctx context.Context, entries []Entry) error
	Refresh  time.Duration    // 0: DefaultRefresh
	MaxStale time.Duration    // 0: DefaultMaxStale; must exceed Refresh
	Retry    time.Duration    // 0: DefaultRetry
	Now      func() time.Time // nil: time.Now
	Log      *slog.Logger     // nil: discard
	// OnFailure, if set, is told of every failed load, after it was logged (the
	// alert hook); it must not block.
	OnFailure func(err error)
}

// Register keeps the store's copy of THL's register fresh: it loads the register
// from its source every refresh interval (sooner after a failure) and writes each
// good load into the store, which every replica reads (Stored). It is safe for
// concurrent use.
type Register struct {
	src      Loader
	store    func(ctx context.Context, entries []Entry) error
	refresh  time.Duration
	maxStale time.Duration
	retry    time.Duration
	now      func() time.Time
	log      *slog.Logger
	failed   func(error)

	mu       sync.RWMutex
	count    int       // organisations in the last good load
	loadedAt time.Time // of the last good load; zero: never
	lastErr  error     // of the last load; nil when it succeeded
	tried    time.Time // of the last load
}

// NewRegister makes a register that has not been loaded yet: call Refresh (and Run).
func NewRegister(cfg Config) (*Register, error) {
	r := &Register{src: cfg.Source, store: cfg.Store, refresh: cfg.Refresh, maxStale: cfg.MaxStale, retry: cfg.Retry, now: cfg.Now, log: cfg.Log,
		failed: cfg.OnFailure}
	if r.src == nil || r.store == nil {
		return nil, errors.New("thl: the register needs a source and a store")
	}
	if r.refresh == 0 {
		r.refresh = DefaultRefresh
	}
	if r.maxStale == 0 {
		r.maxStale = DefaultMaxStale
	}
	if r.retry == 0 {
		r.retry = DefaultRetry
	}
	switch {
	case r.refresh < 0 || r.maxStale < 0 || r.retry < 0:
		return nil, errors.New("thl: register refresh, staleness and retry intervals must be positive")
	case r.maxStale <= r.refresh:
		return nil, fmt.Errorf("thl: the register's maximum staleness (%s) must be longer than its refresh interval (%s), or issuance would pause between refreshes", r.maxStale, r.refresh)
	}
	r.retry = min(r.retry, r.refresh)
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Refresh loads the register from its source and writes it into the store. On
// success the store's copy is replaced; on failure the last good copy stays in use
// (until it is older than the maximum staleness) and the error is returned.
func (r *Register) Refresh(ctx context.Context) (err error) {
	defer func() { // after the lock below is released
		if err != nil && r.failed != nil {
			r.failed(err)
		}
	}()
	entries, err := r.src.Load(ctx)
	if err == nil {
		if err = r.store(ctx, entries); err != nil {
			err = fmt.Errorf("writing the register into the database: %w", err)
		}
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tried = now
	r.lastErr = err
	if err != nil {
		attrs := []any{"err", err}
		if !r.loadedAt.IsZero() {
			attrs = append(attrs, "last_loaded", r.loadedAt, "stale_after", r.loadedAt.Add(r.maxStale))
		}
		r.log.Error("loading the THL register failed; the last good copy stays in use", attrs...)
		return err
	}
	r.count, r.loadedAt = len(entries), now
	r.log.Info("THL register loaded", "organisations", len(entries))
	return nil
}

// Run refreshes the register every refresh interval, and sooner (the retry interval)
// after a failed load, until ctx ends. The first load is the caller's (Refresh).
func (r *Register) Run(ctx context.Context) {
	for {
		wait := r.refresh
		r.mu.RLock()
		if r.lastErr != nil || r.loadedAt.IsZero() {
			wait = r.retry
		}
		r.mu.RUnlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		r.Refresh(ctx) // logged; the last good copy stays
	}
}

// State is what the register can say about this process's loads, for logs.
type State struct {
	LoadedAt      time.Time // of this process's last good load; zero: never
	Organisations int
	LastAttempt   time.Time
	LastErr       error
	Stale         bool // this process has no load younger than the maximum staleness
}

// State reports the register's state now.
func (r *Register) State() State {
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	return State{LoadedAt: r.loadedAt, Organisations: r.count, LastAttempt: r.tried, LastErr: r.lastErr,
		Stale: stale(r.loadedAt, now, r.maxStale)}
}
