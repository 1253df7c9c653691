package admin

// The issuer lifecycle (practice statement 6.6 and 6.8.1): every generation of a
// hierarchy's issuer the servers loaded or a key ceremony made is registered; an
// administrator makes a new generation the active one, which signs the new
// certificates while the earlier one keeps signing its CRLs and OCSP answers;
// and a generation no longer active is retired by two administrators — one asks,
// another carries it out — which revokes every valid certificate it issued and
// lets it publish one final CRL valid beyond its last certificate's expiry.

import (
	"context"
	"errors"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/revocation"
	"github.com/varmenne/varmenne/store"
)

// SystemActor is the actor of what a server does by itself, such as registering
// the issuer generations it loaded.
const SystemActor = "varmenne serve"

// IssuerView is an issuer generation as operators see it, with its CRL.
type IssuerView struct {
	store.IssuerGeneration
	CRLNumber     int64     // 0: none published
	CRLNextUpdate time.Time // of the last CRL published
	FinalUntil    time.Time // a retired generation's final CRL's nextUpdate
	FinalCRL      bool      // the final CRL is published
}

// Issuers lists the issuer generations and their CRLs; administrators and auditors.
func (s *Service) Issuers(ctx context.Context, who *store.Operator) ([]IssuerView, error) {
	if err := s.allow(ctx, who, "list issuers", store.RoleAdministrator, store.RoleAuditor); err != nil {
		return nil, err
	}
	gens, err := s.st.IssuerGenerations(ctx)
	if err != nil {
		return nil, s.internal(ctx, "list issuers", err)
	}
	out := make([]IssuerView, 0, len(gens))
	for _, g := range gens {
		v := IssuerView{IssuerGeneration: g}
		crl, err := s.st.GetCRLState(ctx, g.Name)
		switch {
		case err == nil:
			v.CRLNumber, v.CRLNextUpdate, v.FinalUntil = crl.Number, crl.NextUpdate, crl.FinalUntil
			v.FinalCRL = !crl.FinalUntil.IsZero() && crl.Number > 0 && !crl.NextUpdate.Before(crl.FinalUntil)
		case !errors.Is(err, store.ErrNotFound):
			return nil, s.internal(ctx, "read the CRL state of "+g.Name, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// RegisterIssuer records a generation a server loaded or a ceremony made, with its
// audit event, unless the database knows it with this certificate; by is who
// registers it (SystemActor, or the ceremony's operators). A hierarchy's first
// generation becomes its active one. A known generation with another certificate
// (its key certified anew, or a development PKI made again) takes the new one,
// keeping its state; the event names the certificate it replaces.
func (s *Service) RegisterIssuer(ctx context.Context, g store.IssuerGeneration, by string) (*store.IssuerGeneration, error) {
	known, err := s.st.GetIssuerGeneration(ctx, g.Name)
	switch {
	case err == nil && known.CertSHA256 == g.CertSHA256:
		return known, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, s.internal(ctx, "read issuer "+g.Name, err)
	}
	var stored *store.IssuerGeneration
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		var replaced string
		var err error
		if stored, replaced, err = tx.RegisterGeneration(g, by, s.now()); err != nil {
			return nil, err
		}
		return []audit.Record{audit.Done(by, audit.IssuerRegistered{Issuer: stored.Name, Hierarchy: stored.Hierarchy,
			Generation: stored.Generation, SHA256: stored.CertSHA256, State: stored.State, Replaces: replaced})}, nil
	})
	if errors.Is(err, store.ErrDuplicate) {
		return nil, errorf(Conflict, "issuer %s's certificate (SHA-256 %s) is registered under another name (varmenne issuer list): the PKI directory does not match this database",
			g.Name, g.CertSHA256)
	}
	if err != nil {
		return nil, s.internal(ctx, "register issuer "+g.Name, err)
	}
	return stored, nil
}

// ActivateIssuer makes a standby generation the one that signs its hierarchy's
// new certificates, on an administrator's word; the generation that was active
// goes on signing its CRLs and OCSP answers. Running servers switch within
// seconds (each checks first that its profiles fit the new generation's life).
func (s *Service) ActivateIssuer(ctx context.Context, who *store.Operator, name string) (previous string, err error) {
	if err := s.allow(ctx, who, "activate issuers", store.RoleAdministrator); err != nil {
		return "", err
	}
	g, err := s.generation(ctx, name)
	if err != nil {
		return "", err
	}
	switch {
	case g.State == store.GenerationActive:
		return "", errorf(Conflict, "issuer %s is the active %s issuer already", name, g.Hierarchy)
	case g.State == store.GenerationRetired:
		return "", errorf(Conflict, "issuer %s is retired and signs nothing again; make a new generation (varmenne issuer new --hierarchy %s)", name, g.Hierarchy)
	case g.RetireRequestedBy != "":
		return "", errorf(Conflict, "%s asked for the retirement of issuer %s; withdraw that first (varmenne issuer retire --withdraw)", g.RetireRequestedBy, name)
	case !s.now().Before(g.NotAfter):
		return "", errorf(Conflict, "issuer %s expired on %s", name, g.NotAfter.UTC().Format(time.DateOnly))
	}
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		var err error
		if previous, err = tx.ActivateGeneration(name, who.Name, s.now()); err != nil {
			return nil, err
		}
		return []audit.Record{audit.Done(who.Name, audit.IssuerActivated{Issuer: name, Hierarchy: g.Hierarchy, Previous: previous})}, nil
	})
	if errors.Is(err, store.ErrConflict) {
		return "", errorf(Conflict, "issuer %s changed state meanwhile; look at it again (varmenne issuer list)", name)
	}
	if err != nil {
		return "", s.internal(ctx, "activate issuer "+name, err)
	}
	return previous, nil
}

