package authority

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/go-jose/go-jose/v4"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/store"
)

// RFC 5280 CRLReason codes SOTE accepts. certificateHold (6) and removeFromCRL (8) are
// refused because SOTE revocation is final; cACompromise (2) and aACompromise (10)
// concern the CA, not a subscriber.
var revocationReasons = map[int]string{
	0: "unspecified",
	1: "keyCompromise",
	3: "affiliationChanged",
	4: "superseded",
	5: "cessationOfOperation",
	9: "privilegeWithdrawn",
}

// ReasonKeyCompromise is the CRLReason that blocks the key.
const ReasonKeyCompromise = 1

// Revoker is who asks: an account (kid) or the holder of the certificate's key (jwk).
type Revoker struct {
	Account *store.Account   // set when the JWS used kid
	Key     *jose.JSONWebKey // set when the JWS used jwk
}

// Revoke handles revokeCert (RFC 8555 7.6).
func (a *Authority) Revoke(ctx context.Context, who Revoker, req acme.RevokeRequest) error {
	reason := 0
	if req.Reason != nil {
		reason = *req.Reason
	}
	if _, ok := revocationReasons[reason]; !ok {
		return acme.Errorf(acme.BadRevocationReason,
			"revocation reason %d is not accepted: SOTE revocation is final; use 0 (unspecified), 1 (keyCompromise), 3 (affiliationChanged), 4 (superseded), 5 (cessationOfOperation) or 9 (privilegeWithdrawn)", reason)
	}
	der, err := base64.RawURLEncoding.DecodeString(req.Certificate)
	if err != nil || req.Certificate == "" {
		return acme.Errorf(acme.Malformed, "certificate must be the DER certificate in unpadded base64url")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return acme.Errorf(acme.Malformed, "certificate cannot be parsed: %v", err)
	}
	serial := hex.EncodeToString(cert.SerialNumber.Bytes())
	rec, err := a.store.GetCertificate(ctx, serial)
	if isNotFound(err) || (err == nil && !bytes.Equal(rec.DER, der)) {
		return acme.Errorf(acme.Malformed, "this certificate was not issued by this CA").WithStatus(404)
	}
	if err != nil {
		return a.internal(ctx, "read the certificate", err)
	}

	r := store.Revocation{Serial: serial, RevokedAt: a.now(), Reason: reason, PerformedBy: "varmenne ACME revokeCert"}
	switch {
	case who.Account != nil:
		if rec.AccountID != who.Account.ID && rec.OrgOID != who.Account.OrgOID {
			return acme.Errorf(acme.Unauthorized, "account %s may not revoke this certificate: it belongs to another organisation", who.Account.ID)
		}
		r.RequestedBy = fmt.Sprintf("ACME account %s of organisation %s", who.Account.ID, who.Account.OrgOID)
		r.IdentifiedBy = "ACME account key (JWS kid)"
	case who.Key != nil:
		if !jws.KeyEqual(who.Key, &jose.JSONWebKey{Key: cert.PublicKey}) {
			return acme.Errorf(acme.Unauthorized, "the JWS is not signed by this certificate's key")
		}
		r.RequestedBy = "holder of the certificate's private key"
		r.IdentifiedBy = "signature by the certificate's key (JWS jwk)"
	default:
		return acme.Errorf(acme.Unauthorized, "revocation needs an account or the certificate's key")
	}

	var block *store.BlockedKey
	if reason == ReasonKeyCompromise {
		hash, err := signer.KeyHash(cert.PublicKey)
		if err != nil {
			return a.internal(ctx, "hash the compromised key", err)
		}
		block = &store.BlockedKey{KeyHash: hash, Reason: "keyCompromise", Source: "revocation of " + serial, CreatedAt: r.RevokedAt}
	}
	switch err := a.store.Revoke(ctx, r, block); {
	case errors.Is(err, store.ErrDuplicate):
		return acme.Errorf(acme.AlreadyRevoked, "certificate %s is already revoked", serial)
	case err != nil:
		return a.internal(ctx, "record the revocation", err)
	}
	a.auditRevocation(ctx, r)
	a.log.InfoContext(ctx, "certificate revoked", "serial", serial, "reason", revocationReasons[reason], "requested_by", r.RequestedBy)
	return nil
}

// AuditRevoke is the audit action of a revocation.
const AuditRevoke = "certificate.revoke"

// RevocationAuditObject describes a revocation in an audit event.
func RevocationAuditObject(r store.Revocation, reason string) string {
	return fmt.Sprintf("serial=%s reason=%s requested_by=%q identified_by=%q performed_by=%q",
		r.Serial, reason, r.RequestedBy, r.IdentifiedBy, r.PerformedBy)
}

// auditRevocation records a stored revocation in the audit log. The revocation
// stands either way; a failure is logged.
func (a *Authority) auditRevocation(ctx context.Context, r store.Revocation) {
	a.auditEvent(ctx, AuditRevoke, RevocationAuditObject(r, revocationReasons[r.Reason]))
}

// Audit actions of the ACME side's other state changes.
const (
	AuditAccountCreate     = "account.create"
	AuditAccountDeactivate = "account.deactivate"
	AuditOrderCreate       = "order.create"
)

// auditEvent records a state change in the audit log when one is configured. The
// change stands either way; a failure is logged.
func (a *Authority) auditEvent(ctx context.Context, action, object string) {
	if a.cfg.Audit == nil {
		return
	}
	if err := a.cfg.Audit.Audit(context.WithoutCancel(ctx), action, object, "ok"); err != nil {
		a.log.ErrorContext(ctx, "state change not written to the audit log", "action", action, "object", object, "err", err)
	}
}
