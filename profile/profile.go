// Package profile owns the certificate profiles varmenne offers: the four SOTE
// profiles built in, and the configuration file that may change them or add more.
// A profile says which issuer signs, for how long, with which key usages, EKUs and
// policy OIDs, for which key types, whether wildcards are allowed, and which policy
// plugins guard it, in order.
//
// It decides what a profile may be (Validate); it does not run plugins (policy) or
// sign (signer), and it wires neither: cmd/varmenne does.
package profile

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/policy/keys"
	"github.com/varmenne/varmenne/policy/validity"
	"github.com/varmenne/varmenne/signer"
)

// The built-in profiles (draft-ietf-acme-profiles names; SOTE.md's four types).
const (
	Server               = "sote-server"
	ServerTest           = "sote-server-test"
	SystemSignature      = "sote-system-signature"
	SystemSignatureTest  = "sote-system-signature-test"
	DefaultProfile       = Server
	issuerProduction     = "production"
	issuerTest           = "test"
	day                  = 24 * time.Hour
	defaultMaxStartDelay = 30 * day
	// DefaultPersistReuse and MaxPersistReuse bound persist_reuse: the Baseline
	// Requirements' 10 days for reusing domain validation data is the ceiling
	// (docs/validation.md, "dns-persist-01").
	DefaultPersistReuse = 7 * day
	MaxPersistReuse     = 10 * day
)

// Backdate is how far before its issuance a certificate starts when the order names
// no notBefore: clocks of relying parties a little behind still accept it.
const Backdate = time.Minute

// RequiredPlugins must be in every profile's chain: without them a profile would
// issue for names outside the organisation's domains (names), for key types it does
// not certify or keys certified before (keys), or beyond the SOTE maximum validity
// (validity). RFC 8555's own checks at finalize — the CSR's names equal the order's,
// the key's quality, no key reported compromised — are acme/authority's and run
// whatever the chain.
var RequiredPlugins = []string{"names", "keys", "validity"}

// DefaultPlugins is the chain of a profile that names none. Other plugin packages
// (the THL register, profile eligibility) may be appended here by the code that
// registers them, before the profiles are loaded.
var DefaultPlugins = []policy.Spec{{Name: "names"}, {Name: "keys"}, {Name: "validity"}}

// DefaultPolicyOID is the SOTE organisation certificate policy arc: the policy of
// production profiles that name none.
const DefaultPolicyOID = "1.2.246.517.1.10.203"

// DefaultTestPolicyOID is the policy of test profiles that name none, so a relying
// party that checks the policy never takes a test certificate for a production one.
// It is a PLACEHOLDER: no SOTE test policy OID is published, so it sits under
// 1.3.6.1.4.1.32473, the enterprise number IANA reserves for documentation
// (RFC 5612). A CA sets policy_oids of its test profiles to the test arc it was
// assigned.
const DefaultTestPolicyOID = "1.3.6.1.4.1.32473.1.10.203.9"

// extKeyUsages are the EKU names a profile may list.
var extKeyUsages = map[string]x509.ExtKeyUsage{
	"serverAuth":      x509.ExtKeyUsageServerAuth,
	"clientAuth":      x509.ExtKeyUsageClientAuth,
	"emailProtection": x509.ExtKeyUsageEmailProtection,
}

// Profile is one certificate profile as the configuration file writes it. Omitted
// fields take the defaults of the profile's kind (Normalize).
type Profile struct {
	Description string `json:"description"`
	Kind        string `json:"kind"` // "server" or "system-signature"
	Test        bool   `json:"test"`
	// Issuer signs the profile's certificates: "test" for test profiles and
	// "production" for the others, never the other way round.
	Issuer string `json:"issuer"`
	// MaxValidityDays is the longest certificate (notAfter is its last second);
	// at most the SOTE maximum of the kind: 365 (server), 730 (system signature).
	MaxValidityDays int `json:"max_validity_days"`
	// MaxStartDelay is how far ahead a requested notBefore may lie ("0s": notBefore
	// is refused); default 720h.
	MaxStartDelay  *policy.Duration `json:"max_start_delay"`
	ExtKeyUsage    []string         `json:"ext_key_usage"` // serverAuth, clientAuth, emailProtection
	PolicyOIDs     []string         `json:"policy_oids"`
	KeyTypes       []string         `json:"key_types"` // rsa-2048 … ecdsa-p384
	AllowWildcards bool             `json:"allow_wildcards"`
	Plugins        []policy.Spec    `json:"plugins"`
	// PersistReuse is how long an authorisation proven by a dns-persist-01 record
	// serves the profile's later orders before the record is read again ("0s":
	// every order reads it); default 168h, at most 240h.
	PersistReuse *policy.Duration `json:"persist_reuse"`
}

