package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/policy/names"
	"github.com/varmenne/varmenne/policy/thl"
	"github.com/varmenne/varmenne/store"
)

// EABRequestInput is what a registrar or the e-service sends after a person
// registered an organisation.
type EABRequestInput struct {
	Organisation     string   `json:"organisation"`       // OID in the THL register
	Person           string   `json:"person"`             // who registered
	IdentifiedBy     string   `json:"identified_by"`      // how they were identified
	TechnicalContact string   `json:"technical_contact"`  // e.g. the IT vendor
	Domains          []string `json:"domains"`            // empty: all of the organisation's
	Networks         []string `json:"networks,omitempty"` // CIDR; empty: all of the organisation's
	Profiles         []string `json:"profiles"`           // empty: every profile it may use
}

const maxText = 500

func text(field, v string, required bool) (string, error) {
	v = strings.TrimSpace(v)
	switch {
	case v == "" && required:
		return "", errorf(Malformed, "%s is required", field)
	case len(v) > maxText:
		return "", errorf(Malformed, "%s is longer than %d bytes", field, maxText)
	}
	return v, nil
}

// RequestEAB records a request for an EAB key.
func (s *Service) RequestEAB(ctx context.Context, who *store.Operator, in EABRequestInput) (*RequestView, error) {
	if err := s.allow(ctx, who, "request an EAB key", store.RoleRegistrar, store.RoleAdministrator); err != nil {
		return nil, err
	}
	r, err := s.newRequest(ctx, who, in)
	if err != nil {
		return nil, err
	}
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{requested(who, r)}, tx.CreateEABRequest(r)
	})
	if err != nil {
		return nil, s.internal(ctx, "store the EAB request", err)
	}
	v := requestView(r)
	return &v, nil
}

// NewKey is what CreateKey gives: the key at once (development), or the request
// that waits for another administrator (production).
type NewKey struct {
	Request RequestView
	Key     *Handover // nil: the request waits for another administrator's approval
}

// CreateKey is "varmenne eab create": an administrator asks for a key for an
// organisation. In development (file keys, and no server of this database ever ran
// with an HSM) the request is approved and handed over at once by the same
// administrator, in one transaction, and the approval's audit event says it was
// single control. In production it is a request like any other, which an
// administrator other than who must approve before its key is handed over.
func (s *Service) CreateKey(ctx context.Context, who *store.Operator, in EABRequestInput) (*NewKey, error) {
	if err := s.allow(ctx, who, "create EAB keys", store.RoleAdministrator); err != nil {
		return nil, err
	}
	r, err := s.newRequest(ctx, who, in)
	if err != nil {
		return nil, err
	}
	production, err := s.production(ctx)
	if err != nil {
		return nil, err
	}
	var k *store.EABKey
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		records := []audit.Record{requested(who, r)}
		if err := tx.CreateEABRequest(r); err != nil || production {
			return records, err
		}
		var err error
		if k, err = tx.ApproveEABRequest(r.ID, who.Name, false, r.CreatedAt, s.newKey(r.CreatedAt)); err != nil {
			return nil, err
		}
		if k, err = tx.RevealEABKey(k.KID, who.Name, r.CreatedAt); err != nil {
			return nil, err
		}
		r.Status, r.DecidedBy, r.DecidedAt, r.KID = store.EABRequestApproved, who.Name, r.CreatedAt, k.KID
		return append(records, approved(who, k), handedOver(who, k)), nil
	})
	if err != nil {
		return nil, s.internal(ctx, "create the EAB key", err)
	}
	out := &NewKey{Request: requestView(r)}
	if k != nil {
		out.Key = handover(k)
	}
	return out, nil
}

// production reports whether the single-operator shortcuts are refused: the
// service runs in production mode, or a server of this database ever started with
// its issuer keys in an HSM.
func (s *Service) production(ctx context.Context) (bool, error) {
	if !s.cfg.Development {
		return true, nil
	}
	p, err := s.st.Production(ctx)
	if err != nil {
		return true, s.internal(ctx, "read the CA's mode", err)
	}
	return p, nil
}

