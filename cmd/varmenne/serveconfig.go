package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/varmenne/varmenne/acme/authority"
	"github.com/varmenne/varmenne/acme/validate"
	"github.com/varmenne/varmenne/acme/validate/dnssec"
	"github.com/varmenne/varmenne/profile"
	"github.com/varmenne/varmenne/signer/ceremony"
	"github.com/varmenne/varmenne/signer/filekey"
)

// defaultCAAIdentity is the CAA issuer domain name used when --caa-identity is not
// given; production sets the CA's real domain.
const defaultCAAIdentity = "varmenne.example"

// serveConfig is serve's configuration: every flag (each also VARMENNE_<FLAG>) and,
// once Validate has passed, what the flags mean to the packages serve wires.
type serveConfig struct {
	data           string
	db             *dbFlags // --db, --eab-secret-file (db.go)
	listen         string
	baseURL        string // "": https://<the address listened on>
	publicURL      string
	opsListen      string
	configFile     string
	http01Port     int
	tlsALPNPort    int
	dnsResolver    string
	allowNets      stringList
	devKeyType     string
	tos, website   string
	logFormat      string
	validationTTL  time.Duration
	caaIdentities  stringList
	caaRecheck     time.Duration
	authzReuse     time.Duration
	allowWildcards bool
	chaosNonces    float64 // tests only (issue 10)
	production     bool    // --production (production.go)
	productionDB   bool    // the database has served in production (enterMode)
	altChains      stringList
	weakKeys       stringList // --weak-keys (weakkeys.go)
	dnssecAnchors  string     // --dnssec-anchors
	dnssecInsecure stringList // --dnssec-insecure

	hsm        func() ceremony.HSM   // --pkcs11-* (keys.go)
	revocation *revocationFlags      // --public-listen, --crl-validity (crl.go)
	register   *registerConfig       // --register-* (orgregister.go)
	rateLimits *authority.RateLimits // --limit-* (ratelimits.go)
	admin      *adminConfig          // --admin-listen, --eab-*-lifetime, --dual-control, --console-session-* (operators.go)
	notice     *noticeFlags          // --smtp-* (notice.go)
	alerts     *alertFlags           // --alert-*, --audit-anchor* (alerts.go)

	// Set by Validate.
	keys       ceremony.HSM
	validation validate.Config
	authority  authority.Config // AccountURIPrefix and Audit are wired later
	profiles   *profile.Set
	chains     []alternateChain
}

// parseServeConfig is serve's flags and environment as a validated configuration.
func parseServeConfig(args []string, stderr io.Writer) (*serveConfig, error) {
	c := &serveConfig{}
	fs := newFlags("serve", stderr)
	c.addFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	c.admin.noteExplicit(fs)
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return c, nil
}

