// Package authority holds the ACME business rules: accounts and their External
// Account Binding, orders and authorisations, validation orchestration, finalize and
// revocation rights. It receives requests that acme/server has already authenticated
// (JWS, nonce, url) and answers with store records or typed *acme.Error refusals; it
// never sees HTTP types and never builds URLs.
package authority

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/validate"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/internal/metrics"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/policy/keys"
	"github.com/varmenne/varmenne/policy/names"
	"github.com/varmenne/varmenne/policy/thl"
	"github.com/varmenne/varmenne/policy/validity"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/store"
)

// AccountStore is what the authority needs of accounts, organisations and EAB keys.
type AccountStore interface {
	GetOrganisation(ctx context.Context, oid string) (*store.Organisation, error)
	GetOrganisationRegister(ctx context.Context, oid string) (*store.OrganisationRegister, error)
	// GetOrganisationRecord reads the organisation with its register record in one
	// statement.
	GetOrganisationRecord(ctx context.Context, oid string) (*store.Organisation, store.RegisterRecord, error)
	GetEAB(ctx context.Context, kid string) (*store.EABKey, error)
	GetAccount(ctx context.Context, id string) (*store.Account, error)
	GetAccountByThumbprint(ctx context.Context, thumbprint string) (*store.Account, error)
	UpdateAccountContacts(ctx context.Context, id string, contacts []string) error
}

// OrderStore is what the authority needs of orders, authorisations and challenges.
type OrderStore interface {
	GetOrder(ctx context.Context, id string) (*store.Order, error)
	ListOrderIDs(ctx context.Context, accountID string) ([]string, error)
	GetAuthorization(ctx context.Context, id string) (*store.Authorization, error)
	// GetChallengeAuthorization reads a challenge with its authorization in one
	// snapshot.
	GetChallengeAuthorization(ctx context.Context, challengeID string) (*store.Challenge, *store.Authorization, error)
	StartChallenge(ctx context.Context, challengeID string) error
	FinishChallenge(ctx context.Context, challengeID string, valid bool, validated time.Time, problem []byte) error
	// FinishChallengeValid is FinishChallenge(valid) that also sets the expiry of the
	// authorization it makes valid.
	FinishChallengeValid(ctx context.Context, challengeID string, validated, expires time.Time) error
	BeginFinalize(ctx context.Context, orderID string) error
	FailOrder(ctx context.Context, orderID string, problem []byte) error
}

// CertificateStore is what the authority needs of certificates, keys and revocations.
type CertificateStore interface {
	FinishIssuance(ctx context.Context, c store.Certificate) error
	GetCertificate(ctx context.Context, serial string) (*store.Certificate, error)
	KeyCertified(ctx context.Context, keyHash string) (bool, error)
	KeyBlocked(ctx context.Context, keyHash string) (bool, error)
	GetRevocation(ctx context.Context, serial string) (*store.Revocation, error)
}

// AuthzStore is what authorisation reuse and lifetimes need.
type AuthzStore interface {
	FindReusableAuthorization(ctx context.Context, accountID, name string, wildcard bool, validatedSince, expiresAfter time.Time) (*store.Authorization, error)
	SetValidAuthorizationExpiry(ctx context.Context, authzID string, expires time.Time) error
}

// Store is the union the authority is wired with.
type Store interface {
	AccountStore
	OrderStore
	CertificateStore
	AuthzStore
	SweepStore
	RateLimitStore
	RenewalStore
}

// Validator proves control of a name and checks its CAA records. Every method
// returns nil or an *acme.Error the client may see.
type Validator interface {
	HTTP01(ctx context.Context, name, token, keyAuth string) error
	// DNS01 and TLSALPN01 take the authorisation's name; for a wildcard authorisation
	// that is its base name.
	DNS01(ctx context.Context, name, keyAuth string) error
	TLSALPN01(ctx context.Context, name, keyAuth string) error
	// DNSAccount01 is dns-01 at the account's own label; accountURI is the
	// account's URL the label derives from.
	DNSAccount01(ctx context.Context, name, accountURI, keyAuth string) error
	// DNSPersist01 reads the persistent record of name (a wildcard's base name,
	// wildcard set) and returns the record that authorises accountURI at now.
	DNSPersist01(ctx context.Context, name string, wildcard bool, accountURI string, now time.Time) (*validate.PersistRecord, error)
	// CAA takes the name as the certificate will hold it ("*.x" for a wildcard), the
	// account's URL (RFC 8657 accounturi) and the challenge type that proved control.
	CAA(ctx context.Context, name, accountURI, method string) error
}

