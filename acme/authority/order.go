package authority

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/validate"
	"github.com/varmenne/varmenne/policy/names"
	"github.com/varmenne/varmenne/store"
)

// NewOrder checks the identifiers against syntax and the organisation's domains and
// creates the order with one pending authorisation per name.
func (a *Authority) NewOrder(ctx context.Context, acct *store.Account, req acme.NewOrderRequest) (*store.Order, error) {
	if len(req.Identifiers) == 0 {
		return nil, acme.Errorf(acme.Malformed, "the order has no identifiers")
	}
	if len(req.Identifiers) > a.cfg.MaxIdentifiers {
		return nil, acme.Errorf(acme.RejectedIdentifier, "the order has %d identifiers; at most %d are allowed", len(req.Identifiers), a.cfg.MaxIdentifiers)
	}
	profile := req.Profile
	if profile == "" {
		profile = a.cfg.DefaultProfile
	}
	if profile != a.cfg.DefaultProfile {
		return nil, acme.Errorf(acme.InvalidProfile, "profile %q is not offered; this server offers %q", req.Profile, a.cfg.DefaultProfile)
	}
	org, err := a.store.GetOrganisation(ctx, acct.OrgOID)
	if err != nil {
		return nil, a.internal(ctx, "look up the organisation", err)
	}
	allowed := org.Domains
	if ek, err := a.store.GetEAB(ctx, acct.EABKID); err == nil && len(ek.Domains) > 0 {
		allowed = ek.Domains
	} else if err != nil && !isNotFound(err) {
		return nil, a.internal(ctx, "look up the EAB key", err)
	}

	list, err := a.checkIdentifiers(req.Identifiers, org.OID, allowed)
	if err != nil {
		return nil, err
	}
	notBefore, notAfter, err := a.checkValidityRequest(req.NotBefore, req.NotAfter)
	if err != nil {
		return nil, err
	}

	now := a.now()
	o := store.Order{
		ID:        newID(),
		AccountID: acct.ID,
		OrgOID:    acct.OrgOID,
		Status:    string(acme.StatusPending),
		Expires:   now.Add(a.cfg.OrderLifetime),
		Names:     list,
		Profile:   profile,
		NotBefore: notBefore,
		NotAfter:  notAfter,
		CreatedAt: now,
	}
	authzs := make([]store.Authorization, 0, len(list))
	for _, name := range list {
		az := store.Authorization{
			ID:        newID(),
			AccountID: acct.ID,
			Name:      name,
			Status:    string(acme.StatusPending),
			Expires:   now.Add(a.cfg.AuthzLifetime),
			CreatedAt: now,
		}
		az.Challenges = []store.Challenge{{
			ID:      newID(),
			AuthzID: az.ID,
			Type:    acme.ChallengeHTTP01,
			Token:   newToken(),
			Status:  string(acme.StatusPending),
		}}
		authzs = append(authzs, az)
		o.AuthzIDs = append(o.AuthzIDs, az.ID)
	}
	if err := a.store.CreateOrder(ctx, o, authzs); err != nil {
		return nil, a.internal(ctx, "create the order", err)
	}
	a.log.InfoContext(ctx, "order created", "order", o.ID, "account", acct.ID, "names", list)
	return &o, nil
}

