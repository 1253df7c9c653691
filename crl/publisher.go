package crl

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"sync"
	"time"

	"github.com/varmenne/varmenne/store"
)

// Store is what the publisher needs of the store.
type Store interface {
	RevocationCount(ctx context.Context, issuer string) (int64, error)
	CRLEntries(ctx context.Context, issuer string, listedAfter time.Time) ([]store.CRLEntry, int64, error)
	GetCRLState(ctx context.Context, issuer string) (*store.CRLState, error)
	GetPublishedCRL(ctx context.Context, issuer string) (*store.CRLState, error)
	PublishCRL(ctx context.Context, st store.CRLState) error
	// CRLPublisher takes the right to publish the issuer's CRLs (nil, nil while
	// another holds it): a lock that dies with its holder.
	CRLPublisher(ctx context.Context, issuer string) (*store.Lock, error)
}

// Issuer is one issuing CA whose revocation status is published.
type Issuer struct {
	Name   string            // configuration name, e.g. "production"; the URL paths use it
	Cert   *x509.Certificate // the issuing CA certificate
	Key    crypto.Signer     // its key (file or HSM): signs the CRLs
	CRLURL string            // the CRL distribution point its certificates name; the CRL's IDP
	OCSP   *Responder        // its delegated OCSP responder; nil: no OCSP
}

// Responder is an issuer's delegated OCSP responder: a certificate the issuer signed
// with id-kp-OCSPSigning (and id-pkix-ocsp-nocheck), and its key.
type Responder struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Config tunes the publisher; zero values take the defaults.
type Config struct {
	// Validity is nextUpdate − thisUpdate: default and at most MaxValidity (8 h).
	Validity time.Duration
	// Interval: a new CRL at least this often, revocations or not. Default 1 h;
	// shorter than Validity, so a CRL is replaced long before it expires.
	Interval time.Duration
	// Poll is how often the store is asked for revocations the current CRL lacks
	// (also ones the CLI made in another process). Default 2 s.
	Poll time.Duration
	// Lookback keeps a revoked certificate listed this long after it expired.
	// Default 24 h; at least twice Interval.
	Lookback time.Duration
	// Holder names this publisher in what it publishes (published_by). Default:
	// host, pid and a random part.
	Holder string
	Now    func() time.Time // default time.Now
	Log    *slog.Logger     // default slog.Default()
}

