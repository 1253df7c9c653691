package policy

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
)

// fake is a plugin whose answer the test decides.
type fake struct {
	name   string
	answer func(ctx context.Context, r *Request) error
	calls  *atomic.Int32
}

func (f *fake) Name() string { return f.name }
func (f *fake) CheckOrder(ctx context.Context, r *Request) error {
	f.calls.Add(1)
	return f.answer(ctx, r)
}
func (f *fake) CheckCSR(ctx context.Context, r *Request) error { return f.CheckOrder(ctx, r) }

// calls counts the fake plugins' calls by name, for the tests of this file.
var calls = map[string]*atomic.Int32{}

func register(name string, answer func(ctx context.Context, r *Request) error) {
	calls[name] = &atomic.Int32{}
	Register(name, func(config json.RawMessage, env Env) (Plugin, error) {
		var c struct {
			Fail bool `json:"fail"`
		}
		if err := DecodeConfig(config, &c); err != nil {
			return nil, err
		}
		if c.Fail {
			return nil, errors.New("refuses this configuration")
		}
		return &fake{name: name, answer: answer, calls: calls[name]}, nil
	})
}

func init() {
	register("test-allow", func(context.Context, *Request) error { return nil })
	register("test-refuse", func(context.Context, *Request) error {
		return acme.Errorf(acme.RejectedIdentifier, "test-refuse: www.example.fi is on the list; order another name")
	})
	register("test-error", func(context.Context, *Request) error { return errors.New("database is down: secret detail") })
	register("test-panic", func(context.Context, *Request) error { panic("nil map in plugin") })
	register("test-hang", func(ctx context.Context, _ *Request) error {
		<-ctx.Done()
		time.Sleep(10 * time.Millisecond)
		return nil
	})
	register("test-ignore-deadline", func(ctx context.Context, _ *Request) error {
		time.Sleep(200 * time.Millisecond) // ignores ctx, then allows: too late
		return nil
	})
	register("test-typed-nil", func(context.Context, *Request) error { var e *acme.Error; return e })
	register("test-kindless", func(context.Context, *Request) error { return &acme.Error{Detail: "no kind"} })
	register("test-mutate", func(_ context.Context, r *Request) error { r.Profile = "changed"; return nil })
	register("test-see-profile", func(_ context.Context, r *Request) error {
		if r.Profile != "sote-server" {
			return acme.Errorf(acme.Unauthorized, "saw profile %q", r.Profile)
		}
		return nil
	})
}

func chainOf(t *testing.T, names ...string) *Chain {
	t.Helper()
	var specs []Spec
	for _, n := range names {
		specs = append(specs, Spec{Name: n, Timeout: Duration(50 * time.Millisecond)})
	}
	c, err := NewChain(specs, Env{Profile: ProfileInfo{Name: "sote-server"}})
	if err != nil {
		t.Fatalf("NewChain: %v", err)
	}
	return c
}

func TestChainFailsClosed(t *testing.T) {
	tests := []struct {
		name       string
		plugins    []string
		want       acme.ErrorKind // "" allows
		detail     string
		notInReply string
	}{
		{"every plugin allowing allows", []string{"test-allow", "test-allow-2"}, "", "", ""},
		{"no plugins allow (a profile without plugins is refused by profile validation)", nil, "", "", ""},
		{"a refusal passes through with its kind and detail", []string{"test-allow", "test-refuse"}, acme.RejectedIdentifier, "order another name", ""},
		{"an untyped error refuses as serverInternal without its text", []string{"test-error"}, acme.ServerInternal, `policy check "test-error" of profile "sote-server" failed`, "database is down"},
		{"a panic refuses", []string{"test-panic"}, acme.ServerInternal, `"test-panic"`, "nil map"},
		{"a plugin that honours its deadline but answers late refuses", []string{"test-hang"}, acme.ServerInternal, "did not answer within 50ms", ""},
		{"a plugin that ignores its deadline refuses", []string{"test-ignore-deadline"}, acme.ServerInternal, "did not answer within 50ms", ""},
		{"a typed nil *acme.Error refuses", []string{"test-typed-nil"}, acme.ServerInternal, "failed", ""},
		{"an *acme.Error without a kind refuses", []string{"test-kindless"}, acme.ServerInternal, "failed", ""},
		{"a plugin cannot change what the next one sees", []string{"test-mutate", "test-see-profile"}, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := chainOf(t, tt.plugins...)
			for phase, check := range map[string]func(context.Context, *Request) error{"order": c.CheckOrder, "csr": c.CheckCSR} {
				err := check(context.Background(), &Request{Profile: "sote-server"})
				if tt.want == "" {
					if err != nil {
						t.Fatalf("%s: %v, want allowed", phase, err)
					}
					continue
				}
				ae, ok := acme.AsError(err)
				if !ok || ae.Kind != tt.want {
					t.Fatalf("%s: %v, want an *acme.Error of kind %s", phase, err, tt.want)
				}
				if !strings.Contains(ae.Detail, tt.detail) {
					t.Errorf("%s: detail %q does not say %q", phase, ae.Detail, tt.detail)
				}
				if tt.notInReply != "" && strings.Contains(ae.Detail, tt.notInReply) {
					t.Errorf("%s: detail %q leaks %q", phase, ae.Detail, tt.notInReply)
				}
			}
		})
	}
}