// DefaultKeyTypes are the subscriber key types a profile of kind certifies when its
// configuration names none (docs/profiles.md, "Subscriber key types"):
//   - server: RSA 2048, 3072 and 4096 (SOTE's rule is RSA of at least 2048 bits)
//     and ECDSA P-256 and P-384, which every TLS 1.2 and 1.3 stack speaks (RFC 8422,
//     RFC 8446) at a fraction of RSA's cost;
//   - system signature: RSA 2048, 3072 and 4096 only. A system signature is
//     verified for years by document archives and other systems whose support for
//     ECDSA signatures nothing in the SOTE practice promises, and the practice names
//     RSA.
//
// A profile narrows or widens them (within keys.KeyTypes) with key_types.
func DefaultKeyTypes(kind string) []string {
	if kind == policy.KindSystemSignature {
		return []string{"rsa-2048", "rsa-3072", "rsa-4096"}
	}
	return slices.Clone(keys.KeyTypes)
}

// Builtin returns the four SOTE profiles.
func Builtin() map[string]Profile {
	ps := map[string]Profile{
		Server: {Description: "SOTE server certificate: TLS between the organisation's server and Kanta (1 year)",
			Kind: policy.KindServer},
		ServerTest: {Description: "SOTE test server certificate, from the test issuer (1 year)",
			Kind: policy.KindServer, Test: true},
		SystemSignature: {Description: "SOTE system signature certificate: signs documents of an information system (2 years)",
			Kind: policy.KindSystemSignature},
		SystemSignatureTest: {Description: "SOTE test system signature certificate, from the test issuer (2 years)",
			Kind: policy.KindSystemSignature, Test: true},
	}
	for n, p := range ps {
		ps[n] = p.Normalize()
	}
	return ps
}

// Normalize fills in the kind's defaults for omitted fields.
func (p Profile) Normalize() Profile {
	if p.Issuer == "" {
		p.Issuer = issuerProduction
		if p.Test {
			p.Issuer = issuerTest
		}
	}
	if p.MaxValidityDays == 0 {
		if max, ok := validity.SOTEMaximum(p.Kind); ok {
			p.MaxValidityDays = int(max / day)
		}
	}
	if p.MaxStartDelay == nil {
		d := policy.Duration(defaultMaxStartDelay)
		p.MaxStartDelay = &d
	}
	if p.PersistReuse == nil {
		d := policy.Duration(DefaultPersistReuse)
		p.PersistReuse = &d
	}
	if p.ExtKeyUsage == nil && p.Kind == policy.KindServer {
		p.ExtKeyUsage = []string{"serverAuth", "clientAuth"}
	}
	if len(p.PolicyOIDs) == 0 {
		p.PolicyOIDs = []string{DefaultPolicyOID}
		if p.Test {
			p.PolicyOIDs = []string{DefaultTestPolicyOID}
		}
	}
	if len(p.KeyTypes) == 0 {
		p.KeyTypes = DefaultKeyTypes(p.Kind)
	}
	if len(p.Plugins) == 0 {
		p.Plugins = slices.Clone(DefaultPlugins)
	}
	return p
}

var namePattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// Validate says what is wrong with the (normalized) profile. The plugins' own
// configuration is checked when the chain is built, which the start also does.
func (p Profile) Validate(name string) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("profile %q: %s", name, fmt.Sprintf(format, args...))
	}
	if !namePattern.MatchString(name) {
		return fail("a profile name is lower-case letters, digits and single hyphens, such as sote-server-test")
	}
	if strings.TrimSpace(p.Description) == "" {
		return fail("description is required: the directory shows it to clients")
	}
	max, ok := validity.SOTEMaximum(p.Kind)
	if !ok {
		return fail("kind %q: use %q or %q", p.Kind, policy.KindServer, policy.KindSystemSignature)
	}
	want := issuerProduction
	if p.Test {
		want = issuerTest
	}
	switch {
	case p.Issuer != want:
		return fail("issuer %q: a %s profile is signed by the %q issuer only (test profiles by \"test\", the others by \"production\")", p.Issuer, map[bool]string{true: "test", false: "production"}[p.Test], want)
	case p.MaxValidityDays <= 0:
		return fail("max_validity_days %d must be positive", p.MaxValidityDays)
	case time.Duration(p.MaxValidityDays)*day > max:
		return fail("max_validity_days %d exceeds the SOTE maximum of %d days for %s certificates", p.MaxValidityDays, int(max/day), p.Kind)
	case p.MaxStartDelay != nil && (*p.MaxStartDelay < 0 || time.Duration(*p.MaxStartDelay) > validity.MaxStartDelayLimit):
		return fail("max_start_delay %s is outside 0s to %s", time.Duration(*p.MaxStartDelay), validity.MaxStartDelayLimit)
	case p.PersistReuse != nil && (*p.PersistReuse < 0 || time.Duration(*p.PersistReuse) > MaxPersistReuse):
		return fail("persist_reuse %s is outside 0s to %s (the Baseline Requirements' 10 days)", time.Duration(*p.PersistReuse), MaxPersistReuse)
	}
	for _, e := range p.ExtKeyUsage {
		if _, ok := extKeyUsages[e]; !ok {
			return fail("ext_key_usage %q: use %s", e, strings.Join(sortedKeys(extKeyUsages), ", "))
		}
	}
	if p.Kind == policy.KindServer && !slices.Contains(p.ExtKeyUsage, "serverAuth") {
		return fail("a server profile needs serverAuth in ext_key_usage")
	}
	if p.Kind == policy.KindSystemSignature && slices.Contains(p.ExtKeyUsage, "serverAuth") {
		return fail("a system signature profile may not have serverAuth: system signature certificates are not TLS server certificates")
	}
	if _, err := p.policyOIDs(); err != nil {
		return fail("%v", err)
	}
	for _, o := range p.PolicyOIDs {
		switch {
		case p.Test && underArc(o, DefaultPolicyOID):
			return fail("policy_oids %s is the production certificate policy: a test profile carries a test policy (default %s, a placeholder for the CA's own test arc), so that no relying party takes a test certificate for a production one", o, DefaultTestPolicyOID)
		case !p.Test && underArc(o, DefaultTestPolicyOID):
			return fail("policy_oids %s is the test certificate policy: a production profile carries the production policy (default %s)", o, DefaultPolicyOID)
		}
	}
	for _, k := range p.KeyTypes {
		if !slices.Contains(keys.KeyTypes, k) {
			return fail("key_types %q: use %s", k, strings.Join(keys.KeyTypes, ", "))
		}
	}
	if p.AllowWildcards && p.Kind != policy.KindServer {
		return fail("allow_wildcards: only server profiles may issue wildcard names")
	}
	listed := map[string]bool{}
	for _, s := range p.Plugins {
		if err := s.Validate(); err != nil {
			return fail("%v", err)
		}
		listed[s.Name] = true
	}
	for _, r := range RequiredPlugins {
		if !listed[r] {
			return fail("plugins must include %q (every profile runs %s)", r, strings.Join(RequiredPlugins, ", "))
		}
	}
	return nil
}

func (p Profile) policyOIDs() ([]asn1.ObjectIdentifier, error) {
	var out []asn1.ObjectIdentifier
	for _, s := range p.PolicyOIDs {
		var oid asn1.ObjectIdentifier
		for _, part := range strings.Split(s, ".") {
			n, err := strconv.Atoi(part)
			if err != nil || n < 0 || (part != "0" && strings.HasPrefix(part, "0")) {
				return nil, fmt.Errorf("policy_oids %q is not a dotted OID such as %s", s, DefaultPolicyOID)
			}
			oid = append(oid, n)
		}
		if len(oid) < 2 {
			return nil, fmt.Errorf("policy_oids %q is not a dotted OID such as %s", s, DefaultPolicyOID)
		}
		out = append(out, oid)
	}
	return out, nil
}

// underArc reports whether the dotted OID o is arc or below it.
func underArc(o, arc string) bool { return o == arc || strings.HasPrefix(o, arc+".") }

// Info is what the profile's plugins learn of it.
func (p Profile) Info(name string) policy.ProfileInfo {
	var delay time.Duration
	if p.MaxStartDelay != nil {
		delay = time.Duration(*p.MaxStartDelay)
	}
	return policy.ProfileInfo{
		Name: name, Kind: p.Kind, Test: p.Test,
		MaxValidity:    time.Duration(p.MaxValidityDays) * day,
		Backdate:       Backdate,
		MaxStartDelay:  delay,
		KeyTypes:       slices.Clone(p.KeyTypes),
		AllowWildcards: p.AllowWildcards,
	}
}

