package acme

import (
	"encoding/json"
	"net/netip"
	"time"
)

// Status of an account, order, authorization or challenge (RFC 8555 section 7.1.6).
type Status string

// Statuses.
const (
	StatusPending     Status = "pending"
	StatusReady       Status = "ready"
	StatusProcessing  Status = "processing"
	StatusValid       Status = "valid"
	StatusInvalid     Status = "invalid"
	StatusDeactivated Status = "deactivated"
	StatusRevoked     Status = "revoked"
	StatusExpired     Status = "expired"
)

// Identifier types.
const (
	IdentifierDNS = "dns"
	IdentifierIP  = "ip" // RFC 8738
)

// Challenge types.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeDNS01     = "dns-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
	// ChallengeDNSPersist01 proves control with a persistent TXT record naming the CA
	// and the account (draft-ietf-acme-dns-persist).
	ChallengeDNSPersist01 = "dns-persist-01"
	// ChallengeDNSAccount01 is dns-01 at a label of the account's own
	// (draft-ietf-acme-dns-account-label).
	ChallengeDNSAccount01 = "dns-account-01"
)

// Identifier is what a certificate is asked for (RFC 8555 section 9.7.7).
type Identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// IdentifierOf is the identifier a stored name stands for. Orders, authorizations and
// certificates keep IP identifiers (RFC 8738) beside DNS names, as the address's
// canonical text; a dns identifier is never an IP literal (policy/names refuses
// one), so the value alone says which type it is.
func IdentifierOf(value string) Identifier {
	if _, err := netip.ParseAddr(value); err == nil {
		return Identifier{Type: IdentifierIP, Value: value}
	}
	return Identifier{Type: IdentifierDNS, Value: value}
}

// Directory is the resource that tells a client every other URL (section 7.1.1).
type Directory struct {
	NewNonce   string        `json:"newNonce"`
	NewAccount string        `json:"newAccount"`
	NewOrder   string        `json:"newOrder"`
	RevokeCert string        `json:"revokeCert"`
	KeyChange  string        `json:"keyChange"`
	Meta       DirectoryMeta `json:"meta"`

	// RenewalInfo is the base of ACME Renewal Information URLs (RFC 9773).
	RenewalInfo string `json:"renewalInfo,omitempty"`
}

// DirectoryMeta is the directory's meta object.
type DirectoryMeta struct {
	TermsOfService          string            `json:"termsOfService,omitempty"`
	Website                 string            `json:"website,omitempty"`
	CAAIdentities           []string          `json:"caaIdentities,omitempty"`
	ExternalAccountRequired bool              `json:"externalAccountRequired"`
	Profiles                map[string]string `json:"profiles,omitempty"`
}

// Account is the account resource (section 7.1.2).
type Account struct {
	Status                 Status          `json:"status"`
	Contact                []string        `json:"contact,omitempty"`
	TermsOfServiceAgreed   bool            `json:"termsOfServiceAgreed,omitempty"`
	ExternalAccountBinding json.RawMessage `json:"externalAccountBinding,omitempty"`
	Orders                 string          `json:"orders"`
}

// Order is the order resource (section 7.1.3).
type Order struct {
	Status         Status       `json:"status"`
	Expires        time.Time    `json:"expires"`
	Identifiers    []Identifier `json:"identifiers"`
	Profile        string       `json:"profile,omitempty"`
	NotBefore      *time.Time   `json:"notBefore,omitempty"`
	NotAfter       *time.Time   `json:"notAfter,omitempty"`
	Error          *Problem     `json:"error,omitempty"`
	Authorizations []string     `json:"authorizations"`
	Finalize       string       `json:"finalize"`
	Certificate    string       `json:"certificate,omitempty"`
	Replaces       string       `json:"replaces,omitempty"` // RFC 9773 CertID
}

// OrdersList is the account's orders list (section 7.1.2.1).
type OrdersList struct {
	Orders []string `json:"orders"`
}

// Authorization is the authorization resource (section 7.1.4).
type Authorization struct {
	Identifier Identifier  `json:"identifier"`
	Status     Status      `json:"status"`
	Expires    time.Time   `json:"expires"`
	Challenges []Challenge `json:"challenges"`
	Wildcard   bool        `json:"wildcard,omitempty"`
}

// Challenge is a challenge object (section 8).
type Challenge struct {
	Type      string     `json:"type"`
	URL       string     `json:"url"`
	Status    Status     `json:"status"`
	Token     string     `json:"token"`
	Validated *time.Time `json:"validated,omitempty"`
	Error     *Problem   `json:"error,omitempty"`
	// IssuerDomainNames are the CA's CAA identities a dns-persist-01 record may name
	// (draft-ietf-acme-dns-persist); only in that challenge.
	IssuerDomainNames []string `json:"issuer-domain-names,omitempty"`
}

// Requests the client sends.

// NewAccountRequest is the newAccount payload (section 7.3).
type NewAccountRequest struct {
	Contact                []string        `json:"contact"`
	TermsOfServiceAgreed   bool            `json:"termsOfServiceAgreed"`
	OnlyReturnExisting     bool            `json:"onlyReturnExisting"`
	ExternalAccountBinding json.RawMessage `json:"externalAccountBinding"`
}

// AccountUpdateRequest is the payload of a POST to the account URL (section 7.3.2).
type AccountUpdateRequest struct {
	Contact *[]string `json:"contact"`
	Status  Status    `json:"status"`
}

// NewOrderRequest is the newOrder payload (section 7.4).
type NewOrderRequest struct {
	Identifiers []Identifier `json:"identifiers"`
	NotBefore   string       `json:"notBefore"`
	NotAfter    string       `json:"notAfter"`
	Profile     string       `json:"profile"`
	Replaces    string       `json:"replaces"` // RFC 9773 CertID of the certificate this order replaces
}

// FinalizeRequest is the finalize payload (section 7.4).
type FinalizeRequest struct {
	CSR string `json:"csr"`
}

// RevokeRequest is the revokeCert payload (section 7.6).
type RevokeRequest struct {
	Certificate string `json:"certificate"`
	Reason      *int   `json:"reason"`
}

// KeyChangeInner is the payload of the inner JWS of a key change (section 7.3.5).
type KeyChangeInner struct {
	Account string          `json:"account"`
	OldKey  json.RawMessage `json:"oldKey"`
}

// RenewalInfo is the ACME Renewal Information resource (RFC 9773 section 4.2).
type RenewalInfo struct {
	SuggestedWindow RenewalWindow `json:"suggestedWindow"`
	ExplanationURL  string        `json:"explanationURL,omitempty"`
}

// RenewalWindow is when the server suggests the client renew.
type RenewalWindow struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}