func (c *Config) setDefaults() error {
	if c.Validity == 0 {
		c.Validity = MaxValidity
	}
	if c.Interval == 0 {
		c.Interval = time.Hour
	}
	if c.Poll == 0 {
		c.Poll = 2 * time.Second
	}
	if c.Lookback == 0 {
		c.Lookback = 24 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Holder == "" {
		host, _ := os.Hostname()
		var r [4]byte
		_, _ = rand.Read(r[:])
		c.Holder = fmt.Sprintf("%s:%d:%x", host, os.Getpid(), r)
	}
	switch {
	case c.Validity < 0 || c.Validity > MaxValidity:
		return fmt.Errorf("CRL validity %s: must be positive and at most %s (SOTE)", c.Validity, MaxValidity)
	case c.Interval <= 0 || c.Interval >= c.Validity:
		return fmt.Errorf("CRL interval %s: must be positive and shorter than the validity %s", c.Interval, c.Validity)
	case c.Poll <= 0 || c.Poll > c.Interval:
		return fmt.Errorf("CRL poll %s: must be positive and at most the interval %s", c.Poll, c.Interval)
	case c.Lookback < 2*c.Interval:
		return fmt.Errorf("CRL lookback %s: must be at least twice the interval %s", c.Lookback, c.Interval)
	}
	return nil
}

// Published is a CRL as it is served.
type Published struct {
	Issuer     string
	Number     int64
	ThisUpdate time.Time
	NextUpdate time.Time
	Entries    int64
	DER        []byte
}

// Publisher keeps every issuer's CRL current: it polls the store, publishes a new
// CRL within a poll of any revocation and at least every Interval, and keeps the
// last published CRL in memory for the HTTP handler. Safe for concurrent use.
type Publisher struct {
	cfg     Config
	st      Store
	order   []string
	issuers map[string]*issuerState
	tickMu  sync.Mutex // one Tick at a time

	mu        sync.Mutex
	listeners []func(issuer string)
}

type issuerState struct {
	Issuer
	mu      sync.Mutex
	current *Published
	// Touched by Tick only (one at a time, under tickMu).
	seen      int64 // revocation count at the last poll; -1 before the first
	fresh     bool  // a CRL was published by this process since it started
	failures  int
	notBefore time.Time   // backoff after a failure
	list      List        // the entries of the last CRL built, encoded: the next one encodes only what changed
	right     *store.Lock // the right to publish the issuer's CRLs; nil: not held
}

// NewPublisher checks the configuration and the issuers.
func NewPublisher(cfg Config, st Store, issuers []Issuer) (*Publisher, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("crl: %w", err)
	}
	p := &Publisher{cfg: cfg, st: st, issuers: map[string]*issuerState{}}
	for _, is := range issuers {
		switch {
		case is.Name == "" || is.Cert == nil || is.Key == nil:
			return nil, errors.New("crl: an issuer needs a name, a certificate and a key")
		case p.issuers[is.Name] != nil:
			return nil, fmt.Errorf("crl: issuer %q given twice", is.Name)
		case is.Cert.KeyUsage&x509.KeyUsageCRLSign == 0:
			return nil, fmt.Errorf("crl: issuer %q: certificate %q lacks the cRLSign key usage", is.Name, is.Cert.Subject)
		}
		p.issuers[is.Name] = &issuerState{Issuer: is, seen: -1}
		p.order = append(p.order, is.Name)
	}
	return p, nil
}

// OnRevocation registers f to be called, on the poll that notices it, when an
// issuer's revocations changed (the OCSP cache drops its answers then).
func (p *Publisher) OnRevocation(f func(issuer string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listeners = append(p.listeners, f)
}

// Current is the CRL of the issuer this process serves, or false before the first
// one is published or loaded.
func (p *Publisher) Current(issuer string) (*Published, bool) {
	is, ok := p.issuers[issuer]
	if !ok {
		return nil, false
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.current, is.current != nil
}

// Run polls until ctx ends, then gives up its rights to publish so a successor
// need not wait for its process to end.
func (p *Publisher) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Poll)
	defer t.Stop()
	for {
		_ = p.Tick(ctx)
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			p.Release(rctx)
			return
		case <-t.C:
		}
	}
}

// Release gives up the publisher's rights to publish (Run does at its end).
func (p *Publisher) Release(ctx context.Context) {
	p.tickMu.Lock()
	defer p.tickMu.Unlock()
	for _, n := range p.order {
		is := p.issuers[n]
		if is.right == nil {
			continue
		}
		if err := is.right.Release(ctx); err != nil {
			p.cfg.Log.Warn("the right to publish CRLs not released", "issuer", n, "error", err)
		}
		is.right = nil
	}
}

