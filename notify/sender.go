package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/revocation"
	"github.com/varmenne/varmenne/store"
)

// Store is what the sender reads and claims.
type Store interface {
	ClaimRevocationNotice(ctx context.Context, holder string, now, since time.Time, lease time.Duration) (*store.RevocationNotice, error)
	GetRevocation(ctx context.Context, serial string) (*store.Revocation, error)
	GetCertificate(ctx context.Context, serial string) (*store.Certificate, error)
	GetAccount(ctx context.Context, id string) (*store.Account, error)
	GetEAB(ctx context.Context, kid string) (*store.EABKey, error)
	GetEABRequest(ctx context.Context, id string) (*store.EABRequest, error)
}

// Log runs a change and its audit records in one transaction (audit.Log).
type Log interface {
	Do(ctx context.Context, change func(tx *store.Tx) ([]audit.Record, error)) error
}

// The sender's schedule.
const (
	// Poll is how often the outbox is read.
	Poll = 2 * time.Second
	// MaxAge: a notice queued longer ago is not sent (a queue that grew while no
	// SMTP server was configured would tell holders of old news).
	MaxAge = 24 * time.Hour
	// lease is how long a claimed notice is this sender's; longer than a try.
	lease = 3 * time.Minute
)

// Retries are the waits before the second and third tries: three tries over a
// minute, then the notice is given up (and the audit log says so).
var Retries = []time.Duration{20 * time.Second, 40 * time.Second}

// Sender sends the queued notices.
type Sender struct {
	Mail   Config
	St     Store
	Log    Log
	Logger *slog.Logger
	Now    func() time.Time // nil: time.Now
	holder string
}

// Run sends notices until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	if s.Now == nil {
		s.Now = time.Now
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	s.holder = "notify-" + hex.EncodeToString(id)
	t := time.NewTicker(Poll)
	defer t.Stop()
	for {
		s.drain(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// drain sends every notice that is due.
func (s *Sender) drain(ctx context.Context) {
	for ctx.Err() == nil {
		now := s.Now()
		n, err := s.St.ClaimRevocationNotice(ctx, s.holder, now, now.Add(-MaxAge), lease)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
			return
		}
		if err != nil {
			s.Logger.Error("revocation notices: read the outbox", "err", err)
			return
		}
		s.send(ctx, n)
	}
}

// send makes one try at n and records it.
func (s *Sender) send(ctx context.Context, n *store.RevocationNotice) {
	notice, to, err := s.compose(ctx, n.Serial)
	if err != nil {
		s.Logger.Error("revocation notice: read the revocation", "serial", n.Serial, "err", err)
		s.finish(ctx, n, len(to), err, false)
		return
	}
	if len(to) == 0 {
		s.finish(ctx, n, 0, nil, true)
		return
	}
	msg, err := Compose(*notice, s.Mail.From, to, s.Now())
	if err == nil {
		_, err = s.Mail.Send(ctx, to, msg)
	}
	s.finish(ctx, n, len(to), err, false)
}

// finish records the try: sent, skipped (no address), or failed, to be tried
// again while tries remain and the refusal was not final.
func (s *Sender) finish(ctx context.Context, n *store.RevocationNotice, recipients int, sendErr error, skipped bool) {
	now := s.Now()
	ev := audit.RevocationNoticed{Serial: n.Serial, Recipients: recipients, Attempt: n.Attempts}
	outcome, done := audit.OK, true
	switch {
	case skipped:
		outcome = "skipped: no e-mail address of the holder is known"
	case sendErr != nil:
		outcome = "failed: " + sendErr.Error()
		if n.Attempts <= len(Retries) && !Permanent(sendErr) {
			done = false
			ev.Retry = now.Add(Retries[n.Attempts-1])
		}
	}
	next := ev.Retry
	if done {
		next = now
	}
	stored := outcome
	if len(stored) > 500 {
		stored = stored[:500]
	}
	err := s.Log.Do(context.WithoutCancel(ctx), func(tx *store.Tx) ([]audit.Record, error) {
		if err := tx.FinishRevocationNotice(n.Serial, s.holder, done, stored, now, next); err != nil {
			return nil, err
		}
		return []audit.Record{{Actor: "system", Event: ev, Outcome: stored}}, nil
	})
	log := s.Logger.Info
	if sendErr != nil {
		log = s.Logger.Warn
	}
	log("revocation notice", "serial", n.Serial, "recipients", recipients, "attempt", n.Attempts, "outcome", outcome)
	if err != nil {
		s.Logger.Error("revocation notice: record the try", "serial", n.Serial, "err", err)
	}
}

// compose reads what the notice says and who receives it: the mailto: contacts
// of the account that ordered the certificate and the technical contact of the
// EAB request that made the account's key. A serial with no stored certificate
// names no account: nobody is told.
func (s *Sender) compose(ctx context.Context, serial string) (*Notice, []string, error) {
	r, err := s.St.GetRevocation(ctx, serial)
	if err != nil {
		return nil, nil, err
	}
	n := &Notice{Serial: r.Serial, Reason: revocation.Name(r.Reason), RevokedAt: r.RevokedAt, RequestedAt: r.RequestedAt,
		InvalidityDate: r.InvalidityDate, RequestedBy: r.RequestedBy}
	c, err := s.St.GetCertificate(ctx, serial)
	if errors.Is(err, store.ErrNotFound) {
		return n, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	n.Names, n.Organisation = c.Names, c.OrgOID
	acct, err := s.St.GetAccount(ctx, c.AccountID)
	if errors.Is(err, store.ErrNotFound) {
		return n, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	technical := ""
	if k, err := s.St.GetEAB(ctx, acct.EABKID); err == nil && k.RequestID != "" {
		req, err := s.St.GetEABRequest(ctx, k.RequestID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, nil, err
		}
		if err == nil {
			technical = req.TechnicalContact
		}
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	return n, Recipients(acct.Contacts, technical), nil
}
