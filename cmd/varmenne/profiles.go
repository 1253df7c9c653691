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

// buildProfiles wires each profile to a signer.CA on its issuer (test profiles on the
// test issuer, the others on the production issuer) and to its plugin chain. An
// unknown plugin or a configuration a plugin refuses stops the start.
func buildProfiles(set *profile.Set, pki *filekey.DevPKI, public string, st *store.SQL, aud signer.Auditor, log *slog.Logger) ([]authority.Profile, error) {
	issuers := map[string]*signer.Issuer{}
	for _, iss := range []*signer.Issuer{pki.Production, pki.Test} {
		if iss != nil {
			issuers[iss.Name] = iss
		}
	}
	outbound := &http.Client{Timeout: policy.DefaultTimeout}
	var out []authority.Profile
	for _, name := range set.Names() {
		p := set.Profiles[name]
		iss := issuers[p.Issuer]
		if iss == nil {
			return nil, fmt.Errorf("profile %q: no %q issuer is set up", name, p.Issuer)
		}
		sp, err := p.Signer(name)
		if err != nil {
			return nil, fmt.Errorf("profile %q: %w", name, err)
		}
		sp.CRLURL = crlURL(public, iss.Name)
		sp.IssuerURL = public + "/issuer/" + iss.Name + ".cer"
		sp.OCSPURL = ocspURL(public, iss.Name)
		chain, err := policy.NewChain(p.Plugins, policy.Env{
			Profile: p.Info(name), Now: time.Now, Log: log,
			HTTPClient: outbound, Keys: st, Orgs: st,
		})
		if err != nil {
			return nil, err
		}
		ca := signer.New(iss, sp, st, time.Now, rand.Reader).WithAuditor(aud) // every signature audit-logged
		// A profile whose longest certificate would outlast its issuer stops the
		// start: its orders would be refused later.
		if err := ca.CheckIssuerLife(time.Now()); err != nil {
			return nil, err
		}
		out = append(out, authority.Profile{Name: name, Description: p.Description, Test: p.Test, CA: ca, Policy: chain})
		log.Info("profile offered", "profile", name, "issuer", iss.Name, "max_validity_days", p.MaxValidityDays, "policy_oids", p.PolicyOIDs, "plugins", chain.Plugins())
	}
	return out, nil
}
