package revocation

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// Store is what revocation reads outside its transaction: the target, and an ACME
// account's organisation and EAB key, which decide its rights (AccountMay).
type Store interface {
	SerialStatus(ctx context.Context, serial string) (*store.SerialStatus, error)
	GetCertificate(ctx context.Context, serial string) (*store.Certificate, error)
	GetOrganisation(ctx context.Context, oid string) (*store.Organisation, error)
	GetEAB(ctx context.Context, kid string) (*store.EABKey, error)
}

// Log runs a change and its audit records in one transaction (audit.Log).
type Log interface {
	Do(ctx context.Context, change func(tx *store.Tx) ([]audit.Record, error)) error
}

// Kind says why a revocation was refused.
type Kind int

// The refusals.
const (
	NotFound       Kind = iota + 1 // no certificate or issuance with that serial
	AlreadyRevoked                 // revocation is final
	Unauthorized                   // the caller may not revoke it
	BadReason                      // the caller may not give that reason
	Malformed                      // the request lacks what the record needs
)

// Error is a refusal with a detail a person can act on.
type Error struct {
	Kind   Kind
	Detail string
}

func (e *Error) Error() string { return e.Detail }

func refuse(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Detail: fmt.Sprintf(format, args...)}
}

// Caller is who asks; exactly one of Account, Key and Operator is set.
type Caller struct {
	// Account is an ACME account (JWS kid): it may revoke its own certificates and
	// those of its organisation its EAB key covers (AccountMay). Its standing
	// (suspension, register, EAB key state) does not matter: a holder can always
	// revoke.
	Account *store.Account
	// Key is the public key that signed the request (JWS jwk): its holder may
	// revoke the certificates of that key.
	Key crypto.PublicKey
	// Operator is the administrator carrying the revocation out, for someone who
	// asked outside ACME (RequestedBy, IdentifiedBy). The operator service checked
	// the role.
	Operator string
}

// Request is one revocation.
type Request struct {
	Serial string // lower-case hex
	Reason Reason
	Caller Caller
	// RequestedBy and IdentifiedBy: who asked and how they were identified; for
	// an operator's revocation they are required, for ACME they are derived.
	RequestedBy, IdentifiedBy string
	// RequestedAt is when the request was received: for ACME the time the server
	// received revokeCert, for an operator the time given or zero (now). Never in
	// the future.
	RequestedAt time.Time
	// InvalidityDate (RFC 5280 5.3.2) is when the key is known or suspected to
	// have been compromised; zero: not given. Not in the future, nor before the
	// certificate's notBefore.
	InvalidityDate time.Time
	// Door is where an operator received the request ("admin API", "console",
	// "command line"); the record's ReceivedBy names it with the operator. ACME
	// requests are received by ACME revokeCert.
	Door string
	Note string
}

// Revoker is the revocation component.
type Revoker struct {
	st  Store
	log Log
	now func() time.Time
}

// New returns the component; now nil means time.Now.
func New(st Store, log Log, now func() time.Time) *Revoker {
	if now == nil {
		now = time.Now
	}
	return &Revoker{st: st, log: log, now: now}
}

// Revoke checks the caller's right and the reason, and records the revocation,
// the key's block on keyCompromise and the audit event in one transaction. It
// returns the record as stored. A refusal is an *Error.
func (v *Revoker) Revoke(ctx context.Context, req Request) (*store.Revocation, error) {
	target, err := v.st.SerialStatus(ctx, req.Serial)
	if errors.Is(err, store.ErrNotFound) {
		return nil, refuse(NotFound, "no certificate with serial %s was issued here", req.Serial)
	}
	if err != nil {
		return nil, err
	}
	if prev := target.Revocation; prev != nil {
		return nil, alreadyRevoked(target.Serial, prev)
	}
	r, err := v.record(ctx, req, target)
	if err != nil {
		return nil, err
	}
	if err := v.afterNotBefore(ctx, r.InvalidityDate, target); err != nil {
		return nil, err
	}
	r.Serial = target.Serial
	err = v.log.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		var block *store.BlockedKey
		if r.Reason == KeyCompromise.Code {
			block = blocked(target.KeyHash, target.Serial, r.RevokedAt)
		}
		if err := tx.Revoke(r, block); err != nil {
			return nil, err
		}
		return []audit.Record{audit.Done(r.PerformedBy, event(r))}, nil
	})
	if errors.Is(err, store.ErrDuplicate) {
		return nil, refuse(AlreadyRevoked, "certificate %s is already revoked; revocation is final", target.Serial)
	}
	if err != nil {
		return nil, fmt.Errorf("revocation: record the revocation of %s: %w", target.Serial, err)
	}
	return &r, nil
}

