package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// namePattern is what an operator name may look like: it goes into audit events
// and tokens, so no spaces, quotes or '.'-free confusion.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// CheckOperatorName refuses a name that is not lower-case letters, digits, '-'
// and '_' (at most 63), starting with a letter or digit.
func CheckOperatorName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("operator name %q: use lower-case letters, digits, - and _ (at most 63), e.g. maija-registrar or e-palvelu", name)
	}
	return nil
}

// CheckRole refuses an unknown role and a registrar who would also be an
// administrator.
func CheckRole(role string) error {
	parts := strings.FieldsFunc(role, func(r rune) bool { return r == ',' || r == '+' || r == ' ' })
	if len(parts) > 1 {
		has := map[string]bool{}
		for _, p := range parts {
			has[p] = true
		}
		if has[store.RoleRegistrar] && has[store.RoleAdministrator] {
			return errors.New("a registrar is never an administrator (the practice statement's separation of duties); give one role per operator")
		}
		return fmt.Errorf("role %q: an operator has exactly one role: administrator, registrar or auditor", role)
	}
	switch role {
	case store.RoleAdministrator, store.RoleRegistrar, store.RoleAuditor:
		return nil
	}
	return fmt.Errorf("role %q is unknown: use administrator, registrar or auditor", role)
}

// NewToken makes a bearer token for operator name and the hash the store keeps:
// "<name>.<43 base64url characters>", 256 random bits.
func NewToken(name string) (token, hash string) {
	secret := base64.RawURLEncoding.EncodeToString(randomBytes(32))
	return name + "." + secret, hashSecret(secret)
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CertFingerprint is the lower-case hex SHA-256 of a certificate's DER, which
// names an operator's client certificate in the store.
func CertFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// Credential is what a request presented, and where it came from.
type Credential struct {
	Cert  *x509.Certificate // verified against the operator CA by TLS
	Token string
	// Source is the client's IP address; "" when the credential did not come
	// over the network (the CLI's token file).
	Source string
}

// Authenticate finds the operator a credential belongs to. A failure is recorded
// in the audit log and is an Unauthenticated refusal that does not say which part
// was wrong. When the credential's source or the credential itself has reached
// its limit of refused logins (Config.Logins), the attempt is refused
// RateLimited without the credential being checked: a correct credential too,
// else the limit would let a guess through. Those refusals are counted, and
// SummariseLogins records their count per source and window.
func (s *Service) Authenticate(ctx context.Context, c Credential) (*store.Operator, error) {
	if c.Cert == nil && c.Token == "" {
		return nil, errorf(Unauthenticated,
			"authenticate with an operator client certificate or an operator token (Authorization: Bearer <token>)")
	}
	a := newAttempt(c)
	if err := s.throttle(ctx, a); err != nil {
		return nil, err
	}
	refuse := func(credential, why string) error {
		s.refused(ctx, a, credential, why)
		return errorf(Unauthenticated,
			"authenticate with an operator client certificate or an operator token (Authorization: Bearer <token>)")
	}
	// A disabled operator's credentials, and an expired token, stop working at
	// once on every replica: the operator is read from the database each time.
	usable := func(op *store.Operator, credential string, token bool) (*store.Operator, error) {
		switch {
		case !op.DisabledAt.IsZero():
			return nil, refuse(credential, "operator "+op.Name+" is disabled")
		case token && !op.TokenExpiresAt.IsZero() && !s.now().Before(op.TokenExpiresAt):
			return nil, refuse(credential, "the token of "+op.Name+" expired at "+op.TokenExpiresAt.Format(time.RFC3339))
		}
		return op, nil
	}
	if c.Cert != nil {
		op, err := s.st.GetOperatorByCert(ctx, CertFingerprint(c.Cert))
		if errors.Is(err, store.ErrNotFound) {
			return nil, refuse(fmt.Sprintf("certificate subject=%q fingerprint=%s", c.Cert.Subject.CommonName, CertFingerprint(c.Cert)), "unknown client certificate")
		}
		if err != nil {
			return nil, s.internal(ctx, "look up the operator", err)
		}
		return usable(op, fmt.Sprintf("certificate subject=%q fingerprint=%s", c.Cert.Subject.CommonName, CertFingerprint(c.Cert)), false)
	}
	name, secret, ok := cutLast(c.Token, ".")
	if !ok || CheckOperatorName(name) != nil {
		return nil, refuse("token", "not an operator token")
	}
	op, err := s.st.GetOperator(ctx, name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, s.internal(ctx, "look up the operator", err)
	}
	// Compared in constant time, and against a dummy hash for an unknown name, so
	// the answer's timing tells nothing about the secret.
	want := strings.Repeat("0", 64)
	if op != nil && op.TokenHash != "" {
		want = op.TokenHash
	}
	got := hashSecret(secret)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 || op == nil || op.TokenHash == "" {
		return nil, refuse("token of "+name, "wrong token")
	}
	return usable(op, "token of "+name, true)
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+len(sep):], true
}

