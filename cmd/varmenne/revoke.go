package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	"github.com/varmenne/varmenne/acme/authority"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/crl"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/store"
)

// revokeStore is what the revoke command needs of the store.
type revokeStore interface {
	SerialStatus(ctx context.Context, serial string) (*store.SerialStatus, error)
	Revoke(ctx context.Context, r store.Revocation, block *store.BlockedKey) error
	RevokeOrganisation(ctx context.Context, orgOID string, now time.Time, r store.Revocation, blockKeys bool) ([]string, error)
}

// revoke carries out a revocation an operator was asked for (in the e-service, by
// the holder or someone else) and records who asked, how they were identified, who
// carried it out and when. Revocation is final.
func revoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("revoke", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	serialArg := fs.String("serial", "", "the certificate's serial: hex (0x…, with colons, or with a-f) or decimal, as SOTE documents write it")
	base := fs.String("serial-base", "auto", "how to read --serial: auto, hex or decimal")
	org := fs.String("org", "", "revoke every unexpired, unrevoked certificate of this organisation (OID) instead of one serial")
	reasonArg := fs.String("reason", "", "keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn or unspecified (or the RFC 5280 number)")
	requestedBy := fs.String("requested-by", "", "who asked for the revocation (a person and their organisation)")
	identifiedBy := fs.String("identified-by", "", "how that person was identified, e.g. \"strong electronic identification in the e-service\"")
	performedBy := fs.String("performed-by", "", "who carries it out (default: the operating system user running this command)")
	note := fs.String("note", "", "free text kept with the record, e.g. a ticket number")
	requestedAt := fs.String("requested-at", "", "when it was asked for, RFC 3339 (default: now)")
	invalidity := fs.String("invalidity-date", "", "when the key is known or suspected to have been compromised, RFC 3339 (the CRL's invalidityDate)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	now := time.Now().UTC()
	r, blockKeys, err := revocationRecord(now, *reasonArg, *requestedBy, *identifiedBy, *performedBy, *note, *requestedAt, *invalidity)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	switch {
	case (*serialArg == "") == (*org == ""):
		return errors.New("revoke: give either --serial of one certificate or --org to revoke all of an organisation's certificates")
	case *org != "" && !oidPattern.MatchString(*org):
		return fmt.Errorf("revoke: --org %q is not an OID; it looks like 1.2.246.10.12345678.10.0", *org)
	}

	st, err := openExisting(ctx, *db, *data)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	defer st.Close()
	aud := audit.Recorder{Log: audit.New(st, nil), Actor: r.PerformedBy}

	if *org != "" {
		serials, err := st.RevokeOrganisation(ctx, *org, now, r, blockKeys)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("revoke: organisation %s is not known; check the OID", *org)
		}
		if err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		fmt.Fprintf(stdout, "revoked %d certificates of organisation %s (reason %s)\n", len(serials), *org, crl.ReasonName(r.Reason))
		var auditErr error
		for _, s := range serials {
			fmt.Fprintln(stdout, s)
			r.Serial = s
			auditErr = errors.Join(auditErr, auditRevocation(ctx, aud, r))
		}
		return auditErr
	}
	return revokeOne(ctx, st, aud, *serialArg, *base, r, blockKeys, stdout)
}

// auditRevocation writes a carried-out revocation to the audit log.
func auditRevocation(ctx context.Context, aud signer.Auditor, r store.Revocation) error {
	if err := aud.Audit(ctx, authority.AuditRevoke, authority.RevocationAuditObject(r, crl.ReasonName(r.Reason)), audit.OK); err != nil {
		return fmt.Errorf("revoke: certificate %s is revoked, but the audit log could not be written: %w", r.Serial, err)
	}
	return nil
}

