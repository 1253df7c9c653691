package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Tx is one transaction of the operator side. Its methods are the store's state
// changes that an operator (or the system on an operator's behalf) makes; they run
// in the transaction Audited opened, with the audit events that record them, so a
// change and its audit record commit together or not at all. A Tx is valid only
// inside the function given to Audited.
type Tx struct {
	s   *SQL // a copy of the store bound to the transaction (SQL.cur)
	ctx context.Context
}

// Seal computes an audit event's hash once its sequence number and previous hash
// are set (audit.Hash); it must have no effects outside its result.
type Seal func(AuditEvent) (string, error)

// ErrNoAuditEvent is returned by Audited when the change records no event: a
// state change without its audit record must not happen.
var ErrNoAuditEvent = errors.New("store: a change must record at least one audit event")

// Audited runs change in one read-write transaction and appends the events it
// returns to the audit log in the same transaction, sealing each with seal. When
// change fails, returns no event, or an append fails, nothing is committed. It
// returns the events as stored. change may run more than once (a transaction the
// database aborted is run again), so it must have no effects outside tx.
func (s *SQL) Audited(ctx context.Context, seal Seal, change func(tx *Tx) ([]AuditEvent, error)) ([]AuditEvent, error) {
	return s.audited(ctx, s.d.isolation, seal, change)
}

// AuditedRows is Audited for a change that is correct without serializable
// isolation: conditional updates of the rows it decides on and inserts held by
// constraints, as the ACME side's account, order and signing steps are. It runs at
// the locking isolation (READ COMMITTED on PostgreSQL; the append stays linear
// under the audit lock), so that concurrent issuances do not abort each other on
// PostgreSQL's predicate locks (32 concurrent finalizes did, at sign.begin).
func (s *SQL) AuditedRows(ctx context.Context, seal Seal, change func(tx *Tx) ([]AuditEvent, error)) ([]AuditEvent, error) {
	return s.audited(ctx, s.d.lockingIsolation, seal, change)
}

func (s *SQL) audited(ctx context.Context, level sql.IsolationLevel, seal Seal, change func(tx *Tx) ([]AuditEvent, error)) ([]AuditEvent, error) {
	var stored []AuditEvent
	for try := 1; ; try++ {
		appending := false
		// Where the dialect has an audit lock (PostgreSQL), concurrent audited
		// changes queue on it instead of aborting each other at the append. A
		// serializable transaction takes it first: its snapshot is taken at its
		// first statement, and one taken before the previous appender committed
		// would read a stale last event. A READ COMMITTED one (AuditedRows) takes
		// it after the change, just before the append, whose statements each see
		// what committed before them: the changes of concurrent issuances run side
		// by side, and only the append and the commit wait in line.
		lockFirst := s.d.auditLock != "" && level != s.d.lockingIsolation
		err := s.retryTx(ctx, level, func(tx *sql.Tx) error {
			stored, appending = stored[:0], false
			lock := func() error {
				_, err := tx.ExecContext(ctx, s.d.auditLock)
				return err
			}
			if lockFirst {
				if err := lock(); err != nil {
					return err
				}
			}
			bound := *s
			bound.cur = tx
			events, err := change(&Tx{s: &bound, ctx: ctx})
			if err != nil {
				return err
			}
			if len(events) == 0 {
				return ErrNoAuditEvent
			}
			if s.d.auditLock != "" && !lockFirst {
				if err := lock(); err != nil {
					return err
				}
			}
			appending = true
			for _, e := range events {
				out, err := s.appendAudit(ctx, tx, e, seal)
				if err != nil {
					return fmt.Errorf("append audit event %q: %w", e.Action, err)
				}
				stored = append(stored, out)
			}
			return nil
		})
		if err == nil {
			return stored, nil
		}
		if errors.Is(err, ErrNoAuditEvent) {
			return nil, err
		}
		err = s.fail("audited change", err)
		// Two appends took the same sequence number (PostgreSQL, the loser's
		// snapshot predates the winner's commit): run the change again. A duplicate
		// the change itself met is its answer.
		if !appending || !errors.Is(err, ErrDuplicate) || try == maxAuditAppendTries {
			return nil, err
		}
	}
}

// The operator side's state changes. Each is the method of SQL of the same name,
// run in the transaction.

// AddOrganisation: see SQL.AddOrganisation.
func (t *Tx) AddOrganisation(o Organisation) error { return t.s.AddOrganisation(t.ctx, o) }

// ListOrganisations reads every organisation in the transaction (a rule across
// organisations, such as names approved twice, is decided on what it reads).
func (t *Tx) ListOrganisations() ([]RegisteredOrganisation, error) {
	return t.s.ListOrganisations(t.ctx)
}

// AddOrganisationNames: see SQL.AddOrganisationNames.
func (t *Tx) AddOrganisationNames(oid string, domains []string, networks []netip.Prefix) (*Organisation, error) {
	return t.s.AddOrganisationNames(t.ctx, oid, domains, networks)
}

