package revocation

import (
	"net/netip"
	"strings"

	"github.com/varmenne/varmenne/policy/names"
	"github.com/varmenne/varmenne/store"
)

// AccountMay is the one rule of what an ACME account may do to a certificate it did
// not necessarily order: revoke it (revokeCert with kid) and download it. It returns
// nil when the account may, otherwise an *Error of kind Unauthorized saying why.
//
//   - The account that ordered the certificate may, always.
//   - Another account of the same organisation may when every name on the
//     certificate (DNS names and IP addresses) lies inside what its own EAB key lets
//     it order: the key's domains and networks, narrowed within the organisation's
//     (names.NarrowDomains, names.NarrowNetworks), exactly as newOrder judges them.
//   - An account whose EAB key names no domains and no networks is not narrowed: it
//     acts for the whole organisation, so it may revoke and download every
//     certificate of the organisation.
//   - An account of another organisation may not.
//
// org is the account's organisation and ek the EAB key that bound the account; when
// either is unknown (nil) the account may act on its own certificates only. The
// holder of a certificate's key (JWS jwk) and an operator have rights of their own
// (Caller.Key, Caller.Operator), not judged here.
func AccountMay(acct *store.Account, org *store.Organisation, ek *store.EABKey, c *store.Certificate) error {
	switch {
	case acct == nil || c == nil:
		return refuse(Unauthorized, "no account or no certificate to judge")
	case c.AccountID == acct.ID:
		return nil
	case c.OrgOID != acct.OrgOID:
		return refuse(Unauthorized, "account %s may not act on certificate %s: it belongs to another organisation", acct.ID, c.Serial)
	case org == nil || ek == nil || org.OID != acct.OrgOID || ek.KID != acct.EABKID:
		return refuse(Unauthorized, "account %s may act only on its own certificates: its EAB key cannot be read, so what it covers is unknown", acct.ID)
	case len(ek.Domains) == 0 && len(ek.Networks) == 0:
		return nil // an unnarrowed key: the whole organisation
	}
	domains := names.NarrowDomains(org.Domains, ek.Domains)
	networks := names.NarrowNetworks(org.Networks, ek.Networks)
	var outside []string
	for _, n := range c.Names {
		if ip, err := netip.ParseAddr(n); err == nil {
			if !names.InNetworks(ip, networks) {
				outside = append(outside, n)
			}
			continue
		}
		if !names.Within(n, domains) {
			outside = append(outside, n)
		}
	}
	switch {
	case len(c.Names) == 0:
		outside = []string{"(no name recorded)"}
	case len(outside) == 0:
		return nil
	}
	return refuse(Unauthorized, "account %s may not act on certificate %s of another account: its EAB key %s is limited to %s, and %s on the certificate lies outside; "+
		"the account that ordered it, an account whose EAB key covers every name on it, or one whose key is not limited may",
		acct.ID, c.Serial, ek.KID, narrowing(ek), strings.Join(outside, ", "))
}

// narrowing describes an EAB key's domains and networks for a person.
func narrowing(ek *store.EABKey) string {
	parts := append([]string{}, ek.Domains...)
	for _, p := range ek.Networks {
		parts = append(parts, p.String())
	}
	return strings.Join(parts, ", ")
}
