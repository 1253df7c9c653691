package names

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/acmetest"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/store"
)

const testOrgOID = "1.2.246.10.12345678.10.0"

func newPlugin(t *testing.T, deny []string, wildcards bool) policy.Plugin {
	t.Helper()
	cfg, _ := json.Marshal(Config{Deny: deny})
	p, err := policy.Build(PluginName, cfg, policy.Env{Profile: policy.ProfileInfo{Name: "sote-server", AllowWildcards: wildcards}})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return p
}

func orderRequest(allowed []string, ids ...acme.Identifier) *policy.Request {
	return &policy.Request{Profile: "sote-server", Org: &store.Organisation{OID: testOrgOID}, Identifiers: ids, AllowedDomains: allowed}
}

func dnsIDs(names ...string) []acme.Identifier {
	ids := make([]acme.Identifier, len(names))
	for i, n := range names {
		ids[i] = acme.Identifier{Type: acme.IdentifierDNS, Value: n}
	}
	return ids
}

func TestPluginCheckOrder(t *testing.T) {
	email := acme.Identifier{Type: "email", Value: "admin@example.fi"}
	dns := func(v string) acme.Identifier { return acme.Identifier{Type: acme.IdentifierDNS, Value: v} }
	allowed := []string{"example.fi"}

	tests := []struct {
		name     string
		ids      []acme.Identifier
		wantList []string
		wantKind acme.ErrorKind // "" means accepted
		// refused identifier values with their subproblem kinds, in request order
		wantSubs map[string]acme.ErrorKind
	}{
		{
			name:     "a name under the organisation's domain is accepted",
			ids:      []acme.Identifier{dns("www.example.fi")},
			wantList: []string{"www.example.fi"},
		},
		{
			name:     "the organisation's domain itself is accepted",
			ids:      []acme.Identifier{dns("example.fi")},
			wantList: []string{"example.fi"},
		},
		{
			name:     "case-folded duplicates are accepted (the authority keeps one of each)",
			ids:      []acme.Identifier{dns("WWW.Example.FI"), dns("api.example.fi"), dns("www.example.fi"), dns("www.EXAMPLE.fi")},
			wantList: []string{"www.example.fi", "api.example.fi"},
		},
		{
			name:     "a name outside the organisation's domains is rejected",
			ids:      []acme.Identifier{dns("www.muu.fi")},
			wantKind: acme.RejectedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"www.muu.fi": acme.RejectedIdentifier},
		},
		{
			name:     "a look-alike domain ending in the organisation's domain is rejected",
			ids:      []acme.Identifier{dns("notexample.fi")},
			wantKind: acme.RejectedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"notexample.fi": acme.RejectedIdentifier},
		},
		{
			name:     "a wildcard under the organisation's domain is rejected",
			ids:      []acme.Identifier{dns("*.example.fi")},
			wantKind: acme.RejectedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"*.example.fi": acme.RejectedIdentifier},
		},
		{
			name:     "a misplaced wildcard is malformed",
			ids:      []acme.Identifier{dns("www.*.example.fi")},
			wantKind: acme.Malformed,
			wantSubs: map[string]acme.ErrorKind{"www.*.example.fi": acme.Malformed},
		},
		{
			name:     "an IP address in a dns identifier is malformed",
			ids:      []acme.Identifier{dns("10.0.0.1")},
			wantKind: acme.Malformed,
			wantSubs: map[string]acme.ErrorKind{"10.0.0.1": acme.Malformed},
		},
		{
			name:     "an email identifier is unsupported",
			ids:      []acme.Identifier{email},
			wantKind: acme.UnsupportedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"admin@example.fi": acme.UnsupportedIdentifier},
		},
		{
			name:     "one bad name refuses the whole order with a subproblem for it alone",
			ids:      []acme.Identifier{dns("www.example.fi"), dns("www.muu.fi"), dns("api.example.fi")},
			wantKind: acme.RejectedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"www.muu.fi": acme.RejectedIdentifier},
		},
		{
			name:     "each bad identifier has its own subproblem",
			ids:      []acme.Identifier{dns("www.muu.fi"), dns("www.example.fi"), dns("*.example.fi"), dns("muu.example.com")},
			wantKind: acme.RejectedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"www.muu.fi": acme.RejectedIdentifier, "*.example.fi": acme.RejectedIdentifier, "muu.example.com": acme.RejectedIdentifier},
		},
		{
			name:     "malformed beats unsupported and rejected",
			ids:      []acme.Identifier{dns("www.muu.fi"), email, dns("bad_name.example.fi")},
			wantKind: acme.Malformed,
			wantSubs: map[string]acme.ErrorKind{"www.muu.fi": acme.RejectedIdentifier, "admin@example.fi": acme.UnsupportedIdentifier, "bad_name.example.fi": acme.Malformed},
		},
		{
			name:     "malformed first stays malformed after unsupported",
			ids:      []acme.Identifier{dns("a..example.fi"), email},
			wantKind: acme.Malformed,
			wantSubs: map[string]acme.ErrorKind{"a..example.fi": acme.Malformed, "admin@example.fi": acme.UnsupportedIdentifier},
		},
		{
			name:     "unsupported beats rejected that comes before it",
			ids:      []acme.Identifier{dns("www.muu.fi"), email},
			wantKind: acme.UnsupportedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"www.muu.fi": acme.RejectedIdentifier, "admin@example.fi": acme.UnsupportedIdentifier},
		},
		{
			name:     "unsupported beats rejected that comes after it",
			ids:      []acme.Identifier{email, dns("www.muu.fi")},
			wantKind: acme.UnsupportedIdentifier,
			wantSubs: map[string]acme.ErrorKind{"www.muu.fi": acme.RejectedIdentifier, "admin@example.fi": acme.UnsupportedIdentifier},
		},
	}
	p := newPlugin(t, nil, false)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.CheckOrder(context.Background(), orderRequest(allowed, tt.ids...))
			ae := wantKind(t, err, tt.wantKind)
			if ae == nil {
				return
			}
			if len(ae.Subproblems) != len(tt.wantSubs) {
				t.Fatalf("%d subproblems %+v, want %d", len(ae.Subproblems), ae.Subproblems, len(tt.wantSubs))
			}
			for _, sp := range ae.Subproblems {
				if sp.Identifier == nil {
					t.Fatalf("subproblem %q names no identifier", sp.Detail)
				}
				kind, ok := tt.wantSubs[sp.Identifier.Value]
				if !ok {
					t.Errorf("subproblem for %q, which is not refused", sp.Identifier.Value)
					continue
				}
				if sp.Type != kind.URN() {
					t.Errorf("subproblem for %q has type %s, want %s", sp.Identifier.Value, sp.Type, kind.URN())
				}
				if sp.Detail == "" {
					t.Errorf("subproblem for %q has no detail", sp.Identifier.Value)
				}
			}
			switch {
			case len(ae.Subproblems) == 1 && ae.Detail != ae.Subproblems[0].Detail:
				t.Errorf("detail %q, want the one subproblem's %q", ae.Detail, ae.Subproblems[0].Detail)
			case len(ae.Subproblems) > 1 && !strings.Contains(ae.Detail, "subproblems"):
				t.Errorf("detail %q does not point at the subproblems", ae.Detail)
			}
		})
	}
}

