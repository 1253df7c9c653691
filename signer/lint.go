package signer

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	zx509 "github.com/zmap/zcrypto/x509"
	_ "github.com/zmap/zlint/v3" // registers every lint in lint.GlobalRegistry
	"github.com/zmap/zlint/v3/lint"
)

// ErrLint marks a certificate that zlint refused before the issuer key was asked to
// sign it. It is a fault of the profile or of the signer, never of the client: the
// authority answers serverInternal.
var ErrLint = errors.New("signer: certificate failed lint")

// SOTEIgnoredLints are the zlint lints that do not apply to SOTE service
// certificates, with the reason for each. Everything else zlint knows runs on every
// certificate, and an error or fatal result stops the issuance.
//
// SOTE is a private, national PKI: its root is in no browser's root store, so the
// CA/Browser Forum rules are a quality bar (ROBUSTNESS.md) rather than the law, and
// the few below that contradict the SOTE rules or this deployment are switched off.
var SOTEIgnoredLints = map[string]string{
	// The ECDSA "small private key" check hunts for scalars up to 2^16 with a
	// baby-step/giant-step search; it costs about 80% of all linting time. The same
	// range is refused at every finalize by policy/keys with a table built at
	// compile time (a lookup per key), before the signer is reached.
	"e_ecdsa_small_private_key": "costly (~80% of lint time); the same scalars up to 2^16 are refused at finalize by policy/keys (smallscalar.go)",
	// A list of eight compromised eMudhra intermediates: varmenne's own issuers are
	// checked against their certificates at start (Issuer.Check), so this can never
	// fire on a certificate varmenne makes.
	"e_cert_issued_by_compromised_emudhra_ca": "names foreign issuers; varmenne's issuers are checked at start",
	// Names are checked against the organisation's approved domains by policy/names;
	// an organisation may have names under a private TLD, and the tests use .example,
	// which the public-suffix list does not know.
	"e_dnsname_not_valid_tld": "private PKI: names are checked by policy/names against approved domains",
	// SOTE puts the organisation's long name from the THL register into OU (SOTE.md);
	// the BR prohibited OU for publicly trusted TLS certificates in 2022.
	"e_organizational_unit_name_prohibited": "SOTE subjects carry the register's long name in OU",
	// The BR want a locality or province beside O; the SOTE subject is C, O and OU as
	// the THL register has them, and the register carries no locality.
	"e_sub_cert_locality_name_must_appear": "SOTE subject is C, O, OU from the THL register, which has no locality",
	"e_sub_cert_province_must_appear":      "SOTE subject is C, O, OU from the THL register, which has no province",
	// SOTE server certificates live up to one year (SOTE.md), which the SOTE rules
	// set and which overrides the BR's shrinking schedule (ballot SC-081: 200 days
	// from March 2026, 100 from 2027, 47 from 2029). The 398-day lint still runs,
	// so no profile can go beyond what any TLS client accepts.
	"e_server_cert_valid_time_longer_than_200_days": "SOTE server certificates are valid 1 year by the SOTE rules",
	"e_server_cert_valid_time_longer_than_100_days": "SOTE server certificates are valid 1 year by the SOTE rules",
	"e_server_cert_valid_time_longer_than_47_days":  "SOTE server certificates are valid 1 year by the SOTE rules",
	// IP identifiers (RFC 8738) are certified only beside a DNS name and only inside
	// the networks an operator approved for the organisation (policy/names), and
	// validation connects to a non-public address only in the ranges the operator
	// allowed (--validation-allow): the health network's private addresses are what
	// a national private PKI may certify.
	"e_ext_san_contains_reserved_ip": "private PKI: IP addresses are checked by policy/names against the organisation's approved networks",
	// The OCSP responder is optional in SOTE (the CRL is what relying parties must
	// check); profiles without an OCSP URL are correct.
	"e_sub_cert_aia_does_not_contain_ocsp_url": "SOTE requires a CRL; OCSP is optional",
}

// Linter runs zlint on a certificate before the issuer key signs it. It is safe for
// concurrent use.
type Linter struct {
	// lints and config are the filtered registry's certificate lints and
	// configuration, read once: zlint.LintCertificateEx would list and sort every
	// lint's name for each certificate (0.1 ms) to size a result map Lint does not
	// need.
	lints  []*lint.CertificateLint
	config lint.Configuration
}

// NewLinter returns a linter that runs every lint zlint knows except those in ignore
// (lint name → why it does not apply). A name zlint does not know is an error, so a
// typo cannot silently leave a lint running or a renamed lint unnoticed.
func NewLinter(ignore map[string]string) (*Linter, error) {
	global := lint.GlobalRegistry()
	known := map[string]bool{}
	for _, n := range global.Names() {
		known[n] = true
	}
	names := slices.Sorted(maps.Keys(ignore))
	for _, n := range names {
		if !known[n] {
			return nil, fmt.Errorf("signer: ignored lint %q is not a zlint lint", n)
		}
	}
	opts := lint.FilterOptions{ExcludeNames: names}
	if len(names) == 0 {
		// An empty filter returns the global registry itself, which is what we want.
		opts = lint.FilterOptions{}
	}
	reg, err := global.Filter(opts)
	if err != nil {
		return nil, fmt.Errorf("signer: lint registry: %w", err)
	}
	return &Linter{lints: reg.CertificateLints().Lints(), config: reg.GetConfiguration()}, nil
}

// defaultLinter is the SOTE linter, built once: building a registry walks every lint.
var defaultLinter = sync.OnceValues(func() (*Linter, error) { return NewLinter(SOTEIgnoredLints) })

// DefaultLinter returns the linter for SOTE profiles (SOTEIgnoredLints).
func DefaultLinter() *Linter {
	l, err := defaultLinter()
	if err != nil {
		// The ignore list is a constant of this package; a bad entry is a bug.
		panic(err)
	}
	return l
}

// LintError lists the lints that refused a certificate.
type LintError struct {
	Findings []string // "lint_name: details", sorted
}

func (e *LintError) Error() string {
	return "certificate failed lint: " + strings.Join(e.Findings, "; ")
}

// Unwrap makes errors.Is(err, ErrLint) true.
func (e *LintError) Unwrap() error { return ErrLint }

// Lint parses der and runs the lints. It returns a *LintError when any lint reports
// an error or a fatal; warnings and notices do not stop an issuance.
func (l *Linter) Lint(der []byte) error {
	c, err := zx509.ParseCertificate(der)
	if err != nil {
		return &LintError{Findings: []string{"parse: " + err.Error()}}
	}
	// What zlint.LintCertificateEx runs, without its result set: every lint's
	// Execute, which recovers a lint's panic as Fatal.
	var failed []string
	for _, cl := range l.lints {
		r := cl.Execute(c, l.config)
		if r == nil || r.Status != lint.Error && r.Status != lint.Fatal {
			continue
		}
		finding := cl.Name
		if r.Details != "" {
			finding += ": " + r.Details
		}
		failed = append(failed, finding)
	}
	if len(failed) > 0 {
		slices.Sort(failed)
		return &LintError{Findings: failed}
	}
	return nil
}
