package profile

import (
	"context"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/policy"

	_ "github.com/varmenne/varmenne/policy/keys"
	_ "github.com/varmenne/varmenne/policy/names"
	_ "github.com/varmenne/varmenne/policy/validity"
)

func TestBuiltin(t *testing.T) {
	set := BuiltinSet()
	if err := set.Validate(); err != nil {
		t.Fatalf("built-in profiles do not validate: %v", err)
	}
	tests := []struct {
		name      string
		test      bool
		issuer    string
		days      int
		ku        x509.KeyUsage // 0: the server default
		eku       []x509.ExtKeyUsage
		noEKU     bool
		wildcards bool
	}{
		{Server, false, "production", 365, 0, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, false, false},
		{ServerTest, true, "test", 365, 0, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, false, false},
		{SystemSignature, false, "production", 730, x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, nil, true, false},
		{SystemSignatureTest, true, "test", 730, x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment, nil, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := set.Profiles[tt.name]
			if !ok {
				t.Fatalf("%s is not built in", tt.name)
			}
			if p.Test != tt.test || p.Issuer != tt.issuer || p.MaxValidityDays != tt.days || p.AllowWildcards != tt.wildcards {
				t.Errorf("profile %+v", p)
			}
			sp, err := p.Signer(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if sp.Validity != time.Duration(tt.days)*24*time.Hour || sp.KeyUsage != tt.ku || !slices.Equal(sp.ExtKeyUsage, tt.eku) || sp.NoExtKeyUsage != tt.noEKU {
				t.Errorf("signer profile validity %s KU %b EKU %v noEKU %v", sp.Validity, sp.KeyUsage, sp.ExtKeyUsage, sp.NoExtKeyUsage)
			}
			wantOID := DefaultPolicyOID
			if tt.test {
				wantOID = DefaultTestPolicyOID
			}
			if len(sp.PolicyOIDs) != 1 || sp.PolicyOIDs[0].String() != wantOID {
				t.Errorf("policy OIDs %v, want [%s]", sp.PolicyOIDs, wantOID)
			}
			if _, err := policy.NewChain(p.Plugins, policy.Env{Profile: p.Info(tt.name), Keys: noKeys{}}); err != nil {
				t.Errorf("its chain does not build: %v", err)
			}
		})
	}
	if set.Default != Server {
		t.Errorf("default profile %q", set.Default)
	}
}