func TestPluginOutsideDetailNamesOrganisation(t *testing.T) {
	p := newPlugin(t, nil, false)
	err := p.CheckOrder(context.Background(), orderRequest([]string{"example.fi", "example.com"}, dnsIDs("www.muu.fi")...))
	ae := wantKind(t, err, acme.RejectedIdentifier)
	for _, want := range []string{"www.muu.fi", testOrgOID, "example.fi, example.com"} {
		if !strings.Contains(ae.Detail, want) {
			t.Errorf("detail %q lacks %q", ae.Detail, want)
		}
	}
}

func TestCheckCSRNames(t *testing.T) {
	key := newKey(t)
	long := strings.Repeat("a", 60) + ".example.fi" // 71 characters, a valid name
	at64 := strings.Repeat("a", 53) + ".example.fi" // 64 characters
	one := []string{"www.example.fi"}
	two := []string{"www.example.fi", "api.example.fi"}

	tests := []struct {
		name  string
		tmpl  x509.CertificateRequest
		order []string
		want  acme.ErrorKind
	}{
		{"SANs equal to the order are accepted", x509.CertificateRequest{DNSNames: two}, two, ""},
		{"SANs in another order than the order's are accepted", x509.CertificateRequest{DNSNames: []string{"api.example.fi", "www.example.fi"}}, two, ""},
		{"SANs in another case than the order's are accepted", x509.CertificateRequest{DNSNames: []string{"WWW.Example.FI"}}, one, ""},
		{"a CN among the SANs is accepted", x509.CertificateRequest{Subject: pkix.Name{CommonName: "api.example.fi"}, DNSNames: two}, two, ""},
		{"a CN only, equal to the order's one name, is accepted", x509.CertificateRequest{Subject: pkix.Name{CommonName: "www.example.fi"}}, one, ""},
		{"a CN only, equal but for case, is accepted", x509.CertificateRequest{Subject: pkix.Name{CommonName: "WWW.example.fi"}}, one, ""},
		{"a CN of 64 characters is accepted", x509.CertificateRequest{Subject: pkix.Name{CommonName: at64}, DNSNames: []string{at64}}, []string{at64}, ""},
		{"a CN not among the SANs is badCSR", x509.CertificateRequest{Subject: pkix.Name{CommonName: "api.example.fi"}, DNSNames: one}, two, acme.BadCSR},
		{"a CN only, not the order's name, is badCSR", x509.CertificateRequest{Subject: pkix.Name{CommonName: "api.example.fi"}}, one, acme.BadCSR},
		{"a CN only, for an order of two names, is badCSR", x509.CertificateRequest{Subject: pkix.Name{CommonName: "www.example.fi"}}, two, acme.BadCSR},
		{"no names at all is badCSR", x509.CertificateRequest{}, one, acme.BadCSR},
		{"an extra SAN is badCSR", x509.CertificateRequest{DNSNames: two}, one, acme.BadCSR},
		{"a missing SAN is badCSR", x509.CertificateRequest{DNSNames: one}, two, acme.BadCSR},
		{"a SAN outside the order in place of one of it is badCSR", x509.CertificateRequest{DNSNames: []string{"www.example.fi", "www.muu.fi"}}, two, acme.BadCSR},
		{"a case-folded duplicate SAN is badCSR", x509.CertificateRequest{DNSNames: []string{"www.example.fi", "WWW.example.fi"}}, one, acme.BadCSR},
		{"an exact duplicate SAN is badCSR", x509.CertificateRequest{DNSNames: []string{"www.example.fi", "www.example.fi"}}, one, acme.BadCSR},
		{"an email SAN is badCSR", x509.CertificateRequest{DNSNames: one, EmailAddresses: []string{"admin@example.fi"}}, one, acme.BadCSR},
		{"an IP SAN is badCSR", x509.CertificateRequest{DNSNames: one, IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}}, one, acme.BadCSR},
		{"a URI SAN is badCSR", x509.CertificateRequest{DNSNames: one, URIs: []*url.URL{{Scheme: "https", Host: "www.example.fi"}}}, one, acme.BadCSR},
		{"an IP address as CN is badCSR", x509.CertificateRequest{Subject: pkix.Name{CommonName: "192.0.2.1"}, DNSNames: one}, one, acme.BadCSR},
		{"a CN over 64 characters is badCSR", x509.CertificateRequest{Subject: pkix.Name{CommonName: long}, DNSNames: []string{long}}, []string{long}, acme.BadCSR},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := x509.ParseCertificateRequest(makeCSR(t, key, &tt.tmpl))
			if err != nil {
				t.Fatal(err)
			}
			wantKind(t, CheckCSRNames(csr, tt.order), tt.want)
		})
	}
}