// checkIdentifiers normalises and deduplicates the names and refuses the order as a
// whole when any one is bad, with a subproblem per bad identifier.
func (a *Authority) checkIdentifiers(ids []acme.Identifier, orgOID string, allowed []string) ([]string, error) {
	var (
		list []string
		seen = map[string]bool{}
		subs []acme.Subproblem
		kind = acme.RejectedIdentifier
	)
	refuse := func(id acme.Identifier, k acme.ErrorKind, detail string) {
		subs = append(subs, acme.Subproblem{Type: k.URN(), Detail: detail, Identifier: &id})
		// A syntax error makes the whole order malformed; an unsupported type outranks a policy refusal.
		if k == acme.Malformed || (k == acme.UnsupportedIdentifier && kind != acme.Malformed) {
			kind = k
		}
	}
	for _, id := range ids {
		if id.Type != acme.IdentifierDNS {
			refuse(id, acme.UnsupportedIdentifier, "identifier type \""+id.Type+"\" is not supported; use \"dns\"")
			continue
		}
		name := names.Normalize(id.Value)
		if err := names.Check(name); err != nil {
			ae, _ := acme.AsError(err)
			if ae == nil {
				ae = acme.Errorf(acme.Malformed, "%v", err)
			}
			refuse(id, ae.Kind, ae.Detail)
			continue
		}
		if strings.HasPrefix(name, "*.") {
			refuse(id, acme.RejectedIdentifier, name+": wildcard names need dns-01 validation, which this server does not offer yet")
			continue
		}
		if !names.Within(name, allowed) {
			refuse(id, acme.RejectedIdentifier, name+" is outside the domains approved for organisation "+orgOID+" (allowed: "+strings.Join(allowed, ", ")+")")
			continue
		}
		if !seen[name] {
			seen[name] = true
			list = append(list, name)
		}
	}
	if len(subs) == 0 {
		return list, nil
	}
	detail := subs[0].Detail
	if len(subs) > 1 {
		detail = "the order was refused for " + plural(len(subs), "identifier") + "; see the subproblems"
	}
	return nil, &acme.Error{Kind: kind, Detail: detail, Subproblems: subs}
}

// checkValidityRequest honours notAfter when inside the profile's limit. A certificate
// starts when it is issued (backdated by the profile's small margin), so notBefore is
// refused: the signer never signs a start time in the future or far in the past.
func (a *Authority) checkValidityRequest(nb, na string) (time.Time, time.Time, error) {
	if nb != "" {
		return time.Time{}, time.Time{}, acme.Errorf(acme.Malformed, "notBefore is not supported: a certificate starts when it is issued; leave notBefore out")
	}
	if na == "" {
		return time.Time{}, time.Time{}, nil
	}
	notAfter, err := time.Parse(time.RFC3339, na)
	if err != nil {
		return time.Time{}, time.Time{}, acme.Errorf(acme.Malformed, "notAfter %q is not an RFC 3339 date-time", na)
	}
	now := a.now()
	// The certificate starts at finalize minus the backdate; leave room for both.
	latest := now.Add(a.cfg.MaxValidity - a.cfg.Backdate - time.Second)
	switch {
	case !notAfter.After(now):
		return time.Time{}, time.Time{}, acme.Errorf(acme.Malformed, "notAfter %s is in the past", na)
	case notAfter.After(latest):
		return time.Time{}, time.Time{}, acme.Errorf(acme.Malformed, "notAfter %s gives a validity over the profile's maximum of %d days; ask for %s or earlier", na, int(a.cfg.MaxValidity.Hours()/24), latest.UTC().Format(time.RFC3339))
	}
	return time.Time{}, notAfter.UTC(), nil
}

// Order returns the account's order, its status brought up to date with expiry.
func (a *Authority) Order(ctx context.Context, acct *store.Account, id string) (*store.Order, error) {
	o, err := a.store.GetOrder(ctx, id)
	if isNotFound(err) || (err == nil && o.AccountID != acct.ID) {
		return nil, notFound("order")
	}
	if err != nil {
		return nil, a.internal(ctx, "read the order", err)
	}
	if (o.Status == string(acme.StatusPending) || o.Status == string(acme.StatusReady)) && a.now().After(o.Expires) {
		o.Status = string(acme.StatusInvalid)
	}
	return o, nil
}

// Orders lists the account's order ids.
func (a *Authority) Orders(ctx context.Context, acct *store.Account) ([]string, error) {
	ids, err := a.store.ListOrderIDs(ctx, acct.ID)
	if err != nil {
		return nil, a.internal(ctx, "list the orders", err)
	}
	return ids, nil
}