// newRequest checks what a request asks for against its organisation and the
// profiles, and makes the request record.
func (s *Service) newRequest(ctx context.Context, who *store.Operator, in EABRequestInput) (store.EABRequest, error) {
	r := store.EABRequest{ID: newID(), RequestedBy: who.Name, Status: store.EABRequestRequested, CreatedAt: s.now()}
	r.ExpiresAt = r.CreatedAt.Add(s.cfg.RequestLifetime)
	var err error
	fail := func(err error) (store.EABRequest, error) { return store.EABRequest{}, err }
	if r.Person, err = text("person", in.Person, true); err != nil {
		return fail(err)
	}
	if r.IdentifiedBy, err = text("identified_by", in.IdentifiedBy, true); err != nil {
		return fail(err)
	}
	if r.TechnicalContact, err = text("technical_contact", in.TechnicalContact, true); err != nil {
		return fail(err)
	}
	oid := strings.TrimSpace(in.Organisation)
	if oid == "" {
		return fail(errorf(Malformed, "organisation is required: the organisation's OID in THL's SOTE register"))
	}
	org, err := s.st.GetOrganisation(ctx, oid)
	if err != nil {
		return fail(s.lookup(ctx, err, "organisation %s is not in the register; import the register (varmenne org import) or add it (varmenne org add) first", oid))
	}
	reg, err := s.st.GetOrganisationRegister(ctx, oid)
	if err != nil {
		return fail(s.internal(ctx, "read the register", err))
	}
	prod, err := s.production(ctx)
	if err != nil {
		return fail(err)
	}
	if why := thl.RecordRefusal(*reg, s.now(), prod); why != "" {
		return fail(errorf(Conflict, "organisation %s %s; it cannot get an EAB key", oid, why))
	}
	if !org.SuspendedAt.IsZero() {
		return fail(errorf(Conflict, "organisation %s is suspended (%s); resume it before requesting an EAB key", oid, org.SuspendReason))
	}
	r.OrgOID = org.OID
	for _, d := range in.Domains {
		n := names.Normalize(strings.TrimSpace(d))
		if err := names.Check(n); err != nil || strings.HasPrefix(n, "*.") {
			return fail(errorf(Malformed, "domain %q is not a valid domain name", d))
		}
		if !names.Within(n, org.Domains) {
			return fail(errorf(Malformed, "domain %s is not among organisation %s's domains (%s); approve it first (varmenne org domains add %s --domain …)", n, oid, strings.Join(org.Domains, ", "), oid))
		}
		if !slices.Contains(r.Domains, n) {
			r.Domains = append(r.Domains, n)
		}
	}
	if r.Networks, err = parseNetworks(in.Networks); err != nil {
		return fail(err)
	}
	for _, n := range r.Networks {
		if !slices.ContainsFunc(org.Networks, func(o netip.Prefix) bool { return o.Bits() <= n.Bits() && o.Contains(n.Addr()) }) {
			return fail(errorf(Malformed, "network %s is not inside organisation %s's networks (%s); approve it first (varmenne org domains add %s --network …)", n, oid, prefixes(org.Networks), oid))
		}
	}
	for _, p := range in.Profiles {
		p = strings.TrimSpace(p)
		switch {
		case s.cfg.Profiles != nil && !slices.Contains(s.cfg.Profiles, p):
			return fail(errorf(Malformed, "profile %q is unknown; the profiles are %s", p, strings.Join(s.cfg.Profiles, ", ")))
		case org.TestOnly && !slices.Contains(s.cfg.TestProfiles, p):
			return fail(errorf(Malformed, "organisation %s may order test profiles only (%s), not %s", oid, strings.Join(s.cfg.TestProfiles, ", "), p))
		}
		if !slices.Contains(r.Profiles, p) {
			r.Profiles = append(r.Profiles, p)
		}
	}
	return r, nil
}

