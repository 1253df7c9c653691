package authority

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/validate"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/policy/names"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/store"
)

// NewOrder resolves the order's profile, asks the standing check (standing.go),
// which includes whether the account may use the profile, runs
// the profile's policy chain over the identifiers and the requested validity, and
// creates the order with one pending authorisation per name.
func (a *Authority) NewOrder(ctx context.Context, acct *store.Account, req acme.NewOrderRequest) (*store.Order, error) {
	if len(req.Identifiers) == 0 {
		return nil, acme.Errorf(acme.Malformed, "the order has no identifiers")
	}
	if len(req.Identifiers) > a.cfg.MaxIdentifiers {
		return nil, acme.Errorf(acme.RejectedIdentifier, "the order has %d identifiers; at most %d are allowed", len(req.Identifiers), a.cfg.MaxIdentifiers)
	}
	prof, err := a.profileFor(req.Profile)
	if err != nil {
		return nil, err
	}
	org, eab, err := a.standing(ctx, stepNewOrder, acct, prof)
	if err != nil {
		return nil, err
	}
	notBefore, err := parseOrderTime("notBefore", req.NotBefore)
	if err != nil {
		return nil, err
	}
	notAfter, err := parseOrderTime("notAfter", req.NotAfter)
	if err != nil {
		return nil, err
	}
	preq := &policy.Request{
		Profile: prof.Name, Org: org, AccountID: acct.ID, EABKID: acct.EABKID,
		Identifiers: req.Identifiers, NotBefore: notBefore, NotAfter: notAfter,
		AllowedDomains: allowedDomains(org, eab), AllowedNetworks: allowedNetworks(org, eab),
	}
	if err := prof.Policy.CheckOrder(ctx, preq); err != nil {
		return nil, policyRefusal(err)
	}
	// An order the issuer cannot sign, as its dates would outlast the issuer, is
	// refused now rather than at finalize.
	if _, _, err := prof.CA.Validity(signer.Request{NotBefore: notBefore, NotAfter: notAfter}); errors.Is(err, signer.ErrOutlastsIssuer) {
		return nil, signerRefusal(err)
	}
	// The chain's names plugin judged every identifier; what is left is to use one
	// spelling per name, in the order the client sent them.
	var list []string
	seen := map[string]bool{}
	for _, id := range req.Identifiers {
		if n := names.Canonical(id); !seen[n] {
			seen[n] = true
			list = append(list, n)
		}
	}
	profile := prof.Name
	replacesSerial, err := a.replacement(ctx, acct, req.Replaces, list) // RFC 9773 (renewal.go)
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
	o.Replaces, o.ReplacesSerial = req.Replaces, replacesSerial
	authzs := make([]store.Authorization, 0, len(list))
	var reused []string
	for _, name := range list {
		// An authorisation names the base of a wildcard and says it is one (RFC 8555 7.1.4).
		base, wildcard := strings.CutPrefix(name, "*.")
		prior, err := a.reusableAuthz(ctx, acct, prof, base, wildcard, now)
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
		for _, typ := range challengeTypes(base, wildcard) {
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
	if err := a.limitPendingAuthorizations(ctx, acct, len(authzs), now); err != nil {
		return nil, err
	}
	if err := a.limitNewOrder(ctx, acct); err != nil {
		return nil, err
	}
	// The order exists only with its audit event: one transaction holds both.
	created := audit.OrderCreated{Order: o.ID, Account: acct.ID, Org: acct.OrgOID, Profile: profile, Names: list}
	if err := a.record(ctx, created, func(tx *store.Tx) error { return tx.CreateOrder(o, authzs) }); err != nil {
		if rerr := replacementRefusal(err, req.Replaces); rerr != nil {
			return nil, rerr
		}
		return nil, a.internal(ctx, "record the order", err)
	}
	a.log.InfoContext(ctx, "order created", "order", o.ID, "account", acct.ID, "names", list, "reused_authzs", reused)
	a.cfg.Metrics.OrderCreated(prof.Name, prof.CA.Issuer().Name)
	return &o, nil
}

// challengeTypes are the challenges offered for a name, http-01 first and the
// drafts' dns-account-01 and dns-persist-01 last, so a client that picks the first
// type it knows picks as before. A wildcard can only be proven in DNS: control of
// one host says nothing of its siblings. An IP address has no DNS zone to put a TXT
// record in, so it gets http-01 and tls-alpn-01 only (RFC 8738 section 7).
func challengeTypes(name string, wildcard bool) []string {
	switch {
	case wildcard:
		return []string{acme.ChallengeDNS01, acme.ChallengeDNSAccount01, acme.ChallengeDNSPersist01}
	case acme.IdentifierOf(name).Type == acme.IdentifierIP:
		return []string{acme.ChallengeHTTP01, acme.ChallengeTLSALPN01}
	}
	return []string{acme.ChallengeHTTP01, acme.ChallengeDNS01, acme.ChallengeTLSALPN01,
		acme.ChallengeDNSAccount01, acme.ChallengeDNSPersist01}
}

// reusableAuthz finds the account's valid authorisation for the name validated
// within the reuse window, or nil. Only the same account's: never another account's,
// and so never another organisation's. It must outlive the new order, so that an
// order never holds an expired authorisation. One that rests on a dns-persist-01
// record is reused only within the order's profile's PersistReuse too (and never
// past the record's persistUntil, which capped its expiry at validation).
func (a *Authority) reusableAuthz(ctx context.Context, acct *store.Account, prof *Profile, name string, wildcard bool, now time.Time) (*store.Authorization, error) {
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
	for _, ch := range az.Challenges {
		if ch.Type == acme.ChallengeDNSPersist01 && ch.Status == string(acme.StatusValid) {
			limit := prof.persistReuse()
			if limit < 0 || ch.Validated.Before(now.Add(-limit)) {
				return nil, nil // the record is read again by a new authorisation
			}
		}
	}
	return az, nil
}

// profileFor is the named profile, or the default one for "".
func (a *Authority) profileFor(name string) (*Profile, error) {
	if name == "" {
		name = a.cfg.DefaultProfile
	}
	p := a.profiles[name]
	if p == nil {
		return nil, acme.Errorf(acme.InvalidProfile, "profile %q is not offered; this server offers %s (see the directory's meta.profiles)", name, strings.Join(a.profileNames(), ", "))
	}
	return p, nil
}

// accountContext is the account's organisation and, when it still exists, the EAB
// key that bound the account (nil otherwise).
func (a *Authority) accountContext(ctx context.Context, acct *store.Account) (*store.Organisation, *store.EABKey, error) {
	org, err := a.store.GetOrganisation(ctx, acct.OrgOID)
	if err != nil {
		return nil, nil, a.internal(ctx, "look up the organisation", err)
	}
	ek, err := a.accountEAB(ctx, acct)
	if err != nil {
		return nil, nil, err
	}
	return org, ek, nil
}

// accountEAB is the EAB key that registered acct; nil when it cannot be found.
func (a *Authority) accountEAB(ctx context.Context, acct *store.Account) (*store.EABKey, error) {
	ek, err := a.store.GetEAB(ctx, acct.EABKID)
	switch {
	case isNotFound(err):
		return nil, nil
	case err != nil:
		return nil, a.internal(ctx, "look up the EAB key", err)
	}
	return ek, nil
}

// allowedDomains are the organisation's approved domains, narrowed to the EAB key's
// when the key was limited to some. A key narrows and never widens: a domain the
// organisation no longer holds is not allowed because an older key named it.
func allowedDomains(org *store.Organisation, eab *store.EABKey) []string {
	if eab == nil {
		return org.Domains
	}
	return names.NarrowDomains(org.Domains, eab.Domains)
}

// allowedNetworks are the organisation's approved networks for ip identifiers,
// narrowed as allowedDomains narrows domains.
func allowedNetworks(org *store.Organisation, eab *store.EABKey) []netip.Prefix {
	if eab == nil {
		return org.Networks
	}
	return names.NarrowNetworks(org.Networks, eab.Networks)
}

// parseOrderTime reads a newOrder notBefore or notAfter; "" is the zero time.
// Whether the time is acceptable is the profile's policy (validity plugin).
func parseOrderTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, acme.Errorf(acme.Malformed, "%s %q is not an RFC 3339 date-time such as 2026-05-01T12:00:00Z", field, v)
	}
	return t.UTC(), nil
}

