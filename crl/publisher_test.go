package crl

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/varmenne/varmenne/revocation"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/store"
)

// pubFixture is a publisher of two issuers on a real SQLite store, with a fake clock.
type pubFixture struct {
	t      *testing.T
	db     *db
	clock  *clock
	prod   Issuer
	test   Issuer
	logs   *logBuffer
	p      *Publisher
	events []string // OnRevocation calls
}

func newPubFixture(t *testing.T, cfg Config) *pubFixture {
	t.Helper()
	f := &pubFixture{t: t, db: newDB(t), clock: newClock(), prod: newIssuer(t, "production", nil), test: newIssuer(t, "test", nil)}
	f.p = f.publisher(cfg)
	return f
}

// publisher starts another publisher (a restart, or a replica) on the same store.
func (f *pubFixture) publisher(cfg Config) *Publisher {
	f.t.Helper()
	log, buf := newLog()
	f.logs = buf
	if cfg.Now == nil {
		cfg.Now = f.clock.Now
	}
	cfg.Log = log
	p, err := NewPublisher(cfg, f.db, []Issuer{f.prod, f.test})
	if err != nil {
		f.t.Fatal(err)
	}
	p.OnRevocation(func(issuer string) { f.events = append(f.events, issuer) })
	return p
}

func (f *pubFixture) tick(t *testing.T) {
	t.Helper()
	if err := f.p.Tick(context.Background()); err != nil {
		t.Fatalf("tick: %v\n%s", err, f.logs)
	}
}

// served parses the CRL the publisher serves for issuer and checks its signature.
func (f *pubFixture) served(t *testing.T, issuer Issuer) *x509.RevocationList {
	t.Helper()
	cur, ok := f.p.Current(issuer.Name)
	if !ok {
		t.Fatalf("no CRL served for %s", issuer.Name)
	}
	rl, err := x509.ParseRevocationList(cur.DER)
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.CheckSignatureFrom(issuer.Cert); err != nil {
		t.Fatal(err)
	}
	if rl.Number.Cmp(big.NewInt(cur.Number)) != 0 || !rl.ThisUpdate.Equal(cur.ThisUpdate) || !rl.NextUpdate.Equal(cur.NextUpdate) {
		t.Fatalf("served metadata %+v differs from the CRL's", cur)
	}
	return rl
}

func serials(rl *x509.RevocationList) string {
	var s []string
	for _, e := range rl.RevokedCertificateEntries {
		s = append(s, fmt.Sprintf("%x", e.SerialNumber))
	}
	return strings.Join(s, ",")
}

