package authority

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
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
	// The first name becomes the certificate's common name: refuse now an order that
	// could only fail at finalize.
	if first := list[0]; len(first) > maxCNLength {
		detail := fmt.Sprintf("%s is %d characters long, but the order's first name becomes the certificate's common name, which holds at most %d; put a shorter name first", first, len(first), maxCNLength)
		return nil, &acme.Error{Kind: acme.RejectedIdentifier, Detail: detail, Subproblems: []acme.Subproblem{{
			Type: acme.RejectedIdentifier.URN(), Detail: detail, Identifier: &acme.Identifier{Type: acme.IdentifierDNS, Value: first}}}}
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
	var reused []string
	for _, name := range list {
		// An authorisation names the base of a wildcard and says it is one (RFC 8555 7.1.4).
		base, wildcard := strings.CutPrefix(name, "*.")
		prior, err := a.reusableAuthz(ctx, acct, base, wildcard, now)
		if err != nil {
			return nil, err
		}
		if prior != nil {
			o.AuthzIDs = append(o.AuthzIDs, prior.ID)
			reused = append(reused, prior.ID)
			continue
		}
		az := store.Authorization{
			ID:        newID(),
			AccountID: acct.ID,
			Name:      base,
			Wildcard:  wildcard,
			Status:    string(acme.StatusPending),
			Expires:   now.Add(a.cfg.AuthzLifetime),
			CreatedAt: now,
		}
		for _, typ := range challengeTypes(wildcard) {
			az.Challenges = append(az.Challenges, store.Challenge{
				ID:      newID(),
				AuthzID: az.ID,
				Type:    typ,
				Token:   newToken(),
				Status:  string(acme.StatusPending),
			})
		}
		authzs = append(authzs, az)
		o.AuthzIDs = append(o.AuthzIDs, az.ID)
	}
	if len(authzs) == 0 {
		o.Status = string(acme.StatusReady) // every name is already proven
	}
	if err := a.store.CreateOrder(ctx, o, authzs); err != nil {
		return nil, a.internal(ctx, "create the order", err)
	}
	a.log.InfoContext(ctx, "order created", "order", o.ID, "account", acct.ID, "names", list, "reused_authzs", reused)
	return &o, nil
}

// challengeTypes are the challenges offered for a name, http-01 first. A wildcard
// can only be proven in DNS: control of one host says nothing of its siblings.
func challengeTypes(wildcard bool) []string {
	if wildcard {
		return []string{acme.ChallengeDNS01}
	}
	return []string{acme.ChallengeHTTP01, acme.ChallengeDNS01, acme.ChallengeTLSALPN01}
}

// reusableAuthz finds the account's valid authorisation for the name validated
// within the reuse window, or nil. Only the same account's: never another account's,
// and so never another organisation's. It must outlive the new order, so that an
// order never holds an expired authorisation.
func (a *Authority) reusableAuthz(ctx context.Context, acct *store.Account, name string, wildcard bool, now time.Time) (*store.Authorization, error) {
	if a.cfg.AuthzReuse < 0 {
		return nil, nil
	}
	az, err := a.store.FindReusableAuthorization(ctx, acct.ID, name, wildcard, now.Add(-a.cfg.AuthzReuse), now.Add(a.cfg.OrderLifetime))
	switch {
	case isNotFound(err):
		return nil, nil
	case err != nil:
		return nil, a.internal(ctx, "look up earlier authorizations", err)
	case az.AccountID != acct.ID:
		return nil, a.internal(ctx, "look up earlier authorizations", errors.New("the store returned another account's authorization"))
	}
	return az, nil
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
		if strings.HasPrefix(name, "*.") && !a.cfg.AllowWildcards {
			refuse(id, acme.RejectedIdentifier, name+": this server does not issue wildcard certificates; order each host name instead")
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
	if (az.Status == string(acme.StatusPending) || az.Status == string(acme.StatusValid)) && a.now().After(az.Expires) {
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
		a.validate(context.WithoutCancel(ctx), acct, ch, az, keyAuth)
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
// CAA is checked beside the challenge: a name proven but closed to this CA by CAA
// does not become valid.
func (a *Authority) validate(ctx context.Context, acct *store.Account, ch *store.Challenge, az *store.Authorization, keyAuth string) {
	vctx, cancel := context.WithTimeout(ctx, a.cfg.ValidationTimeout)
	defer cancel()
	name := az.Name
	caaName := name
	if az.Wildcard {
		caaName = "*." + name
	}
	caa := make(chan error, 1)
	go func() { caa <- a.val.CAA(vctx, caaName, a.accountURI(acct.ID), ch.Type) }()
	var verr error
	switch {
	case ch.Type == acme.ChallengeDNS01:
		verr = a.val.DNS01(vctx, name, keyAuth)
	case az.Wildcard:
		// Never offered; refused should a stored challenge say otherwise.
		verr = acme.Errorf(acme.Unauthorized, "a wildcard name can only be proven with dns-01")
	case ch.Type == acme.ChallengeHTTP01:
		verr = a.val.HTTP01(vctx, name, ch.Token, keyAuth)
	case ch.Type == acme.ChallengeTLSALPN01:
		verr = a.val.TLSALPN01(vctx, name, keyAuth)
	default:
		verr = acme.Errorf(acme.Malformed, "challenge type %s is not supported", ch.Type)
	}
	if cerr := <-caa; verr == nil {
		verr = cerr
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
	validated := a.now()
	if err := a.store.FinishChallenge(rctx, ch.ID, verr == nil, validated, problem); err != nil {
		a.log.ErrorContext(ctx, "recording a validation result failed", "challenge", ch.ID, "err", err)
		return
	}
	if verr == nil {
		// A valid authorisation lives longer than a pending one. Should this fail, it
		// keeps the shorter pending lifetime: safe, only less convenient.
		if err := a.store.SetValidAuthorizationExpiry(rctx, az.ID, validated.Add(a.cfg.ValidAuthzLifetime)); err != nil && !errors.Is(err, store.ErrConflict) {
			a.log.ErrorContext(ctx, "extending a valid authorization failed", "authz", az.ID, "err", err)
		}
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