func revokeOne(ctx context.Context, st revokeStore, aud signer.Auditor, arg, base string, r store.Revocation, blockKeys bool, stdout io.Writer) error {
	status, err := findSerial(ctx, st, arg, base)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if prev := status.Revocation; prev != nil {
		return fmt.Errorf("revoke: certificate %s is already revoked (%s, reason %s, carried out by %s); revocation is final",
			status.Serial, prev.RevokedAt.Format(time.RFC3339), crl.ReasonName(prev.Reason), prev.PerformedBy)
	}
	r.Serial = status.Serial
	var block *store.BlockedKey
	if blockKeys {
		block = &store.BlockedKey{KeyHash: status.KeyHash, Reason: "keyCompromise", Source: "revocation of " + status.Serial, CreatedAt: r.RevokedAt}
	}
	err = st.Revoke(ctx, r, block)
	if errors.Is(err, store.ErrDuplicate) {
		return fmt.Errorf("revoke: certificate %s was revoked meanwhile; revocation is final", status.Serial)
	}
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	dec, _ := new(big.Int).SetString(status.Serial, 16)
	what := "certificate"
	if !status.Certified {
		what = "issuance (signed perhaps, never stored)"
	}
	fmt.Fprintf(stdout, "revoked %s %s (decimal %s) of organisation %s, issuer %s: reason %s\n",
		what, status.Serial, dec, status.OrgOID, status.Issuer, crl.ReasonName(r.Reason))
	if block != nil {
		fmt.Fprintln(stdout, "its key is blocked: it will never be certified again")
	}
	fmt.Fprintln(stdout, "a running server publishes a new CRL and answers OCSP with it within seconds")
	return auditRevocation(ctx, aud, r)
}

// revocationRecord checks the operator's flags and makes the record.
func revocationRecord(now time.Time, reason, requestedBy, identifiedBy, performedBy, note, requestedAt, invalidity string) (store.Revocation, bool, error) {
	r := store.Revocation{RevokedAt: now, RequestedAt: now, Note: strings.TrimSpace(note),
		RequestedBy: strings.TrimSpace(requestedBy), IdentifiedBy: strings.TrimSpace(identifiedBy)}
	if strings.TrimSpace(reason) == "" {
		return r, false, errors.New("--reason is required: keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn or unspecified")
	}
	code, err := crl.ParseReason(reason)
	if err != nil {
		return r, false, fmt.Errorf("--reason: %w", err)
	}
	r.Reason = code
	switch {
	case r.RequestedBy == "":
		return r, false, errors.New("--requested-by is required: who asked for the revocation")
	case r.IdentifiedBy == "":
		return r, false, errors.New("--identified-by is required: how the person who asked was identified")
	}
	if r.PerformedBy, err = commandUser(performedBy); err != nil { // operators.go
		return r, false, err
	}
	if requestedAt != "" {
		t, err := time.Parse(time.RFC3339, requestedAt)
		if err != nil {
			return r, false, fmt.Errorf("--requested-at %q is not an RFC 3339 time such as 2026-01-31T14:05:00+02:00", requestedAt)
		}
		if t.After(now) {
			return r, false, fmt.Errorf("--requested-at %s is in the future", requestedAt)
		}
		r.RequestedAt = t.UTC()
	}
	if invalidity != "" {
		t, err := time.Parse(time.RFC3339, invalidity)
		if err != nil {
			return r, false, fmt.Errorf("--invalidity-date %q is not an RFC 3339 time such as 2026-01-31T14:05:00+02:00", invalidity)
		}
		if t.After(now) {
			return r, false, fmt.Errorf("--invalidity-date %s is in the future", invalidity)
		}
		r.InvalidityDate = t.UTC()
	}
	return r, code == crl.KeyCompromise, nil
}

// findSerial reads a serial as an operator copies it from a SOTE document and finds
// the certificate. The rule:
//   - a 0x prefix, colons, or any of the letters a-f mean hex (any case; colons and
//     spaces are dropped);
//   - a value of digits only is ambiguous: it is looked up both as hex and as
//     decimal, and must match exactly one certificate; if both match, --serial-base
//     says which was meant.
//
// --serial-base hex or decimal skips the guess.
func findSerial(ctx context.Context, st revokeStore, arg, base string) (*store.SerialStatus, error) {
	if base != "" && base != "auto" && base != "hex" && base != "decimal" {
		return nil, fmt.Errorf("--serial-base %q: use auto, hex or decimal", base)
	}
	readings, err := crl.SerialReadings(arg, base)
	if err != nil {
		return nil, fmt.Errorf("--%w", err)
	}
	var found []*store.SerialStatus
	var tried []string
	for _, r := range readings {
		tried = append(tried, fmt.Sprintf("%s (read as %s)", r.Hex, r.Base))
		st, err := st.SerialStatus(ctx, r.Hex)
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
		return nil, fmt.Errorf("no certificate with serial %s was issued here; check the number and --data/--db", strings.Join(tried, " or "))
	case 1:
		return found[0], nil
	default:
		return nil, fmt.Errorf("serial %q matches two certificates, %s (as hex) and %s (as decimal); say which with --serial-base hex or --serial-base decimal",
			arg, found[0].Serial, found[1].Serial)
	}
}
