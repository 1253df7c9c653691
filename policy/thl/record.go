package thl

import (
	"strings"
	"time"

	"github.com/varmenne/varmenne/store"
)

// RecordEntry is the register's view of the register data an import stored for an
// organisation ("varmenne org import"), for the rules of Entry.
func RecordEntry(r store.OrganisationRegister) Entry {
	return Entry{OID: r.OrgOID, Status: Status(strings.ToLower(r.Status)), BeginDate: r.BeginDate, ExpirationDate: r.ExpirationDate}
}

// RecordRefusal says, for a person, why the register data an import stored for an
// organisation does not allow it at now ("" when it does): it left the register, or
// the register does not list it as active (status, begin and expiration dates). An
// organisation no import ever listed was added by an operator ("varmenne org add"),
// which is its register entry, and is allowed here; a register source given to the
// server (Check) judges it too. The operator service refuses an EAB request and the
// ACME standing check every step towards a certificate on this answer.
func RecordRefusal(r store.OrganisationRegister, now time.Time) string {
	switch {
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