func TestPublisherNumbersDatesAndEntries(t *testing.T) {
	f := newPubFixture(t, Config{})
	f.db.issue("0a", "production", t0.AddDate(1, 0, 0))
	f.db.issue("0b", "production", t0.AddDate(1, 0, 0))
	f.db.issue("1a", "test", t0.AddDate(1, 0, 0))
	f.db.revoke("0a", t0.Add(-time.Minute), revocation.KeyCompromise.Code, t0.Add(-time.Hour))

	steps := []struct {
		name       string
		do         func()
		wantNumber int64
		wantProd   string // serials on the production CRL
		wantThis   time.Time
	}{
		{name: "the first tick publishes number 1 with what is revoked",
			do: func() {}, wantNumber: 1, wantProd: "a", wantThis: t0},
		{name: "a tick with nothing new publishes nothing",
			do: func() { f.clock.Add(30 * time.Second) }, wantNumber: 1, wantProd: "a", wantThis: t0},
		{name: "a revocation gives a new CRL on the next poll",
			do: func() {
				f.clock.Add(2 * time.Second)
				f.db.revoke("0b", f.clock.Now(), revocation.Unspecified.Code, time.Time{})
			},
			wantNumber: 2, wantProd: "a,b", wantThis: t0.Add(32 * time.Second)},
		{name: "an hour without revocations gives a new CRL all the same",
			do: func() { f.clock.Add(time.Hour) }, wantNumber: 3, wantProd: "a,b", wantThis: t0.Add(time.Hour + 32*time.Second)},
		{name: "a revocation of the other issuer leaves this CRL alone",
			do: func() {
				f.clock.Add(2 * time.Second)
				f.db.revoke("1a", f.clock.Now(), revocation.Superseded.Code, time.Time{})
			},
			wantNumber: 3, wantProd: "a,b", wantThis: t0.Add(time.Hour + 32*time.Second)},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do()
			f.tick(t)
			rl := f.served(t, f.prod)
			if rl.Number.Int64() != s.wantNumber || serials(rl) != s.wantProd || !rl.ThisUpdate.Equal(s.wantThis) {
				t.Fatalf("number %d, entries %s, thisUpdate %s; want %d, %s, %s", rl.Number, serials(rl), rl.ThisUpdate,
					s.wantNumber, s.wantProd, s.wantThis)
			}
			if want := rl.ThisUpdate.Add(MaxValidity); !rl.NextUpdate.Equal(want) {
				t.Errorf("nextUpdate %s, want thisUpdate + 8 h = %s", rl.NextUpdate, want)
			}
		})
	}
	t.Run("entries carry time, reason and invalidity date; unspecified has no reason", func(t *testing.T) {
		rl := f.served(t, f.prod)
		a, b := rl.RevokedCertificateEntries[0], rl.RevokedCertificateEntries[1]
		if !a.RevocationTime.Equal(t0.Add(-time.Minute)) || a.ReasonCode != revocation.KeyCompromise.Code || extension(a.Extensions, oidInvalidityDate) == nil {
			t.Errorf("entry a: %s reason %d extensions %v", a.RevocationTime, a.ReasonCode, a.Extensions)
		}
		if len(b.Extensions) != 0 {
			t.Errorf("entry b (unspecified) has extensions %v", b.Extensions)
		}
	})
	t.Run("the test issuer's CRL lists only its own", func(t *testing.T) {
		if got := serials(f.served(t, f.test)); got != "1a" {
			t.Errorf("test CRL lists %s, want 1a", got)
		}
	})
	t.Run("listeners hear of each issuer's revocations", func(t *testing.T) {
		// First poll of each issuer, production's revocation, test's revocation.
		want := []string{"production", "test", "production", "test"}
		if !slices.Equal(f.events, want) {
			t.Errorf("OnRevocation calls %v, want %v", f.events, want)
		}
	})
	t.Run("the store records what was published", func(t *testing.T) {
		st, err := f.db.GetCRLState(context.Background(), "production")
		if err != nil || st.Number != 3 || st.Entries != 2 || st.Revocations != 2 {
			t.Errorf("state %+v, %v; want number 3, 2 entries covering 2 revocations", st, err)
		}
	})
}

func TestPublisherListsIntentsAndKeepsExpiredForTheLookback(t *testing.T) {
	f := newPubFixture(t, Config{Lookback: 24 * time.Hour})
	f.db.issue("0a", "production", t0.Add(time.Hour))   // expires an hour after t0
	f.db.issue("0b", "production", t0.AddDate(1, 0, 0)) // expires much later
	f.db.intent("0c", "production", nil)                // signed perhaps, never stored
	for _, s := range []string{"0a", "0b", "0c"} {
		f.db.revoke(s, t0, revocation.Superseded.Code, time.Time{})
	}
	cases := []struct {
		name  string
		after time.Duration
		want  string
	}{
		{"all listed while unexpired", 0, "a,b,c"},
		{"an expired one stays within the lookback", 24*time.Hour + time.Hour - time.Second, "a,b,c"},
		{"and is gone from the first CRL after it; an intent of unknown expiry stays", 26 * time.Hour, "b,c"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.clock.Set(t0.Add(tc.after))
			f.tick(t)
			if got := serials(f.served(t, f.prod)); got != tc.want {
				t.Errorf("entries %s, want %s", got, tc.want)
			}
		})
	}
}

func TestPublisherNumbersIncreaseAcrossRestarts(t *testing.T) {
	f := newPubFixture(t, Config{})
	f.tick(t)
	cases := []struct {
		name string
		stop func()
		wait time.Duration
	}{
		{"after a clean stop (right released)", func() { f.p.Release(context.Background()) }, time.Second},
		{"after another clean stop", func() { f.p.Release(context.Background()) }, time.Second},
	}
	last := int64(1)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.stop()
			f.p = f.publisher(Config{})
			f.clock.Add(tc.wait)
			f.tick(t)
			cur, _ := f.p.Current("production")
			if cur.Number != last+1 {
				t.Fatalf("published number %d after %d, want %d", cur.Number, last, last+1)
			}
			last = cur.Number
		})
	}
	holder := f.p
	t.Run("a start while the holder lives serves the holder's CRL", func(t *testing.T) {
		f.p = f.publisher(Config{})
		f.clock.Add(time.Second)
		f.tick(t)
		if cur, _ := f.p.Current("production"); cur.Number != last {
			t.Errorf("published number %d while another held the right; want it to serve %d", cur.Number, last)
		}
	})
	// A process's death lets go of its rights as Release does (the kernel closes
	// its lock files, PostgreSQL ends its session): TestLocksDieWithTheirProcess
	// in store.
	t.Run("once the holder lets go, a revocation is published on the next poll", func(t *testing.T) {
		holder.Release(context.Background())
		f.db.issue("0a", "production", t0.AddDate(1, 0, 0))
		f.db.revoke("0a", f.clock.Now(), revocation.Superseded.Code, time.Time{})
		f.clock.Add(2 * time.Second)
		f.tick(t)
		if rl := f.served(t, f.prod); rl.Number.Int64() != last+1 || serials(rl) != "a" {
			t.Errorf("serves number %d with %s, want %d with a", rl.Number, serials(rl), last+1)
		}
	})
}

