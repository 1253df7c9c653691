package admin

// The operator use cases: adding, disabling and removing operators and giving
// them new credentials. In production, once the CA has two administrators, each
// of these (but an operator's own new credential) is a change one administrator
// asks for and another approves; it is applied, with its audit record, in the
// approving transaction. In development, and while the CA has one
// administrator, the administrator acts alone, which the audit log records.

import (
	"context"
	"crypto/x509"
	"errors"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// NewOperator is an operator just added (or given a new credential), with the
// credential handed out once; or, when Pending is set, the change that waits for
// a second administrator (and no credential yet).
type NewOperator struct {
	Operator store.Operator
	Token    string // with a token
	CertPEM  []byte // with a client certificate
	KeyPEM   []byte
	Pending  *OperatorChangeView
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

// OperatorChangeView is a change to an operator as operators see it.
type OperatorChangeView struct {
	ID          string `json:"id"`
	Kind        string `json:"kind"`
	Operator    string `json:"operator"`
	Role        string `json:"role,omitempty"`
	Token       bool   `json:"token"`
	Reason      string `json:"reason,omitempty"`
	RequestedBy string `json:"requested_by"`
	Requested   string `json:"requested"`
	Status      string `json:"status"`
	DecidedBy   string `json:"decided_by,omitempty"`
	Decided     string `json:"decided,omitempty"`
}

func changeView(c store.OperatorChange) OperatorChangeView {
	return OperatorChangeView{ID: c.ID, Kind: c.Kind, Operator: c.Operator, Role: c.Role, Token: c.Token, Reason: c.Reason,
		RequestedBy: c.RequestedBy, Requested: stamp(c.RequestedAt), Status: c.Status, DecidedBy: c.DecidedBy, Decided: stamp(c.DecidedAt)}
}

// needsSecond reports whether a change to operators waits for a second
// administrator: in production, once the CA has two enabled administrators.
func (s *Service) needsSecond(ctx context.Context) (bool, error) {
	production, err := s.production(ctx)
	if err != nil || !production {
		return false, err
	}
	ops, err := s.st.ListOperators(ctx)
	if err != nil {
		return true, s.internal(ctx, "list operators", err)
	}
	admins := 0
	for _, o := range ops {
		if o.Role == store.RoleAdministrator && o.DisabledAt.IsZero() {
			admins++
		}
	}
	return admins >= 2, nil
}

// requestChange records a change to an operator that another administrator must
// approve (ApproveOperatorChange).
func (s *Service) requestChange(ctx context.Context, who *store.Operator, c store.OperatorChange) (*OperatorChangeView, error) {
	c.ID, c.RequestedBy, c.RequestedAt, c.Status = newID(), who.Name, s.now(), store.OperatorChangeRequested
	err := s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(who.Name, audit.OperatorChangeRequested{Change: c.ID, Kind: c.Kind, Operator: c.Operator,
			Role: c.Role, Reason: c.Reason})}, tx.CreateOperatorChange(c)
	})
	if err != nil {
		return nil, s.internal(ctx, "record the operator change", err)
	}
	v := changeView(c)
	return &v, nil
}

// credential makes an operator's new credential: a token, or a client
// certificate from ca.
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
// ca; administrators only. The credential is in the result, once; or the result
// is the change another administrator must approve.
func (s *Service) AddOperator(ctx context.Context, who *store.Operator, ca ClientCertIssuer, in OperatorInput) (*NewOperator, error) {
	if err := s.allow(ctx, who, "add operators", store.RoleAdministrator); err != nil {
		return nil, err
	}
	if err := checkOperator(in); err != nil {
		return nil, err
	}
	if _, err := s.st.GetOperator(ctx, in.Name); err == nil {
		return nil, errorf(Conflict, "operator %s already exists; an operator has one role and one credential, so choose another name", in.Name)
	}
	second, err := s.needsSecond(ctx)
	if err != nil {
		return nil, err
	}
	if second {
		v, err := s.requestChange(ctx, who, store.OperatorChange{Kind: store.OperatorChangeAdd, Operator: in.Name, Role: in.Role, Token: in.Token})
		return &NewOperator{Pending: v}, err
	}
	return s.addOperator(ctx, who.Name, ca, in, true)
}

func checkOperator(in OperatorInput) error {
	if err := CheckOperatorName(in.Name); err != nil {
		return errorf(Malformed, "%v", err)
	}
	if err := CheckRole(in.Role); err != nil {
		return errorf(Malformed, "%v", err)
	}
	return nil
}

