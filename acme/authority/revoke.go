package authority

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/revocation"
	"github.com/varmenne/varmenne/store"
)

// Revoker is the revocation component (revocation.Revoker): the one place a
// certificate is revoked, whoever asks.
type Revoker interface {
	Revoke(ctx context.Context, req revocation.Request) (*store.Revocation, error)
}

// RevokeCaller is who asks: an account (kid) or the holder of the certificate's key (jwk).
type RevokeCaller struct {
	Account *store.Account   // set when the JWS used kid
	Key     *jose.JSONWebKey // set when the JWS used jwk
	// ReceivedAt is when the server received the request: the record's request
	// time. Zero: now.
	ReceivedAt time.Time
}

// Revoke handles revokeCert (RFC 8555 7.6): it reads the request, checks that
// this CA issued the certificate, and hands the rest (the caller's right, the
// reason, key blocking, the record and its audit event) to the revocation
// component.
func (a *Authority) Revoke(ctx context.Context, who RevokeCaller, req acme.RevokeRequest) error {
	code := 0
	if req.Reason != nil {
		code = *req.Reason
	}
	reason, ok := revocation.ByCode(code)
	if !ok {
		return acme.Errorf(acme.BadRevocationReason,
			"revocation reason %d is not accepted: SOTE revocation is final; use %s", code, revocation.Allowed())
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
	caller := revocation.Caller{Account: who.Account}
	if who.Key != nil {
		caller.Key = who.Key.Key
	}
	r, err := a.cfg.Revoker.Revoke(ctx, revocation.Request{Serial: serial, Reason: reason, Caller: caller, RequestedAt: who.ReceivedAt})
	var refusal *revocation.Error
	if errors.As(err, &refusal) {
		switch refusal.Kind {
		case revocation.AlreadyRevoked:
			return acme.Errorf(acme.AlreadyRevoked, "%s", refusal.Detail)
		case revocation.BadReason:
			return acme.Errorf(acme.BadRevocationReason, "%s", refusal.Detail)
		case revocation.Unauthorized:
			return acme.Errorf(acme.Unauthorized, "%s", refusal.Detail)
		case revocation.NotFound:
			return acme.Errorf(acme.Malformed, "this certificate was not issued by this CA").WithStatus(404)
		}
		return acme.Errorf(acme.Malformed, "%s", refusal.Detail)
	}
	if err != nil {
		return a.internal(ctx, "record the revocation", err)
	}
	a.log.InfoContext(ctx, "certificate revoked", "serial", serial, "reason", reason.Name, "requested_by", r.RequestedBy)
	return nil
}

// record makes a change of the ACME side with its audit event, in one transaction:
// if the event cannot be written the change does not happen.
func (a *Authority) record(ctx context.Context, e audit.Event, change func(tx *store.Tx) error) error {
	return a.cfg.Audit.Change(ctx, e, audit.OK, change)
}
