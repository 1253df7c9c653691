package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/store"
)

// orgDomains is "varmenne org domains add|remove OID --domain D… --network CIDR…":
// it approves more domains and networks for an organisation (for instance one that
// "org import" brought in from the register, which carries none), or withdraws
// them.
func orgDomains(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) error {
	cmd := "org domains " + verb
	fs := newFlags(cmd, stderr)
	op := addOperatorFlags(fs)
	var domainFlags, networkFlags stringList
	fs.Var(&domainFlags, "domain", "a domain the organisation administers (repeatable)")
	fs.Var(&networkFlags, "network", "a network (CIDR, e.g. 192.0.2.0/24) whose addresses may be certified beside a DNS name (repeatable)")
	shared := fs.Bool("shared", false, "add: approve names another organisation has too (administrators only; recorded)")
	oid, err := onePositional(fs, args, "the organisation's OID, e.g. \"varmenne "+cmd+" 1.2.246.10.12345678.10.0 --domain apteekki.example\"")
	if err != nil {
		return err
	}
	if len(domainFlags) == 0 && len(networkFlags) == 0 {
		return fmt.Errorf("%s: give at least one --domain or --network", cmd)
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	in := admin.NamesInput{Domains: domainFlags, Networks: networkFlags, Shared: *shared}
	var o *store.Organisation
	if verb == "remove" {
		o, err = s.svc.RemoveNames(ctx, s.who, oid, in)
	} else {
		o, err = s.svc.AddNames(ctx, s.who, oid, in)
	}
	if err != nil {
		return s.fail(err)
	}
	fmt.Fprintf(stdout, "organisation %s (%s): domains %s; networks %s\n", o.OID, o.Name,
		nameOr(strings.Join(o.Domains, ", "), "none"), nameOr(networkText(o.Networks), "none"))
	return nil
}

// openOrganisation opens the existing database and finds the organisation oid for
// the command cmd (a read-only command); the caller closes the store.
func openOrganisation(ctx context.Context, db *dbFlags, data, cmd, oid string) (*store.SQL, *store.Organisation, error) {
	st, err := db.open(ctx, data, existing)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cmd, err)
	}
	o, err := st.GetOrganisation(ctx, oid)
	if errors.Is(err, store.ErrNotFound) {
		st.Close()
		return nil, nil, fmt.Errorf("%s: organisation %s is unknown; add it with \"varmenne org add --oid %s …\" or \"varmenne org import\"", cmd, oid, oid)
	}
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return st, o, nil
}

func networkText(nets []netip.Prefix) string {
	var ss []string
	for _, n := range nets {
		ss = append(ss, n.String())
	}
	return strings.Join(ss, ", ")
}