// Signer is the profile as the signer applies it; the caller adds the issuer's CRL,
// OCSP and caIssuers URLs. The profile must be valid.
func (p Profile) Signer(name string) (signer.Profile, error) {
	oids, err := p.policyOIDs()
	if err != nil {
		return signer.Profile{}, err
	}
	info := p.Info(name)
	sp := signer.Profile{
		Name:          name,
		Validity:      info.MaxValidity,
		Backdate:      Backdate,
		MaxStartDelay: info.MaxStartDelay,
		PolicyOIDs:    oids,
	}
	for _, e := range p.ExtKeyUsage {
		sp.ExtKeyUsage = append(sp.ExtKeyUsage, extKeyUsages[e])
	}
	switch p.Kind {
	case policy.KindServer:
		// Zero: digitalSignature, plus keyEncipherment for RSA keys.
	case policy.KindSystemSignature:
		sp.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
		if len(sp.ExtKeyUsage) == 0 {
			sp.NoExtKeyUsage = true
			linter, err := signer.NewLinter(signer.SystemSignatureIgnoredLints())
			if err != nil {
				return signer.Profile{}, err
			}
			sp.Linter = linter
		}
	}
	return sp, nil
}

// Set is the profiles a server offers and the default for orders that name none.
type Set struct {
	Default  string
	Profiles map[string]Profile
}

// Names are the profile names, sorted.
func (s *Set) Names() []string { return sortedKeys(s.Profiles) }

// Validate checks every profile and the default.
func (s *Set) Validate() error {
	if len(s.Profiles) == 0 {
		return errors.New("no profiles are configured")
	}
	// The policy OID a test profile lists, by name: no production profile may list it.
	testPolicy := map[string]string{}
	for _, n := range s.Names() {
		p := s.Profiles[n]
		if err := p.Validate(n); err != nil {
			return err
		}
		for _, o := range p.PolicyOIDs {
			if p.Test {
				testPolicy[o] = n
			}
		}
	}
	for _, n := range s.Names() {
		for _, o := range s.Profiles[n].PolicyOIDs {
			if t, ok := testPolicy[o]; ok && !s.Profiles[n].Test {
				return fmt.Errorf("profile %q: policy_oids %s is also the policy of test profile %q: test and production certificates carry different policies, so that no relying party takes one for the other", n, o, t)
			}
		}
	}
	if _, ok := s.Profiles[s.Default]; !ok {
		return fmt.Errorf("default_profile %q is not among the profiles (%s)", s.Default, strings.Join(s.Names(), ", "))
	}
	return nil
}

// BuiltinSet is the four built-in profiles with sote-server the default.
func BuiltinSet() *Set { return &Set{Default: DefaultProfile, Profiles: Builtin()} }

// file is the configuration file's shape.
type file struct {
	DefaultProfile string                     `json:"default_profile"`
	Profiles       map[string]json.RawMessage `json:"profiles"`
}

// Load reads a configuration file over the built-in profiles: a profile in the file
// replaces the built-in one of the same name or adds a new one, and omitted fields
// take the defaults of its kind. Decoding is strict: an unknown key is an error
// that names it.
func Load(path string) (*Set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return s, nil
}

// Parse is Load on the file's bytes.
func Parse(b []byte) (*Set, error) {
	var f file
	if err := strictDecode(b, &f); err != nil {
		return nil, err
	}
	s := BuiltinSet()
	if f.DefaultProfile != "" {
		s.Default = f.DefaultProfile
	}
	for name, raw := range f.Profiles {
		var p Profile
		if err := strictDecode(raw, &p); err != nil {
			return nil, fmt.Errorf("profiles.%s: %w", name, err)
		}
		s.Profiles[name] = p.Normalize()
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		msg := strings.TrimPrefix(err.Error(), "json: ")
		if k, ok := strings.CutPrefix(msg, "unknown field "); ok {
			return fmt.Errorf("unknown key %s", k)
		}
		return errors.New(msg)
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// PersistReuseFor is persist_reuse as the authority takes it (authority.Profile):
// negative for "0s", never reused.
func (p Profile) PersistReuseFor() time.Duration {
	switch {
	case p.PersistReuse == nil:
		return DefaultPersistReuse
	case *p.PersistReuse == 0:
		return -1
	}
	return time.Duration(*p.PersistReuse)
}
