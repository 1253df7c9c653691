package admin

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/varmenne/varmenne/crl"
	"github.com/varmenne/varmenne/store"
)

// Audit actions of organisations and certificates.
const (
	AuditOrgSuspend = "organisation.suspend"
	AuditOrgResume  = "organisation.resume"
	// AuditRevoke is authority.AuditRevoke: one action for every revocation.
	AuditRevoke = "certificate.revoke"
)

// OrgSummary is one organisation in the list.
type OrgSummary struct {
	OID            string   `json:"oid"`
	Name           string   `json:"name"`
	Domains        []string `json:"domains"`
	RegisterStatus string   `json:"register_status"`
	Suspended      bool     `json:"suspended"`
}

// OrgView is one organisation with what hangs on it.
type OrgView struct {
	OrgSummary
	LongName      string        `json:"long_name"`
	TestOnly      bool          `json:"test_only"`
	SuspendedAt   string        `json:"suspended_at,omitempty"`
	SuspendedBy   string        `json:"suspended_by,omitempty"`
	SuspendReason string        `json:"suspend_reason,omitempty"`
	Register      RegisterView  `json:"register"`
	Accounts      []AccountView `json:"accounts"`
	EABKeys       []KeyView     `json:"eab_keys"`
	EABRequests   []RequestView `json:"eab_requests"`
	Certificates  []CertView    `json:"certificates"`
}

// RegisterView is what the last register import said.
type RegisterView struct {
	Status       string `json:"status"`
	Sector       string `json:"sector,omitempty"`
	BusinessID   string `json:"business_id,omitempty"`
	Intermediary bool   `json:"intermediary"`
	Synced       string `json:"synced,omitempty"`
	Left         string `json:"left,omitempty"`
}

// AccountView is an ACME account.
type AccountView struct {
	ID       string   `json:"id"`
	Status   string   `json:"status"`
	EABKID   string   `json:"eab_kid"`
	Contacts []string `json:"contacts"`
	Created  string   `json:"created"`
}

// CertView is an issued certificate.
type CertView struct {
	Serial        string   `json:"serial"`
	SerialDecimal string   `json:"serial_decimal"`
	Organisation  string   `json:"organisation"`
	Names         []string `json:"names"`
	Profile       string   `json:"profile"`
	Issuer        string   `json:"issuer"`
	NotBefore     string   `json:"not_before"`
	NotAfter      string   `json:"not_after"`
	Account       string   `json:"account"`
	Revoked       string   `json:"revoked,omitempty"`
	RevokeReason  string   `json:"revoke_reason,omitempty"`
}

func registerStatus(r store.OrganisationRegister) string {
	switch {
	case r.SyncedAt.IsZero():
		return "added by an operator"
	case !r.LeftAt.IsZero():
		return "left the register"
	case r.Status == "":
		return "listed"
	}
	return r.Status
}

func summary(o store.Organisation, r store.OrganisationRegister) OrgSummary {
	return OrgSummary{OID: o.OID, Name: o.Name, Domains: nonNil(o.Domains), RegisterStatus: registerStatus(r), Suspended: !o.SuspendedAt.IsZero()}
}

// Organisations lists every organisation.
func (s *Service) Organisations(ctx context.Context, who *store.Operator) ([]OrgSummary, error) {
	if err := s.allow(ctx, who, "list organisations", Roles...); err != nil {
		return nil, err
	}
	list, err := s.st.ListOrganisations(ctx)
	if err != nil {
		return nil, s.internal(ctx, "list organisations", err)
	}
	out := []OrgSummary{}
	for _, o := range list {
		out = append(out, summary(o.Organisation, o.Register))
	}
	return out, nil
}

