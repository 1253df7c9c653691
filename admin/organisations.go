package admin

// The organisation use cases that change what an organisation is: adding one by
// hand, importing THL's SOTE register, approving and withdrawing domains and
// networks, and certificates of conformity. Administrators and registrars (who
// register organisations) may do them.

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/policy/names"
	"github.com/varmenne/varmenne/policy/subject"
	"github.com/varmenne/varmenne/policy/thl"
	"github.com/varmenne/varmenne/store"
)

// organisationRoles may change organisations.
var organisationRoles = []string{store.RoleAdministrator, store.RoleRegistrar}

// OrganisationInput is an organisation an operator adds by hand.
type OrganisationInput struct {
	OID      string   `json:"oid"`
	Name     string   `json:"name"`      // certificate O
	LongName string   `json:"long_name"` // certificate OU; default Name
	Domains  []string `json:"domains"`
	Networks []string `json:"networks"`
	TestOnly bool     `json:"test_only"`
	// Shared approves names another organisation has too; administrators only.
	Shared bool `json:"shared"`
}

// checkOID refuses what is not an OID.
func checkOID(oid string) error {
	if !thl.IsOID(oid) {
		return errorf(Malformed, "%q is not an OID; it looks like 1.2.246.10.12345678.10.0", oid)
	}
	return nil
}