// ImportRegister: see SQL.ImportRegister.
func (t *Tx) ImportRegister(orgs []RegisterImport, at time.Time) ([]RegisterChange, error) {
	return t.s.ImportRegister(t.ctx, orgs, at)
}

// RecordRegisterLoad: see SQL.RecordRegisterLoad.
func (t *Tx) RecordRegisterLoad(l RegisterLoad) error { return t.s.RecordRegisterLoad(t.ctx, l) }

// AddConformityCertificate: see SQL.AddConformityCertificate.
func (t *Tx) AddConformityCertificate(c ConformityCertificate) error {
	return t.s.AddConformityCertificate(t.ctx, c)
}

// SuspendOrganisation: see SQL.SuspendOrganisation.
func (t *Tx) SuspendOrganisation(oid, by, reason string, now time.Time) error {
	return t.s.SuspendOrganisation(t.ctx, oid, by, reason, now)
}

// ResumeOrganisation: see SQL.ResumeOrganisation.
func (t *Tx) ResumeOrganisation(oid string) error { return t.s.ResumeOrganisation(t.ctx, oid) }

// CreateEABRequest: see SQL.CreateEABRequest.
func (t *Tx) CreateEABRequest(r EABRequest) error { return t.s.CreateEABRequest(t.ctx, r) }

// ApproveEABRequest: see SQL.ApproveEABRequest.
func (t *Tx) ApproveEABRequest(id, approver string, dualControl bool, now time.Time, key EABKey) (*EABKey, error) {
	return t.s.ApproveEABRequest(t.ctx, id, approver, dualControl, now, key)
}

// RejectEABRequest: see SQL.RejectEABRequest.
func (t *Tx) RejectEABRequest(id, by, reason string, now time.Time) error {
	return t.s.RejectEABRequest(t.ctx, id, by, reason, now)
}

// RevealEABKey: see SQL.RevealEABKey.
func (t *Tx) RevealEABKey(kid, requester string, now time.Time) (*EABKey, error) {
	return t.s.RevealEABKey(t.ctx, kid, requester, now)
}

// RevokeEABKey: see SQL.RevokeEABKey.
func (t *Tx) RevokeEABKey(kid, by, reason string, deactivateAccounts bool) ([]string, error) {
	return t.s.RevokeEABKey(t.ctx, kid, by, reason, deactivateAccounts)
}

// ExpireEAB: see SQL.ExpireEAB.
func (t *Tx) ExpireEAB(now time.Time) (requests, keys []string, err error) {
	return t.s.ExpireEAB(t.ctx, now)
}

// RemoveOrganisationNames: see SQL.RemoveOrganisationNames.
func (t *Tx) RemoveOrganisationNames(oid string, domains []string, networks []netip.Prefix) (*Organisation, error) {
	return t.s.RemoveOrganisationNames(t.ctx, oid, domains, networks)
}

// DisableOperator: see SQL.DisableOperator.
func (t *Tx) DisableOperator(name, by string, now time.Time) error {
	return t.s.DisableOperator(t.ctx, name, by, now)
}

// RemoveOperator: see SQL.RemoveOperator.
func (t *Tx) RemoveOperator(name string) error { return t.s.RemoveOperator(t.ctx, name) }

// SetOperatorCredential: see SQL.SetOperatorCredential.
func (t *Tx) SetOperatorCredential(o Operator) error { return t.s.SetOperatorCredential(t.ctx, o) }

// CreateOperatorChange: see SQL.CreateOperatorChange.
func (t *Tx) CreateOperatorChange(c OperatorChange) error { return t.s.CreateOperatorChange(t.ctx, c) }

// DecideOperatorChange: see SQL.DecideOperatorChange.
func (t *Tx) DecideOperatorChange(id, status, decider string, now time.Time) error {
	return t.s.DecideOperatorChange(t.ctx, id, status, decider, now)
}

// AddOperator: see SQL.AddOperator.
func (t *Tx) AddOperator(o Operator) error { return t.s.AddOperator(t.ctx, o) }

// BlockKey: see SQL.BlockKey.
func (t *Tx) BlockKey(b BlockedKey) error { return t.s.BlockKey(t.ctx, b) }

// Revoke: see SQL.Revoke.
func (t *Tx) Revoke(r Revocation, block *BlockedKey) error { return t.s.Revoke(t.ctx, r, block) }

// FinishRevocationNotice: see SQL.FinishRevocationNotice.
func (t *Tx) FinishRevocationNotice(serial, holder string, done bool, outcome string, now, next time.Time) error {
	return t.s.FinishRevocationNotice(t.ctx, serial, holder, done, outcome, now, next)
}

// RevokeOrganisation: see SQL.RevokeOrganisation.
func (t *Tx) RevokeOrganisation(orgOID string, now time.Time, r Revocation, blockKeys bool) ([]string, error) {
	return t.s.RevokeOrganisation(t.ctx, orgOID, now, r, blockKeys)
}