// Organisation shows one organisation: register status, accounts, EAB keys and
// requests, certificates.
func (s *Service) Organisation(ctx context.Context, who *store.Operator, oid string) (*OrgView, error) {
	if err := s.allow(ctx, who, "read organisations", Roles...); err != nil {
		return nil, err
	}
	o, err := s.st.GetOrganisation(ctx, oid)
	if err != nil {
		return nil, s.lookup(ctx, err, "there is no organisation %s", oid)
	}
	reg, err := s.st.GetOrganisationRegister(ctx, oid)
	if err != nil {
		return nil, s.internal(ctx, "read the register", err)
	}
	v := &OrgView{OrgSummary: summary(*o, *reg), LongName: o.LongName, TestOnly: o.TestOnly,
		SuspendedAt: stamp(o.SuspendedAt), SuspendedBy: o.SuspendedBy, SuspendReason: o.SuspendReason,
		Register: RegisterView{Status: registerStatus(*reg), Sector: reg.Sector, BusinessID: reg.BusinessID,
			Intermediary: reg.Intermediary, Synced: stamp(reg.SyncedAt), Left: stamp(reg.LeftAt)},
		Accounts: []AccountView{}, EABKeys: []KeyView{}, Certificates: []CertView{}}
	accts, err := s.st.ListAccounts(ctx, oid)
	if err != nil {
		return nil, s.internal(ctx, "list accounts", err)
	}
	for _, a := range accts {
		v.Accounts = append(v.Accounts, AccountView{ID: a.ID, Status: a.Status, EABKID: a.EABKID, Contacts: nonNil(a.Contacts), Created: stamp(a.CreatedAt)})
	}
	keys, err := s.st.ListEABKeys(ctx, oid)
	if err != nil {
		return nil, s.internal(ctx, "list EAB keys", err)
	}
	for _, k := range keys {
		v.EABKeys = append(v.EABKeys, keyView(k))
	}
	reqs, err := s.st.ListEABRequests(ctx, "", oid)
	if err != nil {
		return nil, s.internal(ctx, "list EAB requests", err)
	}
	v.EABRequests = requestViews(reqs)
	if v.Certificates, err = s.certViews(ctx, store.CertificateFilter{OrgOID: oid}); err != nil {
		return nil, err
	}
	return v, nil
}

// Suspend suspends an organisation: its accounts get no new orders.
func (s *Service) Suspend(ctx context.Context, who *store.Operator, oid, reason string) error {
	if err := s.allow(ctx, who, "suspend organisations", store.RoleAdministrator); err != nil {
		return err
	}
	reason, err := text("reason", reason, true)
	if err != nil {
		return err
	}
	err = s.st.SuspendOrganisation(ctx, oid, who.Name, reason, s.now())
	if errors.Is(err, store.ErrConflict) {
		return errorf(Conflict, "organisation %s is already suspended", oid)
	}
	if err != nil {
		return s.lookup(ctx, err, "there is no organisation %s", oid)
	}
	s.audit(ctx, who.Name, AuditOrgSuspend, fmt.Sprintf("org=%s reason=%q", oid, reason), "ok")
	return nil
}

// Resume lifts a suspension.
func (s *Service) Resume(ctx context.Context, who *store.Operator, oid string) error {
	if err := s.allow(ctx, who, "resume organisations", store.RoleAdministrator); err != nil {
		return err
	}
	err := s.st.ResumeOrganisation(ctx, oid)
	if errors.Is(err, store.ErrConflict) {
		return errorf(Conflict, "organisation %s is not suspended", oid)
	}
	if err != nil {
		return s.lookup(ctx, err, "there is no organisation %s", oid)
	}
	s.audit(ctx, who.Name, AuditOrgResume, "org="+oid, "ok")
	return nil
}

