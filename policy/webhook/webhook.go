// Package webhook is the policy plugin that asks an operator's external policy
// service: it POSTs the request as JSON, signed with HMAC-SHA256, and allows only on
// an explicit {"allow": true}, its members spelt in lower case. Everything else —
// another answer, a non-2xx status, a body that is not that JSON, a redirect, a
// timeout, a refused address — refuses.
//
// The service's URL may not reach loopback, private or other non-public addresses
// unless the configuration allow-lists their network (acme/validate's address
// rules), and plain http is accepted only towards allow-listed networks.
package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/internal/signedpost"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/strictjson"
)

// PluginName is the name profiles list this plugin by.
const PluginName = "webhook"

// SignatureHeader carries "sha256=" and the lower-case hex HMAC-SHA256 of the body
// under the shared secret (internal/signedpost).
const SignatureHeader = signedpost.SignatureHeader

// Limits.
const (
	DefaultTimeout = 5 * time.Second
	maxAnswer      = 64 << 10 // bytes of an answer read
	maxDetail      = 200      // characters of the service's detail shown to clients
)

func init() { policy.Register(PluginName, NewPlugin) }

// Config is the plugin's configuration.
type Config struct {
	URL        string          `json:"url"`         // http(s) URL the request is POSTed to
	SecretFile string          `json:"secret_file"` // file holding the HMAC key (at least 16 bytes)
	Timeout    policy.Duration `json:"timeout"`     // default 5s
	// AllowNetworks are non-public networks (CIDR) the URL may reach, e.g. an
	// internal policy service at 10.20.0.0/16.
	AllowNetworks []string `json:"allow_networks"`
}

// Validate checks the configuration without touching the secret file or the network.
func (c Config) Validate() ([]netip.Prefix, *url.URL, error) {
	var nets []netip.Prefix
	for _, s := range c.AllowNetworks {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, nil, fmt.Errorf("allow_networks %q is not a CIDR such as 10.20.0.0/16", s)
		}
		nets = append(nets, p.Masked())
	}
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return nil, nil, errors.New("url is required")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || u.Fragment != "":
		return nil, nil, fmt.Errorf("url %q must be an http or https URL without user info or fragment", c.URL)
	case c.SecretFile == "":
		return nil, nil, errors.New("secret_file is required: the requests are signed with its HMAC key")
	case time.Duration(c.Timeout) < 0 || time.Duration(c.Timeout) > policy.MaxTimeout:
		return nil, nil, fmt.Errorf("timeout %s is outside 0 to %s", time.Duration(c.Timeout), policy.MaxTimeout)
	}
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
		if !reachable(ip, u.Scheme, nets) {
			return nil, nil, fmt.Errorf("url %q targets %s, which is %s; add its network to allow_networks if the policy service really is there", c.URL, ip, refusedWhy(u.Scheme))
		}
	}
	return nets, u, nil
}

// allowList names the setting that allow-lists networks, for refusals.
const allowList = "allow_networks"

func reachable(ip netip.Addr, scheme string, nets []netip.Prefix) bool {
	return signedpost.Reachable(ip, scheme, nets)
}

func refusedWhy(scheme string) string { return signedpost.RefusedWhy(scheme, allowList) }

// Plugin asks the policy service.
type Plugin struct {
	url     string
	secret  []byte
	timeout time.Duration
	profile string
	client  *http.Client
	now     func() time.Time
}

// NewPlugin is the plugin's policy.Factory.
func NewPlugin(config json.RawMessage, env policy.Env) (policy.Plugin, error) {
	var c Config
	if err := policy.DecodeConfig(config, &c); err != nil {
		return nil, err
	}
	nets, u, err := c.Validate()
	if err != nil {
		return nil, err
	}
	secret, err := signedpost.ReadSecret(c.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("secret_file: %w", err)
	}
	timeout := time.Duration(c.Timeout)
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	// A redirect is an answer other than 2xx, and so a refusal.
	client := signedpost.Client(u.Scheme, nets, allowList, timeout)
	return &Plugin{url: c.URL, secret: secret, timeout: timeout, profile: env.Profile.Name, client: client, now: env.Now}, nil
}

// Name is PluginName.
func (p *Plugin) Name() string { return PluginName }