// parseNetworks reads networks: CIDR prefixes or single addresses.
func parseNetworks(in []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range in {
		p, err := names.ParseNetwork(v)
		if err != nil {
			return nil, errorf(Malformed, "network %q: %s", v, detail(err))
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// detail is the message of a shared check's refusal (an ACME problem's detail).
func detail(err error) string {
	if e, ok := acme.AsError(err); ok {
		return e.Detail
	}
	return err.Error()
}

func prefixes(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "none"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// requested is the audit record of request r.
func requested(who *store.Operator, r store.EABRequest) audit.Record {
	return audit.Done(who.Name, audit.EABRequested{Request: r.ID, Org: r.OrgOID, Person: r.Person, IdentifiedBy: r.IdentifiedBy,
		TechnicalContact: r.TechnicalContact, Domains: r.Domains, Profiles: r.Profiles})
}

// EABRequests lists requests in a status ("" every status).
func (s *Service) EABRequests(ctx context.Context, who *store.Operator, status string) ([]RequestView, error) {
	if err := s.allow(ctx, who, "list EAB requests", Roles...); err != nil {
		return nil, err
	}
	switch status {
	case "", store.EABRequestRequested, store.EABRequestApproved, store.EABRequestRejected, store.EABRequestExpired:
	default:
		return nil, errorf(Malformed, "status %q: use requested, approved, rejected or expired", status)
	}
	list, err := s.st.ListEABRequests(ctx, status, "")
	if err != nil {
		return nil, s.internal(ctx, "list EAB requests", err)
	}
	return requestViews(list), nil
}

// EABRequest returns one request.
func (s *Service) EABRequest(ctx context.Context, who *store.Operator, id string) (*RequestView, error) {
	if err := s.allow(ctx, who, "read EAB requests", Roles...); err != nil {
		return nil, err
	}
	r, err := s.st.GetEABRequest(ctx, id)
	if err != nil {
		return nil, s.lookup(ctx, err, "there is no EAB request %s", id)
	}
	v := requestView(*r)
	return &v, nil
}

// Approve approves a request and makes its key: a new kid and a 256-bit HMAC key,
// which only the requester receives, once (Handover).
func (s *Service) Approve(ctx context.Context, who *store.Operator, id string) (*KeyView, error) {
	if err := s.allow(ctx, who, "approve EAB requests", store.RoleAdministrator); err != nil {
		return nil, err
	}
	r, err := s.st.GetEABRequest(ctx, id)
	if err != nil {
		return nil, s.lookup(ctx, err, "there is no EAB request %s", id)
	}
	dual := !s.cfg.SingleControl
	if dual && r.RequestedBy == who.Name {
		s.note(ctx, audit.Refused(who.Name, audit.EABApproved{Request: id, Org: r.OrgOID, RequestedBy: r.RequestedBy},
			"dual control, the approver asked for it"))
		return nil, errorf(DualControl,
			"%s asked for EAB request %s and so cannot approve it (dual control); another administrator must", who.Name, id)
	}
	now := s.now()
	var k *store.EABKey
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		var err error
		k, err = tx.ApproveEABRequest(id, who.Name, dual, now, s.newKey(now))
		if err != nil {
			return nil, err
		}
		return []audit.Record{approved(who, k)}, nil
	})
	if errors.Is(err, store.ErrConflict) {
		return nil, s.undecidable(ctx, id, now)
	}
	if err != nil {
		return nil, s.lookup(ctx, err, "there is no EAB request %s", id)
	}
	v := keyView(*k)
	return &v, nil
}

// newKey is a new EAB key: a random kid and a 256-bit HMAC key, usable unbound
// until its lifetime ends.
func (s *Service) newKey(now time.Time) store.EABKey {
	return store.EABKey{KID: newID(), HMACKey: randomBytes(32), CreatedAt: now, ExpiresAt: now.Add(s.cfg.KeyLifetime)}
}

// approved is the audit record of key k's approval by who; it says so when who
// asked for it too (single control).
func approved(who *store.Operator, k *store.EABKey) audit.Record {
	return audit.Done(who.Name, audit.EABApproved{Request: k.RequestID, KID: k.KID, Org: k.OrgOID, RequestedBy: k.RequestedBy,
		Expires: k.ExpiresAt, SingleControl: k.RequestedBy == who.Name})
}

// handedOver is the audit record of key k's handover to who.
func handedOver(who *store.Operator, k *store.EABKey) audit.Record {
	return audit.Done(who.Name, audit.EABHandedOver{Request: k.RequestID, KID: k.KID, Fingerprint: Fingerprint(k.HMACKey)})
}

// handover is key k as its requester receives it.
func handover(k *store.EABKey) *Handover {
	return &Handover{KID: k.KID, HMACKey: base64.RawURLEncoding.EncodeToString(k.HMACKey), Fingerprint: Fingerprint(k.HMACKey),
		Expires: k.ExpiresAt.Format(time.RFC3339)}
}

// undecidable explains why request id can no longer be decided.
func (s *Service) undecidable(ctx context.Context, id string, now time.Time) error {
	r, err := s.st.GetEABRequest(ctx, id)
	if err != nil {
		return s.lookup(ctx, err, "there is no EAB request %s", id)
	}
	if r.Status == store.EABRequestRequested && !r.ExpiresAt.After(now) {
		return errorf(Conflict, "EAB request %s expired at %s; ask for a new one", id, r.ExpiresAt.Format(time.RFC3339))
	}
	by := ""
	if r.DecidedBy != "" {
		by = " by " + r.DecidedBy
	}
	return errorf(Conflict, "EAB request %s was already %s%s", id, r.Status, by)
}

// Reject rejects a request with a reason.
func (s *Service) Reject(ctx context.Context, who *store.Operator, id, reason string) error {
	if err := s.allow(ctx, who, "reject EAB requests", store.RoleAdministrator); err != nil {
		return err
	}
	reason, err := text("reason", reason, true)
	if err != nil {
		return err
	}
	now := s.now()
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(who.Name, audit.EABRejected{Request: id, Reason: reason})},
			tx.RejectEABRequest(id, who.Name, reason, now)
	})
	if errors.Is(err, store.ErrConflict) {
		return s.undecidable(ctx, id, now)
	}
	if err != nil {
		return s.lookup(ctx, err, "there is no EAB request %s", id)
	}
	return nil
}

