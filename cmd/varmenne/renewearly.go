package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/varmenne/varmenne/acme/authority"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// AuditRenewEarly is the audit action of a renewal window an operator moved.
const AuditRenewEarly = "certificate.renew-early"

// renewEarlyWindow is how long before the command the moved window opens; it closes
// at the command's time, so every ARI client finds it in the past.
const renewEarlyWindow = time.Hour

// renewEarly moves the ARI renewal window (RFC 9773) of a set of certificates into
// the past, so that every ARI-capable client renews at its next check: after a key
// compromise at an organisation, a mis-issuance, or an issuer to be retired.
func renewEarly(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("renew-early", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	serialArg := fs.String("serial", "", "one certificate's serial: hex (0x…, with colons, or with a-f) or decimal")
	base := fs.String("serial-base", "auto", "how to read --serial: auto, hex or decimal")
	org := fs.String("org", "", "every unexpired, unrevoked certificate of this organisation (OID)")
	issuer := fs.String("issuer", "", "every unexpired, unrevoked certificate of this issuer, by its name in configuration (production, test)")
	reason := fs.String("reason", "", "why the certificates must be renewed early; kept in the audit log")
	performedBy := fs.String("performed-by", "", "who moves the window (default: the operating system user running this command)")
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
	case *org != "" && !oidPattern.MatchString(*org):
		return fmt.Errorf("renew-early: --org %q is not an OID; it looks like 1.2.246.10.12345678.10.0", *org)
	case strings.TrimSpace(*reason) == "":
		return errors.New(`renew-early: --reason is required, e.g. --reason "key compromise reported in ticket 1234"`)
	}
	actor := strings.TrimSpace(*performedBy)
	if actor == "" {
		if u, err := user.Current(); err == nil && u.Username != "" {
			actor = u.Username
		} else if actor = os.Getenv("USER"); actor == "" {
			return errors.New("renew-early: cannot tell who runs this command; give --performed-by NAME")
		}
	}

	st, err := openExisting(ctx, *db, *data)
	if err != nil {
		return fmt.Errorf("renew-early: %w", err)
	}
	defer st.Close()

	now := time.Now().UTC()
	sel := store.RenewalSelector{OrgOID: *org, Issuer: strings.TrimSpace(*issuer)}
	what := ""
	switch {
	case *serialArg != "":
		status, err := findSerial(ctx, st, *serialArg, *base) // revoke.go
		if err != nil {
			return fmt.Errorf("renew-early: %w", err)
		}
		switch {
		case !status.Certified:
			return fmt.Errorf("renew-early: serial %s has an issuance intent but no stored certificate; there is nothing to renew (see varmenne intents list)", status.Serial)
		case status.Revocation != nil:
			return fmt.Errorf("renew-early: certificate %s is revoked; ARI already tells its client to renew", status.Serial)
		case !status.NotAfter.After(now):
			return fmt.Errorf("renew-early: certificate %s expired at %s; there is nothing to renew", status.Serial, status.NotAfter.Format(time.RFC3339))
		}
		sel.Serial, what = status.Serial, "certificate "+status.Serial
	case *org != "":
		what = "organisation " + *org
	default:
		what = "issuer " + sel.Issuer
	}
	w := store.RenewalWindow{Start: now.Add(-renewEarlyWindow), End: now, Reason: strings.TrimSpace(*reason), SetBy: actor, SetAt: now}
	serials, err := st.MoveRenewalWindows(ctx, sel, w, now)
	switch {
	case errors.Is(err, store.ErrNotFound) && *org != "":
		return fmt.Errorf("renew-early: organisation %s is not known; check the OID", *org)
	case err != nil:
		return fmt.Errorf("renew-early: %w", err)
	case len(serials) == 0 && sel.Issuer != "":
		return fmt.Errorf("renew-early: issuer %q has no unexpired, unrevoked certificate; check the name (production or test)", sel.Issuer)
	}
	if sel.Serial != "" && len(serials) == 1 {
		fmt.Fprintf(stdout, "moved the renewal window of %s into the past (%s to %s)\n", what, w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339))
	} else {
		fmt.Fprintf(stdout, "moved the renewal window of %d certificates of %s into the past (%s to %s)\n",
			len(serials), what, w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339))
	}
	aud := audit.Recorder{Log: audit.New(st, nil), Actor: actor}
	var auditErr error
	for _, s := range serials {
		fmt.Fprintln(stdout, s)
		object := fmt.Sprintf("serial=%s window=%s/%s reason=%q selected_by=%q", s, w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339), w.Reason, what)
		if err := aud.Audit(ctx, AuditRenewEarly, object, audit.OK); err != nil {
			auditErr = errors.Join(auditErr, fmt.Errorf("renew-early: the window of %s is moved, but the audit log could not be written: %w", s, err))
		}
	}
	if auditErr != nil {
		return auditErr
	}
	if len(serials) > 0 {
		fmt.Fprintf(stdout, "ARI clients renew at their next check (they ask again at most %s after their last look)\n", authority.RenewalInfoRetryAfter)
	}
	return nil
}