// staleState makes the publisher read an older CRL state than the store holds, as
// if another replica had published in between.
type staleState struct {
	*db
	stale *store.CRLState
}

func (s *staleState) GetCRLState(ctx context.Context, issuer string) (*store.CRLState, error) {
	if issuer == "production" && s.stale != nil {
		return s.stale, nil
	}
	return s.db.GetCRLState(ctx, issuer)
}

func TestPublisherRefusesToPublish(t *testing.T) {
	t.Run("a number that would not increase", func(t *testing.T) {
		f := newPubFixture(t, Config{})
		f.tick(t) // number 1
		first, _ := f.db.GetCRLState(context.Background(), "production")
		f.clock.Add(time.Hour)
		f.tick(t)                         // number 2
		f.p.Release(context.Background()) // the refused publisher holds the right
		log, logs := newLog()
		p, err := NewPublisher(Config{Now: f.clock.Now, Log: log, Holder: f.p.cfg.Holder}, &staleState{db: f.db, stale: first}, []Issuer{f.prod})
		if err != nil {
			t.Fatal(err)
		}
		f.clock.Add(time.Second)
		err = p.Tick(context.Background())
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("tick: %v, want a conflict", err)
		}
		if !strings.Contains(logs.String(), `"msg":"CRL not published"`) || !strings.Contains(logs.String(), `"alert":true`) {
			t.Errorf("no alert logged:\n%s", logs)
		}
		if st, _ := f.db.GetCRLState(context.Background(), "production"); st.Number != 2 {
			t.Errorf("store holds number %d, want 2", st.Number)
		}
		if cur, _ := p.Current("production"); cur == nil || cur.Number != 2 {
			t.Errorf("serves %+v, want the published number 2 (loaded, not the refused one)", cur)
		}
	})
	t.Run("a thisUpdate before the last one (the clock went back)", func(t *testing.T) {
		f := newPubFixture(t, Config{})
		f.tick(t)
		f.clock.Set(t0.Add(-time.Hour))
		f.db.issue("0a", "production", t0.AddDate(1, 0, 0))
		f.db.revoke("0a", t0, revocation.Superseded.Code, time.Time{})
		err := f.p.Tick(context.Background())
		if err == nil || !strings.Contains(err.Error(), "clock went backwards") {
			t.Fatalf("tick: %v, want a refusal naming the clock", err)
		}
		if !strings.Contains(f.logs.String(), `"alert":true`) {
			t.Errorf("no alert logged:\n%s", f.logs)
		}
		if cur, _ := f.p.Current("production"); cur.Number != 1 {
			t.Errorf("serves number %d, want 1", cur.Number)
		}
		t.Run("and publishes once the clock passes it", func(t *testing.T) {
			f.clock.Set(t0.Add(time.Minute)) // past the backoff too
			f.tick(t)
			if rl := f.served(t, f.prod); rl.Number.Int64() != 2 || serials(rl) != "a" {
				t.Errorf("number %d with %s, want 2 with a", rl.Number, serials(rl))
			}
		})
	})
}