// Body is what the policy service receives.
type Body struct {
	Phase        string            `json:"phase"` // "order" or "finalize"
	Time         time.Time         `json:"time"`
	Organisation string            `json:"organisation"` // THL register OID
	OrgName      string            `json:"organisation_name,omitempty"`
	Profile      string            `json:"profile"`
	Account      string            `json:"account,omitempty"`
	Identifiers  []acme.Identifier `json:"identifiers"`
	NotBefore    *time.Time        `json:"not_before,omitempty"`
	NotAfter     *time.Time        `json:"not_after,omitempty"`
	CSR          string            `json:"csr,omitempty"` // base64url DER, at finalize
}

// Answer is what the service must send: {"allow": true} allows; "detail" may say why not.
type Answer struct {
	Allow  *bool  `json:"allow"`
	Detail string `json:"detail"`
}

// CheckOrder asks the service about the order.
func (p *Plugin) CheckOrder(ctx context.Context, r *policy.Request) error {
	return p.ask(ctx, r, "order")
}

// CheckCSR asks the service again at finalize, with the CSR.
func (p *Plugin) CheckCSR(ctx context.Context, r *policy.Request) error {
	return p.ask(ctx, r, "finalize")
}

func (p *Plugin) ask(ctx context.Context, r *policy.Request, phase string) error {
	b := Body{Phase: phase, Time: p.now().UTC(), Profile: r.Profile, Account: r.AccountID, Identifiers: r.Identifiers}
	if b.Identifiers == nil {
		b.Identifiers = []acme.Identifier{}
	}
	if r.Org != nil {
		b.Organisation, b.OrgName = r.Org.OID, r.Org.Name
	}
	if !r.NotBefore.IsZero() {
		t := r.NotBefore.UTC()
		b.NotBefore = &t
	}
	if !r.NotAfter.IsZero() {
		t := r.NotAfter.UTC()
		b.NotAfter = &t
	}
	if r.CSR != nil {
		b.CSR = base64.RawURLEncoding.EncodeToString(r.CSR.Raw)
	}
	body, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("webhook: encoding the request: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "varmenne-policy-webhook")
	req.Header.Set(SignatureHeader, signedpost.Sign(p.secret, body))
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return p.refuse("did not answer within %s", p.timeout)
		}
		return p.refuse("could not be reached")
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	switch {
	case err != nil && (ctx.Err() != nil || isTimeout(err)):
		return p.refuse("did not answer within %s", p.timeout)
	case err != nil:
		return p.refuse("broke off its answer")
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return p.refuse("answered HTTP %d instead of 2xx", resp.StatusCode)
	case len(raw) > maxAnswer:
		return p.refuse("answered more than %d bytes", maxAnswer)
	}
	var a Answer
	if err := strictjson.CheckObject(raw); err != nil {
		// A duplicated "allow" must not turn a refusal into an allow. The error may
		// quote a member name of any length: cut it as the service's detail is.
		return p.refuse(`answered something other than a JSON object such as {"allow": true} (it %s)`, clean(err.Error()))
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return p.refuse(`answered something other than a JSON object such as {"allow": true}`)
	}
	if name := inexactMember(raw); name != "" {
		// encoding/json matches names whatever their case; the answer's are exact.
		return p.refuse(`answered member %q; the answer's members are "allow" and "detail", in lower case`, clean(name))
	}
	switch {
	case a.Allow == nil:
		return p.refuse(`answered without "allow"`)
	case !*a.Allow:
		if d := clean(a.Detail); d != "" {
			return acme.Errorf(acme.Unauthorized, "the policy service of profile %s refused the request: %s", p.profile, d)
		}
		return acme.Errorf(acme.Unauthorized, "the policy service of profile %s refused the request", p.profile)
	}
	return nil
}

// inexactMember is a top-level member name of the answer object that
// encoding/json would read as "allow" or "detail" but is not spelt so ("" when
// there is none).
func inexactMember(raw []byte) string {
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil {
		return ""
	}
	for name := range members {
		for _, want := range []string{"allow", "detail"} {
			if name != want && strings.EqualFold(name, want) {
				return name
			}
		}
	}
	return ""
}

// refuse is the answer when the service gave none that allows: fail closed.
func (p *Plugin) refuse(format string, args ...any) error {
	return acme.Errorf(acme.Unauthorized, "the policy service of profile %s %s, so the request is refused (the policy fails closed); try again later or ask the CA's operators", p.profile, fmt.Sprintf(format, args...))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// clean keeps a service's detail printable and short before a client sees it.
func clean(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == maxDetail {
			b.WriteString("…")
			break
		}
		if !unicode.IsPrint(r) {
			r = ' '
		}
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}
