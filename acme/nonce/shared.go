package nonce

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/varmenne/varmenne/acme"
)

// Store keeps the nonces that replicas share. RedeemNonce must consume value in
// one atomic step that exactly one of any number of concurrent callers wins.
type Store interface {
	AddNonces(ctx context.Context, values []string, expires time.Time) error
	RedeemNonce(ctx context.Context, value string, now time.Time) (bool, error)
	DeleteExpiredNonces(ctx context.Context, now time.Time) (int64, error)
}

// DefaultBatch is how many nonces Shared stores in one database write. A replica
// gives roughly ten nonces per issued certificate, so one write serves several
// issuances; unused nonces of a batch simply expire.
const DefaultBatch = 64

// Shared is a nonce service for replicas sharing one database. A nonce is stored
// before it is handed out, and redeeming deletes it: accepted once by any replica,
// never twice anywhere, and refused after its expiry.
//
// Issuing is cheap: nonces are stored a batch at a time and handed out from memory.
// A batch lost in a database crash only makes clients retry after badNonce; the
// deletion that redeems a nonce is durable.
type Shared struct {
	st     Store
	prefix string // names this replica in its nonces, for logs
	ttl    time.Duration
	batch  int
	now    func() time.Time

	refill chan struct{} // a one-slot lock held while a batch is stored
	mu     sync.Mutex
	ready  []string
	fresh  time.Time // the ready nonces are handed out until then
}

// NewShared makes a nonce service whose nonces live ttl; batch 0 means DefaultBatch.
func NewShared(st Store, ttl time.Duration, batch int) *Shared {
	if batch <= 0 {
		batch = DefaultBatch
	}
	return &Shared{st: st, prefix: newPrefix(), ttl: ttl, batch: batch, now: time.Now, refill: make(chan struct{}, 1)}
}

// Issue returns a fresh nonce. It fails only when a new batch cannot be stored,
// e.g. while the database is unreachable.
func (s *Shared) Issue(ctx context.Context) (string, error) {
	if n, ok := s.take(); ok {
		return n, nil
	}
	// One caller stores the next batch; the others wait for it, or for their ctx.
	select {
	case s.refill <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-s.refill }()
	if n, ok := s.take(); ok {
		return n, nil
	}
	batch := make([]string, s.batch)
	for i := range batch {
		batch[i] = newNonce(s.prefix)
	}
	now := s.now()
	if err := s.st.AddNonces(ctx, batch, now.Add(s.ttl)); err != nil {
		return "", fmt.Errorf("nonce: storing new nonces: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Half the lifetime is left for the client when the last of a batch goes out.
	s.ready, s.fresh = batch[1:], now.Add(s.ttl/2)
	return batch[0], nil
}

func (s *Shared) take() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ready) == 0 || !s.now().Before(s.fresh) {
		s.ready = nil
		return "", false
	}
	n := s.ready[0]
	s.ready = s.ready[1:]
	return n, true
}

// Redeem accepts n once, whichever replica issued it. A refusal is a badNonce
// *acme.Error; any other error means the database could not be asked.
func (s *Shared) Redeem(ctx context.Context, n string) error {
	if err := checkForm(n); err != nil {
		return err
	}
	ok, err := s.st.RedeemNonce(ctx, n, s.now())
	if err != nil {
		return fmt.Errorf("nonce: redeeming: %w", err)
	}
	if !ok {
		return acme.Errorf(acme.BadNonce, "the nonce was already used, has expired or is unknown; retry with the nonce in this response")
	}
	return nil
}

// Cleanup deletes the expired nonces of every replica and returns how many. Any
// replica may run it at any time.
func (s *Shared) Cleanup(ctx context.Context) (int64, error) {
	return s.st.DeleteExpiredNonces(ctx, s.now())
}