func init() { register("test-allow-2", func(context.Context, *Request) error { return nil }) }

func TestChainStopsAtTheFirstRefusal(t *testing.T) {
	register("test-after", func(context.Context, *Request) error { return nil })
	c := chainOf(t, "test-refuse", "test-after")
	before := calls["test-after"].Load()
	if err := c.CheckOrder(context.Background(), &Request{}); !acme.IsKind(err, acme.RejectedIdentifier) {
		t.Fatalf("CheckOrder: %v", err)
	}
	if calls["test-after"].Load() != before {
		t.Errorf("a plugin after the refusal ran")
	}
}

func TestChainCancelledRequestRefuses(t *testing.T) {
	c := chainOf(t, "test-hang")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.CheckOrder(ctx, &Request{}); !acme.IsKind(err, acme.ServerInternal) {
		t.Fatalf("CheckOrder on a cancelled request: %v, want a refusal", err)
	}
}

func TestNilChainRefuses(t *testing.T) {
	var c *Chain
	if err := c.CheckOrder(context.Background(), &Request{}); !acme.IsKind(err, acme.ServerInternal) {
		t.Fatalf("nil chain: %v, want a refusal", err)
	}
}

func TestNewChainRefusesToStart(t *testing.T) {
	tests := []struct {
		name  string
		specs []Spec
		want  string
	}{
		{"an unknown plugin", []Spec{{Name: "test-allow"}, {Name: "rate-limit"}}, `unknown plugin "rate-limit"`},
		{"a plugin listed twice", []Spec{{Name: "test-allow"}, {Name: "test-allow"}}, "listed twice"},
		{"a configuration the plugin refuses", []Spec{{Name: "test-allow", Config: json.RawMessage(`{"fail": true}`)}}, "refuses this configuration"},
		{"an unknown configuration key", []Spec{{Name: "test-allow", Config: json.RawMessage(`{"fial": true}`)}}, `unknown field "fial"`},
		{"trailing configuration data", []Spec{{Name: "test-allow", Config: json.RawMessage(`{} {}`)}}, "after the JSON object"},
		{"a nameless step", []Spec{{}}, "needs a name"},
		{"a timeout over the maximum", []Spec{{Name: "test-allow", Timeout: Duration(2 * time.Minute)}}, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewChain(tt.specs, Env{Profile: ProfileInfo{Name: "sote-server"}})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `profile "sote-server"`) {
				t.Fatalf("NewChain: %v, want an error naming the profile and saying %q", err, tt.want)
			}
		})
	}
	_, err := Build("rate-limit", nil, Env{})
	if !errors.Is(err, ErrUnknownPlugin) {
		t.Errorf("Build of an unknown plugin: %v, want ErrUnknownPlugin", err)
	}
}

func TestRegisterPanics(t *testing.T) {
	tests := []struct {
		name string
		do   func()
	}{
		{"a name taken", func() { Register("test-allow", func(json.RawMessage, Env) (Plugin, error) { return nil, nil }) }},
		{"an empty name", func() { Register("", func(json.RawMessage, Env) (Plugin, error) { return nil, nil }) }},
		{"a nil factory", func() { Register("test-nil", nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Register did not panic")
				}
			}()
			tt.do()
		})
	}
}

func TestRefusals(t *testing.T) {
	id := func(v string) acme.Identifier { return acme.Identifier{Type: acme.IdentifierDNS, Value: v} }
	tests := []struct {
		name  string
		kinds []acme.ErrorKind
		want  acme.ErrorKind
	}{
		{"one policy refusal keeps its kind", []acme.ErrorKind{acme.RejectedIdentifier}, acme.RejectedIdentifier},
		{"malformed outranks rejected", []acme.ErrorKind{acme.RejectedIdentifier, acme.Malformed}, acme.Malformed},
		{"unsupported outranks rejected", []acme.ErrorKind{acme.RejectedIdentifier, acme.UnsupportedIdentifier}, acme.UnsupportedIdentifier},
		{"malformed stays over a later unsupported", []acme.ErrorKind{acme.Malformed, acme.UnsupportedIdentifier}, acme.Malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Refusals
			for i, k := range tt.kinds {
				r.Add(id(string(rune('a'+i))+".example.fi"), k, "refused")
			}
			ae, _ := acme.AsError(r.Err())
			if ae == nil || ae.Kind != tt.want || len(ae.Subproblems) != len(tt.kinds) {
				t.Fatalf("Err() = %+v, want kind %s with %d subproblems", ae, tt.want, len(tt.kinds))
			}
		})
	}
	var none Refusals
	if none.Err() != nil {
		t.Error("no refusals must be nil")
	}
}
