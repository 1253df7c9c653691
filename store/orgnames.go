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
		if _, err := s.exec(ctx, tx, `UPDATE organisations SET domains = ?, networks = ? WHERE oid = ?`,
			list(have), prefixList(nets), oid); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, s.fail("add domains and networks to organisation "+oid, err)
	}
	return s.GetOrganisation(ctx, oid)
}

// RemoveOrganisationNames withdraws approved domains and networks from an
// organisation in one transaction and returns it as stored after. A name it does
// not have is ErrConflict and nothing changes; ErrNotFound when the organisation
// is unknown.
func (s *SQL) RemoveOrganisationNames(ctx context.Context, oid string, domains []string, networks []netip.Prefix) (*Organisation, error) {
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
		for _, d := range domains {
			i := slices.Index(have, d)
			if i < 0 {
				return fmt.Errorf("domain %s of organisation %s: %w", d, oid, ErrConflict)
			}
			have = slices.Delete(have, i, i+1)
		}
		for _, n := range networks {
			i := slices.Index(nets, n)
			if i < 0 {
				return fmt.Errorf("network %s of organisation %s: %w", n, oid, ErrConflict)
			}
			nets = slices.Delete(nets, i, i+1)
		}
		_, err = s.exec(ctx, tx, `UPDATE organisations SET domains = ?, networks = ? WHERE oid = ?`, list(have), prefixList(nets), oid)
		return err
	})
	if err != nil {
		return nil, s.fail("remove domains and networks of organisation "+oid, err)
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
