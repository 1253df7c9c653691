package authority

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy/thl"
	"github.com/varmenne/varmenne/store"
)

// The standing check: the one answer to "may this account, or this EAB key, take a
// step towards a certificate now?". Every ACME step that can lead to a certificate
// asks it, and nothing else judges these states:
//
//	newAccount (binding an EAB key)  bindingStanding
//	newOrder, challenge start, finalize, keyChange  standing
//
// It answers from the account (valid), the EAB key (bound to the account, or
// approved and unexpired when it is about to bind; never revoked), the
// organisation (not suspended; active in THL's register: the store's copy, which the
// server's refreshes from its register source and "varmenne org import" write) and,
// where a step is for a profile, whether the account may use it.
// A refusal is unauthorized (403), naming the organisation or key and what to do;
// a register that cannot be read refuses with serverInternal (fail closed).
//
// What it does not guard, on purpose: reading an account, order, authorisation,
// challenge or certificate (a holder may always fetch what it has), deactivating
// an account, and revokeCert: revocation by a holder stays possible whatever the
// standing (revocation.AccountMay decides who may revoke).

// step is an ACME step the standing check judges; its text completes "so … is
// refused".
type step string

const (
	stepNewAccount step = "registering a new account"
	stepNewOrder   step = "a new order"
	stepChallenge  step = "starting a validation"
	stepFinalize   step = "finalizing an order"
	stepKeyChange  step = "changing the account key"
)

// standing judges acct taking step s; prof, when not nil, is the profile the step
// is for. It returns the organisation and the EAB key it read, which the step's own
// rules use.
func (a *Authority) standing(ctx context.Context, s step, acct *store.Account, prof *Profile) (*store.Organisation, *store.EABKey, error) {
	if acct.Status != string(acme.StatusValid) {
		return nil, nil, acme.Errorf(acme.Unauthorized, "account %s of organisation %s is %s, so %s is refused; register a new account with a new EAB key",
			acct.ID, acct.OrgOID, acct.Status, s)
	}
	org, rec, err := a.store.GetOrganisationRecord(ctx, acct.OrgOID)
	if err != nil {
		return nil, nil, a.internal(ctx, "look up the organisation", err)
	}
	ek, err := a.accountEAB(ctx, acct)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case ek == nil:
		// Keys are never deleted; an account whose key cannot be found is not judged
		// good by default.
		return nil, nil, acme.Errorf(acme.Unauthorized, "the EAB key %s that registered account %s of organisation %s is not known to this CA, so %s is refused; ask the CA's registrar",
			acct.EABKID, acct.ID, acct.OrgOID, s)
	case ek.Status == store.EABRevoked:
		return nil, nil, acme.Errorf(acme.Unauthorized, "the EAB key %s that registered account %s of organisation %s was revoked by the CA's operators%s, so %s is refused; "+
			"ask your organisation's registrar for a new EAB key and register a new account (revoking this account's certificates stays possible)",
			ek.KID, acct.ID, acct.OrgOID, because(ek.RevokeReason), s)
	case ek.Status != store.EABBound || ek.OrgOID != acct.OrgOID:
		// A bound key's expiry is not checked: ExpiresAt is the last moment the key
		// may bind an account, not a lifetime of the account it bound.
		return nil, nil, acme.Errorf(acme.Unauthorized, "the EAB key %s that registered account %s of organisation %s is %s, so %s is refused; ask the CA's registrar",
			ek.KID, acct.ID, acct.OrgOID, ek.Status, s)
	}
	if err := a.organisationStanding(ctx, s, org, &rec); err != nil {
		return nil, nil, err
	}
	if prof != nil {
		if err := profileAllowed(prof, org, ek); err != nil {
			return nil, nil, err
		}
	}
	return org, ek, nil
}