// addOperator adds the operator; actor is who decided ("a+b" for two), alone
// whether one person did.
func (s *Service) addOperator(ctx context.Context, actor string, ca ClientCertIssuer, in OperatorInput, alone bool) (*NewOperator, error) {
	if err := checkOperator(in); err != nil {
		return nil, err
	}
	out := &NewOperator{Operator: store.Operator{Name: in.Name, Role: in.Role, CreatedBy: actor, CreatedAt: s.now()}}
	how, err := s.credential(ctx, ca, in, out)
	if err != nil {
		return nil, err
	}
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(actor, audit.OperatorAdded{Operator: in.Name, Role: in.Role, Credential: how, SingleControl: alone})},
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
	out, err := s.addOperator(ctx, "system", nil, OperatorInput{Name: BootstrapOperator, Role: store.RoleAdministrator, Token: true}, true)
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
// themselves. A non-nil change is the request another administrator approves.
func (s *Service) DisableOperator(ctx context.Context, who *store.Operator, name, reason string) (*OperatorChangeView, error) {
	if err := s.allow(ctx, who, "disable operators", store.RoleAdministrator); err != nil {
		return nil, err
	}
	reason, err := text("reason", reason, true)
	if err != nil {
		return nil, err
	}
	if name == who.Name {
		return nil, errorf(Conflict, "an operator cannot disable themselves; another administrator must")
	}
	op, err := s.st.GetOperator(ctx, name)
	if err != nil {
		return nil, s.lookup(ctx, err, "there is no operator %s", name)
	}
	if !op.DisabledAt.IsZero() {
		return nil, errorf(Conflict, "operator %s is already disabled", name)
	}
	if second, err := s.needsSecond(ctx); err != nil || second {
		if err != nil {
			return nil, err
		}
		return s.requestChange(ctx, who, store.OperatorChange{Kind: store.OperatorChangeDisable, Operator: name, Reason: reason})
	}
	return nil, s.disableOperator(ctx, who.Name, name, reason, true)
}

func (s *Service) disableOperator(ctx context.Context, actor, name, reason string, alone bool) error {
	err := s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(actor, audit.OperatorDisabled{Operator: name, Reason: reason, SingleControl: alone})},
			tx.DisableOperator(name, actor, s.now())
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
// Administrators only, and not themselves. A non-nil change is the request
// another administrator approves.
func (s *Service) RemoveOperator(ctx context.Context, who *store.Operator, name string) (*OperatorChangeView, error) {
	if err := s.allow(ctx, who, "remove operators", store.RoleAdministrator); err != nil {
		return nil, err
	}
	if name == who.Name {
		return nil, errorf(Conflict, "an operator cannot remove themselves; another administrator must")
	}
	if _, err := s.st.GetOperator(ctx, name); err != nil {
		return nil, s.lookup(ctx, err, "there is no operator %s", name)
	}
	if second, err := s.needsSecond(ctx); err != nil || second {
		if err != nil {
			return nil, err
		}
		return s.requestChange(ctx, who, store.OperatorChange{Kind: store.OperatorChangeRemove, Operator: name})
	}
	return nil, s.removeOperator(ctx, who.Name, name, true)
}

func (s *Service) removeOperator(ctx context.Context, actor, name string, alone bool) error {
	err := s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(actor, audit.OperatorRemoved{Operator: name, SingleControl: alone})}, tx.RemoveOperator(name)
	})
	if err != nil {
		return s.lookup(ctx, err, "there is no operator %s", name)
	}
	return nil
}

// RotateOperator gives an operator a new credential (a token, or a client
// certificate from ca); the old one stops working and their console sessions end.
// Any operator may renew their own; an administrator may ask for anyone's, which
// in production another administrator approves (the result is then Pending).
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
	if in.Name != who.Name {
		if second, err := s.needsSecond(ctx); err != nil || second {
			if err != nil {
				return nil, err
			}
			v, err := s.requestChange(ctx, who, store.OperatorChange{Kind: store.OperatorChangeRotate, Operator: in.Name, Token: in.Token})
			return &NewOperator{Pending: v}, err
		}
	}
	return s.rotateOperator(ctx, who.Name, ca, *op, in, true)
}

func (s *Service) rotateOperator(ctx context.Context, actor string, ca ClientCertIssuer, op store.Operator, in OperatorInput, alone bool) (*NewOperator, error) {
	out := &NewOperator{Operator: op}
	out.Operator.TokenHash, out.Operator.CertFingerprint, out.Operator.TokenExpiresAt = "", "", time.Time{}
	how, err := s.credential(ctx, ca, in, out)
	if err != nil {
		return nil, err
	}
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(actor, audit.OperatorRotated{Operator: in.Name, Credential: how, SingleControl: alone})},
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

// OperatorChanges lists the changes to operators in a status ("" every status);
// administrators and auditors.
func (s *Service) OperatorChanges(ctx context.Context, who *store.Operator, status string) ([]OperatorChangeView, error) {
	if err := s.allow(ctx, who, "list operator changes", store.RoleAdministrator, store.RoleAuditor); err != nil {
		return nil, err
	}
	list, err := s.st.ListOperatorChanges(ctx, status)
	if err != nil {
		return nil, s.internal(ctx, "list operator changes", err)
	}
	out := []OperatorChangeView{}
	for _, c := range list {
		out = append(out, changeView(c))
	}
	return out, nil
}

