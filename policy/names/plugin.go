package names

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy"
)

// PluginName is the name profiles list this plugin by.
const PluginName = "names"

// MaxCNLength is the RFC 5280 upper bound of a commonName: the first name of an order
// becomes the certificate's CN.
const MaxCNLength = 64

func init() { policy.Register(PluginName, NewPlugin) }

// Config is the plugin's configuration.
type Config struct {
	// Deny are domains never certified, even inside an organisation's approved
	// domains: the names themselves and everything below them (and a wildcard that
	// would cover one of them).
	Deny []string `json:"deny"`
}

// Plugin checks identifiers at newOrder: type, syntax, wildcards as the profile
// allows, inside the account's domains, outside the deny list, a first name that fits
// the CN. That the CSR asks for exactly the order's names is RFC 8555's rule, not a
// profile's: acme/authority checks it at every finalize (CheckCSRNames).
type Plugin struct {
	cons           Constraints
	allowWildcards bool
}

// NewPlugin is the plugin's policy.Factory.
func NewPlugin(config json.RawMessage, env policy.Env) (policy.Plugin, error) {
	var c Config
	if err := policy.DecodeConfig(config, &c); err != nil {
		return nil, err
	}
	for i, d := range c.Deny {
		d = strings.TrimSuffix(Normalize(d), ".")
		if err := Check(d); err != nil || strings.HasPrefix(d, "*.") {
			return nil, fmt.Errorf("deny %q is not a domain name such as intra.example.fi", c.Deny[i])
		}
		c.Deny[i] = d
	}
	return &Plugin{cons: Constraints{Excluded: c.Deny}, allowWildcards: env.Profile.AllowWildcards}, nil
}

// Name is PluginName.
func (p *Plugin) Name() string { return PluginName }

// CheckOrder refuses the order as a whole when any identifier is bad, with one
// subproblem per bad identifier.
func (p *Plugin) CheckOrder(ctx context.Context, r *policy.Request) error {
	if len(r.Identifiers) == 0 {
		return acme.Errorf(acme.Malformed, "the order has no identifiers")
	}
	org := "this account"
	if r.Org != nil {
		org = "organisation " + r.Org.OID
	}
	if err := needsDNSName(r.Identifiers); err != nil {
		return err
	}
	cons := Constraints{Permitted: r.AllowedDomains, Excluded: p.cons.Excluded}
	var refused policy.Refusals
	first := true
	for _, id := range r.Identifiers {
		switch id.Type {
		case acme.IdentifierDNS:
		case acme.IdentifierIP:
			checkIPIdentifier(&refused, id, r.AllowedNetworks, org)
			continue
		default:
			refused.Add(id, acme.UnsupportedIdentifier, "identifier type \""+id.Type+"\" is not supported; use \"dns\" (or \"ip\" beside a DNS name)")
			continue
		}
		name := Normalize(id.Value)
		if err := Check(name); err != nil {
			ae, ok := acme.AsError(err)
			if !ok {
				ae = acme.Errorf(acme.Malformed, "%s is not a valid DNS name", show(name))
			}
			refused.Add(id, ae.Kind, ae.Detail)
			continue
		}
		if strings.HasPrefix(name, "*.") && !p.allowWildcards {
			refused.Add(id, acme.RejectedIdentifier, name+": this profile does not issue wildcard certificates; order each host name instead")
			continue
		}
		switch v := cons.Check(name); v.Reason {
		case NotPermitted:
			allowed := "none"
			if len(r.AllowedDomains) > 0 {
				allowed = strings.Join(r.AllowedDomains, ", ")
			}
			refused.Add(id, acme.RejectedIdentifier, name+" is outside the domains approved for "+org+" (allowed: "+allowed+")")
			continue
		case Excluded:
			refused.Add(id, acme.RejectedIdentifier, name+" is not issued for by this CA: "+v.Constraint+" is on the deny list of profile policy; order a name outside it")
			continue
		}
		if first && len(name) > MaxCNLength {
			refused.Add(id, acme.RejectedIdentifier, fmt.Sprintf("%s is %d characters long, but the order's first name becomes the certificate's common name, which holds at most %d; put a shorter name first", name, len(name), MaxCNLength))
		}
		first = false
	}
	return refused.Err()
}

