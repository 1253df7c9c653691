package thl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/store"
)

// PluginName is the name the "thl" plugin is registered and configured by.
const PluginName = "thl"

// Lookuper is what the plugins and the standing check need of the register;
// *Stored, the store's copy, is one.
type Lookuper interface {
	Lookup(ctx context.Context, oid string) (Entry, error)
}

// Plugin is the "thl" policy plugin: a certificate is issued only to an organisation
// that THL's SOTE organisation register lists as active, at newOrder and again at
// finalize (an organisation may leave the register in between). The ACME standing
// check asks the same Check at every step towards a certificate, so serve's default
// chains leave the plugin out; a --config profile may still name it. A refusal is
// unauthorized (403): the account is fine, the organisation may not have
// certificates now. A register that is stale refuses every request with
// serverInternal (503) until a refresh succeeds.
type Plugin struct {
	reg Lookuper
	now func() time.Time
}

var _ policy.Plugin = (*Plugin)(nil)

func init() { policy.Register(PluginName, NewPlugin) }

// The register the plugins of every profile share: one process keeps one copy of
// THL's register, loaded from the server's --register-source.
var (
	sharedMu sync.RWMutex
	shared   Lookuper
)

// UseRegister makes reg the register the "thl" and "sote" plugins are built over.
// The server calls it, before building its policy chains, when it has a register
// source; without one those plugins refuse to be built.
func UseRegister(reg Lookuper) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	shared = reg
}

// SharedRegister is the register UseRegister set, or an error saying how to set one.
func SharedRegister() (Lookuper, error) {
	sharedMu.RLock()
	defer sharedMu.RUnlock()
	if shared == nil {
		return nil, errors.New("no THL register is configured: start the server with --register-source FILE|URL (the SOTE organisation register export of THL's code service)")
	}
	return shared, nil
}

// NewPlugin is the plugin's policy.Factory. It takes no configuration: the register
// is the server's (UseRegister).
func NewPlugin(config json.RawMessage, env policy.Env) (policy.Plugin, error) {
	var c struct{}
	if err := policy.DecodeConfig(config, &c); err != nil {
		return nil, err
	}
	reg, err := SharedRegister()
	if err != nil {
		return nil, err
	}
	return PluginFor(reg, env.Now), nil
}

// PluginFor makes the plugin over a register; now nil is time.Now.
func PluginFor(reg Lookuper, now func() time.Time) *Plugin {
	if now == nil {
		now = time.Now
	}
	return &Plugin{reg: reg, now: now}
}

// Name is "thl".
func (p *Plugin) Name() string { return PluginName }

// CheckOrder refuses an order of an organisation that is not active in the register.
func (p *Plugin) CheckOrder(ctx context.Context, r *policy.Request) error {
	_, err := Check(ctx, p.reg, r.Org, p.now())
	return err
}

// CheckCSR checks the same at finalize.
func (p *Plugin) CheckCSR(ctx context.Context, r *policy.Request) error {
	_, err := Check(ctx, p.reg, r.Org, p.now())
	return err
}

// Check returns the register's record of org when the register lists it as active at
// now; otherwise an *acme.Error a person can act on, or (the register failed in an
// unexpected way) another error, which refuses too.
func Check(ctx context.Context, reg Lookuper, org *store.Organisation, now time.Time) (Entry, error) {
	if org == nil {
		return Entry{}, errors.New("thl: the request carries no organisation")
	}
	if reg == nil {
		return Entry{}, errors.New("thl: no register is configured")
	}
	e, err := reg.Lookup(ctx, org.OID)
	var stale *StaleError
	switch {
	case errors.As(err, &stale):
		return Entry{}, acme.Errorf(acme.ServerInternal, "%s", stale.Error()).WithStatus(http.StatusServiceUnavailable)
	case errors.Is(err, ErrNotListed):
		return Entry{}, acme.Errorf(acme.Unauthorized,
			"organisation %s (%s) is not in THL's SOTE organisation register (%s); certificates are issued only to organisations listed there: ask THL's code service to register it, or have the operator correct the organisation's OID",
			org.OID, displayName(org, Entry{}), Classification)
	case err != nil:
		return Entry{}, fmt.Errorf("thl: looking up %s: %w", org.OID, err)
	}
	if reason := e.InactiveReason(now); reason != "" {
		what := "ask THL to make its register entry active"
		switch {
		case e.Status == StatusActive && !e.BeginDate.IsZero() && now.Before(e.BeginDate):
			what = "order again from that day"
		case e.Status == StatusActive:
			what = "if it continues, ask THL to update its register entry"
		}
		return e, acme.Errorf(acme.Unauthorized,
			"organisation %s (%s) %s according to THL's SOTE organisation register; certificates are issued only to active organisations: %s",
			org.OID, displayName(org, e), reason, what)
	}
	return e, nil
}

func displayName(org *store.Organisation, e Entry) string {
	switch {
	case e.LongName != "":
		return e.LongName
	case org.LongName != "":
		return org.LongName
	}
	return org.Name
}
