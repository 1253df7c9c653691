package names

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
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

// Plugin checks identifiers at newOrder (type, syntax, wildcards as the profile
// allows, inside the account's domains, outside the deny list, a first name that fits
// the CN) and, at finalize, that the CSR asks for exactly the order's names.
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
	cons := Constraints{Permitted: r.AllowedDomains, Excluded: p.cons.Excluded}
	var refused policy.Refusals
	first := true
	for _, id := range r.Identifiers {
		if id.Type != acme.IdentifierDNS {
			refused.Add(id, acme.UnsupportedIdentifier, "identifier type \""+id.Type+"\" is not supported; use \"dns\"")
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

// CheckCSR requires the CSR's names to be exactly the order's: DNS names only, no
// duplicates, the CN (if any) one of them.
func (p *Plugin) CheckCSR(ctx context.Context, r *policy.Request) error {
	if r.CSR == nil {
		return acme.Errorf(acme.BadCSR, "the finalize request carries no CSR")
	}
	orderNames := make([]string, 0, len(r.Identifiers))
	for _, id := range r.Identifiers {
		orderNames = append(orderNames, Normalize(id.Value))
	}
	return checkCSRNames(r.CSR, orderNames)
}

func checkCSRNames(csr *x509.CertificateRequest, orderNames []string) error {
	if len(csr.EmailAddresses) > 0 || len(csr.URIs) > 0 || len(csr.IPAddresses) > 0 {
		return acme.Errorf(acme.BadCSR, "the CSR may only ask for DNS names; remove its e-mail, URI and IP address entries")
	}
	cn := csr.Subject.CommonName
	if len(cn) > MaxCNLength {
		return acme.Errorf(acme.BadCSR, "the CSR's common name is %d characters; at most %d are allowed", len(cn), MaxCNLength)
	}
	seen := map[string]bool{}
	for _, n := range csr.DNSNames {
		norm := Normalize(n)
		if seen[norm] {
			return acme.Errorf(acme.BadCSR, "the CSR lists %s twice", norm)
		}
		seen[norm] = true
	}
	if cn != "" && !seen[Normalize(cn)] {
		if len(csr.DNSNames) > 0 || !slices.Contains(orderNames, Normalize(cn)) {
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
