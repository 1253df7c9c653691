package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/varmenne/varmenne/acme/authority"
	"github.com/varmenne/varmenne/admin"
)

// renewEarly moves the ARI renewal window (RFC 9773) of a set of certificates into
// the past, through the operator service, so that every ARI-capable client renews
// at its next check: after a key compromise at an organisation, a mis-issuance, or
// an issuer to be retired.
func renewEarly(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("renew-early", stderr)
	op := addOperatorFlags(fs)
	serialArg := fs.String("serial", "", "one certificate's serial: hex (0x…, with colons, or with a-f) or decimal")
	base := fs.String("serial-base", "auto", "how to read --serial: auto, hex or decimal")
	org := fs.String("org", "", "every unexpired, unrevoked certificate of this organisation (OID)")
	issuer := fs.String("issuer", "", "every unexpired, unrevoked certificate of this issuer, by its name in configuration (production, test)")
	reason := fs.String("reason", "", "why the certificates must be renewed early; kept in the audit log")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	given := 0
	for _, v := range []string{*serialArg, *org, *issuer} {
		if strings.TrimSpace(v) != "" {
			given++
		}
	}
	switch {
	case given != 1:
		return errors.New("renew-early: give exactly one of --serial S, --org OID or --issuer NAME")
	case strings.TrimSpace(*reason) == "":
		return errors.New(`renew-early: --reason is required, e.g. --reason "key compromise reported in ticket 1234"`)
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	in := admin.RenewEarlyInput{Org: *org, Issuer: *issuer, Reason: *reason}
	what := "organisation " + *org
	if *issuer != "" {
		what = "issuer " + strings.TrimSpace(*issuer)
	}
	if *serialArg != "" {
		status, err := s.svc.FindSerial(ctx, s.who, *serialArg, *base)
		if err != nil {
			return s.fail(err)
		}
		switch {
		case !status.Certified:
			return fmt.Errorf("renew-early: serial %s has an issuance intent but no stored certificate; there is nothing to renew (see varmenne intents list)", status.Serial)
		case status.Revocation != nil:
			return fmt.Errorf("renew-early: certificate %s is revoked; ARI already tells its client to renew", status.Serial)
		case !status.NotAfter.After(time.Now()):
			return fmt.Errorf("renew-early: certificate %s expired at %s; there is nothing to renew", status.Serial, status.NotAfter.Format(time.RFC3339))
		}
		in.Serial, what = status.Serial, "certificate "+status.Serial
	}
	w, serials, err := s.svc.RenewEarly(ctx, s.who, in)
	if err != nil {
		return s.fail(err)
	}
	if in.Serial != "" && len(serials) == 1 {
		fmt.Fprintf(stdout, "moved the renewal window of %s into the past (%s to %s)\n", what, w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339))
	} else {
		fmt.Fprintf(stdout, "moved the renewal window of %d certificates of %s into the past (%s to %s)\n",
			len(serials), what, w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339))
	}
	for _, serial := range serials {
		fmt.Fprintln(stdout, serial)
	}
	fmt.Fprintf(stdout, "ARI clients renew at their next check (they ask again at most %s after their last look)\n", authority.RenewalInfoRetryAfter)
	return nil
}