// policyRefusal makes sure a policy's answer reaches the client as an *acme.Error
// and never as an allow. A Policy that is not a *policy.Chain might return another
// error: that is a failure, and the request is refused.
func policyRefusal(err error) error {
	if ae, ok := acme.AsError(err); ok && ae != nil && ae.Kind != "" {
		return ae
	}
	return acme.Errorf(acme.ServerInternal, "the policy check failed, so the request is refused; try again later")
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
	a.expire(az)
	return az, nil
}

// expire shows a pending or valid authorisation past its time as expired.
func (a *Authority) expire(az *store.Authorization) {
	if (az.Status == string(acme.StatusPending) || az.Status == string(acme.StatusValid)) && a.now().After(az.Expires) {
		az.Status = string(acme.StatusExpired)
	}
}

// Challenge returns the account's challenge and its authorisation, read together.
func (a *Authority) Challenge(ctx context.Context, acct *store.Account, id string) (*store.Challenge, *store.Authorization, error) {
	ch, az, err := a.store.GetChallengeAuthorization(ctx, id)
	if isNotFound(err) || (err == nil && az.AccountID != acct.ID) {
		return nil, nil, notFound("challenge")
	}
	if err != nil {
		return nil, nil, a.internal(ctx, "read the challenge", err)
	}
	a.expire(az)
	return ch, az, nil
}