// CA signs certificates for one profile.
type CA interface {
	Issue(ctx context.Context, req signer.Request) (*signer.Issued, error)
	Issuer() *signer.Issuer
	// Validity is the validity Issue would give req now, or why it would refuse it
	// (signer.ErrInvalidRequest; signer.ErrOutlastsIssuer when the issuer ends
	// first).
	Validity(req signer.Request) (notBefore, notAfter time.Time, err error)
}

// Policy judges a profile's requests: the profile's plugin chain (*policy.Chain).
// Each method returns nil to allow or an *acme.Error refusal.
type Policy interface {
	CheckOrder(ctx context.Context, r *policy.Request) error
	CheckCSR(ctx context.Context, r *policy.Request) error
}

// Profile is one certificate profile the authority offers (draft-ietf-acme-profiles):
// the CA that signs it, bound to the profile's issuer, and the policy that guards it.
type Profile struct {
	Name        string
	Description string // shown in the directory's meta.profiles
	Test        bool   // a test profile; test-only organisations get only these
	CA          CA
	Policy      Policy
	// PersistReuse is how long after its validation an authorisation that rests on
	// a dns-persist-01 record is reused for the profile's orders (within
	// Config.AuthzReuse, and never past the record's persistUntil); 0 means
	// DefaultPersistReuse, negative never (each order reads the record again).
	PersistReuse time.Duration
}

// DefaultPersistReuse is Profile.PersistReuse's default (profile.DefaultPersistReuse
// for configured profiles; docs/validation.md, "dns-persist-01").
const DefaultPersistReuse = 7 * 24 * time.Hour

func (p *Profile) persistReuse() time.Duration {
	if p == nil || p.PersistReuse == 0 {
		return DefaultPersistReuse
	}
	return p.PersistReuse
}

// Auditor makes a change of the ACME side together with its audit event, in one
// transaction (audit.Recorder): an account or an order exists only with its event.
type Auditor interface {
	Change(ctx context.Context, e audit.Event, outcome string, change func(tx *store.Tx) error) error
}

// Config tunes the authority; zero values take the defaults.
type Config struct {
	OrderLifetime time.Duration // how long a pending order lives (default 7 days)
	AuthzLifetime time.Duration // how long a pending authorisation lives (default 7 days)
	// ValidAuthzLifetime is how long an authorisation stays valid after its
	// validation (default 30 days).
	ValidAuthzLifetime time.Duration
	// AuthzReuse is how long after its validation a valid authorisation is reused for
	// a new order of the same account and name (default 7 days, at most 30 days);
	// negative: never reused.
	AuthzReuse time.Duration
	// CAARecheckAfter: at finalize, the CAA records of every name whose validation is
	// older than this are checked again (default and maximum 8 hours, the CA/B Forum
	// Baseline Requirements' limit on relying on a CAA answer).
	CAARecheckAfter time.Duration
	// AllowWildcards lets orders hold wildcard names ("*.example.fi"), proven with
	// dns-01 only (default false). Only New's single profile reads it; with
	// NewWithProfiles each profile's policy decides.
	AllowWildcards bool
	// AccountURIPrefix followed by an account id is the account's URL, which CAA
	// accounturi parameters name (RFC 8657). acme/server serves accounts there.
	AccountURIPrefix  string
	ValidationWait    time.Duration // how long a challenge POST waits for its result (default 3 s)
	ValidationTimeout time.Duration // deadline of one validation (default 15 s)
	MaxIdentifiers    int           // per order (default 100)
	DefaultProfile    string        // for orders that name no profile (default "sote-server")
	MaxValidity       time.Duration // of New's single profile (default 365 days)
	Backdate          time.Duration // of New's single profile: how far the signer backdates notBefore (default 1 min)
	// Audit makes every account and order change together with its audit event
	// (audit.Recorder); required.
	Audit Auditor
	// Revoker carries out revokeCert (revocation.Revoker); required.
	Revoker Revoker
	// RateLimits shared by the replicas; the zero value is no limits (ratelimit.go).
	RateLimits RateLimits
	// Register is THL's SOTE organisation register as the store holds it
	// (thl.Stored, kept fresh from --register-source), which the standing check
	// asks at every step towards a certificate (standing.go); nil: none
	// (development: the data "varmenne org import" stored decides).
	Register thl.Lookuper
	// WeakKeys are the lists of Debian's weak RSA keys (CVE-2008-0166) the operator
	// loads (--weak-keys), refused as account and certificate keys; nil: not checked.
	WeakKeys *keys.WeakKeys
	// Production: only THL's register makes an organisation eligible; one no
	// register import listed (added by hand) is refused at every step (standing.go).
	Production bool
	// Metrics counts orders, validations, finalizations and rate-limit refusals;
	// nil: none.
	Metrics *metrics.Metrics
}

