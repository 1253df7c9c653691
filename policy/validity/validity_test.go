package validity

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func server(delay time.Duration) policy.ProfileInfo {
	return policy.ProfileInfo{Name: "sote-server", Kind: policy.KindServer, MaxValidity: 365 * day, Backdate: time.Minute, MaxStartDelay: delay}
}

func build(t *testing.T, pi policy.ProfileInfo) policy.Plugin {
	t.Helper()
	p, err := policy.Build(PluginName, nil, policy.Env{Profile: pi, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return p
}

func kindOf(err error) acme.ErrorKind {
	if err == nil {
		return ""
	}
	if ae, ok := acme.AsError(err); ok {
		return ae.Kind
	}
	return "untyped"
}

func TestCheckOrder(t *testing.T) {
	latest := now.Add(365*day - time.Minute - time.Second)
	in := func(d time.Duration) time.Time { return now.Add(d) }
	tests := []struct {
		name   string
		delay  time.Duration
		nb, na time.Time
		want   acme.ErrorKind
	}{
		{"neither given leaves the validity to the profile", 0, time.Time{}, time.Time{}, ""},
		{"notBefore is refused by a profile without a start delay", 0, in(time.Hour), time.Time{}, acme.Malformed},
		{"notBefore is refused without a start delay even with a good notAfter", 0, now, in(24 * time.Hour), acme.Malformed},
		{"notAfter in the past is refused", 0, time.Time{}, in(-time.Hour), acme.Malformed},
		{"notAfter equal to now is refused", 0, time.Time{}, now, acme.Malformed},
		{"notAfter a second past the maximum less the backdate is refused", 0, time.Time{}, latest.Add(time.Second), acme.Malformed},
		{"notAfter a full maximum away is refused", 0, time.Time{}, in(365 * day), acme.Malformed},
		{"notAfter two years away is refused", 0, time.Time{}, now.AddDate(2, 0, 0), acme.Malformed},
		{"notAfter at the latest allowed second is honoured", 0, time.Time{}, latest, ""},
		{"notAfter in 30 days is honoured", 0, time.Time{}, now.AddDate(0, 0, 30), ""},
		{"notBefore now is honoured with a start delay", 30 * day, now, time.Time{}, ""},
		{"notBefore in 10 days is honoured", 30 * day, in(10 * day), time.Time{}, ""},
		{"notBefore past the start delay is refused", 30 * day, in(31 * day), time.Time{}, acme.Malformed},
		{"notBefore within the backdate margin is honoured", 30 * day, in(-30 * time.Second), time.Time{}, ""},
		{"notBefore in the past is refused: no backdating", 30 * day, in(-time.Hour), time.Time{}, acme.Malformed},
		{"notAfter a full maximum after a future notBefore less the backdate is honoured", 30 * day, in(10 * day), in(10*day + 365*day - time.Minute - time.Second), ""},
		{"notAfter past the maximum after a future notBefore is refused", 30 * day, in(10 * day), in(10*day + 365*day), acme.Malformed},
		{"notAfter before notBefore is refused", 30 * day, in(10 * day), in(5 * day), acme.Malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := build(t, server(tt.delay))
			if got := kindOf(p.CheckOrder(context.Background(), &policy.Request{NotBefore: tt.nb, NotAfter: tt.na})); got != tt.want {
				t.Fatalf("CheckOrder = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckCSRRefusesPassedNotAfter(t *testing.T) {
	p := build(t, server(0))
	tests := []struct {
		name string
		na   time.Time
		want acme.ErrorKind
	}{
		{"no notAfter", time.Time{}, ""},
		{"notAfter ahead", now.Add(time.Hour), ""},
		{"notAfter passed", now.Add(-time.Second), acme.Malformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kindOf(p.CheckCSR(context.Background(), &policy.Request{NotAfter: tt.na})); got != tt.want {
				t.Fatalf("CheckCSR = %q, want %q", got, tt.want)
			}
		})
	}
}

// A configuration beyond the SOTE maxima refuses to start: the factory fails.
func TestFactoryRefusesBeyondSOTE(t *testing.T) {
	tests := []struct {
		name   string
		pi     policy.ProfileInfo
		config string
		errHas string
	}{
		{"a server profile of 365 days builds", server(0), "", ""},
		{"a server profile of 366 days is refused", policy.ProfileInfo{Name: "x", Kind: policy.KindServer, MaxValidity: 366 * day}, "", "SOTE maximum of 365 days"},
		{"a system signature profile of 730 days builds", policy.ProfileInfo{Name: "x", Kind: policy.KindSystemSignature, MaxValidity: 730 * day}, "", ""},
		{"a system signature profile of 731 days is refused", policy.ProfileInfo{Name: "x", Kind: policy.KindSystemSignature, MaxValidity: 731 * day}, "", "SOTE maximum of 730 days"},
		{"an unknown kind is refused", policy.ProfileInfo{Name: "x", Kind: "client", MaxValidity: day}, "", "kind"},
		{"no maximum is refused", policy.ProfileInfo{Name: "x", Kind: policy.KindServer}, "", "no maximum"},
		{"a start delay over 90 days is refused", policy.ProfileInfo{Name: "x", Kind: policy.KindServer, MaxValidity: day, MaxStartDelay: 91 * day}, "", "notBefore"},
		{"a configuration key is refused: the plugin has none", server(0), `{"max_days": 10}`, `unknown field "max_days"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := policy.Build(PluginName, json.RawMessage(tt.config), policy.Env{Profile: tt.pi})
			switch {
			case tt.errHas == "" && err != nil:
				t.Fatalf("Build: %v", err)
			case tt.errHas != "" && (err == nil || !strings.Contains(err.Error(), tt.errHas)):
				t.Fatalf("Build: %v, want an error saying %q", err, tt.errHas)
			}
		})
	}
}
