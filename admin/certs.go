package admin

// The certificate use cases: finding, revoking (through the revocation
// component, as every door) and early renewal.

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/revocation"
	"github.com/varmenne/varmenne/store"
)

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
	// The rest of the revocation record: when it was asked for, the invalidity
	// date given, and the door and operator (or acme) that received it.
	RevokeRequestedAt string `json:"revoke_requested_at,omitempty"`
	InvalidityDate    string `json:"invalidity_date,omitempty"`
	RevokeReceivedBy  string `json:"revoke_received_by,omitempty"`
	// Who asked for the revocation and how they were identified.
	RevokeRequestedBy  string `json:"revoke_requested_by,omitempty"`
	RevokeIdentifiedBy string `json:"revoke_identified_by,omitempty"`
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
	readings, err := revocation.SerialReadings(serial, "auto")
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
			v.Revoked, v.RevokeReason = stamp(rev.RevokedAt), revocation.Name(rev.Reason)
			v.RevokeRequestedAt, v.RevokeReceivedBy = stamp(rev.RequestedAt), rev.ReceivedBy
			v.RevokeRequestedBy, v.RevokeIdentifiedBy = rev.RequestedBy, rev.IdentifiedBy
			if !rev.InvalidityDate.IsZero() {
				v.InvalidityDate = stamp(rev.InvalidityDate)
			}
		case !errors.Is(err, store.ErrNotFound):
			return nil, s.internal(ctx, "read revocations", err)
		}
		out = append(out, v)
	}
	return out, nil
}

// RevokeInput is an operator's revocation of a certificate, or of every
// certificate of an organisation.
type RevokeInput struct {
	Reason         string    `json:"reason"`        // RFC 5280 name or number, e.g. keyCompromise
	RequestedBy    string    `json:"requested_by"`  // who asked for it
	IdentifiedBy   string    `json:"identified_by"` // how they were identified
	Note           string    `json:"note"`
	RequestedAt    time.Time `json:"requested_at,omitzero"`    // when they asked (default: now)
	InvalidityDate time.Time `json:"invalidity_date,omitzero"` // when the key is known or suspected to have been compromised
	// Door is the front end that received the request (DoorAPI, DoorConsole,
	// DoorCLI); the front end sets it, never the operator.
	Door string `json:"-"`
}

// The doors an operator's revocation comes through, as its record names them.
const (
	DoorAPI     = "admin API"
	DoorConsole = "console"
	DoorCLI     = "command line"
)

// revocationRequest checks in and makes the revocation component's request.
func (s *Service) revocationRequest(who *store.Operator, in RevokeInput) (revocation.Request, error) {
	req := revocation.Request{Caller: revocation.Caller{Operator: who.Name}, RequestedAt: in.RequestedAt, InvalidityDate: in.InvalidityDate,
		Door: in.Door}
	var err error
	if req.Reason, err = revocation.Parse(in.Reason); err != nil {
		return req, errorf(Malformed, "reason: %v", err)
	}
	if req.RequestedBy, err = text("requested_by", in.RequestedBy, true); err != nil {
		return req, err
	}
	if req.IdentifiedBy, err = text("identified_by", in.IdentifiedBy, true); err != nil {
		return req, err
	}
	if req.Note, err = text("note", in.Note, false); err != nil {
		return req, err
	}
	return req, nil
}

// revocationRefusal turns the revocation component's refusal into the service's.
func (s *Service) revocationRefusal(ctx context.Context, err error) error {
	var refusal *revocation.Error
	if !errors.As(err, &refusal) {
		return s.internal(ctx, "revoke", err)
	}
	kind := map[revocation.Kind]Kind{revocation.NotFound: NotFound, revocation.AlreadyRevoked: Conflict,
		revocation.Unauthorized: Forbidden, revocation.BadReason: Malformed, revocation.Malformed: Malformed}[refusal.Kind]
	return errorf(kind, "%s", refusal.Detail)
}

// RevokeCertificate revokes a certificate (or a pending issuance) given by its
// serial; a running server's CRL publisher and OCSP pick the revocation up within
// seconds. Administrators only.
func (s *Service) RevokeCertificate(ctx context.Context, who *store.Operator, serial string, in RevokeInput) (*store.Revocation, error) {
	if err := s.allow(ctx, who, "revoke certificates", store.RoleAdministrator); err != nil {
		return nil, err
	}
	req, err := s.revocationRequest(who, in)
	if err != nil {
		return nil, err
	}
	readings, err := revocation.SerialReadings(serial, "hex")
	if err != nil {
		return nil, errorf(Malformed, "%v", err)
	}
	req.Serial = readings[0].Hex
	r, err := s.rev.Revoke(ctx, req)
	if err != nil {
		return nil, s.revocationRefusal(ctx, err)
	}
	return r, nil
}

// RevokeOrganisation revokes every unexpired, unrevoked certificate of an
// organisation (and its pending issuances), in one transaction. Administrators
// only. It returns the serials revoked.
func (s *Service) RevokeOrganisation(ctx context.Context, who *store.Operator, oid string, in RevokeInput) ([]string, error) {
	if err := s.allow(ctx, who, "revoke certificates", store.RoleAdministrator); err != nil {
		return nil, err
	}
	if err := checkOID(oid); err != nil {
		return nil, err
	}
	req, err := s.revocationRequest(who, in)
	if err != nil {
		return nil, err
	}
	serials, err := s.rev.RevokeOrganisation(ctx, oid, req)
	if err != nil {
		return nil, s.revocationRefusal(ctx, err)
	}
	return serials, nil
}