// MoveRenewalWindows: see SQL.MoveRenewalWindows.
func (t *Tx) MoveRenewalWindows(sel RenewalSelector, w RenewalWindow, now time.Time) ([]string, error) {
	return t.s.MoveRenewalWindows(t.ctx, sel, w, now)
}

// CreateConsoleSession: see SQL.CreateConsoleSession.
func (t *Tx) CreateConsoleSession(c ConsoleSession) error { return t.s.CreateConsoleSession(t.ctx, c) }

// DeleteConsoleSession: see SQL.DeleteConsoleSession.
func (t *Tx) DeleteConsoleSession(idHash string) error {
	return t.s.DeleteConsoleSession(t.ctx, idHash)
}

// ClaimTally: see SQL.ClaimTally.
func (t *Tx) ClaimTally(name, subject string, start time.Time) (int, error) {
	return t.s.ClaimTally(t.ctx, name, subject, start)
}

// The ACME side's state changes that carry an audit event: the account and order
// changes, and each step of the issuer key's use of an intent.

// CreateAccount: see SQL.CreateAccount.
func (t *Tx) CreateAccount(a Account, eabKID string) error {
	return t.s.CreateAccount(t.ctx, a, eabKID)
}

// DeactivateAccount: see SQL.DeactivateAccount.
func (t *Tx) DeactivateAccount(id string) error { return t.s.DeactivateAccount(t.ctx, id) }

// ChangeAccountKey: see SQL.ChangeAccountKey.
func (t *Tx) ChangeAccountKey(id, oldThumbprint, newThumbprint string, newJWK []byte) error {
	return t.s.ChangeAccountKey(t.ctx, id, oldThumbprint, newThumbprint, newJWK)
}

// CreateOrder: see SQL.CreateOrder.
func (t *Tx) CreateOrder(o Order, authzs []Authorization) error {
	return t.s.CreateOrder(t.ctx, o, authzs)
}

// RecordIntent: see SQL.RecordIntent.
func (t *Tx) RecordIntent(in IssuanceIntent) error { return t.s.RecordIntent(t.ctx, in) }

// BeginSigning: see SQL.BeginSigning.
func (t *Tx) BeginSigning(serial string) error { return t.s.BeginSigning(t.ctx, serial) }

// IntentSigned: see SQL.IntentSigned.
func (t *Tx) IntentSigned(serial string, der []byte) error {
	return t.s.IntentSigned(t.ctx, serial, der)
}

// FinishIssuance is SQL.FinishIssuance in the transaction, tried once: the caller
// decides what a failure means (the signer then records the signature alone and
// its caller stores the certificate with SQL.FinishIssuance).
func (t *Tx) FinishIssuance(c Certificate) error {
	serial, keyHash, err := serialAndKeyHash(c.Serial, c.KeyHash)
	if err != nil {
		return err
	}
	if err := t.s.finishIssuance(t.ctx, t.s.cur, c, serial, keyHash); err != nil {
		return t.s.fail("finish issuance of "+serial, err)
	}
	return nil
}

// FailIntent: see SQL.FailIntent.
func (t *Tx) FailIntent(serial, reason string) error { return t.s.FailIntent(t.ctx, serial, reason) }

// The issuer generations' state changes (migration 0030).

// ActivateGeneration: see SQL.ActivateGeneration.
func (t *Tx) ActivateGeneration(name, by string, now time.Time) (string, error) {
	return t.s.ActivateGeneration(t.ctx, name, by, now)
}

// RequestRetirement: see SQL.RequestRetirement.
func (t *Tx) RequestRetirement(name, reason, by string, now time.Time) error {
	return t.s.RequestRetirement(t.ctx, name, reason, by, now)
}

// WithdrawRetirement: see SQL.WithdrawRetirement.
func (t *Tx) WithdrawRetirement(name string) error { return t.s.WithdrawRetirement(t.ctx, name) }

// RetireGeneration: see SQL.RetireGeneration.
func (t *Tx) RetireGeneration(name, by string, r Revocation, now time.Time) (*Retirement, error) {
	return t.s.RetireGeneration(t.ctx, name, by, r, now)
}

// RegisterGeneration: see SQL.RegisterGeneration.
func (t *Tx) RegisterGeneration(g IssuerGeneration, by string, now time.Time) (*IssuerGeneration, string, error) {
	return t.s.RegisterGeneration(t.ctx, g, by, now)
}

// FinishChallengeWithEvidence records a processing challenge as valid, as
// FinishChallenge does, together with what proved control (a dns-persist-01
// record), in the transaction that records its audit event.
func (t *Tx) FinishChallengeWithEvidence(challengeID string, validated time.Time, evidence string) error {
	if err := t.s.finishChallenge(t.ctx, t.s.cur, challengeID, true, validated, nil, time.Time{}); err != nil {
		return err
	}
	_, err := t.s.exec(t.ctx, t.s.cur, `UPDATE challenges SET evidence = ? WHERE id = ?`, evidence, challengeID)
	return err
}