func TestPluginProfileRules(t *testing.T) {
	long71 := strings.Repeat("a", 60) + ".example.fi"
	tests := []struct {
		name      string
		deny      []string
		wildcards bool
		allowed   []string
		ids       []string
		want      acme.ErrorKind
		detail    string
	}{
		{"a wildcard is refused when the profile does not allow them", nil, false, []string{"example.fi"}, []string{"*.example.fi"}, acme.RejectedIdentifier, "does not issue wildcard"},
		{"a wildcard is accepted when the profile allows them", nil, true, []string{"example.fi"}, []string{"*.example.fi"}, "", ""},
		{"a name under a denied domain is refused", []string{"intra.example.fi"}, false, []string{"example.fi"}, []string{"db.intra.example.fi"}, acme.RejectedIdentifier, "deny list"},
		{"the denied domain itself is refused", []string{"intra.example.fi"}, false, []string{"example.fi"}, []string{"intra.example.fi"}, acme.RejectedIdentifier, "deny list"},
		{"a sibling of a denied domain is accepted", []string{"intra.example.fi"}, false, []string{"example.fi"}, []string{"www.example.fi"}, "", ""},
		{"a wildcard covering a denied name is refused", []string{"intra.example.fi"}, true, []string{"example.fi"}, []string{"*.example.fi"}, acme.RejectedIdentifier, "deny list"},
		{"an organisation without domains gets nothing", nil, false, nil, []string{"www.example.fi"}, acme.RejectedIdentifier, "allowed: none"},
		{"a first name over 64 characters is refused (it becomes the CN)", nil, false, []string{"example.fi"}, []string{long71, "a.example.fi"}, acme.RejectedIdentifier, "common name"},
		{"a long name after a short first one is accepted", nil, false, []string{"example.fi"}, []string{"a.example.fi", long71}, "", ""},
		{"no identifiers is malformed", nil, false, []string{"example.fi"}, nil, acme.Malformed, "no identifiers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPlugin(t, tt.deny, tt.wildcards)
			ae := wantKind(t, p.CheckOrder(context.Background(), orderRequest(tt.allowed, dnsIDs(tt.ids...)...)), tt.want)
			if ae != nil && !strings.Contains(ae.Detail, tt.detail) {
				t.Errorf("detail %q does not say %q", ae.Detail, tt.detail)
			}
		})
	}
}