func TestParse(t *testing.T) {
	const plugins = `[{"name": "names"}, {"name": "keys"}, {"name": "validity"}]`
	tests := []struct {
		name string
		file string
		want string // "" accepted
	}{
		{"an empty file keeps the built-ins", `{}`, ""},
		{"a new profile with defaults", `{"profiles": {"sote-server-short": {"description": "90 days", "kind": "server", "max_validity_days": 90}}}`, ""},
		{"a built-in replaced", `{"profiles": {"sote-server": {"description": "RSA only", "kind": "server", "key_types": ["rsa-3072", "rsa-4096"]}}}`, ""},
		{"another default", `{"default_profile": "sote-server-test"}`, ""},
		{"an unknown top-level key", `{"profile": {}}`, `unknown key "profile"`},
		{"an unknown profile key", `{"profiles": {"x": {"description": "x", "kind": "server", "validity": 10}}}`, `profiles.x: unknown key "validity"`},
		{"an unknown plugin step key", `{"profiles": {"x": {"description": "x", "kind": "server", "plugins": [{"name": "names", "cfg": {}}]}}}`, `unknown key "cfg"`},
		{"trailing data", `{} {}`, "after the JSON object"},
		{"an unknown default", `{"default_profile": "sote-client"}`, `default_profile "sote-client"`},
		{"no description", `{"profiles": {"x": {"kind": "server"}}}`, "description is required"},
		{"an unknown kind", `{"profiles": {"x": {"description": "x", "kind": "client"}}}`, `kind "client"`},
		{"a bad name", `{"profiles": {"Sote Server": {"description": "x", "kind": "server"}}}`, "lower-case"},
		{"a server over 365 days", `{"profiles": {"x": {"description": "x", "kind": "server", "max_validity_days": 366}}}`, "SOTE maximum of 365 days"},
		{"a system signature over 730 days", `{"profiles": {"x": {"description": "x", "kind": "system-signature", "max_validity_days": 731}}}`, "SOTE maximum of 730 days"},
		{"a test profile on the production issuer", `{"profiles": {"x": {"description": "x", "kind": "server", "test": true, "issuer": "production"}}}`, `issuer "production"`},
		{"a production profile on the test issuer", `{"profiles": {"x": {"description": "x", "kind": "server", "issuer": "test"}}}`, `issuer "test"`},
		{"a server without serverAuth", `{"profiles": {"x": {"description": "x", "kind": "server", "ext_key_usage": ["clientAuth"]}}}`, "needs serverAuth"},
		{"a system signature with serverAuth", `{"profiles": {"x": {"description": "x", "kind": "system-signature", "ext_key_usage": ["serverAuth"]}}}`, "may not have serverAuth"},
		{"an unknown EKU", `{"profiles": {"x": {"description": "x", "kind": "server", "ext_key_usage": ["serverAuth", "anyPurpose"]}}}`, `"anyPurpose"`},
		{"a bad policy OID", `{"profiles": {"x": {"description": "x", "kind": "server", "policy_oids": ["1.2.x"]}}}`, "not a dotted OID"},
		{"an unknown key type", `{"profiles": {"x": {"description": "x", "kind": "server", "key_types": ["rsa-1024"]}}}`, `"rsa-1024"`},
		{"wildcards on a system signature profile", `{"profiles": {"x": {"description": "x", "kind": "system-signature", "allow_wildcards": true}}}`, "only server profiles"},
		{"a chain without the names plugin", `{"profiles": {"x": {"description": "x", "kind": "server", "plugins": [{"name": "keys"}, {"name": "validity"}]}}}`, `must include "names"`},
		{"a start delay over 90 days", `{"profiles": {"x": {"description": "x", "kind": "server", "max_start_delay": "2400h"}}}`, "max_start_delay"},
		{"a start delay as a number", `{"profiles": {"x": {"description": "x", "kind": "server", "max_start_delay": 30}}}`, "duration"},
		{"persist_reuse within 10 days", `{"profiles": {"x": {"description": "x", "kind": "server", "persist_reuse": "240h"}}}`, ""},
		{"persist_reuse of 0s", `{"profiles": {"x": {"description": "x", "kind": "server", "persist_reuse": "0s"}}}`, ""},
		{"persist_reuse over the 10 days", `{"profiles": {"x": {"description": "x", "kind": "server", "persist_reuse": "241h"}}}`, "persist_reuse 241h0m0s is outside 0s to 240h0m0s"},
		{"a negative persist_reuse", `{"profiles": {"x": {"description": "x", "kind": "server", "persist_reuse": "-1h"}}}`, "persist_reuse"},
		{"an explicit chain is accepted", `{"profiles": {"x": {"description": "x", "kind": "server", "plugins": ` + plugins + `}}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.file))
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Parse: %v, want %q", err, tt.want)
			}
		})
	}
}

// TestPolicyOIDsKeepTestAndProductionApart: a test certificate never carries the
// production policy, nor a production certificate the test policy.
func TestPolicyOIDsKeepTestAndProductionApart(t *testing.T) {
	const ownTestArc = "1.2.246.10.99999999.1.9" // a CA's own assigned test arc
	tests := []struct {
		name  string
		file  string
		want  string   // "" accepted
		wantX []string // when accepted, profile x's policy_oids (nil: no x)
	}{
		{"a test profile naming none gets the test placeholder", `{"profiles": {"x": {"description": "x", "kind": "server", "test": true}}}`, "", []string{DefaultTestPolicyOID}},
		{"a production profile naming none gets the production OID", `{"profiles": {"x": {"description": "x", "kind": "system-signature"}}}`, "", []string{DefaultPolicyOID}},
		{"a test profile with the CA's own test arc", `{"profiles": {"sote-server-test": {"description": "x", "kind": "server", "test": true, "policy_oids": ["` + ownTestArc + `"]}}}`, "", nil},
		{"a test profile with the production OID", `{"profiles": {"x": {"description": "x", "kind": "server", "test": true, "policy_oids": ["1.2.246.517.1.10.203"]}}}`,
			`profile "x": policy_oids 1.2.246.517.1.10.203 is the production certificate policy: a test profile carries a test policy`, nil},
		{"a test profile with an OID below the production arc", `{"profiles": {"x": {"description": "x", "kind": "system-signature", "test": true, "policy_oids": ["1.3.6.1.4.1.32473.1.10.203.9", "1.2.246.517.1.10.203.1"]}}}`,
			"1.2.246.517.1.10.203.1 is the production certificate policy", nil},
		{"a production profile with the test placeholder", `{"profiles": {"x": {"description": "x", "kind": "server", "policy_oids": ["1.2.246.517.1.10.203", "1.3.6.1.4.1.32473.1.10.203.9"]}}}`,
			`profile "x": policy_oids 1.3.6.1.4.1.32473.1.10.203.9 is the test certificate policy: a production profile carries the production policy`, nil},
		{"a production profile with the CA's test arc that a test profile lists", `{"profiles": {"sote-server-test": {"description": "x", "kind": "server", "test": true, "policy_oids": ["` + ownTestArc + `"]},
			"sote-server": {"description": "x", "kind": "server", "policy_oids": ["1.2.246.517.1.10.203", "` + ownTestArc + `"]}}}`,
			`profile "sote-server": policy_oids ` + ownTestArc + ` is also the policy of test profile "sote-server-test"`, nil},
		{"a production profile with an OID of its own", `{"profiles": {"x": {"description": "x", "kind": "server", "policy_oids": ["1.2.246.517.1.10.203", "1.2.246.10.99999999.1.1"]}}}`, "", []string{"1.2.246.517.1.10.203", "1.2.246.10.99999999.1.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Parse([]byte(tt.file))
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Parse: %v, want %q", err, tt.want)
			}
			if err == nil && tt.wantX != nil {
				if got := set.Profiles["x"].PolicyOIDs; !slices.Equal(got, tt.wantX) {
					t.Errorf("policy_oids of x %v, want %v", got, tt.wantX)
				}
			}
		})
	}
}

func TestParseDefaultsByKind(t *testing.T) {
	set, err := Parse([]byte(`{"profiles": {"sote-docs": {"description": "docs", "kind": "system-signature", "max_start_delay": "0s"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	p := set.Profiles["sote-docs"]
	info := p.Info("sote-docs")
	if p.Issuer != "production" || p.MaxValidityDays != 730 || len(p.ExtKeyUsage) != 0 || info.MaxStartDelay != 0 ||
		!slices.Equal(info.KeyTypes, []string{"rsa-2048", "rsa-3072", "rsa-4096"}) {
		t.Fatalf("defaults %+v, info %+v", p, info)
	}
	if len(set.Profiles) != 5 {
		t.Errorf("%d profiles, want the 4 built-ins and the new one", len(set.Profiles))
	}
}

type noKeys struct{}

func (noKeys) KeyCertified(context.Context, string) (bool, error) { return false, nil }
func (noKeys) KeyBlocked(context.Context, string) (bool, error)   { return false, nil }

func TestPersistReuseFor(t *testing.T) {
	d := func(v time.Duration) *policy.Duration { p := policy.Duration(v); return &p }
	for _, tt := range []struct {
		name string
		p    Profile
		want time.Duration
	}{
		{"omitted: the default of 7 days", Profile{}, 7 * 24 * time.Hour},
		{"the default after Normalize", Profile{Kind: policy.KindServer}.Normalize(), 7 * 24 * time.Hour},
		{"0s: never reused", Profile{PersistReuse: d(0)}, -1},
		{"a day", Profile{PersistReuse: d(24 * time.Hour)}, 24 * time.Hour},
	} {
		if got := tt.p.PersistReuseFor(); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}
