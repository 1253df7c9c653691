// Package store keeps varmenne's records and enforces, in the database itself, the
// invariants the rest of the server relies on: a serial is unique, an EAB key binds at
// most one account, an order leaves "ready" once, a public key is certified once.
// It imports nothing of the project; callers declare the small interfaces they need.
package store

import (
	"errors"
	"net/netip"
	"time"
)

// Sentinel errors; wrap-compatible with errors.Is.
var (
	// ErrNotFound: no record with that key.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate: a unique key (serial, thumbprint, key hash, kid) is already taken.
	ErrDuplicate = errors.New("store: duplicate")
	// ErrConflict: a conditional state transition found the record in another state.
	ErrConflict = errors.New("store: state conflict")
	// ErrKeyInUse: the public key is certified, or an issuance for it is under way.
	ErrKeyInUse = errors.New("store: public key already certified")
	// ErrAlreadyReplaced: an order that reached finalize already replaces the
	// certificate (RFC 9773 "replaces").
	ErrAlreadyReplaced = errors.New("store: certificate already replaced")
)

// Organisation is a SOTE organisation as the register and the operators know it.
type Organisation struct {
	OID      string // THL register code, e.g. 1.2.246.10.1234567.10.0
	Name     string
	LongName string
	Domains  []string // domains the organisation administers
	// Networks are the approved networks whose addresses ip identifiers may name
	// (beside a DNS name); none: IP identifiers are refused.
	Networks  []netip.Prefix
	CreatedAt time.Time
	TestOnly  bool // may order test profiles only
	// Suspended by an operator: its accounts take no step towards a certificate
	// (zero: active).
	SuspendedAt   time.Time
	SuspendedBy   string
	SuspendReason string
}

// EAB key states.
const (
	EABApproved = "approved"
	EABBound    = "bound"
	EABRevoked  = "revoked"
	EABExpired  = "expired" // approved but never bound before ExpiresAt
)

// EABKey is an External Account Binding key bound to one organisation.
type EABKey struct {
	KID       string
	OrgOID    string
	HMACKey   []byte
	Domains   []string       // empty: all of the organisation's domains
	Profiles  []string       // empty: every profile the organisation may use
	Networks  []netip.Prefix // empty: all of the organisation's networks
	Status    string
	AccountID string // set once bound
	CreatedAt time.Time
	BoundAt   time.Time
	// The lifecycle of a key approved from an EAB request (admin); all zero for
	// keys of "varmenne eab create", which never expire.
	ExpiresAt    time.Time // zero: never
	RequestID    string
	RequestedBy  string
	ApprovedBy   string
	RevealedAt   time.Time // when the HMAC key was handed over (once)
	RevokedBy    string
	RevokeReason string
}

// Account is an ACME account; it belongs to its organisation for life.
type Account struct {
	ID         string
	Thumbprint string // RFC 7638 SHA-256 thumbprint of the key, base64url; unique
	JWK        []byte // the public JWK as JSON
	OrgOID     string
	EABKID     string
	Contacts   []string
	Status     string // valid, deactivated, revoked
	CreatedAt  time.Time
}

// Order is an ACME order. Names are the dns identifiers in the order the client sent.
type Order struct {
	ID         string
	AccountID  string
	OrgOID     string
	Status     string // pending, ready, processing, valid, invalid
	Expires    time.Time
	Names      []string
	Profile    string
	NotBefore  time.Time // zero: not requested
	NotAfter   time.Time // zero: not requested
	AuthzIDs   []string  // in the order of Names
	Error      []byte    // problem document JSON when invalid
	CertSerial string    // lower-case hex, set when valid
	CreatedAt  time.Time
	// Replaces is the RFC 9773 CertID of the certificate the order replaces and
	// ReplacesSerial that certificate's serial (lower-case hex); both "" when none.
	Replaces       string
	ReplacesSerial string
}

// Authorization is an ACME authorization for one name.
type Authorization struct {
	ID         string
	AccountID  string
	Name       string
	Wildcard   bool
	Status     string // pending, valid, invalid, deactivated
	Expires    time.Time
	Challenges []Challenge
	CreatedAt  time.Time
}

// Challenge is one way to prove control of an authorization's name.
type Challenge struct {
	ID        string
	AuthzID   string
	Type      string
	Token     string
	Status    string // pending, processing, valid, invalid
	Validated time.Time
	Error     []byte // problem document JSON when invalid
	// Evidence is what proved control when it is more than the token: for
	// dns-persist-01 the record found (FinishChallengeWithEvidence); else "".
	Evidence string
}