func TestPluginConfig(t *testing.T) {
	tests := []struct {
		name   string
		config string
		ok     bool
	}{
		{"no configuration", "", true},
		{"a deny list", `{"deny": ["intra.example.fi"]}`, true},
		{"an unknown key is refused", `{"denied": ["intra.example.fi"]}`, false},
		{"a deny entry that is not a domain is refused", `{"deny": ["not a domain"]}`, false},
		{"a wildcard deny entry is refused", `{"deny": ["*.example.fi"]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.Build(PluginName, json.RawMessage(tt.config), policy.Env{})
			if (err == nil) != tt.ok {
				t.Fatalf("Build: %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestConstraints(t *testing.T) {
	c := Constraints{Permitted: []string{"example.fi"}, Excluded: []string{"intra.example.fi"}}
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"inside the permitted domain", "www.example.fi", Allowed},
		{"the permitted domain itself", "example.fi", Allowed},
		{"outside", "www.muu.fi", NotPermitted},
		{"a look-alike", "badexample.fi", NotPermitted},
		{"the excluded domain", "intra.example.fi", Excluded},
		{"below the excluded domain", "a.b.intra.example.fi", Excluded},
		{"a wildcard covering the excluded name", "*.example.fi", Excluded},
		{"a wildcard below the excluded domain", "*.intra.example.fi", Excluded},
		{"a wildcard beside the excluded domain", "*.www.example.fi", Allowed},
		{"excluded wins over permitted in case", "INTRA.Example.fi", Excluded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Check(tt.in); got.Reason != tt.want {
				t.Fatalf("Check(%q) = %+v, want reason %d", tt.in, got, tt.want)
			}
		})
	}
}

// Shared with the other packages' tests.
var (
	newKey   = acmetest.NewKey
	makeCSR  = acmetest.CSR
	wantKind = acmetest.WantKind
)