// TestPublisherReplicasShareOneSequence: two publishers on one database take turns
// through the right to publish, and both serve the newest CRL.
func TestPublisherReplicasShareOneSequence(t *testing.T) {
	f := newPubFixture(t, Config{Holder: "a"})
	a := f.p
	b := f.publisher(Config{Holder: "b"})
	ctx := context.Background()
	if err := a.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	f.db.issue("0a", "production", t0.AddDate(1, 0, 0))
	f.db.revoke("0a", t0, revocation.Superseded.Code, time.Time{})
	f.clock.Add(time.Second)
	for _, p := range []*Publisher{b, a, b} {
		if err := p.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	st, err := f.db.GetCRLState(ctx, "production")
	if err != nil || st.Number != 2 || st.Revocations != 1 {
		t.Fatalf("state %+v, %v: want number 2 covering the revocation (a published; b did not hold the right)", st, err)
	}
	for name, p := range map[string]*Publisher{"a": a, "b": b} {
		if cur, _ := p.Current("production"); cur.Number != 2 {
			t.Errorf("replica %s serves number %d, want 2", name, cur.Number)
		}
	}
}

// failingStore fails the publication of CRLs.
type failingStore struct {
	*db
	fail bool
}

func (s *failingStore) PublishCRL(ctx context.Context, st store.CRLState) error {
	if s.fail {
		return errors.New("database is down")
	}
	return s.db.PublishCRL(ctx, st)
}

func TestPublisherBacksOffAndKeepsTheLastCRL(t *testing.T) {
	f := newPubFixture(t, Config{})
	fs := &failingStore{db: f.db}
	log, logs := newLog()
	p, err := NewPublisher(Config{Now: f.clock.Now, Log: log, Poll: 2 * time.Second}, fs, []Issuer{f.prod})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	fs.fail = true
	f.db.issue("0a", "production", t0.AddDate(1, 0, 0))
	f.db.revoke("0a", t0, revocation.Superseded.Code, time.Time{})
	steps := []struct {
		after    time.Duration
		attempts int // "CRL not published" lines so far
	}{
		{0, 1},
		{time.Second, 1}, // within the 2 s backoff: no attempt
		{2 * time.Second, 2},
		{3 * time.Second, 2}, // backoff now 4 s
		{4 * time.Second, 3},
	}
	for _, s := range steps {
		f.clock.Add(s.after)
		_ = p.Tick(ctx)
		if n := strings.Count(logs.String(), `"msg":"CRL not published"`); n != s.attempts {
			t.Fatalf("after +%s: %d attempts, want %d", s.after, n, s.attempts)
		}
	}
	if cur, _ := p.Current("production"); cur.Number != 1 {
		t.Errorf("serves number %d, want the last good CRL, 1", cur.Number)
	}
	fs.fail = false
	f.clock.Add(time.Minute)
	if err := p.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if cur, _ := p.Current("production"); cur.Number != 2 {
		t.Errorf("after recovery serves number %d, want 2", cur.Number)
	}
}

func TestPublisherConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"validity over 8 hours", Config{Validity: 8*time.Hour + time.Second}, "at most 8h0m0s"},
		{"interval not shorter than the validity", Config{Validity: time.Hour, Interval: time.Hour}, "shorter than the validity"},
		{"lookback under twice the interval", Config{Lookback: time.Hour}, "twice the interval"},
		{"poll longer than the interval", Config{Poll: 2 * time.Hour}, "at most the interval"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPublisher(tc.cfg, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewPublisher: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestPublisherLostRightIsTakenAgainOrLeft: a publisher whose right to publish was
// dropped under it (its database session ended) notices before it publishes, and
// publishes only if it can take the right again; meanwhile another holds it.
func TestPublisherLostRightIsTakenAgainOrLeft(t *testing.T) {
	f := newPubFixture(t, Config{Holder: "a"})
	a := f.p
	b := f.publisher(Config{Holder: "b"})
	ctx := context.Background()
	f.tick(t) // a holds the right and publishes number 1
	if err := a.issuers["production"].right.Release(ctx); err != nil {
		t.Fatal(err)
	}
	f.db.issue("0a", "production", t0.AddDate(1, 0, 0))
	f.db.revoke("0a", t0, revocation.Superseded.Code, time.Time{})
	f.clock.Add(2 * time.Second)
	if err := b.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	f.db.issue("0b", "production", t0.AddDate(1, 0, 0))
	f.db.revoke("0b", t0, revocation.Superseded.Code, time.Time{})
	f.clock.Add(2 * time.Second)
	if err := a.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := f.db.GetCRLState(ctx, "production")
	if err != nil || st.Number != 2 || st.PublishedBy != "b" {
		t.Fatalf("state %+v, %v: want number 2 by b (a lost its right to b)", st, err)
	}
	if cur, _ := a.Current("production"); cur.Number != 2 {
		t.Errorf("a serves number %d, want b's 2", cur.Number)
	}
	b.Release(ctx)
	f.clock.Add(2 * time.Second)
	if err := a.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if rl := f.served(t, f.prod); rl.Number.Int64() != 3 || serials(rl) != "a,b" {
		t.Errorf("a serves number %d with %s once b let go; want 3 with a,b", rl.Number, serials(rl))
	}
}