// Handover is an EAB key as its requester receives it, once.
type Handover struct {
	KID         string `json:"kid"`
	HMACKey     string `json:"hmac_key"` // base64url, as ACME clients take it
	Fingerprint string `json:"fingerprint"`
	Expires     string `json:"expires"`
}

// Handover gives the requester of an approved request its key: the first call
// returns the HMAC key, every later one is refused (410) with its fingerprint.
func (s *Service) Handover(ctx context.Context, who *store.Operator, id string) (*Handover, error) {
	if err := s.allow(ctx, who, "receive EAB keys", store.RoleRegistrar, store.RoleAdministrator); err != nil {
		return nil, err
	}
	r, err := s.st.GetEABRequest(ctx, id)
	if err != nil {
		return nil, s.lookup(ctx, err, "there is no EAB request %s", id)
	}
	if r.Status != store.EABRequestApproved {
		return nil, errorf(Conflict, "EAB request %s is %s, not approved; it has no key", id, r.Status)
	}
	var k *store.EABKey
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		var err error
		if k, err = tx.RevealEABKey(r.KID, who.Name, s.now()); err != nil {
			return nil, err
		}
		return []audit.Record{handedOver(who, k)}, nil
	})
	if errors.Is(err, store.ErrConflict) {
		k, err := s.st.GetEAB(ctx, r.KID)
		if err != nil {
			return nil, s.internal(ctx, "read the EAB key", err)
		}
		switch {
		case k.RequestedBy != who.Name:
			s.note(ctx, audit.Refused(who.Name, audit.EABHandedOver{Request: id, KID: k.KID}, "not the requester"))
			return nil, errorf(Forbidden, "only %s, who asked for EAB request %s, receives its key", k.RequestedBy, id)
		case !k.RevealedAt.IsZero():
			s.note(ctx, audit.Refused(who.Name, audit.EABHandedOver{Request: id, KID: k.KID}, "already handed over"))
			return nil, errorf(Gone, "the HMAC key of %s was handed over at %s and is never shown again (fingerprint %s); if it was lost, revoke the key and request a new one",
				k.KID, k.RevealedAt.Format(time.RFC3339), Fingerprint(k.HMACKey))
		default:
			return nil, errorf(Conflict, "EAB key %s is %s; it is not handed over", k.KID, k.Status)
		}
	}
	if err != nil {
		return nil, s.internal(ctx, "hand the EAB key over", err)
	}
	return handover(k), nil
}

