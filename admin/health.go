package admin

// The CA's health as an operator sees it at a glance: each issuer's CRL and OCSP
// responder, the register copy, the HSM, the database, issuance over the last 30
// days, certificates expiring in the next 30, and the EAB requests waiting.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// CA is what the running server knows of itself and the store does not hold: its
// issuers' keys and OCSP responders, the HSM and the register's allowed age.
// serve hands it to the console (console.Server.CA); the zero CA shows no issuer.
type CA struct {
	Issuers []IssuerFacts
	HSM     *HSMFacts // nil: file keys (development)
	// RegisterMaxStale is the age past which the register copy refuses every
	// request (--register-max-stale); 0: this server needs no register.
	RegisterMaxStale time.Duration
}

// IssuerFacts is one issuer generation as the server loaded it.
type IssuerFacts struct {
	Name string // production, test, production-2, …
	Key  string // where its key is, e.g. "HSM token varmenne, label issuer-production"
	// The validity of its delegated OCSP responder's certificate; zero: none.
	OCSPNotBefore, OCSPNotAfter time.Time
}

// HSMFacts is the HSM the issuer keys are in.
type HSMFacts struct {
	Module   string
	Token    string
	Sessions int // sessions the pool keeps open
}

// The health page's thresholds.
const (
	// CRLDueWithin: a CRL whose nextUpdate is this close was not republished in
	// time (the publisher runs at least hourly with nextUpdate up to 8 h ahead).
	CRLDueWithin = 2 * time.Hour
	// OCSPRenewWithin: an OCSP responder certificate this close to its end needs a
	// new one (a restart makes it).
	OCSPRenewWithin = 7 * 24 * time.Hour
	// HealthDays is how many days the charts cover.
	HealthDays = 30
)

// HealthView is the CA's health at At. Problems holds each flagged figure in a
// sentence; none means every figure is as it should be.
type HealthView struct {
	At       time.Time
	Problems []string
	Issuers  []IssuerHealth
	Register RegisterHealth
	HSM      HSMHealth
	Database DatabaseHealth
	// Issued is the certificates stored per UTC day, the last HealthDays days
	// ending today; Expiring the unrevoked ones whose notAfter falls on each of the
	// next HealthDays days from today.
	Issued, Expiring           []DayView
	IssuedTotal, ExpiringTotal int
	Pending                    []RequestView
}

// DayView is a count of one UTC day.
type DayView struct {
	Day   time.Time
	Count int
}

// IssuerHealth is an issuer generation's state, its last published CRL and its
// OCSP responder.
type IssuerHealth struct {
	IssuerFacts
	State       string // store.GenerationActive, …; "" when the database does not know it
	Loaded      bool   // this server loaded its key
	FinalCRL    bool   // retired, and its final CRL is published: nothing more is due
	Published   bool   // a CRL was ever published
	CRLNumber   int64
	ThisUpdate  time.Time
	NextUpdate  time.Time
	Entries     int64
	PublishedBy string
	CRLDue      bool // nextUpdate within CRLDueWithin
	CRLOverdue  bool // nextUpdate passed
	OCSPSoon    bool // the responder certificate ends within OCSPRenewWithin
	OCSPExpired bool
}

// RegisterHealth is the register copy's age against what the server allows.
type RegisterHealth struct {
	RegisterCopyView
	MaxStale time.Duration // 0: not required
	Stale    bool
}

// HSMHealth is where the issuer keys are and what the audit log last said of the
// HSM: the login, a re-login, a key's self-test.
type HSMHealth struct {
	InHSM    bool
	Module   string
	Token    string
	Sessions int
	Last     []EventView // the last hsm.login, hsm.relogin and hsm.selftest events there are
}

// DatabaseHealth is the store's kind and whether it answered.
type DatabaseHealth struct {
	Kind      string
	Reachable bool
}

