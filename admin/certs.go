package admin

// The certificate use cases. This is the one file of the package that uses crl, for
// reading serials operators type and naming revocation reasons; when those move to
// a package of their own (revocation), only this file changes.

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/varmenne/varmenne/crl"
	"github.com/varmenne/varmenne/store"
)

// AuditRevoke is authority.AuditRevoke: one action for every revocation.
const AuditRevoke = "certificate.revoke"

// CertView is an issued certificate.
type CertView struct {
	Serial        string   `json:"serial"`
	SerialDecimal string   `json:"serial_decimal"`
	Organisation  string   `json:"organisation"`
	Names         []string `json:"names"`
	Profile       string   `json:"profile"`
	Issuer        string   `json:"issuer"`
	NotBefore     string   `json:"not_before"`
	NotAfter      string   `json:"not_after"`
	Account       string   `json:"account"`
	Revoked       string   `json:"revoked,omitempty"`
	RevokeReason  string   `json:"revoke_reason,omitempty"`
}

// Certificates finds certificates by serial (hex or decimal; digits only are read
// both ways) and by name; both empty lists the newest.
func (s *Service) Certificates(ctx context.Context, who *store.Operator, serial, name string) ([]CertView, error) {
	if err := s.allow(ctx, who, "search certificates", Roles...); err != nil {
		return nil, err
	}
	name = strings.TrimSpace(name)
	if strings.TrimSpace(serial) == "" {
		return s.certViews(ctx, store.CertificateFilter{Name: name})
	}
	readings, err := crl.SerialReadings(serial, "auto")
	if err != nil {
		return nil, errorf(Malformed, "%v", err)
	}
	out := []CertView{}
	for _, r := range readings {
		found, err := s.certViews(ctx, store.CertificateFilter{Serial: r.Hex, Name: name})
		if err != nil {
			return nil, err
		}
		out = append(out, found...)
	}
	return out, nil
}

func (s *Service) certViews(ctx context.Context, f store.CertificateFilter) ([]CertView, error) {
	certs, err := s.st.FindCertificates(ctx, f)
	if err != nil {
		return nil, s.internal(ctx, "search certificates", err)
	}
	out := []CertView{}
	for _, c := range certs {
		v := CertView{Serial: c.Serial, Organisation: c.OrgOID, Names: nonNil(c.Names), Profile: c.Profile, Issuer: c.Issuer,
			NotBefore: stamp(c.NotBefore), NotAfter: stamp(c.NotAfter), Account: c.AccountID}
		if n, ok := new(big.Int).SetString(c.Serial, 16); ok {
			v.SerialDecimal = n.String()
		}
		rev, err := s.st.GetRevocation(ctx, c.Serial)
		switch {
		case err == nil:
			v.Revoked, v.RevokeReason = stamp(rev.RevokedAt), crl.ReasonName(rev.Reason)
		case !errors.Is(err, store.ErrNotFound):
			return nil, s.internal(ctx, "read revocations", err)
		}
		out = append(out, v)
	}
	return out, nil
}

// RevokeInput is an operator's revocation of a certificate.
type RevokeInput struct {
	Reason       string `json:"reason"`        // RFC 5280 name, e.g. keyCompromise
	RequestedBy  string `json:"requested_by"`  // who asked for it
	IdentifiedBy string `json:"identified_by"` // how they were identified
	Note         string `json:"note"`
}

// RevokeCertificate revokes a certificate given by its hex serial; a running
// server's CRL publisher and OCSP pick the revocation up within seconds.
func (s *Service) RevokeCertificate(ctx context.Context, who *store.Operator, serial string, in RevokeInput) error {
	if err := s.allow(ctx, who, "revoke certificates", store.RoleAdministrator); err != nil {
		return err
	}
	readings, err := crl.SerialReadings(serial, "hex")
	if err != nil {
		return errorf(Malformed, "%v", err)
	}
	serial = readings[0].Hex
	code, err := crl.ParseReason(in.Reason)
	if err != nil {
		return errorf(Malformed, "reason: %v", err)
	}
	r := store.Revocation{Serial: serial, Reason: code, PerformedBy: who.Name, RevokedAt: s.now()}
	r.RequestedAt = r.RevokedAt
	if r.RequestedBy, err = text("requested_by", in.RequestedBy, true); err != nil {
		return err
	}
	if r.IdentifiedBy, err = text("identified_by", in.IdentifiedBy, true); err != nil {
		return err
	}
	if r.Note, err = text("note", in.Note, false); err != nil {
		return err
	}
	certs, err := s.st.FindCertificates(ctx, store.CertificateFilter{Serial: serial, Limit: 1})
	if err != nil {
		return s.internal(ctx, "find the certificate", err)
	}
	if len(certs) == 0 {
		return errorf(NotFound, "no certificate with serial %s was issued here", serial)
	}
	var block *store.BlockedKey
	if code == crl.KeyCompromise {
		block = &store.BlockedKey{KeyHash: certs[0].KeyHash, Reason: "keyCompromise", Source: "revocation of " + serial, CreatedAt: r.RevokedAt}
	}
	err = s.st.Revoke(ctx, r, block)
	if errors.Is(err, store.ErrDuplicate) {
		return errorf(Conflict, "certificate %s is already revoked; revocation is final", serial)
	}
	if err != nil {
		return s.internal(ctx, "revoke the certificate", err)
	}
	s.audit(ctx, who.Name, AuditRevoke, fmt.Sprintf("serial=%s reason=%s requested_by=%q identified_by=%q performed_by=%q",
		serial, crl.ReasonName(code), r.RequestedBy, r.IdentifiedBy, r.PerformedBy), "ok")
	return nil
}
