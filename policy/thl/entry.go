// Package thl owns THL's SOTE organisation register (classification
// 1.2.246.537.6.202.2008 of the national code service) as varmenne reads it: parsing
// the code service's JSON pages and XML export, keeping the last good copy fresh from a
// file or URL, and the "thl" policy plugin that issues only to organisations the
// register lists as active. It never writes the store; "varmenne org import" does that
// with what Parse returns.
package thl

import (
	"fmt"
	"strings"
	"time"
)

// Classification is the code service's OID of the SOTE organisation register.
const Classification = "1.2.246.537.6.202.2008"

// Attribute names of a register record, as the code service spells them in its JSON
// answer (its XML export writes the first three in lower case; names are matched
// without regard to case). AttrIntermediary is varmenne's name for the Kanta
// intermediary marker: the public exports seen so far do not show one, so an
// operator whose export marks intermediaries differently maps it to this name.
const (
	AttrLongName     = "LongName"        // the organisation's long name: the certificate OU
	AttrAbbreviation = "Abbreviation"    // short name
	AttrParent       = "ParentId"        // OID of the organisation it belongs to; empty at the top
	AttrBusinessID   = "Y-Tunnus"        // business id, e.g. 1234567-8
	AttrSector       = "Sektori"         // "1 Julkinen", "2 Yksityinen", "3 Yksityinen itseilmoitettu yksikkö"
	AttrStatus       = "status"          // XML only: "1" active (JSON has a status field)
	AttrIntermediary = "Kanta-välittäjä" // T: a Kanta intermediary, F or absent: not one
)

// Status is a record's state in the register, normalised from the JSON status field
// (ACTIVE, PASSIVE, PROPOSAL, DELETED) or the XML status attribute (1 active, 0 passive).
type Status string

// Register states. Only StatusActive counts as active; anything else the export says
// is kept in lower case and is not active.
const (
	StatusActive   Status = "active"
	StatusPassive  Status = "passive"
	StatusProposal Status = "proposal"
	StatusDeleted  Status = "deleted"
)

// Sector is the register's public/private sector of an organisation.
type Sector string

// Sectors. SectorUnknown is an export without a recognisable Sektori value; rules that
// depend on the sector treat it like private (they ask more, never less).
const (
	SectorPublic  Sector = "public"
	SectorPrivate Sector = "private"
	SectorUnknown Sector = ""
)

// Entry is one organisation (or unit) in the register.
type Entry struct {
	OID          string // e.g. 1.2.246.10.1234567.10.0
	LongName     string
	Abbreviation string
	Status       Status
	// BeginDate and ExpirationDate bound when the record is in force; zero means
	// open. A date without a time of day is the whole day; times without a zone are
	// read as UTC.
	BeginDate      time.Time
	ExpirationDate time.Time
	BusinessID     string
	Sector         Sector
	SectorCode     string // the export's Sektori value as given, e.g. "2 Yksityinen"
	Parent         string
	Intermediary   bool
}

// ActiveAt reports whether the register lists the organisation as active at t: its
// status is active and t lies within its begin and expiration dates.
func (e Entry) ActiveAt(t time.Time) bool { return e.InactiveReason(t) == "" }

// InactiveReason says, for a person, why the organisation is not active at t ("" when
// it is), e.g. "ended on 2024-05-31".
func (e Entry) InactiveReason(t time.Time) string {
	switch {
	case e.Status != StatusActive:
		return fmt.Sprintf("is %s", e.Status)
	case !e.BeginDate.IsZero() && t.Before(e.BeginDate):
		return "begins on " + day(e.BeginDate)
	case !e.ExpirationDate.IsZero() && t.After(e.ExpirationDate):
		return "ended on " + day(e.ExpirationDate)
	}
	return ""
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// normalStatus maps the export's status values onto Status.
func normalStatus(v string) Status {
	switch s := strings.ToLower(strings.TrimSpace(v)); s {
	case "active", "1":
		return StatusActive
	case "passive", "0":
		return StatusPassive
	case "":
		return "unknown"
	default:
		return Status(s)
	}
}

// normalSector reads a Sektori value: its leading code (1 public; 2 and 3, a
// self-reported private unit, private) or, without one, its word.
func normalSector(v string) Sector {
	s := strings.ToLower(strings.TrimSpace(v))
	code, word, _ := strings.Cut(s, " ")
	switch {
	case code == "1" || code == "julkinen" || word == "julkinen":
		return SectorPublic
	case code == "2" || code == "3" || code == "yksityinen" || strings.HasPrefix(word, "yksityinen"):
		return SectorPrivate
	}
	return SectorUnknown
}

// flag reads a T/F attribute, as the register writes its unit-type flags.
func flag(v string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "t", "true", "1", "k", "kyllä":
		return true, true
	case "f", "false", "0", "e", "ei", "":
		return false, true
	}
	return false, false
}