// RevokeKey revokes an EAB key so it binds no account, and the account it bound
// takes no step towards a certificate (the ACME standing check); with deactivate,
// that account is deactivated too.
func (s *Service) RevokeKey(ctx context.Context, who *store.Operator, kid, reason string, deactivate bool) ([]string, error) {
	if err := s.allow(ctx, who, "revoke EAB keys", store.RoleAdministrator); err != nil {
		return nil, err
	}
	reason, err := text("reason", reason, true)
	if err != nil {
		return nil, err
	}
	var ids []string
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		var err error
		if ids, err = tx.RevokeEABKey(kid, who.Name, reason, deactivate); err != nil {
			return nil, err
		}
		records := []audit.Record{audit.Done(who.Name, audit.EABRevoked{KID: kid, Reason: reason, DeactivateAccounts: deactivate})}
		for _, id := range ids {
			records = append(records, audit.Done(who.Name, audit.AccountDeactivated{Account: id, EABKID: kid, By: "eab-revocation"}))
		}
		return records, nil
	})
	if errors.Is(err, store.ErrConflict) {
		k, gerr := s.st.GetEAB(ctx, kid)
		if gerr != nil {
			return nil, s.internal(ctx, "read the EAB key", gerr)
		}
		return nil, errorf(Conflict, "EAB key %s is %s and cannot be revoked", kid, k.Status)
	}
	if err != nil {
		return nil, s.lookup(ctx, err, "there is no EAB key %s", kid)
	}
	return ids, nil
}

// EABKey returns a key without its HMAC key.
func (s *Service) EABKey(ctx context.Context, who *store.Operator, kid string) (*KeyView, error) {
	if err := s.allow(ctx, who, "read EAB keys", Roles...); err != nil {
		return nil, err
	}
	k, err := s.st.GetEAB(ctx, kid)
	if err != nil {
		return nil, s.lookup(ctx, err, "there is no EAB key %s", kid)
	}
	v := keyView(*k)
	return &v, nil
}

// ExpireDue expires undecided requests and unbound keys past their expiry, and
// records each in the audit log.
func (s *Service) ExpireDue(ctx context.Context) error {
	err := s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		reqs, keys, err := tx.ExpireEAB(s.now())
		if err != nil {
			return nil, err
		}
		var records []audit.Record
		for _, id := range reqs {
			records = append(records, audit.Done("system", audit.EABExpired{Request: id}))
		}
		for _, kid := range keys {
			records = append(records, audit.Done("system", audit.EABExpired{KID: kid}))
		}
		if len(records) == 0 {
			return nil, errNothing
		}
		return records, nil
	})
	if errors.Is(err, errNothing) {
		return nil
	}
	return err
}