// IssuanceIntent is written before the issuer key is asked to sign anything, so a
// crash between the two leaves a visible record, never a lost certificate.
type IssuanceIntent struct {
	Serial    string // lower-case hex
	OrderID   string
	Issuer    string
	Names     []string
	KeyHash   string // hex SHA-256 of the SubjectPublicKeyInfo DER
	LintTBS   []byte // the TBS that was checked before signing (may be empty)
	Status    string // IntentPending, IntentIssued or IntentFailed; set by the store
	Reason    string // why a failed intent was never signed; set by FailIntent
	CreatedAt time.Time
	// KeyUse says how far the issuer key got (KeyNotAsked, KeyAsked, KeySigned, or
	// KeyUseUnknown for intents recorded before it was kept); set by the store.
	KeyUse string
	// CertSHA256 and DER are the certificate of a signed intent (KeySigned), kept
	// until FinishIssuance stores it; set by IntentSigned.
	CertSHA256 string
	DER        []byte
}

// Issuance intent states. A pending or issued intent holds its key; a failed one
// (the issuer never signed) frees it for another try.
const (
	IntentPending = "pending"
	IntentIssued  = "issued"
	IntentFailed  = "failed"
)

// How far the issuer key got with an intent (IssuanceIntent.KeyUse). Each step is
// written together with its audit event, and the key is asked only after KeyAsked
// committed, so a pending intent that is KeyNotAsked was never signed.
const (
	KeyNotAsked   = "none"    // recorded; the key was not asked
	KeyAsked      = "asked"   // certificate.sign.begin written: the key may have signed
	KeySigned     = "signed"  // certificate.sign.end written: signed and verified
	KeyUseUnknown = "unknown" // recorded before varmenne kept this (migration 0026)
)

// Certificate is an issued certificate.
type Certificate struct {
	Serial    string // lower-case hex, unique
	Issuer    string // issuer name in configuration, e.g. "production", "test"
	DER       []byte
	Names     []string
	KeyHash   string // unique: a key is certified once
	NotBefore time.Time
	NotAfter  time.Time
	OrgOID    string
	AccountID string
	OrderID   string
	Profile   string
	CreatedAt time.Time
}

// Revocation is final; records are never deleted. RevokedAt is when it was carried
// out (the time CRLs and OCSP give); RequestedAt when it was asked for.
type Revocation struct {
	Serial         string
	RevokedAt      time.Time
	Reason         int // RFC 5280 CRLReason
	RequestedBy    string
	IdentifiedBy   string
	PerformedBy    string
	Note           string
	RequestedAt    time.Time // zero: the same as RevokedAt
	InvalidityDate time.Time // zero: not given; when the key is known or suspected to have been compromised
	ReceivedBy     string    // the door that received the request and who was at it ("" before migration 0028)
}

// BlockedKey is a public key that may never be certified or used as an account key.
type BlockedKey struct {
	KeyHash   string
	Reason    string
	Source    string
	CreatedAt time.Time
}

// OrganisationRegister is what THL's SOTE organisation register said about an
// organisation at the last register import that listed it ("varmenne org import").
// It is kept beside the Organisation: GetOrganisation does not read it;
// GetOrganisationRegister and ListOrganisations do.
type OrganisationRegister struct {
	OrgOID         string
	Abbreviation   string
	BusinessID     string    // Y-tunnus, e.g. 1234567-8
	Sector         string    // "public", "private" or "" (unknown)
	Intermediary   bool      // a Kanta intermediary, which may apply in its own name
	Status         string    // register status: active, passive, proposal, deleted, …
	BeginDate      time.Time // zero: open
	ExpirationDate time.Time // zero: open
	Parent         string    // OID of the organisation it belongs to; "" at the top
	SyncedAt       time.Time // the last import that listed it; zero: never imported
	LeftAt         time.Time // the first import that no longer listed it; zero while listed
}

// RegisteredOrganisation is an organisation with its register data.
type RegisteredOrganisation struct {
	Organisation
	Register OrganisationRegister
}

// ConformityCertificate is a certificate of conformity of an information system,
// on file for an organisation: a private provider needs an unexpired one before it
// gets a system signature certificate. Organisation, system and expiry are its key.
type ConformityCertificate struct {
	OrgOID    string
	System    string    // the information system it certifies
	Expires   time.Time // valid until this instant
	AddedBy   string    // the operator who recorded it
	CreatedAt time.Time
}