func (c *Config) setDefaults() {
	if c.OrderLifetime == 0 {
		c.OrderLifetime = 7 * 24 * time.Hour
	}
	if c.AuthzLifetime == 0 {
		c.AuthzLifetime = 7 * 24 * time.Hour
	}
	if c.ValidAuthzLifetime == 0 {
		c.ValidAuthzLifetime = 30 * 24 * time.Hour
	}
	if c.AuthzReuse == 0 {
		c.AuthzReuse = 7 * 24 * time.Hour
	}
	if c.CAARecheckAfter == 0 {
		c.CAARecheckAfter = MaxCAARecheckAfter
	}
	if c.ValidationWait == 0 {
		c.ValidationWait = 3 * time.Second
	}
	if c.ValidationTimeout == 0 {
		c.ValidationTimeout = 15 * time.Second
	}
	if c.MaxIdentifiers == 0 {
		c.MaxIdentifiers = 100
	}
	if c.DefaultProfile == "" {
		c.DefaultProfile = "sote-server"
	}
	if c.MaxValidity == 0 {
		c.MaxValidity = 365 * 24 * time.Hour
	}
	if c.Backdate == 0 {
		c.Backdate = time.Minute
	}
}

// Limits of Config.
const (
	MaxAuthzReuse      = 30 * 24 * time.Hour
	MaxCAARecheckAfter = 8 * time.Hour
)

// Validate says which setting is unusable, with the defaults filled in.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.AuthzReuse > MaxAuthzReuse:
		return fmt.Errorf("authorization reuse of %s is longer than the maximum of 30 days", c.AuthzReuse)
	case c.AuthzReuse > c.ValidAuthzLifetime:
		return fmt.Errorf("authorization reuse of %s is longer than valid authorizations live (%s)", c.AuthzReuse, c.ValidAuthzLifetime)
	case c.ValidAuthzLifetime < 0 || c.AuthzLifetime < 0 || c.OrderLifetime < 0:
		return errors.New("order and authorization lifetimes must be positive")
	case c.CAARecheckAfter < 0 || c.CAARecheckAfter > MaxCAARecheckAfter:
		return fmt.Errorf("CAA recheck window of %s is outside 0 to 8 hours: a CAA answer may not be relied on for longer", c.CAARecheckAfter)
	}
	return c.RateLimits.Validate()
}

// Authority implements the ACME rules over a store, a validator and the profiles.
type Authority struct {
	cfg      Config
	store    Store
	val      Validator
	profiles map[string]*Profile
	log      *slog.Logger
	now      func() time.Time

	validations sync.WaitGroup // background validations still running
}

// New wires an Authority with one server profile, cfg.DefaultProfile, signed by ca
// and guarded by the names, keys and validity plugins (with cfg.AllowWildcards,
// cfg.MaxValidity and cfg.Backdate; notBefore is refused). Should the chain fail to
// build, the profile refuses every request.
func New(cfg Config, st Store, val Validator, ca CA, log *slog.Logger) *Authority {
	cfg.setDefaults()
	env := policy.Env{
		Profile: policy.ProfileInfo{Name: cfg.DefaultProfile, Kind: policy.KindServer, MaxValidity: cfg.MaxValidity,
			Backdate: cfg.Backdate, KeyTypes: keys.KeyTypes, AllowWildcards: cfg.AllowWildcards},
		Log: log,
	}
	if st != nil {
		env.Keys, env.Orgs = st, st
	}
	var pol Policy
	chain, err := policy.NewChain([]policy.Spec{{Name: names.PluginName}, {Name: keys.PluginName}, {Name: validity.PluginName}}, env)
	if err != nil {
		if log != nil {
			log.Error("the default profile's policy cannot be built; it refuses every request", "err", err)
		}
		pol = refuseAll{}
	} else {
		pol = chain
	}
	a, err := NewWithProfiles(cfg, st, val, []Profile{{Name: cfg.DefaultProfile, Description: "SOTE server certificate", CA: ca, Policy: pol}}, log)
	if err != nil {
		panic("authority: " + err.Error()) // one profile named as the default cannot be refused
	}
	return a
}