// NewOperator is an operator just added, with the credential handed out once.
type NewOperator struct {
	Operator store.Operator
	Token    string // with a token
	CertPEM  []byte // with a client certificate
	KeyPEM   []byte
}

// ClientCertIssuer makes an operator's key and client certificate, both as PEM
// (operatorca.CA).
type ClientCertIssuer interface {
	IssueClientCert(name, role string, now time.Time) (cert *x509.Certificate, certPEM, keyPEM []byte, err error)
}

// DefaultTokenLifetime is how long an operator's bearer token works.
const DefaultTokenLifetime = 365 * 24 * time.Hour

// OperatorInput is a new operator, or an operator's new credential.
type OperatorInput struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	Token bool   `json:"token"` // a bearer token (API clients such as the e-service); else a client certificate
	// TokenLifetime: how long the token works (default DefaultTokenLifetime).
	TokenLifetime time.Duration `json:"-"`
}

// credential makes who's new credential: a token, or a client certificate from ca.
func (s *Service) credential(ctx context.Context, ca ClientCertIssuer, in OperatorInput, out *NewOperator) (string, error) {
	now := s.now()
	if in.Token {
		lifetime := in.TokenLifetime
		if lifetime <= 0 {
			lifetime = DefaultTokenLifetime
		}
		out.Token, out.Operator.TokenHash = NewToken(in.Name)
		out.Operator.TokenExpiresAt = now.Add(lifetime)
		return "token until " + out.Operator.TokenExpiresAt.Format(time.RFC3339), nil
	}
	if ca == nil {
		return "", errorf(Conflict, "this server has no operator CA to issue client certificates; give the operator a token")
	}
	cert, certPEM, keyPEM, err := ca.IssueClientCert(in.Name, out.Operator.Role, now)
	if err != nil {
		return "", s.internal(ctx, "issue the client certificate", err)
	}
	out.CertPEM, out.KeyPEM = certPEM, keyPEM
	out.Operator.CertFingerprint = CertFingerprint(cert)
	return "client certificate " + out.Operator.CertFingerprint, nil
}

// AddOperator adds an operator with a bearer token or a client certificate from
// ca; administrators only. The credential is in the result, once.
func (s *Service) AddOperator(ctx context.Context, who *store.Operator, ca ClientCertIssuer, in OperatorInput) (*NewOperator, error) {
	if err := s.allow(ctx, who, "add operators", store.RoleAdministrator); err != nil {
		return nil, err
	}
	return s.addOperator(ctx, who.Name, ca, in)
}

func (s *Service) addOperator(ctx context.Context, by string, ca ClientCertIssuer, in OperatorInput) (*NewOperator, error) {
	if err := CheckOperatorName(in.Name); err != nil {
		return nil, errorf(Malformed, "%v", err)
	}
	if err := CheckRole(in.Role); err != nil {
		return nil, errorf(Malformed, "%v", err)
	}
	out := &NewOperator{Operator: store.Operator{Name: in.Name, Role: in.Role, CreatedBy: by, CreatedAt: s.now()}}
	how, err := s.credential(ctx, ca, in, out)
	if err != nil {
		return nil, err
	}
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(by, audit.OperatorAdded{Operator: in.Name, Role: in.Role, Credential: how})},
			tx.AddOperator(out.Operator)
	})
	if errors.Is(err, store.ErrDuplicate) {
		return nil, errorf(Conflict, "operator %s already exists; an operator has one role and one credential, so choose another name", in.Name)
	}
	if err != nil {
		return nil, s.internal(ctx, "add the operator", err)
	}
	return out, nil
}

// BootstrapOperator is the administrator the first start makes, so that the
// CLI can act before anyone added an operator.
const BootstrapOperator = "bootstrap"

// Bootstrap adds the first administrator, with a token, when the database has no
// operator at all; it returns nil when it has one (the bootstrap ran before). The
// caller keeps the token where only the CA's owner reads it.
func (s *Service) Bootstrap(ctx context.Context) (*NewOperator, error) {
	ops, err := s.st.ListOperators(ctx)
	if err != nil {
		return nil, s.internal(ctx, "list operators", err)
	}
	if len(ops) > 0 {
		return nil, nil
	}
	out, err := s.addOperator(ctx, "system", nil, OperatorInput{Name: BootstrapOperator, Role: store.RoleAdministrator, Token: true})
	var refusal *Error
	if errors.As(err, &refusal) && refusal.Kind == Conflict {
		return nil, nil // another process bootstrapped meanwhile
	}
	return out, err
}

