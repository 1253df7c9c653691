// Package validate proves that an ACME client controls an identifier. It owns the
// outbound side of validation and its defences against server-side request forgery:
// names are resolved only through the configured resolver, only addresses that were
// checked are dialled, and redirects, bytes read and time are capped.
//
// It keeps no state and touches no database; callers get nil or an *acme.Error whose
// detail the person at the ACME client can act on, never HTTP or DNS library types.
package validate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/validate/dnssec"
)

// Config says where validation may look and how long it may take. The zero value of
// each field means its default.
type Config struct {
	// Resolver is the "ip:port" of the DNS server used for every lookup; "" means the
	// system resolver.
	Resolver string
	// HTTPPort is the port of http-01 fetches and of http redirects (default 80).
	HTTPPort int
	// HTTPSPort is the only port an https redirect may go to (default 443).
	HTTPSPort int
	// AllowedNets are non-public ranges an operator explicitly allows: SOTE services
	// often sit in internal networks.
	AllowedNets []netip.Prefix
	// Timeout bounds one whole validation attempt, DNS lookups included (default 10s).
	Timeout time.Duration
	// MaxRedirects is the most redirects one attempt follows (default 10).
	MaxRedirects int
	// TLSALPNPort is the port tls-alpn-01 connects to (default 443).
	TLSALPNPort int
	// CAAIdentities are the issuer domain names (RFC 8659) that CAA "issue" and
	// "issuewild" properties name this CA by. With none, only names without CAA
	// records pass the CAA check.
	CAAIdentities []string
	// MaxConcurrent bounds the validations (http-01, dns-01, tls-alpn-01, CAA) this
	// process runs at once (default 64); one that finds no slot within its
	// deadline fails with rateLimited.
	MaxConcurrent int
	// TrustAnchors are the DNSSEC trust anchors every answer is checked against, DS
	// or DNSKEY records in zone-file syntax; "" means the root zone's keys
	// (dnssec.RootAnchors). DNSSEC validation is always on: an answer from a signed
	// zone must verify, and an unsigned one must come from a provably unsigned zone.
	TrustAnchors string
	// InsecureZones are zones whose answers are taken without signatures: an
	// internal split-horizon zone the public DNS tree does not vouch for.
	InsecureZones []string
}

// Defaults of Config.
const (
	DefaultHTTPPort      = 80
	DefaultHTTPSPort     = 443
	DefaultTimeout       = 10 * time.Second
	DefaultMaxRedirects  = 10
	DefaultTLSALPNPort   = 443
	DefaultMaxConcurrent = 64
)

// userAgent names us to the servers we fetch from, so their operators can tell
// validation requests apart in their logs.
const userAgent = "varmenne-validator"

// Validator runs validations; it is safe for concurrent use.
type Validator struct {
	cfg       Config
	transport *http.Transport
	slots     chan struct{} // one per validation running, up to MaxConcurrent
	// dial opens the TCP connection to an already checked address; tests replace it
	// to see every address dialled.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// dnsServers are the "ip:port" servers dns-01 and CAA questions go to.
	dnsServers []string
	// dnssec checks every answer.
	dnssec *dnssec.Checker
}

