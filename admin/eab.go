package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/varmenne/varmenne/policy/names"
	"github.com/varmenne/varmenne/store"
)

// Audit actions of the EAB lifecycle.
const (
	AuditEABRequest        = "eab.request"
	AuditEABApprove        = "eab.approve"
	AuditEABReject         = "eab.reject"
	AuditEABHandover       = "eab.handover"
	AuditEABExpire         = "eab.expire"
	AuditEABRevoke         = "eab.revoke"
	AuditAccountDeactivate = "account.deactivate"
)

// EABRequestInput is what a registrar or the e-service sends after a person
// registered an organisation.
type EABRequestInput struct {
	Organisation     string   `json:"organisation"`      // OID in the THL register
	Person           string   `json:"person"`            // who registered
	IdentifiedBy     string   `json:"identified_by"`     // how they were identified
	TechnicalContact string   `json:"technical_contact"` // e.g. the IT vendor
	Domains          []string `json:"domains"`           // empty: all of the organisation's
	Profiles         []string `json:"profiles"`          // empty: every profile it may use
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
	r := store.EABRequest{ID: newID(), RequestedBy: who.Name, Status: store.EABRequestRequested, CreatedAt: s.now()}
	r.ExpiresAt = r.CreatedAt.Add(s.cfg.RequestLifetime)
	var err error
	if r.Person, err = text("person", in.Person, true); err != nil {
		return nil, err
	}
	if r.IdentifiedBy, err = text("identified_by", in.IdentifiedBy, true); err != nil {
		return nil, err
	}
	if r.TechnicalContact, err = text("technical_contact", in.TechnicalContact, true); err != nil {
		return nil, err
	}
	oid := strings.TrimSpace(in.Organisation)
	if oid == "" {
		return nil, errorf(Malformed, "organisation is required: the organisation's OID in THL's SOTE register")
	}
	org, err := s.st.GetOrganisation(ctx, oid)
	if err != nil {
		return nil, s.lookup(ctx, err, "organisation %s is not in the register; import the register (varmenne org import) or add it (varmenne org add) first", oid)
	}
	reg, err := s.st.GetOrganisationRegister(ctx, oid)
	if err != nil {
		return nil, s.internal(ctx, "read the register", err)
	}
	if why := registerRefusal(reg); why != "" {
		return nil, errorf(Conflict, "organisation %s %s; it cannot get an EAB key", oid, why)
	}
	if !org.SuspendedAt.IsZero() {
		return nil, errorf(Conflict, "organisation %s is suspended (%s); resume it before requesting an EAB key", oid, org.SuspendReason)
	}
	r.OrgOID = org.OID
	for _, d := range in.Domains {
		n := names.Normalize(strings.TrimSpace(d))
		if err := names.Check(n); err != nil || strings.HasPrefix(n, "*.") {
			return nil, errorf(Malformed, "domain %q is not a valid domain name", d)
		}
		if !names.Within(n, org.Domains) {
			return nil, errorf(Malformed, "domain %s is not among organisation %s's domains (%s)", n, oid, strings.Join(org.Domains, ", "))
		}
		if !slices.Contains(r.Domains, n) {
			r.Domains = append(r.Domains, n)
		}
	}
	for _, p := range in.Profiles {
		p = strings.TrimSpace(p)
		if s.cfg.Profiles != nil && !slices.Contains(s.cfg.Profiles, p) {
			return nil, errorf(Malformed, "profile %q is unknown; the profiles are %s", p, strings.Join(s.cfg.Profiles, ", "))
		}
		if !slices.Contains(r.Profiles, p) {
			r.Profiles = append(r.Profiles, p)
		}
	}
	if err := s.st.CreateEABRequest(ctx, r); err != nil {
		return nil, s.internal(ctx, "store the EAB request", err)
	}
	s.audit(ctx, who.Name, AuditEABRequest, fmt.Sprintf("request=%s org=%s person=%q identified_by=%q technical_contact=%q domains=%s profiles=%s",
		r.ID, r.OrgOID, r.Person, r.IdentifiedBy, r.TechnicalContact, strings.Join(r.Domains, ","), strings.Join(r.Profiles, ",")), "ok")
	v := requestView(r)
	return &v, nil
}