// RunExpiry runs ExpireDue, deletes the console sessions no longer live and
// summarises the ended windows of logins refused unchecked (SummariseLogins), every
// interval until ctx ends.
func (s *Service) RunExpiry(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.ExpireDue(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "admin: EAB expiry failed", "err", err)
		}
		if _, err := s.SweepSessions(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "admin: sweep of expired console sessions failed", "err", err)
		}
		if _, err := s.SummariseLogins(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "admin: summary of logins refused unchecked failed; the counts wait in the database for the next run", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Fingerprint identifies an HMAC key without revealing it: "sha256:" and the first
// 16 bytes of its SHA-256 in hex.
func Fingerprint(hmacKey []byte) string {
	sum := sha256.Sum256(hmacKey)
	return "sha256:" + hex.EncodeToString(sum[:16])
}

// KeyView is an EAB key as operators see it: never its HMAC key.
type KeyView struct {
	KID          string   `json:"kid"`
	Organisation string   `json:"organisation"`
	Status       string   `json:"status"`
	Domains      []string `json:"domains"`
	Profiles     []string `json:"profiles"`
	Fingerprint  string   `json:"fingerprint"`
	Account      string   `json:"account,omitempty"`
	RequestID    string   `json:"request,omitempty"`
	RequestedBy  string   `json:"requested_by,omitempty"`
	ApprovedBy   string   `json:"approved_by,omitempty"`
	Created      string   `json:"created"`
	Expires      string   `json:"expires,omitempty"`
	HandedOver   string   `json:"handed_over,omitempty"`
	RevokedBy    string   `json:"revoked_by,omitempty"`
	RevokeReason string   `json:"revoke_reason,omitempty"`
}

// RequestView is an EAB request as operators see it.
type RequestView struct {
	ID               string   `json:"id"`
	Organisation     string   `json:"organisation"`
	Status           string   `json:"status"`
	RequestedBy      string   `json:"requested_by"`
	Person           string   `json:"person"`
	IdentifiedBy     string   `json:"identified_by"`
	TechnicalContact string   `json:"technical_contact"`
	Domains          []string `json:"domains"`
	Profiles         []string `json:"profiles"`
	Created          string   `json:"created"`
	Expires          string   `json:"expires"`
	DecidedBy        string   `json:"decided_by,omitempty"`
	Decided          string   `json:"decided,omitempty"`
	Reason           string   `json:"reason,omitempty"`
	KID              string   `json:"kid,omitempty"`
}

func requestView(r store.EABRequest) RequestView {
	return RequestView{ID: r.ID, Organisation: r.OrgOID, Status: r.Status, RequestedBy: r.RequestedBy, Person: r.Person,
		IdentifiedBy: r.IdentifiedBy, TechnicalContact: r.TechnicalContact, Domains: nonNil(r.Domains), Profiles: nonNil(r.Profiles),
		Created: stamp(r.CreatedAt), Expires: stamp(r.ExpiresAt), DecidedBy: r.DecidedBy, Decided: stamp(r.DecidedAt), Reason: r.Reason, KID: r.KID}
}

func requestViews(list []store.EABRequest) []RequestView {
	out := []RequestView{}
	for _, r := range list {
		out = append(out, requestView(r))
	}
	return out
}

func keyView(k store.EABKey) KeyView {
	return KeyView{KID: k.KID, Organisation: k.OrgOID, Status: k.Status, Domains: nonNil(k.Domains), Profiles: nonNil(k.Profiles),
		Fingerprint: Fingerprint(k.HMACKey), Account: k.AccountID, RequestID: k.RequestID, RequestedBy: k.RequestedBy,
		ApprovedBy: k.ApprovedBy, Created: stamp(k.CreatedAt), Expires: stamp(k.ExpiresAt), HandedOver: stamp(k.RevealedAt),
		RevokedBy: k.RevokedBy, RevokeReason: k.RevokeReason}
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// stamp is an RFC 3339 time, "" for the zero time.
func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("admin: no randomness: " + err.Error()) // crypto/rand never fails on Linux
	}
	return b
}

// newID is a random URL-safe id (128 bits).
func newID() string {
	// Never with a leading "-": operators pass request ids and kids to the CLI as
	// arguments, where one would read as a flag (1 id in 64 did).
	for {
		if id := base64.RawURLEncoding.EncodeToString(randomBytes(16)); id[0] != '-' {
			return id
		}
	}
}