func (c *serveConfig) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.data, "data", "varmenne-data", "data directory: database, development keys, roots.pem")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:14000", "address of the ACME HTTPS listener")
	fs.StringVar(&c.baseURL, "base-url", "", "URL clients reach the ACME listener at (default https://<listen>)")
	fs.StringVar(&c.publicURL, "public-url", "http://127.0.0.1:14080", "base of the plain-HTTP URLs put in certificates (CRL distribution point, OCSP, issuer AIA)")
	fs.IntVar(&c.http01Port, "http01-port", 80, "port http-01 validation connects to (tests use a high port)")
	fs.StringVar(&c.dnsResolver, "dns-resolver", "", "IP:PORT of the DNS server validation asks, an address rather than a name (default: the system resolver)")
	fs.Var(&c.allowNets, "validation-allow", "non-public CIDR validation may connect to, e.g. 10.20.0.0/16 for an internal network (repeatable)")
	fs.StringVar(&c.devKeyType, "dev-key-type", "ecdsa-p384", "key type of the development root and issuers made on first start: ecdsa-p256, ecdsa-p384, rsa-4096")
	fs.StringVar(&c.tos, "terms-of-service", "https://varmenne.example/terms", "terms-of-service URL in the directory")
	fs.StringVar(&c.website, "website", "https://varmenne.example/", "website URL in the directory")
	fs.StringVar(&c.logFormat, "log-format", "", "json or text (default: text on a terminal, json otherwise)")
	fs.DurationVar(&c.validationTTL, "validation-timeout", 15*time.Second, "deadline of one validation attempt")
	c.db = dbFlag(fs)
	fs.StringVar(&c.opsListen, "ops-listen", "127.0.0.1:14090", "address of the plain-HTTP operator listener: /healthz, /readyz (empty: none)")
	fs.IntVar(&c.tlsALPNPort, "tlsalpn01-port", 443, "port tls-alpn-01 validation connects to (tests use a high port)")
	fs.Var(&c.caaIdentities, "caa-identity", "domain name CAA issue/issuewild records name this CA by (repeatable; default "+defaultCAAIdentity+")")
	fs.DurationVar(&c.caaRecheck, "caa-recheck-after", authority.MaxCAARecheckAfter, "at finalize, check CAA again for names validated longer ago than this (at most 8h)")
	fs.DurationVar(&c.authzReuse, "authz-reuse", 7*24*time.Hour, "reuse an account's valid authorization validated within this window (at most 720h; 0: never)")
	fs.BoolVar(&c.allowWildcards, "allow-wildcards", false, "allow wildcard names (*.example.fi) in every server profile, proven with dns-01 only")
	fs.Float64Var(&c.chaosNonces, "chaos-reject-nonces", 0, "tests only: share 0..1 of valid nonces refused with badNonce, evenly spread (0.1: every tenth), to exercise clients' retries (never in production)")
	fs.Var(&c.altChains, "alternate-chain", "ISSUER=FILE: PEM chain served as an alternate (Link rel=\"alternate\") after the leaf of ISSUER's (production, test) certificates, beginning with the issuer's subject and key, e.g. cross-signed (repeatable)")
	fs.StringVar(&c.dnssecAnchors, "dnssec-anchors", "", "FILE of DNSSEC trust anchors (DS or DNSKEY records in zone-file syntax, like /usr/share/dns/root.ds) every validation and CAA answer is checked against (default: the root zone's KSK-2017 and KSK-2024)")
	fs.Var(&c.dnssecInsecure, "dnssec-insecure", "ZONE whose answers are taken without DNSSEC signatures: an internal split-horizon zone that has none (repeatable)")
	fs.Var(&c.weakKeys, "weak-keys", "FILE: Debian's weak RSA keys (CVE-2008-0166) in openssl-blacklist format, refused as account and certificate keys (repeatable: one file per key size)")
	fs.BoolVar(&c.production, "production", false, "run in production mode with file keys too: THL's register required, the SOTE plugins required, dual control (issuer keys in an HSM always are)")
	fs.StringVar(&c.configFile, "config", "", "JSON file of certificate profiles and their policy plugins (default: the four built-in SOTE profiles)")
	c.hsm = hsmFlags(fs, "production", "test")
	c.revocation = addRevocationFlags(fs)
	c.register = addRegisterFlags(fs)
	c.rateLimits = addRateLimitFlags(fs)
	c.admin = addAdminFlags(fs)
	c.notice = addNoticeFlags(fs)
	c.alerts = addAlertFlags(fs)
}

// Validate checks every setting before anything is made and says which flag is
// wrong and why. It reads the files the flags name (--config, --alternate-chain), so
// a missing or bad file stops the start too, and keeps what it read.
func (c *serveConfig) Validate() error {
	if err := c.admin.validate(); err != nil {
		return err
	}
	if err := c.notice.validate(); err != nil {
		return err
	}
	if err := c.alerts.validate(); err != nil {
		return err
	}
	if c.logFormat != "" && c.logFormat != "json" && c.logFormat != "text" {
		return fmt.Errorf("--log-format %q: use json or text", c.logFormat)
	}
	if !(c.chaosNonces >= 0 && c.chaosNonces <= 1) {
		return fmt.Errorf("--chaos-reject-nonces %v must be between 0 and 1, e.g. 0.1 to refuse 10%% of nonces (tests only)", c.chaosNonces)
	}
	if err := c.validateValidation(); err != nil {
		return err
	}
	chains, err := readAlternateChains(c.altChains) // altchains.go
	if err != nil {
		return err
	}
	c.chains = chains
	if c.devKeyType != "" && !slices.Contains(filekey.KeyTypes, c.devKeyType) {
		return fmt.Errorf("--dev-key-type %q: use one of %s", c.devKeyType, strings.Join(filekey.KeyTypes, ", "))
	}
	c.keys = c.hsm()
	// Two people activate the issuer keys: serve takes two holders' shares, never
	// the PIN whole (signer/ceremony, shares.go).
	c.keys.SharesOnly = true
	if c.keys.Enabled() {
		switch {
		case c.keys.Token == "" && c.keys.Slot < 0:
			return errors.New("--pkcs11-module needs --pkcs11-token LABEL (or --pkcs11-slot N)")
		case c.keys.Sessions < 1:
			return fmt.Errorf("--pkcs11-sessions %d: give 1 or more", c.keys.Sessions)
		}
	}
	if c.profiles, err = loadProfiles(c.configFile, c.allowWildcards); err != nil { // profiles.go
		return err
	}
	if c.register.source != "" {
		withRegisterPlugins(c.profiles) // orgregister.go
	}
	if err := c.checkProduction(); err != nil { // production.go
		return err
	}
	return c.validateAuthority()
}