// ApproveOperatorChange applies a change another administrator asked for; the
// approval and the change commit together, with both names on the record. For a
// new operator or credential, the approver receives it, once, to hand over.
func (s *Service) ApproveOperatorChange(ctx context.Context, who *store.Operator, ca ClientCertIssuer, id string) (*NewOperator, error) {
	if err := s.allow(ctx, who, "approve operator changes", store.RoleAdministrator); err != nil {
		return nil, err
	}
	c, err := s.st.GetOperatorChange(ctx, id)
	if err != nil {
		return nil, s.lookup(ctx, err, "there is no operator change %s", id)
	}
	switch {
	case c.RequestedBy == who.Name:
		s.note(ctx, audit.Refused(who.Name, audit.OperatorChangeApproved{Change: id, Kind: c.Kind, Operator: c.Operator}, "dual control, the approver asked for it"))
		return nil, errorf(DualControl, "%s asked for operator change %s and so cannot approve it (dual control); another administrator must", who.Name, id)
	case c.Status != store.OperatorChangeRequested:
		return nil, errorf(Conflict, "operator change %s was already %s by %s", id, c.Status, c.DecidedBy)
	}
	actor := c.RequestedBy + "+" + who.Name
	now := s.now()
	approve := func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(who.Name, audit.OperatorChangeApproved{Change: id, Kind: c.Kind, Operator: c.Operator})},
			tx.DecideOperatorChange(id, store.OperatorChangeApplied, who.Name, now)
	}
	out := &NewOperator{Operator: store.Operator{Name: c.Operator, Role: c.Role, CreatedBy: actor, CreatedAt: now}}
	var apply func(tx *store.Tx) (audit.Record, error)
	switch c.Kind {
	case store.OperatorChangeAdd, store.OperatorChangeRotate:
		in := OperatorInput{Name: c.Operator, Role: c.Role, Token: c.Token}
		if c.Kind == store.OperatorChangeRotate {
			op, err := s.st.GetOperator(ctx, c.Operator)
			if err != nil {
				return nil, s.lookup(ctx, err, "there is no operator %s", c.Operator)
			}
			out.Operator, in.Role = *op, op.Role
			out.Operator.TokenHash, out.Operator.CertFingerprint, out.Operator.TokenExpiresAt = "", "", time.Time{}
		}
		how, err := s.credential(ctx, ca, in, out)
		if err != nil {
			return nil, err
		}
		apply = func(tx *store.Tx) (audit.Record, error) {
			if c.Kind == store.OperatorChangeAdd {
				return audit.Done(actor, audit.OperatorAdded{Operator: c.Operator, Role: c.Role, Credential: how}), tx.AddOperator(out.Operator)
			}
			return audit.Done(actor, audit.OperatorRotated{Operator: c.Operator, Credential: how}), tx.SetOperatorCredential(out.Operator)
		}
	case store.OperatorChangeDisable:
		apply = func(tx *store.Tx) (audit.Record, error) {
			return audit.Done(actor, audit.OperatorDisabled{Operator: c.Operator, Reason: c.Reason}), tx.DisableOperator(c.Operator, actor, now)
		}
	case store.OperatorChangeRemove:
		apply = func(tx *store.Tx) (audit.Record, error) {
			return audit.Done(actor, audit.OperatorRemoved{Operator: c.Operator}), tx.RemoveOperator(c.Operator)
		}
	default:
		return nil, s.internal(ctx, "approve the operator change", errors.New("unknown kind "+c.Kind))
	}
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		records, err := approve(tx)
		if err != nil {
			return nil, err
		}
		r, err := apply(tx)
		return append(records, r), err
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, errorf(Conflict, "operator change %s can no longer be applied (decided meanwhile, or the operator's state changed); look at it again", id)
	case errors.Is(err, store.ErrDuplicate):
		return nil, errorf(Conflict, "operator %s exists already", c.Operator)
	case err != nil:
		return nil, s.lookup(ctx, err, "operator %s is gone", c.Operator)
	}
	if c.Kind == store.OperatorChangeDisable || c.Kind == store.OperatorChangeRemove {
		return &NewOperator{Operator: store.Operator{Name: c.Operator}}, nil
	}
	return out, nil
}

// RejectOperatorChange rejects a change; administrators only (the requester may
// withdraw their own).
func (s *Service) RejectOperatorChange(ctx context.Context, who *store.Operator, id, reason string) error {
	if err := s.allow(ctx, who, "reject operator changes", store.RoleAdministrator); err != nil {
		return err
	}
	reason, err := text("reason", reason, true)
	if err != nil {
		return err
	}
	c, err := s.st.GetOperatorChange(ctx, id)
	if err != nil {
		return s.lookup(ctx, err, "there is no operator change %s", id)
	}
	decider := who.Name
	if c.RequestedBy == who.Name {
		decider = who.Name + " (withdrawn)"
	}
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(who.Name, audit.OperatorChangeRejected{Change: id, Reason: reason})},
			tx.DecideOperatorChange(id, store.OperatorChangeRejected, decider, s.now())
	})
	if errors.Is(err, store.ErrConflict) {
		return errorf(Conflict, "operator change %s was already decided", id)
	}
	if err != nil {
		return s.internal(ctx, "reject the operator change", err)
	}
	return nil
}
