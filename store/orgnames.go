package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// AddOrganisationNames adds approved domains and networks to an organisation, in one
// transaction, and returns the organisation as stored after it. Domains and networks
// it already has are kept once; the caller normalizes and checks them. ErrNotFound
// when the organisation is unknown.
func (s *SQL) AddOrganisationNames(ctx context.Context, oid string, domains []string, networks []netip.Prefix) (*Organisation, error) {
	return s.changeNames(ctx, oid, "add domains and networks to organisation "+oid, func(have []string, nets []netip.Prefix) ([]string, []netip.Prefix, error) {
		for _, d := range domains {
			if !slices.Contains(have, d) {
				have = append(have, d)
			}
		}
		for _, n := range networks {
			if !slices.Contains(nets, n) {
				nets = append(nets, n)
			}
		}
		return have, nets, nil
	})
}

// RemoveOrganisationNames withdraws approved domains and networks from an
// organisation in one transaction and returns it as stored after. A name it does
// not have is ErrConflict and nothing changes; ErrNotFound when the organisation
// is unknown.
func (s *SQL) RemoveOrganisationNames(ctx context.Context, oid string, domains []string, networks []netip.Prefix) (*Organisation, error) {
	return s.changeNames(ctx, oid, "remove domains and networks of organisation "+oid, func(have []string, nets []netip.Prefix) ([]string, []netip.Prefix, error) {
		for _, d := range domains {
			i := slices.Index(have, d)
			if i < 0 {
				return nil, nil, fmt.Errorf("domain %s of organisation %s: %w", d, oid, ErrConflict)
			}
			have = slices.Delete(have, i, i+1)
		}
		for _, n := range networks {
			i := slices.Index(nets, n)
			if i < 0 {
				return nil, nil, fmt.Errorf("network %s of organisation %s: %w", n, oid, ErrConflict)
			}
			nets = slices.Delete(nets, i, i+1)
		}
		return have, nets, nil
	})
}

// changeNames reads an organisation's domains and networks, lets change make the
// new lists, and writes them, in one transaction; it returns the organisation
// as stored after. op names the change in errors.
func (s *SQL) changeNames(ctx context.Context, oid, op string, change func([]string, []netip.Prefix) ([]string, []netip.Prefix, error)) (*Organisation, error) {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var rawDomains, rawNetworks string
		err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT domains, networks FROM organisations WHERE oid = ?`), oid).
			Scan(&rawDomains, &rawNetworks)
		if err != nil {
			return err
		}
		have, err := fromList(rawDomains)
		if err != nil {
			return err
		}
		nets, err := fromPrefixList(rawNetworks)
		if err != nil {
			return err
		}
		if have, nets, err = change(have, nets); err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, `UPDATE organisations SET domains = ?, networks = ? WHERE oid = ?`, list(have), prefixList(nets), oid)
		return err
	})
	if err != nil {
		return nil, s.fail(op, err)
	}
	return s.GetOrganisation(ctx, oid)
}

// prefixList stores networks as a JSON array of CIDR strings.
func prefixList(v []netip.Prefix) string {
	ss := make([]string, len(v))
	for i, p := range v {
		ss[i] = p.String()
	}
	return list(ss)
}

func fromPrefixList(s string) ([]netip.Prefix, error) {
	ss, err := fromList(s)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, p := range ss {
		n, err := netip.ParsePrefix(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("store: bad network %q: %w", p, err)
		}
		out = append(out, n)
	}
	return out, nil
}
