package admin

import (
	"context"
	"errors"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// Audit actions of organisations.
const (
	AuditOrgSuspend = "organisation.suspend"
	AuditOrgResume  = "organisation.resume"
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
	// Persistent are the names a persistent DNS record (dns-persist-01) authorises
	// one of its accounts for, and until when, without another validation.
	Persistent []PersistentView `json:"persistent_authorizations"`
}

// PersistentView is a valid authorization proven by a persistent DNS record.
type PersistentView struct {
	Name      string `json:"name"` // "*.name" for a wildcard
	Account   string `json:"account"`
	Record    string `json:"record"`
	Validated string `json:"validated"`
	Until     string `json:"until"`
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

// RegisterCopyView is how old the store's copy of THL's register is: the one figure
// every replica judges issuance by (thl.Stored).
type RegisterCopyView struct {
	Loaded     bool      `json:"loaded"`
	Source     string    `json:"source,omitempty"`
	LoadedAt   time.Time `json:"loaded_at,omitzero"`
	AgeSeconds int64     `json:"age_seconds"`
	Records    int       `json:"records"`
}

// Age is the copy's age, to the second.
func (v RegisterCopyView) Age() time.Duration { return time.Duration(v.AgeSeconds) * time.Second }

// Register says how old the store's copy of THL's register is.
func (s *Service) Register(ctx context.Context, who *store.Operator) (*RegisterCopyView, error) {
	if err := s.allow(ctx, who, "read the register's state", Roles...); err != nil {
		return nil, err
	}
	l, err := s.st.LastRegisterLoad(ctx)
	if err != nil {
		return nil, s.internal(ctx, "read the register's last load", err)
	}
	return registerCopyView(l, s.now()), nil
}

// registerView is a load as an operator sees it at now.
func registerCopyView(l store.RegisterLoad, now time.Time) *RegisterCopyView {
	if l.LoadedAt.IsZero() {
		return &RegisterCopyView{}
	}
	return &RegisterCopyView{Loaded: true, Source: l.Source, LoadedAt: l.LoadedAt.UTC(), AgeSeconds: int64(now.Sub(l.LoadedAt) / time.Second), Records: l.Records}
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
		Accounts: []AccountView{}, EABKeys: []KeyView{}, Certificates: []CertView{}, Persistent: []PersistentView{}}
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
	persistent, err := s.st.PersistentAuthorizations(ctx, oid, s.now())
	if err != nil {
		return nil, s.internal(ctx, "list the persistent authorizations", err)
	}
	v.Persistent = []PersistentView{}
	for _, p := range persistent {
		name := p.Name
		if p.Wildcard {
			name = "*." + name
		}
		v.Persistent = append(v.Persistent, PersistentView{Name: name, Account: p.AccountID, Record: p.Evidence,
			Validated: stamp(p.Validated), Until: stamp(p.Expires)})
	}
	return v, nil
}

// Suspend suspends an organisation: its accounts take no step towards a
// certificate (the ACME standing check) until resumed; they may still revoke and
// download their certificates.
func (s *Service) Suspend(ctx context.Context, who *store.Operator, oid, reason string) error {
	if err := s.allow(ctx, who, "suspend organisations", store.RoleAdministrator); err != nil {
		return err
	}
	reason, err := text("reason", reason, true)
	if err != nil {
		return err
	}
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(who.Name, audit.OrganisationSuspended{Org: oid, Reason: reason})},
			tx.SuspendOrganisation(oid, who.Name, reason, s.now())
	})
	if errors.Is(err, store.ErrConflict) {
		return errorf(Conflict, "organisation %s is already suspended", oid)
	}
	if err != nil {
		return s.lookup(ctx, err, "there is no organisation %s", oid)
	}
	return nil
}

// Resume lifts a suspension.
func (s *Service) Resume(ctx context.Context, who *store.Operator, oid string) error {
	if err := s.allow(ctx, who, "resume organisations", store.RoleAdministrator); err != nil {
		return err
	}
	err := s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(who.Name, audit.OrganisationResumed{Org: oid})}, tx.ResumeOrganisation(oid)
	})
	if errors.Is(err, store.ErrConflict) {
		return errorf(Conflict, "organisation %s is not suspended", oid)
	}
	if err != nil {
		return s.lookup(ctx, err, "there is no organisation %s", oid)
	}
	return nil
}