// registerRefusal says why the register does not allow an organisation; "" when
// it does. An organisation no register import ever listed was added by an
// operator (varmenne org add), which is its register entry.
func registerRefusal(reg *store.OrganisationRegister) string {
	switch {
	case reg.SyncedAt.IsZero():
		return ""
	case !reg.LeftAt.IsZero():
		return "is no longer in THL's SOTE register (since " + reg.LeftAt.Format(time.DateOnly) + ")"
	case reg.Status != "" && !strings.EqualFold(reg.Status, "active"):
		return "has register status " + reg.Status
	}
	return ""
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
		s.audit(ctx, who.Name, AuditEABApprove, "request="+id, "refused: dual control, the approver asked for it")
		return nil, errorf(DualControl,
			"%s asked for EAB request %s and so cannot approve it (dual control); another administrator must", who.Name, id)
	}
	now := s.now()
	key := store.EABKey{KID: newID(), HMACKey: randomBytes(32), CreatedAt: now, ExpiresAt: now.Add(s.cfg.KeyLifetime)}
	k, err := s.st.ApproveEABRequest(ctx, id, who.Name, dual, now, key)
	if errors.Is(err, store.ErrConflict) {
		return nil, s.undecidable(ctx, id, now)
	}
	if err != nil {
		return nil, s.lookup(ctx, err, "there is no EAB request %s", id)
	}
	s.audit(ctx, who.Name, AuditEABApprove, fmt.Sprintf("request=%s kid=%s org=%s requested_by=%s expires=%s",
		id, k.KID, k.OrgOID, k.RequestedBy, k.ExpiresAt.Format(time.RFC3339)), "ok")
	v := keyView(*k)
	return &v, nil
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
	err = s.st.RejectEABRequest(ctx, id, who.Name, reason, now)
	if errors.Is(err, store.ErrConflict) {
		return s.undecidable(ctx, id, now)
	}
	if err != nil {
		return s.lookup(ctx, err, "there is no EAB request %s", id)
	}
	s.audit(ctx, who.Name, AuditEABReject, fmt.Sprintf("request=%s reason=%q", id, reason), "ok")
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
	k, err := s.st.RevealEABKey(ctx, r.KID, who.Name, s.now())
	if errors.Is(err, store.ErrConflict) {
		k, err := s.st.GetEAB(ctx, r.KID)
		if err != nil {
			return nil, s.internal(ctx, "read the EAB key", err)
		}
		switch {
		case k.RequestedBy != who.Name:
			s.audit(ctx, who.Name, AuditEABHandover, "kid="+k.KID, "refused: not the requester")
			return nil, errorf(Forbidden, "only %s, who asked for EAB request %s, receives its key", k.RequestedBy, id)
		case !k.RevealedAt.IsZero():
			s.audit(ctx, who.Name, AuditEABHandover, "kid="+k.KID, "refused: already handed over")
			return nil, errorf(Gone, "the HMAC key of %s was handed over at %s and is never shown again (fingerprint %s); if it was lost, revoke the key and request a new one",
				k.KID, k.RevealedAt.Format(time.RFC3339), Fingerprint(k.HMACKey))
		default:
			return nil, errorf(Conflict, "EAB key %s is %s; it is not handed over", k.KID, k.Status)
		}
	}
	if err != nil {
		return nil, s.internal(ctx, "hand the EAB key over", err)
	}
	s.audit(ctx, who.Name, AuditEABHandover, fmt.Sprintf("request=%s kid=%s fingerprint=%s", id, k.KID, Fingerprint(k.HMACKey)), "ok")
	return &Handover{KID: k.KID, HMACKey: base64.RawURLEncoding.EncodeToString(k.HMACKey), Fingerprint: Fingerprint(k.HMACKey),
		Expires: k.ExpiresAt.Format(time.RFC3339)}, nil
}

// RevokeKey revokes an EAB key so it binds no account; with deactivate, the
// accounts it bound are deactivated too.
func (s *Service) RevokeKey(ctx context.Context, who *store.Operator, kid, reason string, deactivate bool) ([]string, error) {
	if err := s.allow(ctx, who, "revoke EAB keys", store.RoleAdministrator); err != nil {
		return nil, err
	}
	reason, err := text("reason", reason, true)
	if err != nil {
		return nil, err
	}
	ids, err := s.st.RevokeEABKey(ctx, kid, who.Name, reason, deactivate)
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
	s.audit(ctx, who.Name, AuditEABRevoke, fmt.Sprintf("kid=%s reason=%q deactivate_accounts=%t", kid, reason, deactivate), "ok")
	for _, id := range ids {
		s.audit(ctx, who.Name, AuditAccountDeactivate, fmt.Sprintf("account=%s eab_kid=%s by=eab-revocation", id, kid), "ok")
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
	reqs, keys, err := s.st.ExpireEAB(ctx, s.now())
	if err != nil {
		return err
	}
	for _, id := range reqs {
		s.audit(ctx, "system", AuditEABExpire, "request="+id, "ok")
	}
	for _, kid := range keys {
		s.audit(ctx, "system", AuditEABExpire, "kid="+kid, "ok")
	}
	return nil
}

// RunExpiry runs ExpireDue, and deletes the console sessions no longer live, every
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
func newID() string { return base64.RawURLEncoding.EncodeToString(randomBytes(16)) }
