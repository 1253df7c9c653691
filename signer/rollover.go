package signer

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// Rollover is one profile's CA across the generations of its issuer (practice
// statement 6.6): it issues with the active generation's CA and keeps the others
// known, so that a certificate of an earlier generation is still served with its
// own chain. Activate moves issuance to another generation while requests run; a
// request already in Issue finishes on the generation it began with. Safe for
// concurrent use.
type Rollover struct {
	hierarchy string
	byName    map[string]*CA
	names     []string
	active    atomic.Pointer[CA]
}

// NewRollover makes a Rollover of the CAs of one hierarchy's generations (one per
// generation, all of the same profile), issuing with the one named active, which
// must outlive the profile's longest certificate (Activate).
func NewRollover(hierarchy string, cas []*CA, active string, now time.Time) (*Rollover, error) {
	r := &Rollover{hierarchy: hierarchy, byName: map[string]*CA{}}
	for _, ca := range cas {
		name := ca.Issuer().Name
		if r.byName[name] != nil {
			return nil, fmt.Errorf("signer: issuer generation %q given twice", name)
		}
		r.byName[name] = ca
		r.names = append(r.names, name)
	}
	slices.Sort(r.names)
	if err := r.Activate(active, now); err != nil {
		return nil, err
	}
	return r, nil
}

// Activate makes the generation named so the one that issues, unless the
// profile's longest certificate would outlast it (CA.CheckIssuerLife): then the
// generation that issued goes on.
func (r *Rollover) Activate(name string, now time.Time) error {
	ca := r.byName[name]
	if ca == nil {
		return fmt.Errorf("signer: the %s hierarchy has no issuer generation %q here (loaded: %q); its certificate and key must be in the PKI directory of every replica, which loads them at start",
			r.hierarchy, name, r.names)
	}
	if err := ca.CheckIssuerLife(now); err != nil {
		return err
	}
	r.active.Store(ca)
	return nil
}

// Active is the CA that issues now.
func (r *Rollover) Active() *CA { return r.active.Load() }

// Issue issues with the active generation.
func (r *Rollover) Issue(ctx context.Context, req Request) (*Issued, error) {
	return r.active.Load().Issue(ctx, req)
}

// Issuer is the active generation's issuer.
func (r *Rollover) Issuer() *Issuer { return r.active.Load().Issuer() }

// Validity is the active generation's answer.
func (r *Rollover) Validity(req Request) (notBefore, notAfter time.Time, err error) {
	return r.active.Load().Validity(req)
}

// Generation is the issuer of the generation named so, or nil.
func (r *Rollover) Generation(name string) *Issuer {
	if ca := r.byName[name]; ca != nil {
		return ca.Issuer()
	}
	return nil
}