// isNil reports whether v is nil or a nil pointer, map, func, … in an interface.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// refuseAll is the policy of a profile whose chain could not be built.
type refuseAll struct{}

func (refuseAll) CheckOrder(context.Context, *policy.Request) error { return errNoPolicy() }
func (refuseAll) CheckCSR(context.Context, *policy.Request) error   { return errNoPolicy() }

func errNoPolicy() error {
	return acme.Errorf(acme.ServerInternal, "the policy of this profile could not be set up; the request is refused")
}

// NewWithProfiles wires an Authority offering profiles; cfg.DefaultProfile must be
// one of them. A profile needs a name, a CA and a policy.
func NewWithProfiles(cfg Config, st Store, val Validator, profiles []Profile, log *slog.Logger) (*Authority, error) {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Authority{cfg: cfg, store: st, val: val, profiles: map[string]*Profile{}, log: log, now: time.Now}
	for i := range profiles {
		p := profiles[i]
		switch {
		case p.Name == "":
			return nil, errors.New("a profile has no name")
		case a.profiles[p.Name] != nil:
			return nil, fmt.Errorf("profile %q is given twice", p.Name)
		case isNil(p.Policy):
			// A profile without a policy would allow everything: refuse to start.
			return nil, fmt.Errorf("profile %q has no policy", p.Name)
		}
		a.profiles[p.Name] = &p
	}
	if a.profiles[cfg.DefaultProfile] == nil {
		return nil, fmt.Errorf("the default profile %q is not among the profiles", cfg.DefaultProfile)
	}
	if isNil(cfg.Revoker) {
		return nil, errors.New("no revoker: revokeCert needs the revocation component")
	}
	if isNil(cfg.Audit) {
		return nil, errors.New("no audit log: accounts and orders are created with their audit events")
	}
	return a, nil
}

// Config is the effective configuration.
func (a *Authority) Config() Config { return a.cfg }

// Profiles maps each offered profile's name to its description, for the
// directory's meta.profiles.
func (a *Authority) Profiles() map[string]string {
	m := make(map[string]string, len(a.profiles))
	for n, p := range a.profiles {
		m[n] = p.Description
	}
	return m
}

// profileNames lists the offered profiles, sorted, for details.
func (a *Authority) profileNames() []string {
	names := make([]string, 0, len(a.profiles))
	for n := range a.profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Issuer is the issuer of the default profile.
func (a *Authority) Issuer() *signer.Issuer { return a.profiles[a.cfg.DefaultProfile].CA.Issuer() }

// IssuerNamed is the issuer a stored certificate names (store.Certificate.Issuer),
// whose chain the certificate is served with; the default profile's issuer when no
// profile signs with that name.
func (a *Authority) IssuerNamed(name string) *signer.Issuer {
	for _, n := range a.profileNames() {
		ca := a.profiles[n].CA
		if ca != nil && ca.Issuer() != nil && ca.Issuer().Name == name {
			return ca.Issuer()
		}
		// A CA across issuer generations (signer.Rollover) knows the earlier ones.
		if g, ok := ca.(interface{ Generation(string) *signer.Issuer }); ok {
			if iss := g.Generation(name); iss != nil {
				return iss
			}
		}
	}
	return a.Issuer()
}

// Close waits for background validations to record their results.
func (a *Authority) Close() { a.validations.Wait() }

// newID returns a random 128-bit identifier, base64url.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("authority: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// internal logs err and returns the generic serverInternal refusal: internal details
// never reach clients.
func (a *Authority) internal(ctx context.Context, what string, err error) error {
	a.log.ErrorContext(ctx, what, "err", err)
	return acme.Errorf(acme.ServerInternal, "the server could not %s; try again later", what)
}

// notFound is the one answer for a resource that does not exist or belongs to another
// account: existence is not leaked (ROBUSTNESS 46).
func notFound(what string) error {
	return acme.Errorf(acme.Malformed, "no such %s for this account", what).WithStatus(404)
}

// problemJSON renders err as the problem document stored on an order or challenge.
func problemJSON(err error) []byte {
	ae, ok := acme.AsError(err)
	if !ok {
		ae = acme.Errorf(acme.ServerInternal, "internal error")
	}
	b, _ := json.Marshal(ae.Problem())
	return b
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// accountURI is the account's URL as CAA accounturi parameters name it; "" when the
// prefix is not configured, and then no accounturi matches.
func (a *Authority) accountURI(accountID string) string {
	if a.cfg.AccountURIPrefix == "" {
		return ""
	}
	return a.cfg.AccountURIPrefix + accountID
}
