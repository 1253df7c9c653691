package authority

import (
	"context"
	"errors"
	"sync"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/store"
)

// caaParallel bounds the CAA lookups one finalize runs at once.
const caaParallel = 8

// recheckCAA checks CAA again, before anything is signed, for every name of the order
// whose validation is older than the recheck window: an authorisation may be reused
// for days, and the domain may have closed its CAA to us since. Every name is
// checked and every refusal reported, one subproblem each (Let's Encrypt's 2020 bug
// checked one name of an order several times and the others never).
func (a *Authority) recheckCAA(ctx context.Context, acct *store.Account, o *store.Order) error {
	type check struct{ name, method string }
	var checks []check
	now := a.now()
	for _, id := range o.AuthzIDs {
		az, err := a.store.GetAuthorization(ctx, id)
		if err != nil {
			return a.internal(ctx, "read the order's authorizations", err)
		}
		name := az.Name
		if az.Wildcard {
			name = "*." + az.Name
		}
		if az.Status != string(acme.StatusValid) || now.After(az.Expires) {
			return acme.Errorf(acme.OrderNotReady, "the authorization for %s is no longer valid; create a new order", name)
		}
		ch := validChallenge(az)
		if ch == nil {
			return a.internal(ctx, "find how "+name+" was validated", errors.New("valid authorization without a valid challenge"))
		}
		// CAA is a DNS record of a name; an IP address has none (RFC 8738 section 7).
		if now.Sub(ch.Validated) > a.cfg.CAARecheckAfter && acme.IdentifierOf(az.Name).Type == acme.IdentifierDNS {
			checks = append(checks, check{name, ch.Type})
		}
	}

	results := make([]error, len(checks))
	sem := make(chan struct{}, caaParallel)
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, a.cfg.ValidationTimeout)
			defer cancel()
			results[i] = a.val.CAA(cctx, c.name, a.accountURI(acct.ID), c.method)
		}()
	}
	wg.Wait()

	var subs []acme.Subproblem
	kind := acme.ErrorKind("") // the one kind of every refusal, or caa when they differ
	for i, err := range results {
		if err == nil {
			continue
		}
		ae, ok := acme.AsError(err)
		if !ok {
			return a.internal(ctx, "check CAA records", err)
		}
		switch kind {
		case "":
			kind = ae.Kind
		case ae.Kind:
		default:
			kind = acme.CAA
		}
		subs = append(subs, acme.Subproblem{Type: ae.Kind.URN(), Detail: ae.Detail,
			Identifier: &acme.Identifier{Type: acme.IdentifierDNS, Value: checks[i].name}})
	}
	if len(subs) == 0 {
		return nil
	}
	a.log.InfoContext(ctx, "finalize refused by CAA", "order", o.ID, "refused", len(subs), "rechecked", len(checks))
	detail := subs[0].Detail
	if len(subs) > 1 {
		detail = "CAA records now forbid issuance for " + plural(len(subs), "name") + " of the order; see the subproblems"
	}
	// A CAA answer that failed DNSSEC validation is a dns problem (the zone must be
	// repaired), not a CAA refusal.
	return &acme.Error{Kind: kind, Detail: detail, Subproblems: subs}
}

// validChallenge is the challenge that made the authorisation valid.
func validChallenge(az *store.Authorization) *store.Challenge {
	for i := range az.Challenges {
		if az.Challenges[i].Status == string(acme.StatusValid) {
			return &az.Challenges[i]
		}
	}
	return nil
}
