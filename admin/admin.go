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

	"github.com/varmenne/varmenne/store"
)

// OperatorStore finds operators by their credentials.
type OperatorStore interface {
	GetOperator(ctx context.Context, name string) (*store.Operator, error)
	GetOperatorByCert(ctx context.Context, fingerprint string) (*store.Operator, error)
}

// OrganisationStore reads and suspends organisations.
type OrganisationStore interface {
	GetOrganisation(ctx context.Context, oid string) (*store.Organisation, error)
	GetOrganisationRegister(ctx context.Context, oid string) (*store.OrganisationRegister, error)
	ListOrganisations(ctx context.Context) ([]store.RegisteredOrganisation, error)
	SuspendOrganisation(ctx context.Context, oid, by, reason string, now time.Time) error
	ResumeOrganisation(ctx context.Context, oid string) error
	ListAccounts(ctx context.Context, orgOID string) ([]store.Account, error)
}

// EABStore keeps EAB requests and keys; each state change is one transaction.
type EABStore interface {
	CreateEABRequest(ctx context.Context, r store.EABRequest) error
	GetEABRequest(ctx context.Context, id string) (*store.EABRequest, error)
	ListEABRequests(ctx context.Context, status, orgOID string) ([]store.EABRequest, error)
	ApproveEABRequest(ctx context.Context, id, approver string, dualControl bool, now time.Time, key store.EABKey) (*store.EABKey, error)
	RejectEABRequest(ctx context.Context, id, by, reason string, now time.Time) error
	RevealEABKey(ctx context.Context, kid, requester string, now time.Time) (*store.EABKey, error)
	RevokeEABKey(ctx context.Context, kid, by, reason string, deactivateAccounts bool) ([]string, error)
	ExpireEAB(ctx context.Context, now time.Time) (requests, keys []string, err error)
	GetEAB(ctx context.Context, kid string) (*store.EABKey, error)
	ListEABKeys(ctx context.Context, orgOID string) ([]store.EABKey, error)
}

// CertificateStore finds and revokes certificates.
type CertificateStore interface {
	FindCertificates(ctx context.Context, f store.CertificateFilter) ([]store.Certificate, error)
	GetRevocation(ctx context.Context, serial string) (*store.Revocation, error)
	Revoke(ctx context.Context, r store.Revocation, block *store.BlockedKey) error
}

// AuditReader reads the audit log; nothing here changes it.
type AuditReader interface {
	AuditEvents(ctx context.Context, after int64, limit int) ([]store.AuditEvent, error)
}

// SessionStore keeps the console's token logins, by the SHA-256 of the cookie.
type SessionStore interface {
	CreateConsoleSession(ctx context.Context, c store.ConsoleSession) error
	TouchConsoleSession(ctx context.Context, idHash string, now time.Time) (*store.ConsoleSession, error)
	DeleteConsoleSession(ctx context.Context, idHash string) error
	DeleteExpiredConsoleSessions(ctx context.Context, now time.Time) (int, error)
}

// Store is the union the operator side is wired with.
type Store interface {
	OperatorStore
	SessionStore
	OrganisationStore
	EABStore
	CertificateStore
	AuditReader
}

// Auditor appends one event to the audit log (audit.Log.Append).
type Auditor interface {
	Append(ctx context.Context, actor, action, object, outcome string) (store.AuditEvent, error)
}

// Config is the operator side's policy.
type Config struct {
	// SingleControl lets an administrator approve an EAB request they made
	// themselves; off (dual control) by default.
	SingleControl bool
	// KeyLifetime is how long an approved EAB key stays usable unbound (default 183
	// days, as e-service applications); RequestLifetime how long a request waits
	// for a decision (default the same).
	KeyLifetime     time.Duration
	RequestLifetime time.Duration
	// Profiles are the certificate profiles an EAB request may name; nil: any.
	Profiles []string
	// SessionIdle ends a console token login after this long without a request
	// (default SessionIdle); SessionLifetime ends it this long after the login
	// (default SessionLifetime).
	SessionIdle     time.Duration
	SessionLifetime time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DefaultLifetime is the default lifetime of EAB requests and unbound keys.
const DefaultLifetime = 183 * 24 * time.Hour

// Service is the operator side's business rules.
type Service struct {
	st  Store
	aud Auditor
	cfg Config
	log *slog.Logger
}

// New returns the service; log nil discards.
func New(cfg Config, st Store, aud Auditor, log *slog.Logger) *Service {
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
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{st: st, aud: aud, cfg: cfg, log: log}
}

func (s *Service) now() time.Time { return s.cfg.Now().UTC() }

// Roles is every operator role.
var Roles = []string{store.RoleAdministrator, store.RoleRegistrar, store.RoleAuditor}

// internal logs err and returns a refusal that does not show it.
func (s *Service) internal(ctx context.Context, what string, err error) error {
	s.log.ErrorContext(ctx, "admin: "+what, "err", err)
	return errorf(Internal, "the server could not %s; the error is in its log", what)
}

// audit records an event; the state change it describes stands either way.
func (s *Service) audit(ctx context.Context, actor, action, object, outcome string) {
	if _, err := s.aud.Append(context.WithoutCancel(ctx), actor, action, object, outcome); err != nil {
		s.log.ErrorContext(ctx, "admin: event not written to the audit log", "action", action, "object", object, "err", err)
	}
}

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