// Authorization returns the account's authorisation, expired when past its time.
func (a *Authority) Authorization(ctx context.Context, acct *store.Account, id string) (*store.Authorization, error) {
	az, err := a.store.GetAuthorization(ctx, id)
	if isNotFound(err) || (err == nil && az.AccountID != acct.ID) {
		return nil, notFound("authorization")
	}
	if err != nil {
		return nil, a.internal(ctx, "read the authorization", err)
	}
	if az.Status == string(acme.StatusPending) && a.now().After(az.Expires) {
		az.Status = string(acme.StatusExpired)
	}
	return az, nil
}

// Challenge returns the account's challenge and its authorisation.
func (a *Authority) Challenge(ctx context.Context, acct *store.Account, id string) (*store.Challenge, *store.Authorization, error) {
	ch, err := a.store.GetChallenge(ctx, id)
	if isNotFound(err) {
		return nil, nil, notFound("challenge")
	}
	if err != nil {
		return nil, nil, a.internal(ctx, "read the challenge", err)
	}
	az, err := a.Authorization(ctx, acct, ch.AuthzID)
	if err != nil {
		if acme.IsKind(err, acme.Malformed) {
			return nil, nil, notFound("challenge")
		}
		return nil, nil, err
	}
	return ch, az, nil
}

// RespondChallenge starts validation of a pending challenge and waits a short while for
// its result, so stock clients see the outcome in the response. A challenge that is not
// pending is returned as it is: no second validation, no status going back.
func (a *Authority) RespondChallenge(ctx context.Context, acct *store.Account, id string) (*store.Challenge, *store.Authorization, error) {
	ch, az, err := a.Challenge(ctx, acct, id)
	if err != nil {
		return nil, nil, err
	}
	if ch.Status != string(acme.StatusPending) || az.Status != string(acme.StatusPending) {
		return ch, az, nil
	}
	if err := a.store.StartChallenge(ctx, ch.ID); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return a.Challenge(ctx, acct, id)
		}
		return nil, nil, a.internal(ctx, "start the validation", err)
	}
	keyAuth := validate.KeyAuthorization(ch.Token, acct.Thumbprint)
	done := make(chan struct{})
	a.validations.Add(1)
	go func() {
		defer a.validations.Done()
		defer close(done)
		a.validate(context.WithoutCancel(ctx), ch, az.Name, keyAuth)
	}()
	wait := time.NewTimer(a.cfg.ValidationWait)
	defer wait.Stop()
	select {
	case <-done:
	case <-wait.C:
	case <-ctx.Done():
	}
	return a.Challenge(ctx, acct, id)
}

// validate runs one validation and records its result; it outlives the request.
func (a *Authority) validate(ctx context.Context, ch *store.Challenge, name, keyAuth string) {
	vctx, cancel := context.WithTimeout(ctx, a.cfg.ValidationTimeout)
	defer cancel()
	var verr error
	switch ch.Type {
	case acme.ChallengeHTTP01:
		verr = a.val.HTTP01(vctx, name, ch.Token, keyAuth)
	default:
		verr = acme.Errorf(acme.Malformed, "challenge type %s is not supported", ch.Type)
	}
	var problem []byte
	if verr != nil {
		if _, ok := acme.AsError(verr); !ok {
			a.log.ErrorContext(ctx, "validation failed internally", "challenge", ch.ID, "err", verr)
		}
		problem = problemJSON(verr)
	}
	// Record the result even when the request that started it is long gone.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer rcancel()
	if err := a.store.FinishChallenge(rctx, ch.ID, verr == nil, a.now(), problem); err != nil {
		a.log.ErrorContext(ctx, "recording a validation result failed", "challenge", ch.ID, "err", err)
		return
	}
	a.log.InfoContext(ctx, "validation finished", "challenge", ch.ID, "name", name, "valid", verr == nil, "problem", string(problem))
}

// KeyAuthorization of a challenge token for the account (exposed for tests and tools).
func KeyAuthorization(token string, acct *store.Account) string {
	return validate.KeyAuthorization(token, acct.Thumbprint)
}

// newToken is the canonical base64url of 32 random bytes (RFC 8555 asks for at least
// 128 bits). Canonical matters: clients such as certbot decode and re-encode the token
// to build the challenge path.
func newToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("authority: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