// parseDomains checks and normalizes domain names (no wildcards).
func parseDomains(in []string) ([]string, error) {
	var out []string
	for _, d := range in {
		n := names.Normalize(strings.TrimSpace(d))
		if err := names.Check(n); err != nil || strings.HasPrefix(n, "*.") {
			return nil, errorf(Malformed, "domain %q is not a valid domain name", d)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// AddOrganisation adds an organisation by hand, with the domains and networks it
// administers.
func (s *Service) AddOrganisation(ctx context.Context, who *store.Operator, in OrganisationInput) (*store.Organisation, error) {
	if err := s.allow(ctx, who, "add organisations", organisationRoles...); err != nil {
		return nil, err
	}
	// In production THL's register is the only source of organisations: the
	// register import adds every organisation it lists as active, so one not in
	// the store is not active there (thl.RecordRefusal).
	if prod, err := s.production(ctx); err != nil || prod {
		if err != nil {
			return nil, err
		}
		return nil, errorf(Conflict, "organisation %s cannot be added by hand in production: certificates go only to organisations THL's SOTE organisation register lists as active, "+
			"and the register (--register-source, or varmenne org import) adds each of them; if it is listed, import the register and approve its domains with varmenne org domains add", strings.TrimSpace(in.OID))
	}
	o := store.Organisation{OID: strings.TrimSpace(in.OID), Name: strings.TrimSpace(in.Name), LongName: strings.TrimSpace(in.LongName),
		TestOnly: in.TestOnly, CreatedAt: s.now()}
	switch {
	case o.OID == "":
		return nil, errorf(Malformed, "the OID is required: the organisation's THL register code, e.g. 1.2.246.10.12345678.10.0")
	case o.Name == "":
		return nil, errorf(Malformed, "the name is required: the organisation's name as it goes into certificates")
	case len(in.Domains) == 0:
		return nil, errorf(Malformed, "give at least one domain the organisation administers")
	}
	if err := checkOID(o.OID); err != nil {
		return nil, err
	}
	if o.LongName == "" {
		o.LongName = o.Name
	}
	if err := checkSubjectNames(o.Name, o.LongName); err != nil {
		return nil, err
	}
	var err error
	if o.Domains, err = parseDomains(in.Domains); err != nil {
		return nil, err
	}
	if o.Networks, err = parseNetworks(in.Networks); err != nil {
		return nil, err
	}
	if err := s.allowShared(ctx, who, in.Shared); err != nil {
		return nil, err
	}
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		shared, err := sharedNames(tx, o.OID, o.Domains, o.Networks, in.Shared)
		if err != nil {
			return nil, err
		}
		return []audit.Record{audit.Done(who.Name, audit.OrganisationAdded{Org: o.OID, Name: o.Name, LongName: o.LongName,
			Domains: o.Domains, Networks: o.Networks, TestOnly: o.TestOnly, Shared: shared})}, tx.AddOrganisation(o)
	})
	if errors.Is(err, store.ErrDuplicate) {
		return nil, errorf(Conflict, "organisation %s already exists", o.OID)
	}
	if err != nil {
		return nil, s.refusalOr(ctx, err, "add the organisation")
	}
	return &o, nil
}

// checkSubjectNames refuses an organisation name (certificate O) or long name
// (OU) that a certificate subject cannot carry.
func checkSubjectNames(name, longName string) error {
	if err := subject.CheckName("name (certificate O)", name); err != nil {
		return errorf(Malformed, "%v", err)
	}
	if err := subject.CheckName("long name (certificate OU)", longName); err != nil {
		return errorf(Malformed, "%v", err)
	}
	return nil
}

// allowShared lets only administrators approve a name for two organisations.
func (s *Service) allowShared(ctx context.Context, who *store.Operator, shared bool) error {
	if !shared {
		return nil
	}
	return s.allow(ctx, who, "approve a name for two organisations (shared)", store.RoleAdministrator)
}

// sharedNames finds the domains and networks of oid's new names that another
// organisation has too (equal, or one inside the other). Unless shared says an
// administrator approves them for both, that is a Conflict naming the other
// organisation; with shared, it returns them for the audit record. It reads in
// the change's transaction, so two concurrent approvals cannot both pass.
func sharedNames(tx *store.Tx, oid string, domains []string, networks []netip.Prefix, shared bool) ([]string, error) {
	orgs, err := tx.ListOrganisations()
	if err != nil {
		return nil, err
	}
	var found []string
	for _, o := range orgs {
		if o.OID == oid {
			continue
		}
		for _, d := range domains {
			for _, theirs := range o.Domains {
				if names.Within(d, []string{theirs}) || names.Within(theirs, []string{d}) {
					if !shared {
						return nil, errorf(Conflict, "domain %s overlaps %s, approved for organisation %s (%s); an administrator may approve it for both with shared (--shared), which the audit log records",
							d, theirs, o.OID, o.Name)
					}
					found = append(found, d)
				}
			}
		}
		for _, n := range networks {
			for _, theirs := range o.Networks {
				if n.Overlaps(theirs) {
					if !shared {
						return nil, errorf(Conflict, "network %s overlaps %s, approved for organisation %s (%s); an administrator may approve it for both with shared (--shared), which the audit log records",
							n, theirs, o.OID, o.Name)
					}
					found = append(found, n.String())
				}
			}
		}
	}
	slices.Sort(found)
	return slices.Compact(found), nil
}

// refusalOr passes a refusal made inside a transaction on, and turns any other
// error into Internal.
func (s *Service) refusalOr(ctx context.Context, err error, what string) error {
	var refusal *Error
	if errors.As(err, &refusal) {
		return refusal
	}
	return s.internal(ctx, what, err)
}

// NamesInput is domains and networks to approve for, or withdraw from, an
// organisation.
type NamesInput struct {
	Domains  []string `json:"domains"`
	Networks []string `json:"networks"`
	// Shared approves names another organisation has too; administrators only.
	Shared bool `json:"shared"`
}

func (in NamesInput) parse() ([]string, []netip.Prefix, error) {
	if len(in.Domains) == 0 && len(in.Networks) == 0 {
		return nil, nil, errorf(Malformed, "give at least one domain or network")
	}
	domains, err := parseDomains(in.Domains)
	if err != nil {
		return nil, nil, err
	}
	networks, err := parseNetworks(in.Networks)
	return domains, networks, err
}

// AddNames approves more domains and networks for an organisation, for instance
// one the register import brought in, which carries none.
func (s *Service) AddNames(ctx context.Context, who *store.Operator, oid string, in NamesInput) (*store.Organisation, error) {
	if err := s.allow(ctx, who, "approve domains and networks", organisationRoles...); err != nil {
		return nil, err
	}
	domains, networks, err := in.parse()
	if err != nil {
		return nil, err
	}
	if err := s.allowShared(ctx, who, in.Shared); err != nil {
		return nil, err
	}
	var o *store.Organisation
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		shared, err := sharedNames(tx, oid, domains, networks, in.Shared)
		if err != nil {
			return nil, err
		}
		o, err = tx.AddOrganisationNames(oid, domains, networks)
		return []audit.Record{audit.Done(who.Name, audit.OrganisationNamesAdded{Org: oid, Domains: domains, Networks: networks, Shared: shared})}, err
	})
	var refusal *Error
	if errors.As(err, &refusal) {
		return nil, refusal
	}
	if err != nil {
		return nil, s.lookup(ctx, err, "organisation %s is unknown; add it (varmenne org add) or import the register (varmenne org import) first", oid)
	}
	return o, nil
}

// RemoveNames withdraws domains and networks from an organisation: its accounts
// can order them no more. Certificates already issued stay valid until revoked.
func (s *Service) RemoveNames(ctx context.Context, who *store.Operator, oid string, in NamesInput) (*store.Organisation, error) {
	if err := s.allow(ctx, who, "withdraw domains and networks", organisationRoles...); err != nil {
		return nil, err
	}
	domains, networks, err := in.parse()
	if err != nil {
		return nil, err
	}
	cur, err := s.st.GetOrganisation(ctx, oid)
	if err != nil {
		return nil, s.lookup(ctx, err, "there is no organisation %s", oid)
	}
	for _, d := range domains {
		if !slices.Contains(cur.Domains, d) {
			return nil, errorf(Conflict, "organisation %s has no domain %s (its domains: %s); nothing was withdrawn", oid, d, firstOf(strings.Join(cur.Domains, ", "), "none"))
		}
	}
	for _, n := range networks {
		if !slices.Contains(cur.Networks, n) {
			return nil, errorf(Conflict, "organisation %s has no network %s (its networks: %s); nothing was withdrawn", oid, n, prefixes(cur.Networks))
		}
	}
	var o *store.Organisation
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		var err error
		o, err = tx.RemoveOrganisationNames(oid, domains, networks)
		return []audit.Record{audit.Done(who.Name, audit.OrganisationNamesRemoved{Org: oid, Domains: domains, Networks: networks})}, err
	})
	if errors.Is(err, store.ErrConflict) {
		return nil, errorf(Conflict, "the names of organisation %s changed meanwhile; nothing was withdrawn, look again", oid)
	}
	if err != nil {
		return nil, s.lookup(ctx, err, "there is no organisation %s", oid)
	}
	return o, nil
}

// ConformityInput is a certificate of conformity of an organisation's system.
type ConformityInput struct {
	System  string    `json:"system"`
	Expires time.Time `json:"expires"`
}

// AddConformity puts a certificate of conformity on file; the sote plugin lets
// a private provider's system signature orders through only with a valid one.
func (s *Service) AddConformity(ctx context.Context, who *store.Operator, oid string, in ConformityInput) (*store.ConformityCertificate, error) {
	if err := s.allow(ctx, who, "record certificates of conformity", organisationRoles...); err != nil {
		return nil, err
	}
	if err := checkOID(oid); err != nil {
		return nil, err
	}
	system, err := text("system", in.System, true)
	if err != nil {
		return nil, err
	}
	now := s.now()
	switch {
	case in.Expires.IsZero():
		return nil, errorf(Malformed, "the expiry is required: the certificate's last day, e.g. 2027-12-31")
	case !in.Expires.After(now):
		return nil, errorf(Malformed, "the certificate of conformity expired at %s; only a valid one counts", in.Expires.UTC().Format(time.RFC3339))
	}
	c := store.ConformityCertificate{OrgOID: oid, System: system, Expires: in.Expires, AddedBy: who.Name, CreatedAt: now}
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(who.Name, audit.ConformityAdded{Org: oid, System: system, Expires: in.Expires})},
			tx.AddConformityCertificate(c)
	})
	switch {
	case errors.Is(err, store.ErrDuplicate):
		return nil, errorf(Conflict, "a certificate of conformity for %q expiring %s is already on file for %s", system, in.Expires.UTC().Format(time.DateOnly), oid)
	case err != nil:
		return nil, s.lookup(ctx, err, "organisation %s is unknown; add it (varmenne org add) or import the register (varmenne org import) first", oid)
	}
	return &c, nil
}

// ImportReport is what a register import changed, for the operator to act on.
type ImportReport struct {
	Records   int
	Added     int
	Updated   int
	Unchanged int
	Skipped   int // inactive records of organisations this server does not know
	// Gone are organisations that left the register or are no longer active in
	// it, with their valid certificates (which the operator may revoke).
	Gone []GoneOrganisation
	// Unlisted are organisations added by hand that the register does not list:
	// with a register source, the ACME standing check refuses them.
	Unlisted []store.Organisation
	// Refused are records whose names no certificate subject can carry: a new
	// organisation was not added, a known one kept its long name.
	Refused []RefusedRecord
}

// RefusedRecord is a register record the import refused, and why.
type RefusedRecord struct{ OID, Why string }

// GoneOrganisation is an organisation the import found gone from the register.
type GoneOrganisation struct {
	OID          string
	Name         string
	Why          string
	Certificates []store.Certificate
}

// ImportRegister records a whole THL register export in one transaction: it adds
// the active organisations the store lacks (named after the top of their
// hierarchy), updates those it has, and marks as left those an earlier import
// listed and this one does not. source names the export in the audit log.
func (s *Service) ImportRegister(ctx context.Context, who *store.Operator, source string, entries []thl.Entry) (*ImportReport, error) {
	if err := s.allow(ctx, who, "import the THL register", organisationRoles...); err != nil {
		return nil, err
	}
	return s.importRegister(ctx, who.Name, source, entries)
}

// RegisterSyncActor is the audit actor of the server's own register loads.
const RegisterSyncActor = "varmenne serve (register refresh)"

// SyncRegister is ImportRegister done by the server itself: each load of its
// --register-source writes the register into the store, where every replica reads
// it, recorded as RegisterSyncActor's.
func (s *Service) SyncRegister(ctx context.Context, source string, entries []thl.Entry) (*ImportReport, error) {
	return s.importRegister(ctx, RegisterSyncActor, source, entries)
}

