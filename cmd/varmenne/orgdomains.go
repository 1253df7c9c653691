package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy/names"
	"github.com/varmenne/varmenne/store"
)

// orgDomainsAdd is "varmenne org domains add OID --domain D… --network CIDR…": it
// approves more domains and networks for an organisation, for instance one that
// "org import" brought in from the register, which carries no domains.
func orgDomainsAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const cmd = "org domains add"
	fs := newFlags(cmd, stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	var domainFlags, networkFlags stringList
	fs.Var(&domainFlags, "domain", "a domain the organisation administers (repeatable)")
	fs.Var(&networkFlags, "network", "a network (CIDR, e.g. 192.0.2.0/24) whose addresses may be certified beside a DNS name (repeatable)")
	oid, err := onePositional(fs, args, "the organisation's OID, e.g. \"varmenne org domains add 1.2.246.10.12345678.10.0 --domain apteekki.example\"")
	if err != nil {
		return err
	}
	if len(domainFlags) == 0 && len(networkFlags) == 0 {
		return errors.New("org domains add: give at least one --domain or --network to add")
	}
	domains, err := parseDomains(cmd, domainFlags)
	if err != nil {
		return err
	}
	networks, err := parseNetworks(cmd, networkFlags)
	if err != nil {
		return err
	}
	st, _, err := openOrganisation(ctx, *db, *data, cmd, oid)
	if err != nil {
		return err
	}
	defer st.Close()
	o, err := st.AddOrganisationNames(ctx, oid, domains, networks)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	fmt.Fprintf(stdout, "organisation %s (%s): domains %s; networks %s\n", o.OID, o.Name,
		nameOr(strings.Join(o.Domains, ", "), "none"), nameOr(networkText(o.Networks), "none"))
	return nil
}

// openOrganisation opens the existing database and finds the organisation oid for
// the command cmd; the caller closes the store.
func openOrganisation(ctx context.Context, db, data, cmd, oid string) (*store.SQL, *store.Organisation, error) {
	st, err := openExisting(ctx, db, data)
	if err != nil {
		return nil, nil, err
	}
	o, err := findOrganisation(ctx, st, cmd, oid)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, o, nil
}

// parseDomains checks and normalizes --domain values: domain names, no wildcards.
func parseDomains(cmd string, in []string) ([]string, error) {
	var out []string
	for _, d := range in {
		n := names.Normalize(d)
		if err := names.Check(n); err != nil || strings.HasPrefix(n, "*.") {
			return nil, fmt.Errorf("%s: --domain %q is not a valid domain name", cmd, d)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseNetworks checks --network values: CIDR prefixes or single addresses.
func parseNetworks(cmd string, in []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range in {
		p, err := names.ParseNetwork(s)
		if err != nil {
			return nil, fmt.Errorf("%s: --network %q: %s", cmd, s, problemDetail(err))
		}
		out = append(out, p)
	}
	return out, nil
}

// problemDetail is the detail of an ACME problem a shared check returned, for a CLI line.
func problemDetail(err error) string {
	if ae, ok := acme.AsError(err); ok {
		return ae.Detail
	}
	return err.Error()
}

func networkText(nets []netip.Prefix) string {
	var ss []string
	for _, n := range nets {
		ss = append(ss, n.String())
	}
	return strings.Join(ss, ", ")
}

// withinNetworks refuses EAB key networks outside the organisation's: a key narrows
// what the organisation is approved for and never widens it.
func withinNetworks(cmd string, keyNets []netip.Prefix, o *store.Organisation) error {
	for _, k := range keyNets {
		inside := false
		for _, n := range o.Networks {
			inside = inside || n.Bits() <= k.Bits() && n.Contains(k.Addr())
		}
		if !inside {
			return fmt.Errorf("%s: --network %s is not inside organisation %s's networks (%s); add it with \"varmenne org domains add %s --network …\" first",
				cmd, k, o.OID, nameOr(networkText(o.Networks), "none"), o.OID)
		}
	}
	return nil
}