// Tick polls the store once for every issuer and publishes where a CRL is due. Run
// calls it; a start calls it once first so that a CRL is served from the start.
// Its error is for tests and the first call: Run only logs.
func (p *Publisher) Tick(ctx context.Context) error {
	p.tickMu.Lock()
	defer p.tickMu.Unlock()
	var errs []error
	for _, n := range p.order {
		if err := p.tick(ctx, p.issuers[n]); err != nil {
			errs = append(errs, fmt.Errorf("issuer %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

func (p *Publisher) tick(ctx context.Context, is *issuerState) error {
	log := p.cfg.Log.With("issuer", is.Name)
	count, err := p.st.RevocationCount(ctx, is.Name)
	if err != nil {
		log.Error("CRL poll failed: cannot read revocations", "error", err, "alert", true)
		return err
	}
	if count != is.seen {
		is.seen = count
		p.notify(is.Name)
	}
	state, err := p.st.GetCRLState(ctx, is.Name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Error("CRL poll failed: cannot read the CRL state", "error", err, "alert", true)
		return err
	}
	if errors.Is(err, store.ErrNotFound) {
		state = nil
	}
	if state != nil && state.Number > 0 {
		if err := p.load(ctx, is, state); err != nil {
			log.Warn("cannot load the published CRL", "number", state.Number, "error", err)
		}
	}

	now := p.cfg.Now()
	var why string
	switch {
	case state != nil && !state.FinalUntil.IsZero():
		// A retired issuer: one CRL more, its final one, then nothing.
		if state.Number > 0 && !state.NextUpdate.Before(state.FinalUntil) {
			is.fresh = true
			return nil
		}
		why = "retirement"
	case state == nil || state.Number == 0:
		why = "no CRL yet"
	case !is.fresh:
		why = "start"
	case state.Revocations != count:
		why = "revocation"
	case now.Sub(state.ThisUpdate) >= p.cfg.Interval:
		why = "interval"
	default:
		return nil
	}
	if now.Before(is.notBefore) {
		return nil // backing off after a failure; the previous CRL stays
	}
	held, err := p.holdRight(ctx, log, is)
	if err != nil {
		return p.failed(log, is, now, fmt.Errorf("taking the right to publish: %w", err))
	}
	if !held {
		// Another replica publishes; its CRL is loaded on a later poll. A start
		// needs no CRL of its own then.
		is.fresh = true
		return nil
	}
	if err := p.publish(ctx, is, state, now, why); err != nil {
		return p.failed(log, is, now, err)
	}
	is.failures, is.notBefore, is.fresh = 0, time.Time{}, true
	return nil
}

// holdRight makes sure this publisher holds the right to publish the issuer's CRLs
// now: the right it holds is checked (its connection may have ended), and a right
// it lacks is taken if nobody else holds it. A holder that dies drops the right at
// once, so a restart or a surviving replica takes it on its next poll.
func (p *Publisher) holdRight(ctx context.Context, log *slog.Logger, is *issuerState) (bool, error) {
	if is.right != nil {
		err := is.right.Check(ctx)
		if err == nil {
			return true, nil
		}
		log.Warn("the right to publish CRLs was lost; taking it again", "error", err)
		is.right = nil
	}
	right, err := p.st.CRLPublisher(ctx, is.Name)
	if err != nil || right == nil {
		return false, err
	}
	is.right = right
	return true, nil
}

// load makes the store's published CRL the one served, when it is newer.
func (p *Publisher) load(ctx context.Context, is *issuerState, state *store.CRLState) error {
	if cur, ok := p.Current(is.Name); ok && cur.Number >= state.Number {
		return nil
	}
	full, err := p.st.GetPublishedCRL(ctx, is.Name)
	if err != nil {
		return err
	}
	p.serve(is, full)
	return nil
}

func (p *Publisher) serve(is *issuerState, st *store.CRLState) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.current != nil && is.current.Number >= st.Number {
		return
	}
	is.current = &Published{Issuer: is.Name, Number: st.Number, ThisUpdate: st.ThisUpdate, NextUpdate: st.NextUpdate,
		Entries: st.Entries, DER: st.DER}
}

func (p *Publisher) notify(issuer string) {
	p.mu.Lock()
	ls := append([]func(string){}, p.listeners...)
	p.mu.Unlock()
	for _, f := range ls {
		f(issuer)
	}
}

// failed logs an alert and backs off: doubling from one poll up to a minute, so a
// broken store or HSM is not hammered, yet a CRL follows soon after it recovers.
func (p *Publisher) failed(log *slog.Logger, is *issuerState, now time.Time, err error) error {
	is.failures++
	wait := p.cfg.Poll << min(is.failures-1, 10)
	wait = min(wait, time.Minute)
	is.notBefore = now.Add(wait)
	attrs := []any{"error", err, "alert", true, "failures", is.failures, "retry_in", wait.String()}
	if cur, ok := p.Current(is.Name); ok {
		attrs = append(attrs, "served_number", cur.Number, "served_next_update", cur.NextUpdate.Format(time.RFC3339))
		if left := cur.NextUpdate.Sub(now); left < p.cfg.Validity/2 {
			attrs = append(attrs, "expires_in", left.Round(time.Second).String())
		}
	}
	log.Error("CRL not published", attrs...)
	return err
}

// publish builds the next CRL after prev (nil: the first), checks it, and records it
// in the store, which refuses it unless its number and thisUpdate move forward.
func (p *Publisher) publish(ctx context.Context, is *issuerState, prev *store.CRLState, now time.Time, why string) error {
	started := time.Now()
	thisUpdate := now.UTC().Truncate(time.Second)
	number := int64(1)
	if prev != nil && prev.Number == 0 {
		prev = &store.CRLState{FinalUntil: prev.FinalUntil} // retired before its first CRL
	}
	if prev != nil && prev.Number > 0 {
		if thisUpdate.Before(prev.ThisUpdate) {
			return fmt.Errorf("the clock went backwards: now %s is before thisUpdate %s of CRL %d; not publishing until the clock passes it",
				thisUpdate.Format(time.RFC3339), prev.ThisUpdate.UTC().Format(time.RFC3339), prev.Number)
		}
		if prev.Number == 1<<63-1 {
			return fmt.Errorf("CRL number %d cannot increase", prev.Number)
		}
		number = prev.Number + 1
	}
	rows, count, err := p.st.CRLEntries(ctx, is.Name, thisUpdate.Add(-p.cfg.Lookback))
	if err != nil {
		return fmt.Errorf("reading revocations: %w", err)
	}
	entries := make([]Entry, len(rows))
	for i, r := range rows {
		serial, err := serialBytes(r.Serial)
		if err != nil {
			return err
		}
		entries[i] = Entry{Serial: serial, RevokedAt: r.RevokedAt, Reason: r.Reason, InvalidityDate: r.InvalidityDate}
	}
	t := Template{Number: big.NewInt(number), ThisUpdate: thisUpdate, NextUpdate: thisUpdate.Add(p.cfg.Validity),
		DistributionPoint: is.CRLURL}
	if prev != nil && !prev.FinalUntil.IsZero() {
		// The retired issuer's final CRL: valid until after its last certificate
		// expired (store.RetireGeneration chose when), the one exception to the
		// 8-hour rule, which only a retirement by two administrators sets.
		t.NextUpdate, t.Final = prev.FinalUntil, true
	}
	if err := is.list.Set(entries); err != nil {
		return err
	}
	der, err := is.list.Build(is.Cert, is.Key, t)
	if err != nil {
		return err
	}
	if err := Check(der, is.Cert, t, entries, p.cfg.Now()); err != nil {
		return err
	}
	st := store.CRLState{Issuer: is.Name, Number: number, ThisUpdate: t.ThisUpdate, NextUpdate: t.NextUpdate, DER: der,
		Entries: int64(len(entries)), Revocations: count, PublishedBy: p.cfg.Holder, Final: t.Final}
	if err := p.st.PublishCRL(ctx, st); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("the database refused CRL %d: %w", number, err)
		}
		return fmt.Errorf("recording CRL %d: %w", number, err)
	}
	p.serve(is, &st)
	p.cfg.Log.Info("CRL published", "issuer", is.Name, "number", number, "entries", len(entries), "why", why, "final", t.Final,
		"this_update", t.ThisUpdate.Format(time.RFC3339), "next_update", t.NextUpdate.Format(time.RFC3339),
		"bytes", len(der), "took", time.Since(started).Round(time.Millisecond).String())
	return nil
}

// serialBytes decodes a stored serial (lower-case hex, possibly of odd length).
func serialBytes(s string) ([]byte, error) {
	if len(s)%2 == 1 {
		s = "0" + s
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("stored serial %q is not hex", s)
	}
	return b, nil
}