// Health reads the CA's health; every operator may. A figure the store cannot
// give becomes a problem on the page, not a failed page.
func (s *Service) Health(ctx context.Context, who *store.Operator, ca CA) (*HealthView, error) {
	if err := s.allow(ctx, who, "see the CA's health", Roles...); err != nil {
		return nil, err
	}
	now := s.now()
	v := &HealthView{At: now}
	problem := func(format string, args ...any) { v.Problems = append(v.Problems, fmt.Sprintf(format, args...)) }
	unread := func(what string, err error) {
		s.log.ErrorContext(ctx, "admin: health: "+what, "err", err)
		problem("The server could not read %s; the error is in its log.", what)
	}

	v.Database.Kind = s.st.Kind()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := s.st.Ping(pctx)
	cancel()
	if v.Database.Reachable = err == nil; !v.Database.Reachable {
		s.log.ErrorContext(ctx, "admin: health: database ping", "err", err)
		problem("The %s database does not answer.", v.Database.Kind)
	}

	for _, h := range s.issuerList(ctx, ca, unread) {
		f := h.IssuerFacts
		st, err := s.st.GetCRLState(ctx, f.Name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			problem("Issuer %s has never published a CRL.", f.Name)
		case err != nil:
			unread("the CRL state of issuer "+f.Name, err)
		default:
			h.Published, h.CRLNumber, h.ThisUpdate, h.NextUpdate = true, st.Number, st.ThisUpdate, st.NextUpdate
			h.Entries, h.PublishedBy = st.Entries, st.PublishedBy
			h.FinalCRL = !st.FinalUntil.IsZero() && !st.NextUpdate.Before(st.FinalUntil)
			switch {
			case h.FinalCRL: // retired: its last CRL lasts until its certificates ended
			case !now.Before(st.NextUpdate):
				h.CRLOverdue = true
				problem("The CRL of issuer %s is past its next update (%s): relying parties may refuse its certificates; is a CRL publisher running?",
					f.Name, stamp(st.NextUpdate))
			case st.NextUpdate.Sub(now) <= CRLDueWithin:
				h.CRLDue = true
				problem("The CRL of issuer %s reaches its next update within %s (%s) and was not republished.", f.Name, CRLDueWithin, stamp(st.NextUpdate))
			}
		}
		switch {
		case f.OCSPNotAfter.IsZero() || h.State == store.GenerationRetired:
		case !now.Before(f.OCSPNotAfter):
			h.OCSPExpired = true
			problem("The OCSP responder certificate of issuer %s ended %s: its OCSP answers are refused.", f.Name, stamp(f.OCSPNotAfter))
		case f.OCSPNotAfter.Sub(now) <= OCSPRenewWithin:
			h.OCSPSoon = true
			problem("The OCSP responder certificate of issuer %s ends %s; restart the server to make a new one.", f.Name, stamp(f.OCSPNotAfter))
		}
		v.Issuers = append(v.Issuers, h)
	}

	v.Register.MaxStale = ca.RegisterMaxStale
	if l, err := s.st.LastRegisterLoad(ctx); err != nil {
		unread("the register's last load", err)
	} else {
		v.Register.RegisterCopyView = *registerCopyView(l, now)
		switch {
		case ca.RegisterMaxStale <= 0:
		case !v.Register.Loaded:
			v.Register.Stale = true
			problem("THL's register was never loaded: every request is refused until it is.")
		case v.Register.Age() > ca.RegisterMaxStale:
			v.Register.Stale = true
			problem("THL's register copy is %s old, more than the %s allowed: every request is refused until a load succeeds.", v.Register.Age(), ca.RegisterMaxStale)
		}
	}

	if ca.HSM != nil {
		v.HSM = HSMHealth{InHSM: true, Module: ca.HSM.Module, Token: ca.HSM.Token, Sessions: ca.HSM.Sessions}
		for _, a := range []audit.Action{audit.ActHSMLogin, audit.ActHSMRelogin, audit.ActHSMSelfTest} {
			events, err := s.st.FindAuditEvents(ctx, store.AuditFilter{Action: string(a), Newest: true, Limit: 1})
			if err != nil {
				unread("the audit log's HSM events", err)
				break
			}
			for _, e := range events {
				v.HSM.Last = append(v.HSM.Last, EventViewOf(e))
				if e.Outcome != audit.OK {
					problem("The last %s of the HSM (%s) says: %s", e.Action, stamp(e.Time), e.Outcome)
				}
			}
		}
	}

	today := now.Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -(HealthDays - 1))
	if counts, err := s.st.IssuedPerDay(ctx, first, today.AddDate(0, 0, 1)); err != nil {
		unread("the certificates issued per day", err)
	} else {
		v.Issued, v.IssuedTotal = days(first, counts)
	}
	if counts, err := s.st.ExpiringPerDay(ctx, now, today.AddDate(0, 0, HealthDays)); err != nil {
		unread("the certificates expiring per day", err)
	} else {
		v.Expiring, v.ExpiringTotal = days(today, counts)
	}

	if reqs, err := s.st.ListEABRequests(ctx, store.EABRequestRequested, ""); err != nil {
		unread("the pending EAB requests", err)
	} else {
		v.Pending = requestViews(reqs)
	}
	return v, nil
}

// issuerList is every issuer generation the database knows, in its order, with
// what this server loaded of it, then any the server loaded that the database
// does not know (yet).
func (s *Service) issuerList(ctx context.Context, ca CA, unread func(string, error)) []IssuerHealth {
	facts := map[string]IssuerFacts{}
	for _, f := range ca.Issuers {
		facts[f.Name] = f
	}
	gens, err := s.st.IssuerGenerations(ctx)
	if err != nil {
		unread("the issuer generations", err)
	}
	var out []IssuerHealth
	seen := map[string]bool{}
	for _, g := range gens {
		f, loaded := facts[g.Name]
		if !loaded {
			f = IssuerFacts{Name: g.Name, Key: "not loaded by this server"}
		}
		out = append(out, IssuerHealth{IssuerFacts: f, State: g.State, Loaded: loaded})
		seen[g.Name] = true
	}
	for _, f := range ca.Issuers {
		if !seen[f.Name] {
			out = append(out, IssuerHealth{IssuerFacts: f, Loaded: true})
		}
	}
	return out
}

// days is HealthDays days from first, each with its count (0 where counts has
// none), and their sum.
func days(first time.Time, counts []store.DayCount) ([]DayView, int) {
	by := map[time.Time]int{}
	for _, c := range counts {
		by[c.Day.UTC()] = c.Count
	}
	out := make([]DayView, HealthDays)
	total := 0
	for i := range out {
		d := first.AddDate(0, 0, i)
		out[i] = DayView{Day: d, Count: by[d]}
		total += by[d]
	}
	return out, total
}