// needsDNSName refuses an order whose identifiers are all IP addresses: SOTE has not
// issued IP-only server certificates since 2023, and the certificate's CN is its first
// DNS name.
func needsDNSName(ids []acme.Identifier) error {
	var ips []acme.Subproblem
	for _, id := range ids {
		switch id.Type {
		case acme.IdentifierDNS:
			return nil
		case acme.IdentifierIP:
			ips = append(ips, acme.Subproblem{Type: acme.RejectedIdentifier.URN(), Identifier: &id,
				Detail: show(id.Value) + " cannot be certified without a DNS name"})
		}
	}
	if len(ips) == 0 {
		return nil // the loop refuses the unsupported types
	}
	return &acme.Error{Kind: acme.RejectedIdentifier, Subproblems: ips,
		Detail: "the order names only IP addresses; a DNS name is required: add the server's DNS name under the organisation's domains (it becomes the CN), IP addresses may come beside it"}
}

// checkIPIdentifier refuses an ip identifier that is not a unicast address in one of
// the account's approved networks.
func checkIPIdentifier(refused *policy.Refusals, id acme.Identifier, nets []netip.Prefix, org string) {
	ip, err := ParseIP(id.Value)
	if err != nil {
		ae, _ := acme.AsError(err)
		refused.Add(id, ae.Kind, ae.Detail)
		return
	}
	if InNetworks(ip, nets) {
		return
	}
	allowed := "none; an operator approves them with \"varmenne org domains add OID --network CIDR\""
	if len(nets) > 0 {
		var list []string
		for _, n := range nets {
			list = append(list, n.String())
		}
		allowed = strings.Join(list, ", ")
	}
	refused.Add(id, acme.RejectedIdentifier, ip.String()+" is outside the networks approved for "+org+" (allowed: "+allowed+")")
}

// CheckCSR allows: the CSR's names are checked by acme/authority at every finalize,
// whatever the profile's plugins (CheckCSRNames).
func (p *Plugin) CheckCSR(ctx context.Context, r *policy.Request) error { return nil }

// CheckCSRNames requires the CSR's names to be exactly the order's (RFC 8555 section
// 7.4), orderNames as Canonical gives them: the order's DNS names as dNSName entries
// and its IP addresses as iPAddress entries, no duplicates, no other kind of name,
// the CN (if any) one of them and at most MaxCNLength long. It returns nil or a
// badCSR *acme.Error.
func CheckCSRNames(csr *x509.CertificateRequest, orderNames []string) error {
	if len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 {
		return acme.Errorf(acme.BadCSR, "the CSR may only ask for DNS names and IP addresses; remove its e-mail and URI entries")
	}
	cn := csr.Subject.CommonName
	if len(cn) > MaxCNLength {
		return acme.Errorf(acme.BadCSR, "the CSR's common name is %d characters; at most %d are allowed", len(cn), MaxCNLength)
	}
	seen := map[string]bool{}
	for _, n := range csr.DNSNames {
		norm := Normalize(n)
		if isIPLiteral(norm) {
			return acme.Errorf(acme.BadCSR, "the CSR lists the IP address %s as a DNS name; put it in an iPAddress entry", show(n))
		}
		if seen[norm] {
			return acme.Errorf(acme.BadCSR, "the CSR lists %s twice", norm)
		}
		seen[norm] = true
	}
	for _, raw := range csr.IPAddresses {
		// Kept as encoded: a 16-byte IPv4-mapped entry is not the IPv4 address.
		ip, ok := netip.AddrFromSlice(raw)
		if !ok {
			return acme.Errorf(acme.BadCSR, "the CSR holds an iPAddress entry of %d bytes; an address has 4 or 16", len(raw))
		}
		if seen[ip.String()] {
			return acme.Errorf(acme.BadCSR, "the CSR lists %s twice", ip)
		}
		seen[ip.String()] = true
	}
	if cn != "" && !seen[Normalize(cn)] {
		if len(csr.DNSNames)+len(csr.IPAddresses) > 0 || !slices.Contains(orderNames, Normalize(cn)) {
			return acme.Errorf(acme.BadCSR, "the CSR's common name %q is not among its DNS names", cn)
		}
		seen[Normalize(cn)] = true
	}
	var missing, extra []string
	for _, n := range orderNames {
		if !seen[n] {
			missing = append(missing, n)
		}
	}
	for n := range seen {
		if !slices.Contains(orderNames, n) {
			extra = append(extra, n)
		}
	}
	slices.Sort(extra)
	switch {
	case len(extra) > 0:
		return acme.Errorf(acme.BadCSR, "the CSR asks for %s, which the order does not contain", strings.Join(extra, ", "))
	case len(missing) > 0:
		return acme.Errorf(acme.BadCSR, "the CSR lacks %s, which the order contains", strings.Join(missing, ", "))
	}
	return nil
}
