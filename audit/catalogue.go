package audit

import (
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Action names what an event records. Every action the log knows is declared
// below, with the typed fields it carries; no caller writes an action or an
// object as a string.
type Action string

// Event is one entry of the catalogue: its fields, and the action it records.
type Event interface{ Action() Action }

// The catalogue. Operators' use cases first, then the ACME side, then keys and the
// server itself.
const (
	ActOrganisationAdd     Action = "organisation.add"
	ActRegisterImport      Action = "organisation.import"
	ActOrganisationNames   Action = "organisation.names.add"
	ActOrganisationUnnames Action = "organisation.names.remove"
	ActConformityAdd       Action = "organisation.conformity.add"
	ActOrganisationSuspend Action = "organisation.suspend"
	ActOrganisationResume  Action = "organisation.resume"
	ActEABRequest          Action = "eab.request"
	ActEABApprove          Action = "eab.approve"
	ActEABReject           Action = "eab.reject"
	ActEABHandover         Action = "eab.handover"
	ActEABExpire           Action = "eab.expire"
	ActEABRevoke           Action = "eab.revoke"
	ActOperatorAdd         Action = "operator.add"
	ActOperatorDisable     Action = "operator.disable"
	ActOperatorRemove      Action = "operator.remove"
	ActOperatorRotate      Action = "operator.rotate"
	ActOperatorChange      Action = "operator.change.request"
	ActOperatorApprove     Action = "operator.change.approve"
	ActOperatorReject      Action = "operator.change.reject"
	ActOperatorLogin       Action = "operator.login"
	ActLoginsThrottled     Action = "operator.login.throttled"
	ActOperatorLogout      Action = "operator.logout"
	ActAccessDenied        Action = "access.denied"
	ActRevoke              Action = "certificate.revoke"
	ActRevocationNotice    Action = "revocation.notice"
	ActKeyBlock            Action = "key.block"
	ActRenewEarly          Action = "certificate.renew-early"
	ActAuditExport         Action = "audit.export"
	ActOperatorCACreate    Action = "operator-ca.create"

	ActAccountCreate     Action = "account.create"
	ActAccountDeactivate Action = "account.deactivate"
	ActAccountKeyChange  Action = "account.key-change"
	ActOrderCreate       Action = "order.create"
	ActPersistValidate   Action = "authz.validate.persistent-record"

	ActSignBegin       Action = "certificate.sign.begin"
	ActSignEnd         Action = "certificate.sign.end"
	ActOCSPResponder   Action = "ocsp.responder.issue"
	ActKeyGenerate     Action = "key.generate"
	ActKeySelfTest     Action = "key.selftest"
	ActCertificateMake Action = "certificate.create"
	ActCeremony        Action = "ceremony.init"
	ActHSMLogin        Action = "hsm.login"
	ActHSMRelogin      Action = "hsm.relogin"
	ActHSMSelfTest     Action = "hsm.selftest"
	ActActivationSplit Action = "hsm.activation.split"
	ActServeStart      Action = "serve.start"
	ActServeStop       Action = "serve.stop"

	ActIssuerRegister       Action = "issuer.register"
	ActIssuerActivate       Action = "issuer.activate"
	ActIssuerRetireRequest  Action = "issuer.retire.request"
	ActIssuerRetireWithdraw Action = "issuer.retire.withdraw"
	ActIssuerRetire         Action = "issuer.retire"
)

// Issuer generations (practice statement 6.6, 6.8.1).

// IssuerRegistered: a generation of a hierarchy's issuer became known to the
// database (a server loaded it, or its key ceremony made it), in State, or a
// known one has a new certificate.
type IssuerRegistered struct {
	Issuer, Hierarchy string
	Generation        int
	SHA256, State     string
	// Replaces is the SHA-256 of the certificate the generation had, when its
	// key was certified anew (or a development PKI made again).
	Replaces string `audit:",omitempty"`
}

// IssuerActivated: an operator made Issuer the generation that signs its
// hierarchy's new certificates; Previous keeps signing its CRLs and OCSP answers.
type IssuerActivated struct{ Issuer, Hierarchy, Previous string }

// IssuerRetireRequested: an administrator asked for Issuer's retirement, which
// another administrator carries out.
type IssuerRetireRequested struct{ Issuer, Reason string }

// IssuerRetireWithdrawn: a retirement asked for was dropped before it was carried out.
type IssuerRetireWithdrawn struct{ Issuer, Reason string }

// IssuerRetired: a second administrator carried out Issuer's retirement: Revoked
// certificates revoked now (each has its own certificate.revoke event), the last
// certificate's expiry, and FinalUntil, the nextUpdate of its final CRL.
type IssuerRetired struct {
	Issuer, RequestedBy, Reason string
	Revoked                     int
	LastExpiry                  time.Time `audit:",omitempty"`
	FinalUntil                  time.Time
}

// Organisations.

// OrganisationAdded: an operator added an organisation by hand; Shared are the
// names another organisation has too, which an administrator approved for both.
type OrganisationAdded struct {
	Org      string
	Name     string
	LongName string
	Domains  []string
	Networks []netip.Prefix
	TestOnly bool
	Shared   []string `audit:",omitempty"`
}

// RegisterImported: a THL register export was imported; Refused are the records
// whose names cannot go into a certificate subject (not added, or their long
// name not updated).
type RegisterImported struct {
	Source    string
	Added     []string
	Updated   []string
	Unchanged int
	Left      []string
	Refused   []string `audit:",omitempty"`
}

// OrganisationNamesAdded: domains or networks were approved for an organisation.
type OrganisationNamesAdded struct {
	Org      string
	Domains  []string
	Networks []netip.Prefix
	Shared   []string `audit:",omitempty"` // names another organisation has too
}

// OrganisationNamesRemoved: domains or networks were withdrawn from an organisation.
type OrganisationNamesRemoved struct {
	Org      string
	Domains  []string
	Networks []netip.Prefix
}

// ConformityAdded: a certificate of conformity was put on file.
type ConformityAdded struct {
	Org     string
	System  string
	Expires time.Time
}

// OrganisationSuspended: an organisation may not order until resumed.
type OrganisationSuspended struct{ Org, Reason string }

// OrganisationResumed lifts a suspension.
type OrganisationResumed struct{ Org string }

// EAB keys.

// EABRequested: a registrar (or the e-service) asked for an EAB key.
type EABRequested struct {
	Request          string
	Org              string
	Person           string
	IdentifiedBy     string
	TechnicalContact string
	Domains          []string
	Networks         []netip.Prefix
	Profiles         []string
}

// EABApproved: an administrator approved a request; SingleControl when the
// development shortcut let the requester approve it.
type EABApproved struct {
	Request       string
	KID           string
	Org           string
	RequestedBy   string
	Expires       time.Time
	SingleControl bool `audit:",omitempty"`
}

// EABRejected: an administrator rejected a request.
type EABRejected struct{ Request, Reason string }

// EABHandedOver: the requester received the HMAC key (only its fingerprint is
// recorded).
type EABHandedOver struct{ Request, KID, Fingerprint string }

// EABExpired: a request undecided or a key unbound past its expiry.
type EABExpired struct {
	Request string `audit:",omitempty"`
	KID     string `audit:",omitempty"`
}

// EABRevoked: a key can bind no account any more.
type EABRevoked struct {
	KID                string
	Reason             string
	DeactivateAccounts bool
}

// Operators.

// OperatorAdded: a new operator and the kind of credential handed out;
// SingleControl when one administrator decided alone (development, or the CA's
// only administrator adding the second).
type OperatorAdded struct {
	Operator      string
	Role          string
	Credential    string
	SingleControl bool `audit:",omitempty"`
}

// OperatorDisabled: an operator's credentials stop working at once.
type OperatorDisabled struct {
	Operator      string
	Reason        string
	SingleControl bool `audit:",omitempty"`
}

// OperatorRemoved: an operator is gone; the audit log keeps the name.
type OperatorRemoved struct {
	Operator      string
	SingleControl bool `audit:",omitempty"`
}

// OperatorRotated: an operator got a new credential; the old one stops working.
type OperatorRotated struct {
	Operator      string
	Credential    string
	SingleControl bool `audit:",omitempty"`
}

// OperatorChangeRequested: an administrator asked for a change to an operator,
// which another administrator must approve.
type OperatorChangeRequested struct {
	Change   string
	Kind     string
	Operator string
	Role     string `audit:",omitempty"`
	Reason   string `audit:",omitempty"`
}

// OperatorChangeApproved: a second administrator approved a change; it was
// applied in the same transaction.
type OperatorChangeApproved struct{ Change, Kind, Operator string }

// OperatorChangeRejected: a change to an operator was rejected or withdrawn.
type OperatorChangeRejected struct{ Change, Reason string }

// Login: an operator's credential was presented (outcome: ok or refused), from
// Source, the client's address (an IPv6 /64) when it came over the network.
type Login struct {
	Credential string
	Role       string `audit:",omitempty"`
	Source     string `audit:",omitempty"`
}

// LoginsThrottled: in the window [Since, Until) Attempts login attempts from
// Source were refused without their credential being checked, because the source
// or the credential had reached its limit of refused logins. One event per source
// and window, written once the window ended, with the exact count; the refusals
// whose credential was checked are Login events of their own.
type LoginsThrottled struct {
	Source   string
	Since    time.Time
	Until    time.Time
	Attempts int
}

// Logout: a console session ended.
type Logout struct{ Via string }

// AccessDenied: an operator tried something their role does not allow.
type AccessDenied struct{ What, Role string }

// OperatorCACreated: the CA of operators' client certificates was made.
type OperatorCACreated struct{ Subject, SHA256 string }

// KeyBlocked: an operator blocked a public key (its SPKI SHA-256): it is never
// certified, nor used as an account key, again.
type KeyBlocked struct{ KeyHash, Reason string }

// Certificates.

// Revoked: a certificate was revoked; the complete revocation record.
type Revoked struct {
	Serial         string
	Reason         string
	RequestedBy    string
	IdentifiedBy   string
	RequestedAt    time.Time
	InvalidityDate time.Time `audit:",omitempty"`
	PerformedBy    string
	ReceivedBy     string `audit:",omitempty"`
}

// RevocationNoticed: a try at the e-mail that tells a revoked certificate's
// holder (the record's outcome says whether it was sent); Retry is when the next
// try is due, zero when this was the last. The addresses are not logged.
type RevocationNoticed struct {
	Serial     string
	Recipients int
	Attempt    int
	Retry      time.Time `audit:",omitempty"`
}

// RenewedEarly: a certificate's ARI renewal window was moved into the past.
type RenewedEarly struct {
	Serial string
	Reason string
	Window string
}

// AuditExported: an operator exported the audit log.
type AuditExported struct {
	Since  time.Time `audit:",omitempty"`
	Until  time.Time `audit:",omitempty"`
	Events int
}

// ACME.

// AccountCreated: an EAB key bound a new ACME account.
type AccountCreated struct {
	Account string
	Org     string
	EABKID  string `audit:"eab_kid"`
}

// AccountDeactivated: an account can do nothing more; By says who ended it
// ("account", "eab-revocation").
type AccountDeactivated struct {
	Account string
	Org     string `audit:",omitempty"`
	EABKID  string `audit:"eab_kid,omitempty"`
	By      string
}

// AccountKeyChanged: an account rolled its key over (RFC 8555 7.3.5).
type AccountKeyChanged struct{ Account, Org, OldThumbprint, NewThumbprint string }

// OrderCreated: an account ordered a certificate.
type OrderCreated struct {
	Order   string
	Account string
	Org     string
	Profile string
	Names   []string
}

// PersistentRecordValidated: a name was proven with dns-persist-01 by a record the
// organisation published once, which later orders of the account may rest on.
type PersistentRecordValidated struct {
	Authz        string
	Challenge    string
	Account      string
	Org          string
	Name         string
	Wildcard     bool
	Owner        string // where the record was found, after CNAMEs
	Record       string
	PersistUntil time.Time `audit:",omitempty"`
	Validated    time.Time
}

// Keys and the server.

// SignBegin: the issuer key is about to sign (outcome pending).
type SignBegin struct {
	Serial  string
	Order   string
	Profile string
	Issuer  string
	Names   []string
}

// SignEnd: the signature is made and verified, or failed.
type SignEnd struct {
	Serial string
	SHA256 string `audit:",omitempty"`
}

// OCSPResponderIssued: an issuer key signed an OCSP responder's certificate.
type OCSPResponderIssued struct {
	Issuer   string
	Serial   string
	NotAfter time.Time
}

// KeyGenerated: the ceremony made a key pair in the HSM, with the attributes
// that keep it inside.
type KeyGenerated struct {
	Label            string
	ID               string `audit:",omitempty"`
	Type             string
	Sensitive        bool
	Extractable      bool
	NeverExtractable bool
}

// KeySelfTest: a key signed and its signature verified.
type KeySelfTest struct{ Label string }

// CertificateMade: the ceremony made a CA or listener certificate.
type CertificateMade struct {
	Role    string
	Key     string `audit:",omitempty"`
	SHA256  string
	Subject string `audit:",omitempty"`
	Names   []string
}

// CeremonyDone: the key ceremony finished; the certificates' SHA-256 fingerprints
// (TestRoot: the test hierarchy's root, since the test issuer has its own).
type CeremonyDone struct{ Token, Root, Production, Test, TestRoot string }

// HSMLogin: a login to the HSM token at start; Holders are the two people whose
// activation shares made the PIN (none when the PIN was given whole, at a ceremony).
type HSMLogin struct {
	Token   string
	Serial  string   `audit:",omitempty"`
	Holders []string `audit:",omitempty"`
}

// HSMRelogin: the signer logged in again after the token lost its session.
type HSMRelogin struct{ Token, Key string }

// HSMSelfTest: an HSM key's sign-and-verify self-test at start.
type HSMSelfTest struct{ Token, Key string }

// ActivationSplit: the token's user PIN was replaced by a random one nobody saw,
// written as two activation shares; Share1 and Share2 name their holders (the
// shares themselves are never recorded). Reshare: a later ceremony step handed the
// activation to new holders.
type ActivationSplit struct {
	Token   string
	Serial  string
	Set     string
	Share1  string
	Share2  string
	Reshare bool `audit:",omitempty"`
}

// ServeStarted: the server started with this software version and configuration.
type ServeStarted struct {
	Version string
	Listen  string
	Keys    string
	Config  string
}

// ServeStopped: the server stopped.
type ServeStopped struct{ Version string }

func (OrganisationAdded) Action() Action         { return ActOrganisationAdd }
func (RegisterImported) Action() Action          { return ActRegisterImport }
func (OrganisationNamesAdded) Action() Action    { return ActOrganisationNames }
func (OrganisationNamesRemoved) Action() Action  { return ActOrganisationUnnames }
func (ConformityAdded) Action() Action           { return ActConformityAdd }
func (OrganisationSuspended) Action() Action     { return ActOrganisationSuspend }
func (OrganisationResumed) Action() Action       { return ActOrganisationResume }
func (EABRequested) Action() Action              { return ActEABRequest }
func (EABApproved) Action() Action               { return ActEABApprove }
func (EABRejected) Action() Action               { return ActEABReject }
func (EABHandedOver) Action() Action             { return ActEABHandover }
func (EABExpired) Action() Action                { return ActEABExpire }
func (EABRevoked) Action() Action                { return ActEABRevoke }
func (OperatorAdded) Action() Action             { return ActOperatorAdd }
func (OperatorDisabled) Action() Action          { return ActOperatorDisable }
func (OperatorRemoved) Action() Action           { return ActOperatorRemove }
func (OperatorRotated) Action() Action           { return ActOperatorRotate }
func (OperatorChangeRequested) Action() Action   { return ActOperatorChange }
func (OperatorChangeApproved) Action() Action    { return ActOperatorApprove }
func (OperatorChangeRejected) Action() Action    { return ActOperatorReject }
func (Login) Action() Action                     { return ActOperatorLogin }
func (LoginsThrottled) Action() Action           { return ActLoginsThrottled }
func (Logout) Action() Action                    { return ActOperatorLogout }
func (AccessDenied) Action() Action              { return ActAccessDenied }
func (OperatorCACreated) Action() Action         { return ActOperatorCACreate }
func (Revoked) Action() Action                   { return ActRevoke }
func (RevocationNoticed) Action() Action         { return ActRevocationNotice }
func (KeyBlocked) Action() Action                { return ActKeyBlock }
func (RenewedEarly) Action() Action              { return ActRenewEarly }
func (AuditExported) Action() Action             { return ActAuditExport }
func (AccountCreated) Action() Action            { return ActAccountCreate }
func (AccountDeactivated) Action() Action        { return ActAccountDeactivate }
func (AccountKeyChanged) Action() Action         { return ActAccountKeyChange }
func (OrderCreated) Action() Action              { return ActOrderCreate }
func (PersistentRecordValidated) Action() Action { return ActPersistValidate }
func (SignBegin) Action() Action                 { return ActSignBegin }
func (SignEnd) Action() Action                   { return ActSignEnd }
func (OCSPResponderIssued) Action() Action       { return ActOCSPResponder }
func (KeyGenerated) Action() Action              { return ActKeyGenerate }
func (KeySelfTest) Action() Action               { return ActKeySelfTest }
func (CertificateMade) Action() Action           { return ActCertificateMake }
func (CeremonyDone) Action() Action              { return ActCeremony }
func (HSMLogin) Action() Action                  { return ActHSMLogin }
func (HSMRelogin) Action() Action                { return ActHSMRelogin }
func (HSMSelfTest) Action() Action               { return ActHSMSelfTest }
func (ActivationSplit) Action() Action           { return ActActivationSplit }
func (ServeStarted) Action() Action              { return ActServeStart }
func (ServeStopped) Action() Action              { return ActServeStop }
func (IssuerRegistered) Action() Action          { return ActIssuerRegister }
func (IssuerActivated) Action() Action           { return ActIssuerActivate }
func (IssuerRetireRequested) Action() Action     { return ActIssuerRetireRequest }
func (IssuerRetireWithdrawn) Action() Action     { return ActIssuerRetireWithdraw }
func (IssuerRetired) Action() Action             { return ActIssuerRetire }

// Object is an event's fields as the log keeps them: "name=value" pairs in the
// order the type declares them, separated by spaces. A field's name is its tag's
// (`audit:"eab_kid"`) or its Go name in snake case (KID is kid, RequestedBy
// requested_by); a value that is
// empty or holds a space, a quote, '=' or a control character is quoted as a Go
// string, so no value can pass for another field. Lists are comma-separated,
// times RFC 3339 UTC. A field tagged `audit:",omitempty"` is left out when zero.
func Object(e Event) string {
	v := reflect.ValueOf(e)
	t := v.Type()
	var b strings.Builder
	for i := range t.NumField() {
		f := t.Field(i)
		fv := v.Field(i)
		name, opt, _ := strings.Cut(f.Tag.Get("audit"), ",")
		if opt == "omitempty" && fv.IsZero() {
			continue
		}
		if name == "" {
			name = snake(f.Name)
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(quote(value(fv)))
	}
	return b.String()
}

func value(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case time.Time:
		if x.IsZero() {
			return ""
		}
		return x.UTC().Format(time.RFC3339)
	case []string:
		return strings.Join(x, ",")
	case []netip.Prefix:
		s := make([]string, len(x))
		for i, p := range x {
			s[i] = p.String()
		}
		return strings.Join(s, ",")
	}
	panic("audit: field type " + v.Type().String() + " has no serialisation; add it to value")
}

func quote(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return r == ' ' || r == '"' || r == '=' || r == '\\' || !unicode.IsPrint(r)
	}) {
		return strconv.Quote(s)
	}
	return s
}

// snake turns a Go field name into the log's: RequestedBy → requested_by, KID →
// kid, SHA256 → sha256.
func snake(name string) string {
	var b strings.Builder
	r := []rune(name)
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 && (unicode.IsLower(r[i-1]) || (i+1 < len(r) && unicode.IsLower(r[i+1]))) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