// RespondChallenge asks the standing check (standing.go), then starts validation
// of a pending challenge and waits a short while for
// its result, so stock clients see the outcome in the response. A challenge that is not
// pending is returned as it is: no second validation, no status going back.
func (a *Authority) RespondChallenge(ctx context.Context, acct *store.Account, id string) (*store.Challenge, *store.Authorization, error) {
	ch, az, err := a.Challenge(ctx, acct, id)
	if err != nil {
		return nil, nil, err
	}
	if _, _, err := a.standing(ctx, stepChallenge, acct, nil); err != nil {
		return nil, nil, err
	}
	if ch.Status != string(acme.StatusPending) || az.Status != string(acme.StatusPending) {
		return ch, az, nil
	}
	if err := a.limitFailedValidations(ctx, acct, az); err != nil {
		return nil, nil, err
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
	if acme.IdentifierOf(name).Type == acme.IdentifierIP {
		caa <- nil // CAA is a DNS record of a name; an IP address has none (RFC 8738 section 7)
	} else {
		go func() { caa <- a.val.CAA(vctx, caaName, a.accountURI(acct.ID), ch.Type) }()
	}
	var verr error
	var persisted *validate.PersistRecord // what proved control, for dns-persist-01
	switch {
	case ch.Type == acme.ChallengeDNS01:
		verr = a.val.DNS01(vctx, name, keyAuth)
	case ch.Type == acme.ChallengeDNSAccount01:
		verr = a.val.DNSAccount01(vctx, name, a.accountURI(acct.ID), keyAuth)
	case ch.Type == acme.ChallengeDNSPersist01:
		persisted, verr = a.val.DNSPersist01(vctx, name, az.Wildcard, a.accountURI(acct.ID), a.now())
	case az.Wildcard:
		// Never offered; refused should a stored challenge say otherwise.
		verr = acme.Errorf(acme.Unauthorized, "a wildcard name can only be proven in DNS (dns-01, dns-account-01, dns-persist-01)")
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
	expires := validated.Add(a.cfg.ValidAuthzLifetime)
	// A valid authorisation lives longer than a pending one: its expiry is set with
	// the outcome, or (dns-persist-01) right after it.
	extended := false
	finish := func() error { return a.store.FinishChallenge(rctx, ch.ID, false, validated, problem) }
	switch {
	case verr == nil && persisted != nil:
		finish = func() error { return a.finishPersistent(rctx, acct, ch, az, persisted, validated) }
		if !persisted.PersistUntil.IsZero() && persisted.PersistUntil.Before(expires) {
			expires = persisted.PersistUntil // the record authorises nothing after it
		}
	case verr == nil:
		finish = func() error { return a.store.FinishChallengeValid(rctx, ch.ID, validated, expires) }
		extended = true
	}
	if err := finish(); err != nil {
		a.log.ErrorContext(ctx, "recording a validation result failed", "challenge", ch.ID, "err", err)
		return
	}
	if verr != nil {
		a.countFailedValidation(rctx, acct, az, verr)
	}
	if verr == nil && !extended {
		// A valid authorisation lives longer than a pending one. Should this fail, it
		// keeps the shorter pending lifetime: safe, only less convenient.
		if err := a.store.SetValidAuthorizationExpiry(rctx, az.ID, expires); err != nil && !errors.Is(err, store.ErrConflict) {
			a.log.ErrorContext(ctx, "extending a valid authorization failed", "authz", az.ID, "err", err)
		}
	}
	a.log.InfoContext(ctx, "validation finished", "challenge", ch.ID, "name", name, "valid", verr == nil, "problem", string(problem))
	a.cfg.Metrics.Validated(ch.Type, verr)
}

// finishPersistent records a dns-persist-01 validation: the challenge valid with the
// record that proved it, and the audit event naming the record, in one transaction.
func (a *Authority) finishPersistent(ctx context.Context, acct *store.Account, ch *store.Challenge, az *store.Authorization, rec *validate.PersistRecord, validated time.Time) error {
	e := audit.PersistentRecordValidated{
		Authz: az.ID, Challenge: ch.ID, Account: acct.ID, Org: acct.OrgOID, Name: az.Name, Wildcard: az.Wildcard,
		Owner: rec.Owner, Record: rec.Value, PersistUntil: rec.PersistUntil, Validated: validated,
	}
	evidence := rec.Owner + " TXT " + strconv.Quote(rec.Value)
	return a.record(ctx, e, func(tx *store.Tx) error { return tx.FinishChallengeWithEvidence(ch.ID, validated, evidence) })
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