// validateValidation checks the settings of domain validation and keeps them as the
// validator's configuration.
func (c *serveConfig) validateValidation() error {
	var nets []netip.Prefix
	for _, s := range c.allowNets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("--validation-allow %q is not a CIDR such as 10.20.0.0/16", s)
		}
		nets = append(nets, p.Masked())
	}
	if c.dnsResolver != "" {
		// An address, not a name: the validator would need a resolver to find it.
		if _, err := netip.ParseAddrPort(c.dnsResolver); err != nil {
			return fmt.Errorf("--dns-resolver %q must be IP:PORT, e.g. 127.0.0.1:53", c.dnsResolver)
		}
	}
	for flag, port := range map[string]int{"--http01-port": c.http01Port, "--tlsalpn01-port": c.tlsALPNPort} {
		if port < 1 || port > 65535 {
			return fmt.Errorf("%s %d is not a TCP port; give 1 to 65535", flag, port)
		}
	}
	if c.validationTTL < 0 {
		return fmt.Errorf("--validation-timeout %s is negative; give a duration such as 15s", c.validationTTL)
	}
	ids := c.caaIdentities
	if len(ids) == 0 {
		ids = stringList{defaultCAAIdentity}
	}
	c.validation = validate.Config{Resolver: c.dnsResolver, HTTPPort: c.http01Port, AllowedNets: nets, Timeout: c.validationTTL,
		TLSALPNPort: c.tlsALPNPort, CAAIdentities: ids, InsecureZones: c.dnssecInsecure}
	if c.dnssecAnchors != "" {
		b, err := os.ReadFile(c.dnssecAnchors)
		if err != nil {
			return fmt.Errorf("--dnssec-anchors: %w", err)
		}
		if _, err := dnssec.ParseAnchors(bytes.NewReader(b), c.dnssecAnchors); err != nil {
			return fmt.Errorf("--dnssec-anchors: %w", err)
		}
		c.validation.TrustAnchors = string(b)
	}
	for _, z := range c.dnssecInsecure {
		if _, ok := dns.IsDomainName(z); !ok {
			return fmt.Errorf("--dnssec-insecure %q is not a zone name such as sote.internal", z)
		}
	}
	// The validator judges what is left: each CAA identity is a domain name, kept as
	// it compares them (lower case, no final dot).
	v, err := validate.New(c.validation)
	if err != nil {
		return fmt.Errorf("--caa-identity %s: %s", strings.Join(ids, ","), strings.TrimPrefix(err.Error(), "validate: "))
	}
	c.validation.CAAIdentities = v.CAAIdentities()
	return nil
}

// validateAuthority checks the settings of the ACME rules and keeps them as the
// authority's configuration.
func (c *serveConfig) validateAuthority() error {
	switch {
	case c.authzReuse < 0 || c.authzReuse > authority.MaxAuthzReuse:
		return fmt.Errorf("--authz-reuse %s is outside 0 (never) to %s", c.authzReuse, authority.MaxAuthzReuse)
	case c.caaRecheck < 0 || c.caaRecheck > authority.MaxCAARecheckAfter:
		return fmt.Errorf("--caa-recheck-after %s is outside 0 (always) to %s: a CAA answer may not be relied on for longer", c.caaRecheck, authority.MaxCAARecheckAfter)
	}
	weak, err := readWeakKeys(c.weakKeys) // weakkeys.go
	if err != nil {
		return err
	}
	a := authority.Config{ValidationTimeout: c.validationTTL, AuthzReuse: c.authzReuse, CAARecheckAfter: c.caaRecheck,
		DefaultProfile: c.profiles.Default, RateLimits: *c.rateLimits, WeakKeys: weak}
	if c.authzReuse == 0 {
		a.AuthzReuse = -1 // the flag's 0 means never; the Config's 0 means the default
	}
	if c.caaRecheck == 0 {
		a.CAARecheckAfter = time.Nanosecond // always recheck
	}
	if err := a.Validate(); err != nil {
		return fmt.Errorf("--authz-reuse / --caa-recheck-after / --limit-*: %w", err)
	}
	c.authority = a // Production is set once the database has said its mode (enterMode)
	return nil
}

// storageName and keysName say what serve runs on, for its first line and the audit
// log.
func (c *serveConfig) storageName() string {
	if isPostgres(c.db.url) {
		return "PostgreSQL"
	}
	return "SQLite"
}

func (c *serveConfig) keysName() string {
	if c.keys.Enabled() {
		return "issuer keys in the HSM"
	}
	return "development PKI of file keys"
}
