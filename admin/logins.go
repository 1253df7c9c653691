package admin

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// LoginLimits bound refused logins. After PerSource refused token logins from one
// source, or PerCredential refused logins of one credential, in a Window, further
// attempts from that source or with that credential are refused (RateLimited)
// until the window ends, without their credential being checked. The counts are
// kept in the database (store rate limits), so they hold across replicas. Windows
// are fixed: multiples of Window since Go's zero time (a 15-minute window starts
// at :00, :15, :30 and :45), as every replica computes them.
type LoginLimits struct {
	// PerSource counts the refused token logins of one client address; an IPv6
	// address counts with its /64, which one client usually holds whole.
	// Certificates do not count here: TLS verified them against the operator CA,
	// so they cannot be guessed, and an operator with a certificate is not locked
	// out by someone else's guesses from a shared address (NAT, a jump host).
	PerSource int
	// PerCredential counts the refused logins of one credential: the tokens of one
	// operator name (known or not), or one client certificate.
	PerCredential int
	Window        time.Duration
}

// DefaultLoginLimits: ten refused logins in fifteen minutes per source and per
// credential. Tokens hold 256 random bits, so the limits are not what keeps them
// from being guessed; they keep a client that guesses, or that holds an old
// token, from filling the audit log and the database.
var DefaultLoginLimits = LoginLimits{PerSource: 10, PerCredential: 10, Window: 15 * time.Minute}

// withDefaults fills the zero fields of l from DefaultLoginLimits.
func (l LoginLimits) withDefaults() LoginLimits {
	if l.PerSource <= 0 {
		l.PerSource = DefaultLoginLimits.PerSource
	}
	if l.PerCredential <= 0 {
		l.PerCredential = DefaultLoginLimits.PerCredential
	}
	if l.Window <= 0 {
		l.Window = DefaultLoginLimits.Window
	}
	return l
}

// The store's names of the login counters. The refused logins of a source and of
// a credential are rate limits; the attempts refused unchecked are a tally, which
// outlives its window until its summary claims it (store.TallyPrefix).
const (
	limitLoginSource     = "admin-refused-logins-per-source"
	limitLoginCredential = "admin-refused-logins-per-credential"
	tallyLoginsThrottled = store.TallyPrefix + "admin-logins-refused-unchecked"
)

// tallyGrace is how long after a window's end its tally is summarised: an attempt
// that began before the end, on a replica whose clock is a little behind, is
// counted by then.
const tallyGrace = time.Minute

// localSource names the source of a credential that did not come over the
// network (the CLI's token file) in the audit log.
const localSource = "local"

// attempt is one login attempt: where it came from and which credential it named,
// as the limits count them.
type attempt struct {
	source     string // the client address, an IPv6 address's /64; "" not over the network
	credential string // "token:NAME" or "cert:FINGERPRINT"
	token      bool
}

// sourceKey is the source an address counts as: an IPv4 address, or the /64 of
// an IPv6 address. Anything else (not an address) counts as itself.
func sourceKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

func newAttempt(c Credential) attempt {
	a := attempt{}
	if c.Source != "" {
		a.source = sourceKey(c.Source)
	}
	if c.Cert != nil {
		a.credential = "cert:" + CertFingerprint(c.Cert)
		return a
	}
	a.token = true
	name, _, ok := cutLast(c.Token, ".")
	if !ok || CheckOperatorName(name) != nil {
		name = "?" // every string that is no operator token counts as one credential
	}
	a.credential = "token:" + name
	return a
}

// auditSource is the attempt's source as the audit log shows it.
func (a attempt) auditSource() string {
	if a.source == "" {
		return localSource
	}
	return a.source
}

// loginLimit is one limit an attempt is counted against.
type loginLimit struct {
	name, subject string
	max           int
	what          string // how a refusal names it
}

// limits are the limits the attempt is counted against: its credential's, and
// its source's for a token that came over the network.
func (s *Service) limits(a attempt) []loginLimit {
	l := s.cfg.Logins
	out := []loginLimit{{limitLoginCredential, a.credential, l.PerCredential, "for this credential"}}
	if a.token && a.source != "" {
		out = append(out, loginLimit{limitLoginSource, a.source, l.PerSource, "from " + a.source})
	}
	return out
}

// throttle refuses the attempt, unchecked, when its source or its credential has
// reached its limit of refused logins in this window; the refusal is counted in
// the window's tally of the source, which one summary event records once the
// window ended. When the counts cannot be read it refuses too.
func (s *Service) throttle(ctx context.Context, a attempt) error {
	now := s.now()
	for _, l := range s.limits(a) {
		use, err := s.st.RateLimitCount(ctx, l.name, l.subject, l.max, s.cfg.Logins.Window, now)
		if err != nil {
			return s.internal(ctx, "check the limits of refused logins", err)
		}
		if use.Allowed {
			continue
		}
		if _, err := s.st.TakeRateLimit(context.WithoutCancel(ctx), tallyLoginsThrottled, a.auditSource(), math.MaxInt32, s.cfg.Logins.Window, now); err != nil {
			s.log.ErrorContext(ctx, "admin: a login refused unchecked is missing from the count of its window", "source", a.auditSource(), "err", err)
		}
		wait := max(use.Reset.Sub(now), time.Second)
		return &Error{Kind: RateLimited, RetryAfter: wait, Detail: fmt.Sprintf(
			"%d logins were refused %s since %s, at most %d are allowed in %s; this attempt was not checked: try again after %s",
			use.Count, l.what, use.Reset.Add(-s.cfg.Logins.Window).Format(time.RFC3339), l.max, s.cfg.Logins.Window,
			use.Reset.Format(time.RFC3339))}
	}
	return nil
}

// refused counts a login refused after its credential was checked against the
// attempt's limits, and records it in the audit log.
func (s *Service) refused(ctx context.Context, a attempt, credential, why string) {
	now := s.now()
	for _, l := range s.limits(a) {
		if _, err := s.st.TakeRateLimit(context.WithoutCancel(ctx), l.name, l.subject, l.max, s.cfg.Logins.Window, now); err != nil {
			s.log.ErrorContext(ctx, "admin: a refused login was not counted", "limit", l.name, "err", err)
		}
	}
	s.note(ctx, audit.Refused("unknown", audit.Login{Credential: credential, Source: a.source}, why))
}

// SummariseLogins writes, for each window of LoginLimits that ended (a minute
// ago or more) with logins refused unchecked from a source, one
// operator.login.throttled event with their exact count. Each window's count is
// claimed in the event's transaction, so any number of replicas may run it at
// once: a window is summarised once, and a count no summary claimed stays in the
// database for the next run. It returns how many events it wrote.
func (s *Service) SummariseLogins(ctx context.Context) (int, error) {
	const page = 100
	written := 0
	for {
		ended, err := s.st.EndedTallies(ctx, tallyLoginsThrottled, s.now().Add(-tallyGrace), page)
		if err != nil {
			return written, err
		}
		for _, t := range ended {
			err := s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
				n, err := tx.ClaimTally(t.Name, t.Subject, t.Start)
				if errors.Is(err, store.ErrNotFound) {
					return nil, errNothing // another replica summarised it
				}
				return []audit.Record{audit.Refused("unknown", audit.LoginsThrottled{Source: t.Subject, Since: t.Start, Until: t.End, Attempts: n},
					"too many refused logins")}, err
			})
			switch {
			case errors.Is(err, errNothing):
			case err != nil:
				return written, err
			default:
				written++
			}
		}
		if len(ended) < page {
			return written, nil
		}
	}
}
