// Package validity is the policy plugin for a certificate's validity period: the
// profile's maximum, which may not exceed the SOTE maximum of its kind, and the
// notBefore and notAfter an order may ask for. It judges dates only; the signer
// computes the final period and refuses anything outside the same limits.
package validity

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy"
)

// PluginName is the name profiles list this plugin by.
const PluginName = "validity"

const day = 24 * time.Hour

// SOTE maxima by profile kind (SOTE.md: server certificates 1 year, system
// signature certificates 2 years; test certificates the same as their production
// kind).
var soteMaximum = map[string]time.Duration{
	policy.KindServer:          365 * day,
	policy.KindSystemSignature: 730 * day,
}

// MaxStartDelayLimit is the furthest in the future a profile may let notBefore lie.
const MaxStartDelayLimit = 90 * day

// SOTEMaximum is the longest validity SOTE allows a certificate of the kind; false
// for an unknown kind.
func SOTEMaximum(kind string) (time.Duration, bool) {
	d, ok := soteMaximum[kind]
	return d, ok
}

func init() { policy.Register(PluginName, NewPlugin) }

// Plugin checks the order's notBefore and notAfter against the profile.
type Plugin struct {
	profile    string
	max        time.Duration
	backdate   time.Duration
	startDelay time.Duration
	now        func() time.Time
}

// NewPlugin is the plugin's policy.Factory. It has no configuration of its own: it
// reads the profile's maximum validity, backdate and start delay, and refuses a
// profile whose maximum exceeds the SOTE maximum of its kind, so such a
// configuration stops the start.
func NewPlugin(config json.RawMessage, env policy.Env) (policy.Plugin, error) {
	var none struct{}
	if err := policy.DecodeConfig(config, &none); err != nil {
		return nil, err
	}
	pi := env.Profile
	limit, ok := SOTEMaximum(pi.Kind)
	switch {
	case !ok:
		return nil, fmt.Errorf("profile %q has kind %q; use %q or %q", pi.Name, pi.Kind, policy.KindServer, policy.KindSystemSignature)
	case pi.MaxValidity <= 0:
		return nil, fmt.Errorf("profile %q has no maximum validity", pi.Name)
	case pi.MaxValidity > limit:
		return nil, fmt.Errorf("profile %q allows %s, more than the SOTE maximum of %d days for %s certificates", pi.Name, days(pi.MaxValidity), int(limit/day), pi.Kind)
	case pi.Backdate < 0 || pi.Backdate > time.Hour:
		return nil, fmt.Errorf("profile %q backdates by %s; use 0 to 1h", pi.Name, pi.Backdate)
	case pi.MaxStartDelay < 0 || pi.MaxStartDelay > MaxStartDelayLimit:
		return nil, fmt.Errorf("profile %q lets notBefore lie %s ahead; use 0 to %d days", pi.Name, pi.MaxStartDelay, int(MaxStartDelayLimit/day))
	}
	return &Plugin{profile: pi.Name, max: pi.MaxValidity, backdate: pi.Backdate, startDelay: pi.MaxStartDelay, now: env.Now}, nil
}

// Name is PluginName.
func (p *Plugin) Name() string { return PluginName }

// CheckOrder honours a notBefore from now up to the profile's start delay and a
// notAfter the profile's maximum allows.
//
// A certificate starts at the requested notBefore, or at its issuance less the
// backdate margin when none was asked for or when the requested time has passed by
// finalize. The signer never backdates further, so a notBefore in the past is
// refused. The latest notAfter leaves room for the backdate whichever start the
// certificate gets: max(notBefore, now) + maximum - backdate - 1 s.
func (p *Plugin) CheckOrder(ctx context.Context, r *policy.Request) error {
	now := p.now().UTC().Truncate(time.Second)
	start := now
	if nb := r.NotBefore; !nb.IsZero() {
		switch {
		case p.startDelay == 0:
			return acme.Errorf(acme.Malformed, "profile %s does not accept notBefore: a certificate starts when it is issued; leave notBefore out", p.profile)
		case nb.Before(now.Add(-p.backdate)):
			return acme.Errorf(acme.Malformed, "notBefore %s is in the past, and this CA does not backdate certificates; leave notBefore out or give a time from now on", stamp(nb))
		case nb.After(now.Add(p.startDelay)):
			return acme.Errorf(acme.Malformed, "notBefore %s is more than %s ahead; profile %s starts certificates at most %s after the order (%s)", stamp(nb), days(p.startDelay), p.profile, days(p.startDelay), stamp(now.Add(p.startDelay)))
		}
		if nb.After(now) {
			start = nb.UTC().Truncate(time.Second)
		}
	}
	na := r.NotAfter
	if na.IsZero() {
		return nil
	}
	latest := start.Add(p.max - p.backdate - time.Second)
	switch {
	case !na.After(now):
		return acme.Errorf(acme.Malformed, "notAfter %s is in the past", stamp(na))
	case !r.NotBefore.IsZero() && !na.After(r.NotBefore):
		return acme.Errorf(acme.Malformed, "notAfter %s is not after notBefore %s", stamp(na), stamp(r.NotBefore))
	case na.After(latest):
		return acme.Errorf(acme.Malformed, "notAfter %s gives a validity over the maximum of %s of profile %s; ask for %s or earlier", stamp(na), days(p.max), p.profile, stamp(latest))
	}
	return nil
}

// CheckCSR refuses to finalize an order whose requested notAfter has passed.
func (p *Plugin) CheckCSR(ctx context.Context, r *policy.Request) error {
	if na := r.NotAfter; !na.IsZero() && !na.After(p.now()) {
		return acme.Errorf(acme.Malformed, "the order's notAfter %s has passed; create a new order", stamp(na))
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// days shows a duration in days when it is whole days.
func days(d time.Duration) string {
	if d%day == 0 {
		n := int(d / day)
		if n == 1 {
			return "1 day"
		}
		return fmt.Sprintf("%d days", n)
	}
	return d.String()
}
