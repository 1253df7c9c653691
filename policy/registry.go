package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/varmenne/varmenne/store"
)

// Profile kinds: what a certificate is for. A kind fixes the SOTE maximum validity
// and the key usages; see the profile package.
const (
	KindServer          = "server"
	KindSystemSignature = "system-signature"
)

// ProfileInfo is what a plugin knows of the profile whose chain it is built for.
// It is filled in from the profile's configuration before any plugin is built.
type ProfileInfo struct {
	Name string
	Kind string // KindServer or KindSystemSignature
	Test bool   // a test profile: signed by the test issuer only
	// MaxValidity is the longest certificate, counted from notBefore, with notAfter
	// its last second (notAfter = notBefore + MaxValidity - 1 s).
	MaxValidity time.Duration
	// Backdate is how far before its issuance a certificate starts when the order
	// names no notBefore.
	Backdate time.Duration
	// MaxStartDelay is how far in the future a requested notBefore may lie; 0 means
	// notBefore is not accepted.
	MaxStartDelay time.Duration
	// KeyTypes are the subscriber key types the profile certifies: "rsa-2048",
	// "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384".
	KeyTypes       []string
	AllowWildcards bool
}

// KeyLookup is what plugins may ask of certified and blocked keys. Keys are the
// lower-case hex SHA-256 of the SubjectPublicKeyInfo DER (signer.KeyHash).
type KeyLookup interface {
	KeyCertified(ctx context.Context, keyHash string) (bool, error)
	KeyBlocked(ctx context.Context, keyHash string) (bool, error)
}

// OrgLookup is what plugins may ask of organisations.
type OrgLookup interface {
	GetOrganisation(ctx context.Context, oid string) (*store.Organisation, error)
}

// Env is what a Factory may use to build a plugin. Any field may be nil in tests;
// a plugin that needs one refuses to be built without it, so a missing dependency
// stops the start instead of passing requests.
type Env struct {
	Profile ProfileInfo
	Now     func() time.Time // never nil after NewChain
	Log     *slog.Logger     // never nil after NewChain
	// HTTPClient is the outbound client for plugins that ask other services (a
	// register, a policy service). Plugins that need stricter dialling build their own.
	HTTPClient *http.Client
	Keys       KeyLookup
	Orgs       OrgLookup
}

// Factory builds a plugin from its JSON configuration (nil or "{}" when the profile
// gives none). It must decode the configuration strictly (DecodeConfig) and return
// an error naming the bad key or value; the error stops the server's start.
type Factory func(config json.RawMessage, env Env) (Plugin, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a plugin available by name, usually from the init function of the
// plugin's package (as database/sql drivers register). It panics when the name is
// empty or taken, or the factory is nil: that is a programming error.
func Register(name string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	switch {
	case name == "" || strings.TrimSpace(name) != name:
		panic(fmt.Sprintf("policy: Register of plugin %q: the name must be a non-empty word", name))
	case f == nil:
		panic("policy: Register of plugin " + name + ": nil factory")
	case registry[name] != nil:
		panic("policy: Register called twice for plugin " + name)
	}
	registry[name] = f
}

// Registered lists the registered plugin names, sorted.
func Registered() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// ErrUnknownPlugin is returned (wrapped) by Build and NewChain for a name nobody
// registered.
var ErrUnknownPlugin = errors.New("policy: unknown plugin")

// Build makes one plugin by name. An unknown name is an error wrapping
// ErrUnknownPlugin that lists the known ones.
func Build(name string, config json.RawMessage, env Env) (Plugin, error) {
	registryMu.RLock()
	f := registry[name]
	registryMu.RUnlock()
	if f == nil {
		return nil, fmt.Errorf("%w %q (registered: %s)", ErrUnknownPlugin, name, strings.Join(Registered(), ", "))
	}
	env = env.withDefaults()
	p, err := f(config, env)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: %w", name, err)
	}
	if p == nil {
		return nil, fmt.Errorf("plugin %q: the factory returned no plugin", name)
	}
	return p, nil
}

func (e Env) withDefaults() Env {
	if e.Now == nil {
		e.Now = time.Now
	}
	if e.Log == nil {
		e.Log = slog.New(slog.DiscardHandler)
	}
	return e
}

// DecodeConfig decodes a plugin's JSON configuration into v strictly: an unknown
// key is an error naming it, and so is trailing data. Empty config leaves v as it is.
func DecodeConfig(config json.RawMessage, v any) error {
	if len(bytes.TrimSpace(config)) == 0 || bytes.Equal(bytes.TrimSpace(config), []byte("null")) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("configuration: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return errors.New("configuration: unexpected data after the JSON object")
	}
	return nil
}

// Duration is a time.Duration written in configuration as a Go duration string
// ("5s", "720h").
type Duration time.Duration

// UnmarshalJSON reads "5s"; a bare number is refused, since its unit would be a guess.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"5s\" or \"720h\", not %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: use a form such as \"5s\" or \"720h\"", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }
