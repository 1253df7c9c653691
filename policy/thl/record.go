package thl

import (
	"strings"
	"time"

	"github.com/varmenne/varmenne/store"
)

// RecordEntry is the register's view of the register data a load stored for an
// organisation (a refresh from --register-source, or "varmenne org import"), for the
// rules of Entry. The long name is the organisation's (store.Organisation.LongName).
func RecordEntry(r store.OrganisationRegister) Entry {
	return Entry{OID: r.OrgOID, Status: Status(strings.ToLower(r.Status)), BeginDate: r.BeginDate, ExpirationDate: r.ExpirationDate,
		Abbreviation: r.Abbreviation, BusinessID: r.BusinessID, Sector: Sector(r.Sector), Parent: r.Parent, Intermediary: r.Intermediary}
}

// RecordRefusal says, for a person, why the register data an import stored for an
// organisation does not allow it at now ("" when it does): it left the register, or
// the register does not list it as active (status, begin and expiration dates). An
// organisation no import ever listed was added by an operator ("varmenne org add"):
// in development that is its register entry, and it is allowed; in production
// (production true) only THL's register makes an organisation eligible, so it is
// refused. The operator service refuses an EAB request and the ACME standing check
// every step towards a certificate on this answer.
func RecordRefusal(r store.OrganisationRegister, now time.Time, production bool) string {
	switch {
	case r.SyncedAt.IsZero() && production:
		return "is not listed in THL's SOTE organisation register as this CA imported it (in production only organisations the register lists as active get certificates)"
	case r.SyncedAt.IsZero():
		return ""
	case !r.LeftAt.IsZero():
		return "is no longer in THL's SOTE organisation register (since the import of " + day(r.LeftAt) + ")"
	case r.Status == "":
		return "" // an import before register statuses were kept: the listing is what it says
	}
	if why := RecordEntry(r).InactiveReason(now); why != "" {
		return why + " according to THL's SOTE organisation register (imported " + day(r.SyncedAt) + ")"
	}
	return ""
}
