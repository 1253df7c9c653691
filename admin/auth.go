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

	"github.com/varmenne/varmenne/store"
)

// Audit actions of operators.
const (
	AuditOperatorAdd   = "operator.add"
	AuditOperatorLogin = "operator.login"
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

// Credential is what a request presented.
type Credential struct {
	Cert  *x509.Certificate // verified against the operator CA by TLS
	Token string
}

// Authenticate finds the operator a credential belongs to. A failure is recorded
// in the audit log and is a 401 refusal that does not say which part was wrong.
func (s *Service) Authenticate(ctx context.Context, c Credential) (*store.Operator, error) {
	refuse := func(object, why string) error {
		s.audit(ctx, "unknown", AuditOperatorLogin, object, "refused: "+why)
		return errorf(Unauthenticated,
			"authenticate with an operator client certificate or an operator token (Authorization: Bearer <token>)")
	}
	if c.Cert != nil {
		op, err := s.st.GetOperatorByCert(ctx, CertFingerprint(c.Cert))
		if errors.Is(err, store.ErrNotFound) {
			return nil, refuse(fmt.Sprintf("certificate subject=%q fingerprint=%s", c.Cert.Subject.CommonName, CertFingerprint(c.Cert)), "unknown client certificate")
		}
		if err != nil {
			return nil, s.internal(ctx, "look up the operator", err)
		}
		return op, nil
	}
	if c.Token == "" {
		return nil, errorf(Unauthenticated,
			"authenticate with an operator client certificate or an operator token (Authorization: Bearer <token>)")
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
	return op, nil
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

// OperatorAdder is what adding an operator needs from the store.
type OperatorAdder interface {
	AddOperator(ctx context.Context, o store.Operator) error
}

// ClientCertIssuer makes an operator's key and client certificate, both as PEM
// (operatorca.CA).
type ClientCertIssuer interface {
	IssueClientCert(name, role string, now time.Time) (cert *x509.Certificate, certPEM, keyPEM []byte, err error)
}

// AddOperator adds an operator with a bearer token (withToken) or a client
// certificate from ca, and records it; by is who added it.
func AddOperator(ctx context.Context, st OperatorAdder, aud Auditor, ca ClientCertIssuer, by, name, role string, withToken bool, now time.Time) (*NewOperator, error) {
	if err := CheckOperatorName(name); err != nil {
		return nil, err
	}
	if err := CheckRole(role); err != nil {
		return nil, err
	}
	out := &NewOperator{Operator: store.Operator{Name: name, Role: role, CreatedBy: by, CreatedAt: now}}
	how := "token"
	if withToken {
		out.Token, out.Operator.TokenHash = NewToken(name)
	} else {
		if ca == nil {
			return nil, errors.New("admin: no operator CA")
		}
		cert, certPEM, keyPEM, err := ca.IssueClientCert(name, role, now)
		if err != nil {
			return nil, fmt.Errorf("issuing the client certificate: %w", err)
		}
		out.CertPEM, out.KeyPEM = certPEM, keyPEM
		out.Operator.CertFingerprint = CertFingerprint(cert)
		how = "client certificate " + out.Operator.CertFingerprint
	}
	err := st.AddOperator(ctx, out.Operator)
	if errors.Is(err, store.ErrDuplicate) {
		return nil, fmt.Errorf("operator %s already exists; an operator has one role and one credential, so choose another name", name)
	}
	if err != nil {
		return nil, err
	}
	if _, err := aud.Append(ctx, by, AuditOperatorAdd, fmt.Sprintf("operator=%s role=%s credential=%s", name, role, how), "ok"); err != nil {
		return nil, fmt.Errorf("operator %s was added, but the audit log could not be written: %w", name, err)
	}
	return out, nil
}