// RevokeOrganisation revokes, for an operator, every unexpired and unrevoked
// certificate of an organisation (and its pending issuances) in one transaction,
// with one audit event per certificate. It returns the serials, sorted.
func (v *Revoker) RevokeOrganisation(ctx context.Context, orgOID string, req Request) ([]string, error) {
	if req.Caller.Operator == "" {
		return nil, refuse(Unauthorized, "only an operator revokes every certificate of an organisation")
	}
	r, err := v.record(ctx, req, nil)
	if err != nil {
		return nil, err
	}
	var serials []string
	err = v.log.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		var err error
		serials, err = tx.RevokeOrganisation(orgOID, r.RevokedAt, r, r.Reason == KeyCompromise.Code)
		if err != nil {
			return nil, err
		}
		records := []audit.Record{}
		for _, s := range serials {
			one := r
			one.Serial = s
			records = append(records, audit.Done(r.PerformedBy, event(one)))
		}
		if len(records) == 0 {
			return nil, errNothing // nothing changed, so there is nothing to record
		}
		return records, nil
	})
	if errors.Is(err, errNothing) {
		return nil, nil
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, refuse(NotFound, "organisation %s is not known; check the OID", orgOID)
	}
	if err != nil {
		return nil, fmt.Errorf("revocation: revoke the certificates of %s: %w", orgOID, err)
	}
	return serials, nil
}

// RetireIssuer carries out an issuer generation's retirement (practice statement
// 6.8.1) for the operator in req, the second administrator: in one transaction
// with the retirement record (store.RetireGeneration) and also's records — the
// approval — every unexpired certificate and pending issuance of the generation
// is revoked with req's reason, each with its audit event, and the generation's
// final CRL is due. It returns what was done.
func (v *Revoker) RetireIssuer(ctx context.Context, issuer string, req Request, also func(tx *store.Tx, done *store.Retirement) ([]audit.Record, error)) (*store.Retirement, error) {
	if req.Caller.Operator == "" {
		return nil, refuse(Unauthorized, "only an operator retires an issuer")
	}
	r, err := v.record(ctx, req, nil)
	if err != nil {
		return nil, err
	}
	var done *store.Retirement
	err = v.log.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		var err error
		if done, err = tx.RetireGeneration(issuer, req.Caller.Operator, r, r.RevokedAt); err != nil {
			return nil, err
		}
		records, err := also(tx, done)
		if err != nil {
			return nil, err
		}
		for _, s := range done.Revoked {
			one := r
			one.Serial = s
			records = append(records, audit.Done(r.PerformedBy, event(one)))
		}
		return records, nil
	})
	if err != nil {
		return nil, err
	}
	return done, nil
}

// record checks the caller's right (target nil: an organisation-wide revocation
// by an operator) and makes the revocation record.
func (v *Revoker) record(ctx context.Context, req Request, target *store.SerialStatus) (store.Revocation, error) {
	now := v.now().UTC()
	r := store.Revocation{RevokedAt: now, RequestedAt: now, Reason: req.Reason.Code, Note: strings.TrimSpace(req.Note),
		InvalidityDate: req.InvalidityDate}
	if _, ok := ByCode(req.Reason.Code); !ok || req.Reason.Name == "" {
		return r, refuse(BadReason, "revocation reason %d is not accepted: use one of %s", req.Reason.Code, Allowed())
	}
	if !req.RequestedAt.IsZero() {
		if req.RequestedAt.After(now) {
			return r, refuse(Malformed, "the time of the request, %s, is in the future", req.RequestedAt.Format(time.RFC3339))
		}
		r.RequestedAt = req.RequestedAt.UTC()
	}
	if !r.InvalidityDate.IsZero() {
		if r.InvalidityDate.After(now) {
			return r, refuse(Malformed, "the invalidity date %s is in the future", r.InvalidityDate.Format(time.RFC3339))
		}
		r.InvalidityDate = r.InvalidityDate.UTC()
	}
	c := req.Caller
	switch {
	case c.Operator != "":
		r.PerformedBy = c.Operator
		r.ReceivedBy = strings.TrimSpace(req.Door) + " by " + c.Operator
		r.RequestedBy, r.IdentifiedBy = strings.TrimSpace(req.RequestedBy), strings.TrimSpace(req.IdentifiedBy)
		switch {
		case strings.TrimSpace(req.Door) == "":
			return r, errors.New("revocation: an operator's request names the door that received it")
		case r.RequestedBy == "":
			return r, refuse(Malformed, "say who asked for the revocation (requested by)")
		case r.IdentifiedBy == "":
			return r, refuse(Malformed, "say how the person who asked was identified (identified by)")
		}
	case c.Account != nil:
		if !req.Reason.Subscriber {
			return r, refuse(BadReason, "reason %s is given by the CA's operators only", req.Reason.Name)
		}
		if err := v.accountMay(ctx, c.Account, target); err != nil {
			return r, err
		}
		r.PerformedBy, r.ReceivedBy = "varmenne ACME revokeCert", receivedByACME
		r.RequestedBy = fmt.Sprintf("ACME account %s of organisation %s", c.Account.ID, c.Account.OrgOID)
		r.IdentifiedBy = "ACME account key (JWS kid)"
	case c.Key != nil:
		if !req.Reason.Subscriber {
			return r, refuse(BadReason, "reason %s is given by the CA's operators only", req.Reason.Name)
		}
		if ok, err := v.keyMatches(ctx, target, c.Key); err != nil || !ok {
			return r, refuse(Unauthorized, "the request is not signed by this certificate's key")
		}
		r.PerformedBy, r.ReceivedBy = "varmenne ACME revokeCert", receivedByACME
		r.RequestedBy = "holder of the certificate's private key"
		r.IdentifiedBy = "signature by the certificate's key (JWS jwk)"
	default:
		return r, refuse(Unauthorized, "a revocation needs an account, the certificate's key or an operator")
	}
	return r, nil
}