// bindingStanding judges newAccount binding EAB key ek, whose MAC verified: the key
// must be approved and unexpired, its organisation in good standing.
func (a *Authority) bindingStanding(ctx context.Context, ek *store.EABKey) error {
	switch {
	case ek.Status == store.EABBound:
		return acme.Errorf(acme.Unauthorized, "EAB key %s was already used: an EAB key creates one account only; ask your registrar for a new key", ek.KID)
	case ek.Status == store.EABRevoked:
		return acme.Errorf(acme.Unauthorized, "EAB key %s of organisation %s was revoked by the CA's operators%s, so %s is refused; ask your registrar for a new key",
			ek.KID, ek.OrgOID, because(ek.RevokeReason), stepNewAccount)
	case ek.Status == store.EABExpired, ek.Status == store.EABApproved && !ek.ExpiresAt.IsZero() && !a.now().Before(ek.ExpiresAt):
		// The expiry job may not have run yet: the time decides, not the status.
		return acme.Errorf(acme.Unauthorized, "EAB key %s of organisation %s expired on %s unused: a key binds an account only within its lifetime; ask your registrar for a new key",
			ek.KID, ek.OrgOID, ek.ExpiresAt.UTC().Format(time.DateOnly))
	case ek.Status != store.EABApproved:
		return acme.Errorf(acme.Unauthorized, "EAB key %s is %s and cannot be used; ask your registrar for a new key", ek.KID, ek.Status)
	}
	org, err := a.store.GetOrganisation(ctx, ek.OrgOID)
	if err != nil {
		return a.internal(ctx, "look up the organisation", err)
	}
	return a.organisationStanding(ctx, stepNewAccount, org, nil)
}

// organisationStanding judges the organisation: not suspended, and active in THL's
// register. With a register source (Config.Register, the store's copy every replica
// reads) the register decides, and a copy too old pauses issuance; without one (a
// development server) the data the last "varmenne org import" stored does. Either
// way it is one read, none when rec, the organisation's register record read with
// it, is given.
func (a *Authority) organisationStanding(ctx context.Context, s step, org *store.Organisation, rec *store.RegisterRecord) error {
	if !org.SuspendedAt.IsZero() {
		return acme.Errorf(acme.Unauthorized, "organisation %s is suspended%s by the CA's operators since %s, so %s is refused; "+
			"ask the CA's registrar to resume it (revoking and downloading the organisation's certificates stay possible)",
			org.OID, because(org.SuspendReason), org.SuspendedAt.UTC().Format(time.DateOnly), s)
	}
	now := a.now()
	if !isNil(a.cfg.Register) {
		reg := a.cfg.Register
		if stored, ok := reg.(*thl.Stored); ok && rec != nil {
			reg = stored.Read(org.OID, *rec)
		}
		if _, err := thl.Check(ctx, reg, org, now); err != nil {
			if ae, ok := acme.AsError(err); ok && ae.Kind != "" {
				return ae
			}
			return a.internal(ctx, "check the THL register", err)
		}
		return nil
	}
	var data store.OrganisationRegister
	if rec != nil {
		data = rec.Register
	} else {
		r, err := a.store.GetOrganisationRegister(ctx, org.OID)
		if err != nil {
			return a.internal(ctx, "read the organisation's register data", err)
		}
		data = *r
	}
	if why := thl.RecordRefusal(data, now, a.cfg.Production); why != "" {
		return acme.Errorf(acme.Unauthorized, "organisation %s %s, so %s is refused; certificates are issued only to organisations active in the register: ask THL to make its entry active, then the CA's operators to import the register",
			org.OID, why, s)
	}
	return nil
}

// because is " (reason)" or "" without one.
func because(reason string) string {
	if reason = strings.TrimSpace(reason); reason == "" {
		return ""
	}
	return " (" + reason + ")"
}

// profileAllowed refuses a profile the account may not order: one outside the
// profiles its EAB key was limited to, or a production profile for a test-only
// organisation. These are access rules, not configurable policy: they hold for every
// profile whatever its plugins.
func profileAllowed(p *Profile, org *store.Organisation, eab *store.EABKey) error {
	if eab != nil && len(eab.Profiles) > 0 && !slices.Contains(eab.Profiles, p.Name) {
		return acme.Errorf(acme.Unauthorized, "this account's EAB key allows profiles %s only, not %s; order one of those, or ask the CA for an EAB key for %s",
			strings.Join(eab.Profiles, ", "), p.Name, p.Name)
	}
	if org.TestOnly && !p.Test {
		return acme.Errorf(acme.Unauthorized, "organisation %s may order test profiles only, not %s; order a test profile such as %s-test",
			org.OID, p.Name, p.Name)
	}
	return nil
}
