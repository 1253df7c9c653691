// Package admin is the operator service of varmenne: EAB requests and their
// dual-control approval, the EAB key lifecycle, organisations and their suspension,
// certificates and their revocation by an operator, reading the audit log,
// operator roles and credentials, and the bookkeeping of console sessions.
//
// It decides who may do what; the store makes each state change in one
// transaction and the audit log records it. A refusal is an *Error of a Kind,
// never an HTTP status: its front ends, the JSON API (admin/api), the web console
// (admin/console) and the CLI, choose how to show it and hold no rule of their
// own. It never signs certificates and never changes the audit log other than by
// appending.
package admin

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/revocation"
	"github.com/varmenne/varmenne/store"
)

// Store is what the service reads. It changes nothing through it: every state
// change runs in an AuditLog transaction (store.Tx) with its audit record.
type Store interface {
	GetOperator(ctx context.Context, name string) (*store.Operator, error)
	GetOperatorByCert(ctx context.Context, fingerprint string) (*store.Operator, error)
	ListOperators(ctx context.Context) ([]store.Operator, error)
	GetOperatorChange(ctx context.Context, id string) (*store.OperatorChange, error)
	ListOperatorChanges(ctx context.Context, status string) ([]store.OperatorChange, error)

	GetOrganisation(ctx context.Context, oid string) (*store.Organisation, error)
	GetOrganisationRegister(ctx context.Context, oid string) (*store.OrganisationRegister, error)
	LastRegisterLoad(ctx context.Context) (store.RegisterLoad, error)
	ListOrganisations(ctx context.Context) ([]store.RegisteredOrganisation, error)
	ListAccounts(ctx context.Context, orgOID string) ([]store.Account, error)
	ListConformityCertificates(ctx context.Context, orgOID string) ([]store.ConformityCertificate, error)
	ValidCertificates(ctx context.Context, orgOID string, now time.Time) ([]store.Certificate, error)
	PersistentAuthorizations(ctx context.Context, orgOID string, now time.Time) ([]store.PersistentAuthorization, error)

	GetEABRequest(ctx context.Context, id string) (*store.EABRequest, error)
	ListEABRequests(ctx context.Context, status, orgOID string) ([]store.EABRequest, error)
	GetEAB(ctx context.Context, kid string) (*store.EABKey, error)
	ListEABKeys(ctx context.Context, orgOID string) ([]store.EABKey, error)

	FindCertificates(ctx context.Context, f store.CertificateFilter) ([]store.Certificate, error)
	GetCertificate(ctx context.Context, serial string) (*store.Certificate, error)
	GetRevocation(ctx context.Context, serial string) (*store.Revocation, error)
	SerialStatus(ctx context.Context, serial string) (*store.SerialStatus, error)

	AuditEvents(ctx context.Context, after int64, limit int) ([]store.AuditEvent, error)
	Production(ctx context.Context) (bool, error)

	IssuerGenerations(ctx context.Context) ([]store.IssuerGeneration, error)
	GetIssuerGeneration(ctx context.Context, name string) (*store.IssuerGeneration, error)
	GetCRLState(ctx context.Context, issuer string) (*store.CRLState, error)

	// The console's reads: the audit log filtered in the query, and the CA's
	// health (health.go).
	FindAuditEvents(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error)
	IssuedPerDay(ctx context.Context, from, to time.Time) ([]store.DayCount, error)
	ExpiringPerDay(ctx context.Context, from, to time.Time) ([]store.DayCount, error)
	Kind() string
	Ping(ctx context.Context) error

	// Console sessions: a request keeps its session alive, and a sweep deletes
	// the ended ones. Neither is an operator's act, so neither is audited.
	TouchConsoleSession(ctx context.Context, idHash string, now time.Time) (*store.ConsoleSession, error)
	DeleteExpiredConsoleSessions(ctx context.Context, now time.Time) (int, error)

	// The counts of refused logins (LoginLimits), shared by replicas; counting
	// is no operator's act either. The attempts refused unchecked are a tally
	// whose summary claims it in an audited transaction (Tx.ClaimTally).
	TakeRateLimit(ctx context.Context, name, subject string, max int, window time.Duration, now time.Time) (store.RateLimitUse, error)
	RateLimitCount(ctx context.Context, name, subject string, max int, window time.Duration, now time.Time) (store.RateLimitUse, error)
	EndedTallies(ctx context.Context, name string, endedBy time.Time, limit int) ([]store.Tally, error)
}