// New checks cfg, fills in defaults and returns a Validator.
func New(cfg Config) (*Validator, error) {
	if cfg.HTTPPort == 0 {
		cfg.HTTPPort = DefaultHTTPPort
	}
	if cfg.HTTPSPort == 0 {
		cfg.HTTPSPort = DefaultHTTPSPort
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxRedirects == 0 {
		cfg.MaxRedirects = DefaultMaxRedirects
	}
	if cfg.TLSALPNPort == 0 {
		cfg.TLSALPNPort = DefaultTLSALPNPort
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	switch {
	case cfg.HTTPPort < 1 || cfg.HTTPPort > 65535:
		return nil, fmt.Errorf("validate: HTTPPort %d is not a TCP port", cfg.HTTPPort)
	case cfg.HTTPSPort < 1 || cfg.HTTPSPort > 65535:
		return nil, fmt.Errorf("validate: HTTPSPort %d is not a TCP port", cfg.HTTPSPort)
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("validate: Timeout %s is negative", cfg.Timeout)
	case cfg.MaxRedirects < 0:
		return nil, fmt.Errorf("validate: MaxRedirects %d is negative", cfg.MaxRedirects)
	case cfg.TLSALPNPort < 1 || cfg.TLSALPNPort > 65535:
		return nil, fmt.Errorf("validate: TLSALPNPort %d is not a TCP port", cfg.TLSALPNPort)
	}
	ids := make([]string, 0, len(cfg.CAAIdentities))
	for _, id := range cfg.CAAIdentities {
		norm := strings.ToLower(strings.TrimSuffix(id, "."))
		if !validHostname(norm) {
			return nil, fmt.Errorf("validate: CAA identity %q is not a domain name such as ca.example.fi", id)
		}
		ids = append(ids, norm)
	}
	cfg.CAAIdentities = ids

	nets := make([]netip.Prefix, 0, len(cfg.AllowedNets))
	for _, p := range cfg.AllowedNets {
		if !p.IsValid() {
			return nil, errors.New("validate: AllowedNets holds an invalid prefix")
		}
		// Addresses are compared unmapped, so ::ffff:10.0.0.0/104 must mean 10.0.0.0/8.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		nets = append(nets, p.Masked())
	}
	cfg.AllowedNets = nets

	// Every name, for http-01 and tls-alpn-01 as for dns-01 and CAA, is asked of
	// these servers by the validator's own DNS client: never /etc/hosts, never a
	// cache or search list of the system's.
	v := &Validator{cfg: cfg, dnsServers: systemDNSServers(), slots: make(chan struct{}, cfg.MaxConcurrent)}
	if cfg.Resolver != "" {
		// An address, not a name: resolving the resolver would need the system resolver.
		server, err := netip.ParseAddrPort(cfg.Resolver)
		if err != nil {
			return nil, fmt.Errorf("validate: Resolver %q must be an IP address and port such as 127.0.0.1:53", cfg.Resolver)
		}
		v.dnsServers = []string{server.String()}
	}

	var anchors []dns.RR
	if cfg.TrustAnchors != "" {
		var err error
		if anchors, err = dnssec.ParseAnchors(strings.NewReader(cfg.TrustAnchors), "the trust anchors"); err != nil {
			return nil, fmt.Errorf("validate: %w", err)
		}
	}
	sec, err := dnssec.New(dnssec.Config{Anchors: anchors, Insecure: cfg.InsecureZones}, v.askDNSSEC)
	if err != nil {
		return nil, fmt.Errorf("validate: %s", strings.TrimPrefix(err.Error(), "dnssec: "))
	}
	v.dnssec = sec

	var d net.Dialer
	v.dial = d.DialContext
	v.transport = &http.Transport{
		Proxy:       nil, // a proxy would resolve and connect on our behalf, unchecked
		DialContext: v.dialPinned,
		// Certificates of redirect targets are not verified, as other CAs do for
		// http-01: control is proven by the content, not by the TLS server.
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true},
		// One connection per hop, closed with its body: no pooled connection can
		// outlive the attempt or carry a request to an address checked for another name.
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 16 << 10,
	}
	return v, nil
}

// KeyAuthorization is the content an http-01 response must hold (RFC 8555 section 8.1):
// the token, a dot and the base64url SHA-256 thumbprint of the account key.
func KeyAuthorization(token, thumbprint string) string {
	return token + "." + thumbprint
}

// slot waits for one of the MaxConcurrent validation slots until ctx ends; the
// returned function gives it back. Past the deadline the answer is rateLimited,
// which says what happened and what to do.
func (v *Validator) slot(ctx context.Context) (func(), error) {
	select {
	case v.slots <- struct{}{}:
		return func() { <-v.slots }, nil
	default:
	}
	select {
	case v.slots <- struct{}{}:
		return func() { <-v.slots }, nil
	case <-ctx.Done():
		return nil, acme.Errorf(acme.RateLimited, "the CA is running its maximum of %d validations at once and none ended in time; retry in a minute", v.cfg.MaxConcurrent)
	}
}
