package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/varmenne/varmenne/acme"
)

// DefaultTimeout bounds one plugin's answer when its Spec gives no timeout.
const DefaultTimeout = 10 * time.Second

// MaxTimeout is the longest a Spec may let one plugin take: an ACME client waits for
// the answer.
const MaxTimeout = time.Minute

// Spec is one step of a profile's chain as configuration gives it.
type Spec struct {
	Name    string          `json:"name"`
	Config  json.RawMessage `json:"config,omitempty"`
	Timeout Duration        `json:"timeout,omitempty"` // 0: DefaultTimeout
}

// Validate checks the step's own fields; whether the plugin exists and accepts its
// configuration is NewChain's business.
func (s Spec) Validate() error {
	switch t := time.Duration(s.Timeout); {
	case s.Name == "":
		return errors.New("a plugin needs a name")
	case t < 0 || t > MaxTimeout:
		return fmt.Errorf("plugin %q: timeout %s is outside 0 to %s", s.Name, t, MaxTimeout)
	}
	return nil
}

// Chain runs the plugins of one profile in order. It is fail-closed: a plugin that
// returns an error that is not an *acme.Error, panics or does not answer within its
// deadline refuses the request, and the client gets an *acme.Error either way.
type Chain struct {
	profile string
	steps   []step
	log     *slog.Logger
}

type step struct {
	name    string
	plugin  Plugin
	timeout time.Duration
}

// NewChain builds every plugin of specs for the profile env.Profile names. An
// unknown plugin, a configuration its factory refuses or a plugin named twice is an
// error: the server must not start with a chain it cannot run.
func NewChain(specs []Spec, env Env) (*Chain, error) {
	env = env.withDefaults()
	c := &Chain{profile: env.Profile.Name, log: env.Log}
	seen := map[string]bool{}
	for _, s := range specs {
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("policy: profile %q: %w", env.Profile.Name, err)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("policy: profile %q: plugin %q is listed twice", env.Profile.Name, s.Name)
		}
		seen[s.Name] = true
		p, err := Build(s.Name, s.Config, env)
		if err != nil {
			return nil, fmt.Errorf("policy: profile %q: %w", env.Profile.Name, err)
		}
		t := time.Duration(s.Timeout)
		if t == 0 {
			t = DefaultTimeout
		}
		c.steps = append(c.steps, step{name: s.Name, plugin: p, timeout: t})
	}
	return c, nil
}

// Plugins are the names of the chain's plugins, in order.
func (c *Chain) Plugins() []string {
	names := make([]string, len(c.steps))
	for i, s := range c.steps {
		names[i] = s.name
	}
	return names
}

// CheckOrder runs every plugin's CheckOrder; the first refusal ends the run.
func (c *Chain) CheckOrder(ctx context.Context, r *Request) error {
	return c.run(ctx, r, "newOrder", Plugin.CheckOrder)
}

// CheckCSR runs every plugin's CheckCSR; the first refusal ends the run.
func (c *Chain) CheckCSR(ctx context.Context, r *Request) error {
	return c.run(ctx, r, "finalize", Plugin.CheckCSR)
}

func (c *Chain) run(ctx context.Context, r *Request, phase string, check func(Plugin, context.Context, *Request) error) error {
	if c == nil {
		// A profile without a chain must not pass: the missing chain is a wiring bug.
		return acme.Errorf(acme.ServerInternal, "the policy of this profile is not configured; the request is refused")
	}
	for _, s := range c.steps {
		if err := c.runStep(ctx, s, r, phase, check); err != nil {
			return err
		}
	}
	return nil
}

// runStep runs one plugin with its deadline and turns every way of not allowing
// into an *acme.Error.
func (c *Chain) runStep(ctx context.Context, s step, r *Request, phase string, check func(Plugin, context.Context, *Request) error) error {
	sctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// Each plugin gets its own copy, so one that overruns its deadline and goes on
	// in the background cannot change what the next one sees.
	rc := *r
	done := make(chan error, 1) // buffered: a late answer must not block the goroutine
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- &panicError{value: v, stack: debug.Stack()}
			}
		}()
		done <- check(s.plugin, sctx, &rc)
	}()
	var err error
	select {
	case err = <-done:
	case <-sctx.Done():
		err = sctx.Err()
	}
	if err == nil {
		return nil
	}
	if ae, ok := acme.AsError(err); ok && ae != nil && ae.Kind != "" {
		c.log.InfoContext(ctx, "policy refused", "profile", c.profile, "plugin", s.name, "phase", phase, "problem", string(ae.Kind), "detail", ae.Detail)
		return ae
	}
	var pe *panicError
	switch {
	case errors.As(err, &pe):
		c.log.ErrorContext(ctx, "policy plugin panicked", "profile", c.profile, "plugin", s.name, "phase", phase, "panic", fmt.Sprint(pe.value), "stack", string(pe.stack))
		return c.failed(s, "failed")
	case ctx.Err() != nil:
		// The request itself ended (the client went away): nothing to answer, but
		// never an allow.
		return acme.Errorf(acme.ServerInternal, "the request ended before policy check %q of profile %q finished; it is refused", s.name, c.profile)
	case errors.Is(err, context.DeadlineExceeded):
		c.log.ErrorContext(ctx, "policy plugin timed out", "profile", c.profile, "plugin", s.name, "phase", phase, "timeout", s.timeout.String())
		return c.failed(s, fmt.Sprintf("did not answer within %s", s.timeout))
	default:
		c.log.ErrorContext(ctx, "policy plugin failed", "profile", c.profile, "plugin", s.name, "phase", phase, "err", err)
		return c.failed(s, "failed")
	}
}

// failed is the refusal for a plugin that could not decide. Its cause stays in the
// log: internal error text never reaches clients.
func (c *Chain) failed(s step, what string) error {
	return acme.Errorf(acme.ServerInternal,
		"policy check %q of profile %q %s, so the request is refused (the policy fails closed); try again later, and tell the CA's operators if it persists",
		s.name, c.profile, what)
}

type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }
