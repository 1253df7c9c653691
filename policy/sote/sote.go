// Package sote owns the eligibility rules of the SOTE system signature profiles
// (sote-system-signature and its test twin): who may hold a system signature
// certificate. It reads THL's register (policy/thl) and the certificates of
// conformity on file (the store); it never writes either.
//
// The rules, from the SOTE practice (SOTE.md):
//   - The certificate goes to the provider that administers the information system,
//     even when its operation is outsourced; a Kanta intermediary marked in the
//     register may apply in its own name. An account can only order in its own
//     organisation's name (its EAB key binds it), and that the ordered names lie in
//     the organisation's approved domains is the "names" plugin's check, which the
//     profile's chain runs too: this plugin does not repeat it, so both routes (own
//     domains, or an intermediary's own domains) pass here.
//   - A private provider needs an unexpired certificate of conformity of the
//     information system on file. An order does not name the system, so any
//     unexpired certificate of the organisation counts. An organisation whose sector
//     the register does not give is treated as private, and a private Kanta
//     intermediary needs one as well (its service is a system joined to Kanta).
package sote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/policy/thl"
	"github.com/varmenne/varmenne/store"
)

// PluginName is the name profiles list this plugin by.
const PluginName = "sote"

func init() { policy.Register(PluginName, NewPlugin) }

// ConformityStore is what the plugin reads of certificates of conformity;
// *store.SQL is one.
type ConformityStore interface {
	ListConformityCertificates(ctx context.Context, orgOID string) ([]store.ConformityCertificate, error)
}

// Plugin checks system-signature eligibility at newOrder and again at finalize. A
// refusal is unauthorized (403) with what would satisfy the rule.
type Plugin struct {
	reg  thl.Lookuper
	conf ConformityStore
	now  func() time.Time
}

var _ policy.Plugin = (*Plugin)(nil)

// NewPlugin is the plugin's policy.Factory. It takes no configuration; it needs the
// server's THL register (thl.UseRegister) and a store with certificates of
// conformity (env.Orgs), and guards only system signature profiles: on a server
// profile it refuses to be built rather than ask server certificates for conformity.
func NewPlugin(config json.RawMessage, env policy.Env) (policy.Plugin, error) {
	var c struct{}
	if err := policy.DecodeConfig(config, &c); err != nil {
		return nil, err
	}
	if env.Profile.Kind != policy.KindSystemSignature {
		return nil, fmt.Errorf("the sote plugin guards system signature profiles; profile %q is of kind %q", env.Profile.Name, env.Profile.Kind)
	}
	reg, err := thl.SharedRegister()
	if err != nil {
		return nil, err
	}
	conf, ok := env.Orgs.(ConformityStore)
	if !ok || conf == nil {
		return nil, errors.New("the sote plugin needs the store's certificates of conformity (policy.Env.Orgs)")
	}
	return PluginFor(reg, conf, env.Now), nil
}

// PluginFor makes the plugin; now nil is time.Now.
func PluginFor(reg thl.Lookuper, conf ConformityStore, now func() time.Time) *Plugin {
	if now == nil {
		now = time.Now
	}
	return &Plugin{reg: reg, conf: conf, now: now}
}

// Name is PluginName.
func (p *Plugin) Name() string { return PluginName }

// CheckOrder refuses an order the organisation may not hold a system signature
// certificate for.
func (p *Plugin) CheckOrder(ctx context.Context, r *policy.Request) error { return p.check(ctx, r) }

// CheckCSR checks the same at finalize: a certificate of conformity may have expired
// since the order.
func (p *Plugin) CheckCSR(ctx context.Context, r *policy.Request) error { return p.check(ctx, r) }

func (p *Plugin) check(ctx context.Context, r *policy.Request) error {
	now := p.now()
	e, err := thl.Check(ctx, p.reg, r.Org, now)
	if err != nil {
		return err
	}
	if e.Sector == thl.SectorPublic {
		return nil
	}
	certs, err := p.conf.ListConformityCertificates(ctx, r.Org.OID)
	if err != nil {
		return fmt.Errorf("sote: certificates of conformity of %s: %w", r.Org.OID, err)
	}
	var latest *store.ConformityCertificate
	for i, c := range certs {
		if c.Expires.After(now) {
			return nil
		}
		if latest == nil || c.Expires.After(latest.Expires) {
			latest = &certs[i]
		}
	}
	who := "is a private provider"
	switch {
	case e.Sector == thl.SectorUnknown:
		who = "has no sector in THL's SOTE organisation register, so it is treated as a private provider,"
	case e.Intermediary:
		who = "is a private provider (a Kanta intermediary)"
	}
	detail := fmt.Sprintf("organisation %s (%s) %s and has no valid certificate of conformity on file", r.Org.OID, e.LongName, who)
	if latest != nil {
		detail += fmt.Sprintf(" (the latest, for %s, expired on %s)", latest.System, latest.Expires.UTC().Format(time.DateOnly))
	}
	detail += fmt.Sprintf("; an operator adds one with varmenne org conformity add %s --system NAME --expires YYYY-MM-DD", r.Org.OID)
	return acme.Errorf(acme.Unauthorized, "%s", detail)
}