// AuditLog is the audit log (audit.Log): Do runs a state change and its records in
// one transaction, so a change without its record cannot happen and a failed
// audit write fails the change; Append records a refused attempt, which changes
// nothing.
type AuditLog interface {
	Do(ctx context.Context, change func(tx *store.Tx) ([]audit.Record, error)) error
	DoRows(ctx context.Context, change func(tx *store.Tx) ([]audit.Record, error)) error
	Append(ctx context.Context, r audit.Record) (store.AuditEvent, error)
}

// Config is the operator side's policy.
type Config struct {
	// SingleControl lets an administrator approve an EAB request they made
	// themselves; off (dual control) by default. Only a development server may
	// turn it on (serve refuses it with HSM keys).
	SingleControl bool
	// Development: the issuer keys are file keys, so the single-operator shortcut
	// of CreateKey may approve at once (unless the database says a server of it
	// ever ran with an HSM). False: production, every key needs a second
	// administrator.
	Development bool
	// KeyLifetime is how long an approved EAB key stays usable unbound (default 183
	// days, as e-service applications); RequestLifetime how long a request waits
	// for a decision (default the same).
	KeyLifetime     time.Duration
	RequestLifetime time.Duration
	// Profiles are the certificate profiles an EAB request may name; nil: any.
	// TestProfiles are those of them a test-only organisation may name.
	Profiles     []string
	TestProfiles []string
	// SessionIdle ends a console token login after this long without a request
	// (default SessionIdle); SessionLifetime ends it this long after the login
	// (default SessionLifetime).
	SessionIdle     time.Duration
	SessionLifetime time.Duration
	// Logins bounds refused logins per source and per credential; zero fields
	// take DefaultLoginLimits.
	Logins LoginLimits
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultLifetime is the default lifetime of EAB requests and unbound keys.
const DefaultLifetime = 183 * 24 * time.Hour

// Service is the operator side's business rules.
type Service struct {
	st  Store
	aud AuditLog
	rev *revocation.Revoker
	cfg Config
	log *slog.Logger
}

// New returns the service; log nil discards.
func New(cfg Config, st Store, aud AuditLog, log *slog.Logger) *Service {
	if cfg.KeyLifetime <= 0 {
		cfg.KeyLifetime = DefaultLifetime
	}
	if cfg.RequestLifetime <= 0 {
		cfg.RequestLifetime = DefaultLifetime
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = SessionIdle
	}
	if cfg.SessionLifetime <= 0 {
		cfg.SessionLifetime = SessionLifetime
	}
	cfg.Logins = cfg.Logins.withDefaults()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{st: st, aud: aud, cfg: cfg, log: log}
	s.rev = revocation.New(st, aud, s.now)
	return s
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Roles is every operator role.
var Roles = []string{store.RoleAdministrator, store.RoleRegistrar, store.RoleAuditor}

// internal logs err and returns a refusal that does not show it.
func (s *Service) internal(ctx context.Context, what string, err error) error {
	s.log.ErrorContext(ctx, "admin: "+what, "err", err)
	return errorf(Internal, "the server could not %s; the error is in its log", what)
}

// note records a refused attempt, which changed nothing; a failure to record it
// is logged.
func (s *Service) note(ctx context.Context, r audit.Record) {
	if _, err := s.aud.Append(context.WithoutCancel(ctx), r); err != nil {
		s.log.ErrorContext(ctx, "admin: refusal not written to the audit log", "action", r.Event.Action(), "err", err)
	}
}

// errNothing ends a transaction that found nothing to change, so there is
// nothing to record either.
var errNothing = errors.New("admin: nothing to change")

// allow refuses, and records the refused attempt, unless who has one of roles.
func (s *Service) allow(ctx context.Context, who *store.Operator, what string, roles ...string) error {
	if slices.Contains(roles, who.Role) {
		return nil
	}
	s.Refused(ctx, who, what, "role "+who.Role)
	return errorf(Forbidden, "operator %s has the role %s; to %s takes the role %s",
		who.Name, who.Role, what, strings.Join(roles, " or "))
}

// lookup maps store.ErrNotFound to a NotFound refusal naming what is missing.
func (s *Service) lookup(ctx context.Context, err error, format string, args ...any) error {
	if errors.Is(err, store.ErrNotFound) {
		return errorf(NotFound, format, args...)
	}
	return s.internal(ctx, "read the database", err)
}
