// Package policy is the SOTE rule engine's frame: the Plugin interface, a registry of
// plugins by name (as database/sql registers drivers) and the fail-closed Chain that runs
// the plugins a profile names. The rules themselves live in one package per plugin under
// policy/; this package decides nothing on its own except "no answer means no".
package policy

import (
	"context"
	"crypto/x509"
	"net/netip"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/store"
)

// Request is what a plugin judges. At newOrder CSR is nil; at finalize it is set and
// the identifiers are the order's.
type Request struct {
	Profile     string              // the order's profile, e.g. "sote-server"
	Org         *store.Organisation // the account's organisation (bound by its EAB key)
	AccountID   string
	EABKID      string
	Identifiers []acme.Identifier
	NotBefore   time.Time // zero: not requested
	NotAfter    time.Time // zero: not requested
	CSR         *x509.CertificateRequest

	// AllowedDomains are the domains the account may name: its EAB key's list when
	// the key was limited to some, else the organisation's approved domains.
	AllowedDomains []string
	// AllowedNetworks are the networks whose addresses the account may name in ip
	// identifiers (RFC 8738): the organisation's approved networks, narrowed to its
	// EAB key's when the key was limited to some.
	AllowedNetworks []netip.Prefix
	// KeyHash is, at finalize, the lower-case hex SHA-256 of the CSR's
	// SubjectPublicKeyInfo DER (signer.KeyHash); empty at newOrder.
	KeyHash string
}

// Plugin is one rule set. Each method returns nil to allow, or an *acme.Error whose
// kind and detail tell the client which rule refused and what would satisfy it (one
// subproblem per refused identifier). Any other error, a panic or a timeout refuses.
type Plugin interface {
	Name() string
	CheckOrder(ctx context.Context, r *Request) error
	CheckCSR(ctx context.Context, r *Request) error
}
