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