// importRegister writes a register load into the store, with the load's time and
// size (the copy's age every replica judges) and its audit event, in one
// transaction.
func (s *Service) importRegister(ctx context.Context, actor, source string, entries []thl.Entry) (*ImportReport, error) {
	known, err := s.st.ListOrganisations(ctx)
	if err != nil {
		return nil, s.internal(ctx, "list organisations", err)
	}
	have := map[string]bool{}
	storedLong := map[string]string{} // the long names stored now
	for _, o := range known {
		have[o.OID] = true
		storedLong[o.OID] = o.LongName
	}
	now := s.now()
	byOID := make(map[string]thl.Entry, len(entries))
	for _, e := range entries {
		byOID[e.OID] = e
	}
	rep := &ImportReport{Records: len(entries)}
	var imports []store.RegisterImport
	for _, e := range entries {
		// An organisation the store lacks is added only while it is active: the
		// register keeps ended and passive records for ever.
		if !have[e.OID] && !e.ActiveAt(now) {
			rep.Skipped++
			continue
		}
		// A name no certificate subject can carry does not enter: a new
		// organisation is not added, a known one keeps the long name it has.
		name, longName := topName(e, byOID), e.LongName
		if err := checkSubjectNames(name, longName); err != nil {
			rep.Refused = append(rep.Refused, RefusedRecord{OID: e.OID, Why: err.Error()})
			if !have[e.OID] {
				continue
			}
			longName = storedLong[e.OID]
		}
		imports = append(imports, store.RegisterImport{
			OID: e.OID, Name: name, LongName: longName,
			Register: store.OrganisationRegister{Abbreviation: e.Abbreviation, BusinessID: e.BusinessID, Sector: string(e.Sector),
				Intermediary: e.Intermediary, Status: string(e.Status), BeginDate: e.BeginDate, ExpirationDate: e.ExpirationDate, Parent: e.Parent},
		})
	}
	if len(imports) == 0 {
		return nil, errorf(Malformed, "the register from %s lists no active organisation and none this server knows; nothing was imported", source)
	}
	var changes []store.RegisterChange
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		var err error
		if changes, err = tx.ImportRegister(imports, now); err != nil {
			return nil, err
		}
		if err := tx.RecordRegisterLoad(store.RegisterLoad{Source: source, LoadedAt: now, Records: len(entries)}); err != nil {
			return nil, err
		}
		ev := audit.RegisterImported{Source: source}
		for _, r := range rep.Refused {
			ev.Refused = append(ev.Refused, r.OID)
		}
		for _, c := range changes {
			switch {
			case c.Left:
				ev.Left = append(ev.Left, c.OID)
			case c.Added:
				ev.Added = append(ev.Added, c.OID)
			case c.Updated:
				ev.Updated = append(ev.Updated, c.OID)
			default:
				ev.Unchanged++
			}
		}
		return []audit.Record{audit.Done(actor, ev)}, nil
	})
	if err != nil {
		return nil, s.internal(ctx, "import the register", err)
	}
	for _, c := range changes {
		switch {
		case c.Left:
			rep.Gone = append(rep.Gone, GoneOrganisation{OID: c.OID, Name: c.BeforeLongName, Why: "is no longer listed"})
			continue
		case c.Added:
			rep.Added++
		case c.Updated:
			rep.Updated++
		default:
			rep.Unchanged++
		}
		wasActive := c.Before.SyncedAt.IsZero() || thl.RecordEntry(c.Before).ActiveAt(now)
		if !c.Added && wasActive && !thl.RecordEntry(c.After).ActiveAt(now) {
			name := c.BeforeLongName
			if e := byOID[c.OID]; e.LongName != "" {
				name = e.LongName
			}
			rep.Gone = append(rep.Gone, GoneOrganisation{OID: c.OID, Name: firstOf(name, c.After.Abbreviation), Why: thl.RecordEntry(c.After).InactiveReason(now)})
		}
	}
	for i, g := range rep.Gone {
		if rep.Gone[i].Certificates, err = s.st.ValidCertificates(ctx, g.OID, now); err != nil {
			return nil, s.internal(ctx, "list the certificates of "+g.OID+" (the register was imported)", err)
		}
	}
	for _, o := range known {
		if _, listed := byOID[o.OID]; !listed && o.Register.SyncedAt.IsZero() {
			rep.Unlisted = append(rep.Unlisted, o.Organisation)
		}
	}
	return rep, nil
}

// firstOf is the first value that is not empty.
func firstOf(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// topName is the name (certificate O) of an organisation the import adds: the long
// name of the top of its hierarchy in the register, as a unit belongs to its
// provider; its own long name when it is the top.
func topName(e thl.Entry, byOID map[string]thl.Entry) string {
	top := e
	for range 32 { // a register hierarchy is a few levels deep; a cycle ends here
		p, ok := byOID[top.Parent]
		if top.Parent == "" || !ok || p.LongName == "" {
			break
		}
		top = p
	}
	switch {
	case top.LongName != "":
		return top.LongName
	case e.Abbreviation != "":
		return e.Abbreviation
	}
	return e.OID
}