// Certificates finds certificates by serial (hex or decimal; digits only are read
// both ways) and by name; both empty lists the newest.
func (s *Service) Certificates(ctx context.Context, who *store.Operator, serial, name string) ([]CertView, error) {
	if err := s.allow(ctx, who, "search certificates", Roles...); err != nil {
		return nil, err
	}
	name = strings.TrimSpace(name)
	if strings.TrimSpace(serial) == "" {
		return s.certViews(ctx, store.CertificateFilter{Name: name})
	}
	readings, err := crl.SerialReadings(serial, "auto")
	if err != nil {
		return nil, errorf(Malformed, "%v", err)
	}
	out := []CertView{}
	for _, r := range readings {
		found, err := s.certViews(ctx, store.CertificateFilter{Serial: r.Hex, Name: name})
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	return out, nil
}

func (s *Service) certViews(ctx context.Context, f store.CertificateFilter) ([]CertView, error) {
	certs, err := s.st.FindCertificates(ctx, f)
	if err != nil {
		return nil, s.internal(ctx, "search certificates", err)
	}
	out := []CertView{}
	for _, c := range certs {
		v := CertView{Serial: c.Serial, Organisation: c.OrgOID, Names: nonNil(c.Names), Profile: c.Profile, Issuer: c.Issuer,
			NotBefore: stamp(c.NotBefore), NotAfter: stamp(c.NotAfter), Account: c.AccountID}
		if n, ok := new(big.Int).SetString(c.Serial, 16); ok {
			v.SerialDecimal = n.String()
		}
		rev, err := s.st.GetRevocation(ctx, c.Serial)
		switch {
		case err == nil:
			v.Revoked, v.RevokeReason = stamp(rev.RevokedAt), crl.ReasonName(rev.Reason)
		case !errors.Is(err, store.ErrNotFound):
			return nil, s.internal(ctx, "read revocations", err)
		}
		out = append(out, v)
	}
	return out, nil
}

// RevokeInput is an operator's revocation of a certificate.
type RevokeInput struct {
	Reason       string `json:"reason"`        // RFC 5280 name, e.g. keyCompromise
	RequestedBy  string `json:"requested_by"`  // who asked for it
	IdentifiedBy string `json:"identified_by"` // how they were identified
	Note         string `json:"note"`
}

// RevokeCertificate revokes a certificate given by its hex serial; a running
// server's CRL publisher and OCSP pick the revocation up within seconds.
func (s *Service) RevokeCertificate(ctx context.Context, who *store.Operator, serial string, in RevokeInput) error {
	if err := s.allow(ctx, who, "revoke certificates", store.RoleAdministrator); err != nil {
		return err
	}
	readings, err := crl.SerialReadings(serial, "hex")
	if err != nil {
		return errorf(Malformed, "%v", err)
	}
	serial = readings[0].Hex
	code, err := crl.ParseReason(in.Reason)
	if err != nil {
		return errorf(Malformed, "reason: %v", err)
	}
	r := store.Revocation{Serial: serial, Reason: code, PerformedBy: who.Name, RevokedAt: s.now()}
	r.RequestedAt = r.RevokedAt
	if r.RequestedBy, err = text("requested_by", in.RequestedBy, true); err != nil {
		return err
	}
	if r.IdentifiedBy, err = text("identified_by", in.IdentifiedBy, true); err != nil {
		return err
	}
	if r.Note, err = text("note", in.Note, false); err != nil {
		return err
	}
	certs, err := s.st.FindCertificates(ctx, store.CertificateFilter{Serial: serial, Limit: 1})
	if err != nil {
		return s.internal(ctx, "find the certificate", err)
	}
	if len(certs) == 0 {
		return errorf(NotFound, "no certificate with serial %s was issued here", serial)
	}
	var block *store.BlockedKey
	if code == crl.KeyCompromise {
		block = &store.BlockedKey{KeyHash: certs[0].KeyHash, Reason: "keyCompromise", Source: "revocation of " + serial, CreatedAt: r.RevokedAt}
	}
	err = s.st.Revoke(ctx, r, block)
	if errors.Is(err, store.ErrDuplicate) {
		return errorf(Conflict, "certificate %s is already revoked; revocation is final", serial)
	}
	if err != nil {
		return s.internal(ctx, "revoke the certificate", err)
	}
	s.audit(ctx, who.Name, AuditRevoke, fmt.Sprintf("serial=%s reason=%s requested_by=%q identified_by=%q performed_by=%q",
		serial, crl.ReasonName(code), r.RequestedBy, r.IdentifiedBy, r.PerformedBy), "ok")
	return nil
}

// EventView is one audit log event.
type EventView struct {
	Seq      int64  `json:"seq"`
	Time     string `json:"time"`
	Actor    string `json:"actor"`
	Action   string `json:"action"`
	Object   string `json:"object"`
	Outcome  string `json:"outcome"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// EventViewOf is the JSON form of an event, shared by the API and audit export.
func EventViewOf(e store.AuditEvent) EventView {
	return EventView{Seq: e.Seq, Time: e.Time.UTC().Format(time.RFC3339Nano), Actor: e.Actor, Action: e.Action, Object: e.Object,
		Outcome: e.Outcome, PrevHash: e.PrevHash, Hash: e.Hash}
}

// MaxAuditPage bounds one read of the audit log.
const MaxAuditPage = 1000

// Audit reads up to limit events after seq after; auditors only.
func (s *Service) Audit(ctx context.Context, who *store.Operator, after int64, limit int) ([]EventView, error) {
	if err := s.allow(ctx, who, "read the audit log", store.RoleAuditor); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxAuditPage {
		limit = MaxAuditPage
	}
	events, err := s.st.AuditEvents(ctx, after, limit)
	if err != nil {
		return nil, s.internal(ctx, "read the audit log", err)
	}
	out := []EventView{}
	for _, e := range events {
		out = append(out, EventViewOf(e))
	}
	return out, nil
}
