package main

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/varmenne/varmenne/acme/authority"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/profile"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/store"

	// The built-in policy plugins register themselves by name.
	_ "github.com/varmenne/varmenne/policy/keys"
	_ "github.com/varmenne/varmenne/policy/names"
	_ "github.com/varmenne/varmenne/policy/validity"
	_ "github.com/varmenne/varmenne/policy/webhook"
)

// loadProfiles is the built-in profiles, or those of the configuration file over
// them (--config); allowWildcards (--allow-wildcards) allows wildcards in every
// server profile.
func loadProfiles(configFile string, allowWildcards bool) (*profile.Set, error) {
	set := profile.BuiltinSet()
	if configFile != "" {
		var err error
		if set, err = profile.Load(configFile); err != nil {
			return nil, err
		}
	}
	if allowWildcards {
		for n, p := range set.Profiles {
			if p.Kind == policy.KindServer {
				p.AllowWildcards = true
				set.Profiles[n] = p
			}
		}
	}
	return set, set.Validate()
}

// buildProfiles wires each profile to its hierarchy's issuer generations (test
// profiles to the test hierarchy, the others to production), issuing with the
// generation active names (signer.Rollover), and to its plugin chain. An unknown
// plugin, a configuration a plugin refuses, or a profile whose longest
// certificate would outlast the active generation stops the start. The
// rollovers are returned too, so that a generation made active later takes over
// (watchIssuers).
func buildProfiles(set *profile.Set, pki *filekey.DevPKI, active map[string]string, public string, st *store.SQL, aud signer.Auditor, log *slog.Logger) ([]authority.Profile, []*rollover, error) {
	outbound := &http.Client{Timeout: policy.DefaultTimeout}
	var out []authority.Profile
	var rollovers []*rollover
	now := time.Now()
	for _, name := range set.Names() {
		p := set.Profiles[name]
		sp, err := p.Signer(name)
		if err != nil {
			return nil, nil, fmt.Errorf("profile %q: %w", name, err)
		}
		var cas []*signer.CA
		for _, g := range pki.Generations {
			if g.Hierarchy != p.Issuer {
				continue
			}
			gsp := sp
			gsp.CRLURL = crlURL(public, g.Issuer.Name)
			gsp.IssuerURL = public + "/issuer/" + g.Issuer.Name + ".cer"
			gsp.OCSPURL = ocspURL(public, g.Issuer.Name)
			cas = append(cas, signer.New(g.Issuer, gsp, st, time.Now, rand.Reader).WithAuditor(aud)) // every signature audit-logged
		}
		if len(cas) == 0 {
			return nil, nil, fmt.Errorf("profile %q: no %q issuer is set up", name, p.Issuer)
		}
		chain, err := policy.NewChain(p.Plugins, policy.Env{
			Profile: p.Info(name), Now: time.Now, Log: log,
			HTTPClient: outbound, Keys: st, Orgs: st,
		})
		if err != nil {
			return nil, nil, err
		}
		// A profile whose longest certificate would outlast its active issuer
		// stops the start: its orders would be refused later.
		ro, err := signer.NewRollover(p.Issuer, cas, active[p.Issuer], now)
		if err != nil {
			return nil, nil, err
		}
		rollovers = append(rollovers, &rollover{profile: name, hierarchy: p.Issuer, Rollover: ro})
		out = append(out, authority.Profile{Name: name, Description: p.Description, Test: p.Test, CA: ro, Policy: chain, PersistReuse: p.PersistReuseFor()})
		log.Info("profile offered", "profile", name, "issuer", ro.Issuer().Name, "max_validity_days", p.MaxValidityDays, "policy_oids", p.PolicyOIDs, "plugins", chain.Plugins())
	}
	return out, rollovers, nil
}
