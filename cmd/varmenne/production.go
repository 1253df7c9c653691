package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/policy/sote"
	"github.com/varmenne/varmenne/store"
)

// The mode a server runs in. Production is entered by itself when the issuer keys
// are in an HSM, by --production, or on a database a production server ever ran on
// (store.MarkProduction); development is file keys and none of those. In production
// the SOTE rules are not optional, and this file is their one home at the start:
//
//   - THL's register is required (--register-source): the standing check
//     (acme/authority/standing.go) then asks it for every profile at every step,
//     and an organisation no register import listed is refused there, at an EAB
//     request and at "org add" (thl.RecordRefusal, admin);
//   - every system signature profile runs the sote plugin (the provider and
//     conformity rules of the SOTE practice); a --config chain that leaves it out
//     is refused;
//   - dual control: --dual-control=false is refused.

// productionReason says why the configuration is production ("" when it is not).
func (c *serveConfig) productionReason() string {
	switch {
	case c.keys.Enabled():
		return "issuer keys in an HSM"
	case c.production:
		return "--production"
	case c.productionDB:
		return "this database has served in production before"
	}
	return ""
}

// checkProduction refuses a production configuration that leaves a SOTE rule out,
// naming the rule and what to change. A development configuration passes.
func (c *serveConfig) checkProduction() error {
	why := c.productionReason()
	if why == "" {
		return nil
	}
	if !c.admin.dualControl {
		return fmt.Errorf("production (%s): --dual-control=false is refused: in production an administrator other than the requester approves every EAB request", why)
	}
	if c.register.source == "" {
		return fmt.Errorf("production (%s): --register-source is required: certificates go only to organisations active in THL's SOTE organisation register; give its export (an https URL or a file)", why)
	}
	names := c.profiles.Names()
	slices.Sort(names)
	for _, name := range names {
		p := c.profiles.Profiles[name]
		if p.Kind == policy.KindSystemSignature && !slices.ContainsFunc(p.Plugins, func(s policy.Spec) bool { return s.Name == sote.PluginName }) {
			return fmt.Errorf("production (%s): profile %q is a system signature profile whose plugins leave out %q, the SOTE practice's provider and conformity check: add {\"name\": %q} to its plugins in --config",
				why, name, sote.PluginName, sote.PluginName)
		}
	}
	return nil
}

// enterMode reads whether the database has served in production and, if so, holds
// this configuration to production's rules too, and sets the authority's mode; a
// production server marks the database, so no door of it offers the development
// shortcuts from then on.
func (c *serveConfig) enterMode(ctx context.Context, st *store.SQL) error {
	was, err := st.Production(ctx)
	if err != nil {
		return err
	}
	if was && c.productionReason() == "" {
		c.productionDB = true
		if err := c.checkProduction(); err != nil {
			return err
		}
	}
	c.authority.Production = c.productionReason() != ""
	if !c.authority.Production {
		return nil
	}
	return st.MarkProduction(ctx, time.Now())
}
