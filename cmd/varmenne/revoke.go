package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/internal/progress"
	"github.com/varmenne/varmenne/revocation"
	"github.com/varmenne/varmenne/store"
)

// revoke carries out a revocation an operator was asked for (in the e-service, by
// the holder or someone else) through the operator service, which records who
// asked, how they were identified, who carried it out and when. Revocation is
// final.
func revoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("revoke", stderr)
	op := addOperatorFlags(fs)
	serialArg := fs.String("serial", "", "the certificate's serial: hex (0x…, with colons, or with a-f) or decimal, as SOTE documents write it")
	base := fs.String("serial-base", "auto", "how to read --serial: auto, hex or decimal")
	org := fs.String("org", "", "revoke every unexpired, unrevoked certificate of this organisation (OID) instead of one serial")
	reason := fs.String("reason", "", "keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn or unspecified (or the RFC 5280 number)")
	requestedBy := fs.String("requested-by", "", "who asked for the revocation (a person and their organisation)")
	identifiedBy := fs.String("identified-by", "", "how that person was identified, e.g. \"strong electronic identification in the e-service\"")
	note := fs.String("note", "", "free text kept with the record, e.g. a ticket number")
	requestedAt := fs.String("requested-at", "", "when it was asked for, RFC 3339 (default: now)")
	invalidity := fs.String("invalidity-date", "", "when the key is known or suspected to have been compromised, RFC 3339 (the CRL's invalidityDate)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	in, err := revokeInput(*reason, *requestedBy, *identifiedBy, *note, *requestedAt, *invalidity)
	if err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	if (*serialArg == "") == (*org == "") {
		return errors.New("revoke: give either --serial of one certificate or --org to revoke all of an organisation's certificates")
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	name := revocation.Name(in.reasonCode)
	if *org != "" {
		// A progress line on a terminal, else one summary line, on stderr.
		meter := progress.New(stderr, "revoking certificates")
		serials, err := s.svc.RevokeOrganisation(store.WithProgress(ctx, meter), s.who, *org, in.RevokeInput)
		if err != nil {
			meter.Abandon()
			return s.fail(err)
		}
		meter.Finish()
		fmt.Fprintf(stdout, "revoked %d certificates of organisation %s (reason %s)\n", len(serials), *org, name)
		for _, serial := range serials {
			fmt.Fprintln(stdout, serial)
		}
		return nil
	}
	status, err := s.svc.FindSerial(ctx, s.who, *serialArg, *base)
	if err != nil {
		return s.fail(err)
	}
	if _, err := s.svc.RevokeCertificate(ctx, s.who, status.Serial, in.RevokeInput); err != nil {
		return s.fail(err)
	}
	dec, _ := new(big.Int).SetString(status.Serial, 16)
	what := "certificate"
	if !status.Certified {
		what = "issuance (signed perhaps, never stored)"
	}
	fmt.Fprintf(stdout, "revoked %s %s (decimal %s) of organisation %s, issuer %s: reason %s\n",
		what, status.Serial, dec, status.OrgOID, status.Issuer, name)
	if in.reasonCode == revocation.KeyCompromise.Code {
		fmt.Fprintln(stdout, "its key is blocked: it will never be certified again")
	}
	fmt.Fprintln(stdout, "a running server publishes a new CRL and answers OCSP with it within seconds")
	return nil
}

// revokeFlags is the operator's revocation as the flags give it.
type revokeFlags struct {
	admin.RevokeInput
	reasonCode int
}

// revokeInput checks the operator's flags the command can check alone, so a
// mistake is told before the database is opened; the service checks the rest.
func revokeInput(reason, requestedBy, identifiedBy, note, requestedAt, invalidity string) (revokeFlags, error) {
	in := revokeFlags{RevokeInput: admin.RevokeInput{Reason: reason, RequestedBy: requestedBy, IdentifiedBy: identifiedBy, Note: note,
		Door: admin.DoorCLI}}
	if strings.TrimSpace(reason) == "" {
		return in, errors.New("--reason is required: keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn or unspecified")
	}
	r, err := revocation.Parse(reason)
	if err != nil {
		return in, fmt.Errorf("--reason: %w", err)
	}
	in.reasonCode = r.Code
	switch {
	case strings.TrimSpace(requestedBy) == "":
		return in, errors.New("--requested-by is required: who asked for the revocation")
	case strings.TrimSpace(identifiedBy) == "":
		return in, errors.New("--identified-by is required: how the person who asked was identified")
	}
	now := time.Now()
	for _, t := range []struct {
		flag, value string
		into        *time.Time
	}{{"--requested-at", requestedAt, &in.RequestedAt}, {"--invalidity-date", invalidity, &in.InvalidityDate}} {
		if t.value == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.value)
		if err != nil {
			return in, fmt.Errorf("%s %q is not an RFC 3339 time such as 2026-01-31T14:05:00+02:00", t.flag, t.value)
		}
		if v.After(now) {
			return in, fmt.Errorf("%s %s is in the future", t.flag, t.value)
		}
		*t.into = v.UTC()
	}
	return in, nil
}