// receivedByACME is the ReceivedBy of a revocation asked for through ACME.
const receivedByACME = "ACME revokeCert by acme"

// afterNotBefore refuses an invalidity date before the target's notBefore: the
// key of a certificate cannot have been compromised in it before it was valid.
// A serial with no stored certificate has no notBefore to compare with.
func (v *Revoker) afterNotBefore(ctx context.Context, invalidity time.Time, target *store.SerialStatus) error {
	if invalidity.IsZero() || !target.Certified {
		return nil
	}
	c, err := v.st.GetCertificate(ctx, target.Serial)
	if err != nil {
		return fmt.Errorf("revocation: read certificate %s: %w", target.Serial, err)
	}
	if invalidity.Before(c.NotBefore) {
		return refuse(Malformed, "the invalidity date %s is before certificate %s became valid (notBefore %s); give a time between its notBefore and now",
			invalidity.Format(time.RFC3339), target.Serial, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

// accountMay judges an ACME account's right to revoke the target (AccountMay). A
// serial with no stored certificate (an issuance intent) names no account and was
// never delivered: only an operator revokes it.
func (v *Revoker) accountMay(ctx context.Context, acct *store.Account, target *store.SerialStatus) error {
	if target.OrgOID != acct.OrgOID {
		return refuse(Unauthorized, "account %s may not revoke this certificate: it belongs to another organisation", acct.ID)
	}
	if !target.Certified {
		return refuse(Unauthorized, "serial %s has no stored certificate; ask the CA's operators to revoke it", target.Serial)
	}
	c, err := v.st.GetCertificate(ctx, target.Serial)
	if err != nil {
		return fmt.Errorf("revocation: read certificate %s: %w", target.Serial, err)
	}
	if c.AccountID == acct.ID {
		return AccountMay(acct, nil, nil, c)
	}
	// Unknown organisation or key: AccountMay allows the account's own certificates only.
	org, err := v.st.GetOrganisation(ctx, acct.OrgOID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("revocation: read organisation %s: %w", acct.OrgOID, err)
	}
	ek, err := v.st.GetEAB(ctx, acct.EABKID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("revocation: read EAB key %s: %w", acct.EABKID, err)
	}
	return AccountMay(acct, org, ek, c)
}

// keyMatches reports whether key is the stored certificate's public key.
func (v *Revoker) keyMatches(ctx context.Context, target *store.SerialStatus, key crypto.PublicKey) (bool, error) {
	if !target.Certified {
		return false, nil
	}
	c, err := v.st.GetCertificate(ctx, target.Serial)
	if err != nil {
		return false, err
	}
	cert, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return false, err
	}
	a, err1 := x509.MarshalPKIXPublicKey(cert.PublicKey)
	b, err2 := x509.MarshalPKIXPublicKey(key)
	return err1 == nil && err2 == nil && bytes.Equal(a, b), nil
}

var errNothing = errors.New("revocation: no valid certificates")

func blocked(keyHash, serial string, at time.Time) *store.BlockedKey {
	return &store.BlockedKey{KeyHash: keyHash, Reason: KeyCompromise.Name, Source: "revocation of " + serial, CreatedAt: at}
}

func alreadyRevoked(serial string, prev *store.Revocation) error {
	return refuse(AlreadyRevoked, "certificate %s is already revoked (%s, reason %s, carried out by %s); revocation is final",
		serial, prev.RevokedAt.UTC().Format(time.RFC3339), Name(prev.Reason), prev.PerformedBy)
}

// event is the audit event of a revocation record.
func event(r store.Revocation) audit.Revoked {
	return audit.Revoked{Serial: r.Serial, Reason: Name(r.Reason), RequestedBy: r.RequestedBy, IdentifiedBy: r.IdentifiedBy,
		RequestedAt: r.RequestedAt, InvalidityDate: r.InvalidityDate, PerformedBy: r.PerformedBy, ReceivedBy: r.ReceivedBy}
}