// FindSerial reads a serial as an operator copies it from a SOTE document (hex
// with 0x, colons or a-f; digits only read both ways; base "hex" or "decimal"
// skips the guess) and finds the one certificate or issuance it names.
func (s *Service) FindSerial(ctx context.Context, who *store.Operator, serial, base string) (*store.SerialStatus, error) {
	if err := s.allow(ctx, who, "search certificates", Roles...); err != nil {
		return nil, err
	}
	return findSerial(serial, base, func(hex string) (*store.SerialStatus, error) {
		st, err := s.st.SerialStatus(ctx, hex)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, s.internal(ctx, "look the serial up", err)
		}
		return st, err
	})
}

// findSerial is FindSerial's rule over lookup, which answers store.ErrNotFound
// for a serial never issued.
func findSerial(serial, base string, lookup func(hex string) (*store.SerialStatus, error)) (*store.SerialStatus, error) {
	if base != "" && base != "auto" && base != "hex" && base != "decimal" {
		return nil, errorf(Malformed, "serial base %q: use auto, hex or decimal (--serial-base)", base)
	}
	readings, err := revocation.SerialReadings(serial, base)
	if err != nil {
		return nil, errorf(Malformed, "%v", err)
	}
	var found []*store.SerialStatus
	var tried []string
	for _, r := range readings {
		tried = append(tried, fmt.Sprintf("%s (read as %s)", r.Hex, r.Base))
		st, err := lookup(r.Hex)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		found = append(found, st)
	}
	switch len(found) {
	case 0:
		return nil, errorf(NotFound, "no certificate with serial %s was issued here; check the number and --data/--db", strings.Join(tried, " or "))
	case 1:
		return found[0], nil
	}
	return nil, errorf(Conflict, "serial %q matches two certificates, %s (as hex) and %s (as decimal); say which with --serial-base hex or --serial-base decimal",
		serial, found[0].Serial, found[1].Serial)
}

// RenewEarlyWindow is how long before the operator's act the moved window opens;
// it closes then, so every ARI client finds it in the past.
const RenewEarlyWindow = time.Hour

// RenewEarlyInput selects certificates whose ARI renewal window (RFC 9773) moves
// into the past: exactly one of a serial, an organisation or an issuer.
type RenewEarlyInput struct {
	Serial string `json:"serial"` // lower-case hex, as FindSerial gives it
	Org    string `json:"organisation"`
	Issuer string `json:"issuer"`
	Reason string `json:"reason"`
}

// RenewEarly moves the renewal window of the selected unexpired, unrevoked
// certificates into the past, so that every ARI-capable client renews at its next
// check; administrators only. It returns the window and the serials moved.
func (s *Service) RenewEarly(ctx context.Context, who *store.Operator, in RenewEarlyInput) (store.RenewalWindow, []string, error) {
	var w store.RenewalWindow
	if err := s.allow(ctx, who, "move renewal windows", store.RoleAdministrator); err != nil {
		return w, nil, err
	}
	reason, err := text("reason", in.Reason, true)
	if err != nil {
		return w, nil, err
	}
	sel := store.RenewalSelector{Serial: in.Serial, OrgOID: strings.TrimSpace(in.Org), Issuer: strings.TrimSpace(in.Issuer)}
	if n := len(slices.DeleteFunc([]string{sel.Serial, sel.OrgOID, sel.Issuer}, func(v string) bool { return v == "" })); n != 1 {
		return w, nil, errorf(Malformed, "give exactly one of a serial, an organisation or an issuer")
	}
	if sel.OrgOID != "" {
		if err := checkOID(sel.OrgOID); err != nil {
			return w, nil, err
		}
	}
	what := "issuer " + sel.Issuer
	switch {
	case sel.Serial != "":
		what = "certificate " + sel.Serial
	case sel.OrgOID != "":
		what = "organisation " + sel.OrgOID
	}
	now := s.now()
	w = store.RenewalWindow{Start: now.Add(-RenewEarlyWindow), End: now, Reason: reason, SetBy: who.Name, SetAt: now}
	var serials []string
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		var err error
		if serials, err = tx.MoveRenewalWindows(sel, w, now); err != nil {
			return nil, err
		}
		var records []audit.Record
		for _, serial := range serials {
			records = append(records, audit.Done(who.Name, audit.RenewedEarly{Serial: serial, Reason: reason,
				Window: w.Start.Format(time.RFC3339) + "/" + w.End.Format(time.RFC3339)}))
		}
		if len(records) == 0 {
			return nil, errNothing
		}
		return records, nil
	})
	switch {
	case errors.Is(err, errNothing):
		if sel.Issuer != "" {
			return w, nil, errorf(NotFound, "issuer %q has no unexpired, unrevoked certificate; check the name (production or test)", sel.Issuer)
		}
		return w, nil, errorf(Conflict, "%s has no unexpired, unrevoked certificate to renew", what)
	case errors.Is(err, store.ErrNotFound):
		return w, nil, errorf(NotFound, "%s is not known; check it", what)
	case err != nil:
		return w, nil, s.internal(ctx, "move the renewal windows", err)
	}
	return w, serials, nil
}