// OperatorView is an operator as the others see it: never a credential.
type OperatorView struct {
	Name            string `json:"name"`
	Role            string `json:"role"`
	Credential      string `json:"credential"`
	CertFingerprint string `json:"cert_fingerprint,omitempty"`
	TokenExpires    string `json:"token_expires,omitempty"`
	CreatedBy       string `json:"created_by"`
	Created         string `json:"created"`
	Disabled        string `json:"disabled,omitempty"`
	DisabledBy      string `json:"disabled_by,omitempty"`
}

// Operators lists every operator; administrators and auditors.
func (s *Service) Operators(ctx context.Context, who *store.Operator) ([]OperatorView, error) {
	if err := s.allow(ctx, who, "list operators", store.RoleAdministrator, store.RoleAuditor); err != nil {
		return nil, err
	}
	ops, err := s.st.ListOperators(ctx)
	if err != nil {
		return nil, s.internal(ctx, "list operators", err)
	}
	out := []OperatorView{}
	for _, o := range ops {
		v := OperatorView{Name: o.Name, Role: o.Role, CertFingerprint: o.CertFingerprint, TokenExpires: stamp(o.TokenExpiresAt),
			CreatedBy: o.CreatedBy, Created: stamp(o.CreatedAt), Disabled: stamp(o.DisabledAt), DisabledBy: o.DisabledBy}
		switch {
		case o.TokenHash != "":
			v.Credential = "token"
		case o.CertFingerprint != "":
			v.Credential = "client certificate"
		}
		out = append(out, v)
	}
	return out, nil
}

// DisableOperator stops every credential of an operator at once, on every
// replica, and ends their console sessions; administrators only, and not
// themselves.
func (s *Service) DisableOperator(ctx context.Context, who *store.Operator, name, reason string) error {
	if err := s.allow(ctx, who, "disable operators", store.RoleAdministrator); err != nil {
		return err
	}
	reason, err := text("reason", reason, true)
	if err != nil {
		return err
	}
	if name == who.Name {
		return errorf(Conflict, "an operator cannot disable themselves; another administrator must")
	}
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(who.Name, audit.OperatorDisabled{Operator: name, Reason: reason})},
			tx.DisableOperator(name, who.Name, s.now())
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		return errorf(Conflict, "operator %s is already disabled", name)
	case err != nil:
		return s.lookup(ctx, err, "there is no operator %s", name)
	}
	return nil
}

// RemoveOperator deletes an operator; the audit log keeps what they did.
// Administrators only, and not themselves.
func (s *Service) RemoveOperator(ctx context.Context, who *store.Operator, name string) error {
	if err := s.allow(ctx, who, "remove operators", store.RoleAdministrator); err != nil {
		return err
	}
	if name == who.Name {
		return errorf(Conflict, "an operator cannot remove themselves; another administrator must")
	}
	err := s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(who.Name, audit.OperatorRemoved{Operator: name})}, tx.RemoveOperator(name)
	})
	if err != nil {
		return s.lookup(ctx, err, "there is no operator %s", name)
	}
	return nil
}

// RotateOperator gives an operator a new credential (a token, or a client
// certificate from ca); the old one stops working and their console sessions end.
// An administrator may rotate anyone's; any operator their own.
func (s *Service) RotateOperator(ctx context.Context, who *store.Operator, ca ClientCertIssuer, in OperatorInput) (*NewOperator, error) {
	if in.Name != who.Name {
		if err := s.allow(ctx, who, "give other operators new credentials", store.RoleAdministrator); err != nil {
			return nil, err
		}
	}
	op, err := s.st.GetOperator(ctx, in.Name)
	if err != nil {
		return nil, s.lookup(ctx, err, "there is no operator %s", in.Name)
	}
	out := &NewOperator{Operator: *op}
	out.Operator.TokenHash, out.Operator.CertFingerprint, out.Operator.TokenExpiresAt = "", "", time.Time{}
	how, err := s.credential(ctx, ca, in, out)
	if err != nil {
		return nil, err
	}
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(who.Name, audit.OperatorRotated{Operator: in.Name, Credential: how})},
			tx.SetOperatorCredential(out.Operator)
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, errorf(Conflict, "operator %s is disabled; a disabled operator gets no credential", in.Name)
	case err != nil:
		return nil, s.lookup(ctx, err, "there is no operator %s", in.Name)
	}
	return out, nil
}