// RequestIssuerRetirement records an administrator's request to retire a standby
// generation; another administrator carries it out (RetireIssuer).
func (s *Service) RequestIssuerRetirement(ctx context.Context, who *store.Operator, name, reason string) error {
	if err := s.allow(ctx, who, "retire issuers", store.RoleAdministrator); err != nil {
		return err
	}
	reason, err := text("reason", reason, true)
	if err != nil {
		return err
	}
	g, err := s.generation(ctx, name)
	if err != nil {
		return err
	}
	if err := retirable(g); err != nil {
		return err
	}
	if g.RetireRequestedBy != "" {
		return errorf(Conflict, "%s asked for the retirement of issuer %s already; another administrator carries it out (varmenne issuer retire --approve %s)",
			g.RetireRequestedBy, name, name)
	}
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(who.Name, audit.IssuerRetireRequested{Issuer: name, Reason: reason})},
			tx.RequestRetirement(name, reason, who.Name, s.now())
	})
	if errors.Is(err, store.ErrConflict) {
		return errorf(Conflict, "issuer %s changed state meanwhile; look at it again (varmenne issuer list)", name)
	}
	if err != nil {
		return s.internal(ctx, "record the retirement request of "+name, err)
	}
	return nil
}

// WithdrawIssuerRetirement drops a retirement asked for and not carried out.
func (s *Service) WithdrawIssuerRetirement(ctx context.Context, who *store.Operator, name, reason string) error {
	if err := s.allow(ctx, who, "retire issuers", store.RoleAdministrator); err != nil {
		return err
	}
	reason, err := text("reason", reason, true)
	if err != nil {
		return err
	}
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(who.Name, audit.IssuerRetireWithdrawn{Issuer: name, Reason: reason})}, tx.WithdrawRetirement(name)
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errorf(NotFound, "there is no issuer %s; see varmenne issuer list", name)
	case errors.Is(err, store.ErrConflict):
		return errorf(Conflict, "no retirement of issuer %s waits to be carried out", name)
	case err != nil:
		return s.internal(ctx, "withdraw the retirement of "+name, err)
	}
	return nil
}

// RetireIssuer carries out a retirement another administrator asked for: every
// unexpired certificate of the generation and every issuance of it still pending
// is revoked (cessationOfOperation, each with its audit event and holder notice),
// the generation is marked retired — its key signs no certificate again — and
// its next CRL, which the running servers publish within seconds, is its final
// one, valid until FinalCRLMargin after its last certificate expires. All in one
// transaction with the IssuerRetired record naming both administrators.
func (s *Service) RetireIssuer(ctx context.Context, who *store.Operator, name, door string) (*store.Retirement, error) {
	if err := s.allow(ctx, who, "retire issuers", store.RoleAdministrator); err != nil {
		return nil, err
	}
	g, err := s.generation(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := retirable(g); err != nil {
		return nil, err
	}
	switch g.RetireRequestedBy {
	case "":
		return nil, errorf(Conflict, "nobody asked for the retirement of issuer %s: one administrator asks (varmenne issuer retire %s --reason TEXT), another carries it out", name, name)
	case who.Name:
		s.note(ctx, audit.Refused(who.Name, audit.IssuerRetired{Issuer: name, RequestedBy: g.RetireRequestedBy, Reason: g.RetireReason}, "dual control, the approver asked for it"))
		return nil, errorf(DualControl, "%s asked for the retirement of issuer %s and so cannot carry it out (dual control); another administrator must", who.Name, name)
	}
	req := revocation.Request{Reason: revocation.CessationOfOperation, Caller: revocation.Caller{Operator: who.Name},
		RequestedBy: g.RetireRequestedBy + " (administrator), retirement of issuer " + name, IdentifiedBy: "operator credentials of both administrators",
		Door: door, Note: g.RetireReason}
	done, err := s.rev.RetireIssuer(ctx, name, req, func(tx *store.Tx, done *store.Retirement) ([]audit.Record, error) {
		return []audit.Record{audit.Done(g.RetireRequestedBy+"+"+who.Name, audit.IssuerRetired{Issuer: name, RequestedBy: g.RetireRequestedBy,
			Reason: g.RetireReason, Revoked: len(done.Revoked), LastExpiry: done.LastExpiry, FinalUntil: done.FinalUntil})}, nil
	})
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, errorf(Conflict, "issuer %s changed state meanwhile (made active, or its retirement withdrawn or carried out); look at it again (varmenne issuer list)", name)
	case err != nil:
		return nil, s.revocationRefusal(ctx, err)
	}
	return done, nil
}

// generation reads a generation, NotFound naming the list command.
func (s *Service) generation(ctx context.Context, name string) (*store.IssuerGeneration, error) {
	g, err := s.st.GetIssuerGeneration(ctx, name)
	if err != nil {
		return nil, s.lookup(ctx, err, "there is no issuer %s; see varmenne issuer list", name)
	}
	return g, nil
}

// retirable refuses the active generation (another must sign first) and a retired one.
func retirable(g *store.IssuerGeneration) error {
	switch g.State {
	case store.GenerationActive:
		return errorf(Conflict, "issuer %s is the active %s issuer: make another generation active first (varmenne issuer new --hierarchy %s, then varmenne issuer activate)",
			g.Name, g.Hierarchy, g.Hierarchy)
	case store.GenerationRetired:
		return errorf(Conflict, "issuer %s was retired on %s by %s and %s; retirement is final", g.Name,
			g.RetiredAt.UTC().Format(time.RFC3339), g.RetireRequestedBy, g.RetiredBy)
	}
	return nil
}
