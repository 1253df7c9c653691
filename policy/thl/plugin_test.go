package thl

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/store"
)

func TestPlugin(t *testing.T) {
	c := &clock{t: now0}
	src := &fakeSource{entries: sample}
	reg := newTestRegister(t, src, c)
	if err := reg.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := PluginFor(reg, c.Now)
	if p.Name() != "thl" {
		t.Errorf("Name = %q", p.Name())
	}
	tests := []struct {
		name   string
		oid    string
		kind   acme.ErrorKind // "" allowed
		status int
		wants  []string
	}{
		{"an active private pharmacy may order", "1.2.246.10.12345678.10.0", "", 0, nil},
		{"an active public hospital district may order", "1.2.246.10.23456789.10.0", "", 0, nil},
		{"an active unit of it may order", "1.2.246.10.23456789.10.1001", "", 0, nil},
		{"an organisation the register lacks is refused", "1.2.246.10.99999999.10.0", acme.Unauthorized, http.StatusForbidden,
			[]string{"1.2.246.10.99999999.10.0", "is not in THL's SOTE organisation register", "ask THL"}},
		{"an organisation that ended is refused with the date", "1.2.246.10.45678901.10.0", acme.Unauthorized, http.StatusForbidden,
			[]string{"1.2.246.10.45678901.10.0", "Lakannut Lääkäriasema Oy", "ended on 2020-12-31", "ask THL to update"}},
		{"a passive organisation is refused", "1.2.246.10.56789012.10.0", acme.Unauthorized, http.StatusForbidden,
			[]string{"1.2.246.10.56789012.10.0", "is passive", "ask THL to make its register entry active"}},
		{"an organisation that has not begun is refused", "1.2.246.10.67890123.10.0", acme.Unauthorized, http.StatusForbidden,
			[]string{"begins on 2099-01-01", "order again from that day"}},
	}
	for _, tt := range tests {
		for _, step := range []struct {
			name  string
			check func(context.Context, *policy.Request) error
		}{{"newOrder", p.CheckOrder}, {"finalize", p.CheckCSR}} {
			t.Run(tt.name+" at "+step.name, func(t *testing.T) {
				req := &policy.Request{Profile: "sote-server", Org: &store.Organisation{OID: tt.oid, Name: "Org"}}
				err := step.check(context.Background(), req)
				wantRefusal(t, err, tt.kind, tt.status, tt.wants...)
			})
		}
	}

	t.Run("a stale register refuses everyone with 503", func(t *testing.T) {
		src.set(nil, errors.New("down"))
		c.Add(73 * time.Hour)
		reg.Refresh(context.Background())
		err := p.CheckOrder(context.Background(), &policy.Request{Org: &store.Organisation{OID: "1.2.246.10.12345678.10.0"}})
		wantRefusal(t, err, acme.ServerInternal, http.StatusServiceUnavailable,
			"the THL register was last loaded at 2026-06-01T12:00:00Z", "issuance is paused until it can be refreshed")
	})
	t.Run("a request without an organisation is refused", func(t *testing.T) {
		if err := p.CheckOrder(context.Background(), &policy.Request{}); err == nil {
			t.Error("allowed a request without an organisation")
		}
	})
}

// wantRefusal checks err: nil when kind is "", else an *acme.Error of that kind and
// status whose detail holds every one of wants.
func wantRefusal(t *testing.T, err error, kind acme.ErrorKind, status int, wants ...string) {
	t.Helper()
	if kind == "" {
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		return
	}
	var ae *acme.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T), want an *acme.Error of kind %s", err, err, kind)
	}
	if ae.Kind != kind || ae.HTTPStatus() != status {
		t.Errorf("kind %s status %d, want %s %d", ae.Kind, ae.HTTPStatus(), kind, status)
	}
	for _, w := range wants {
		if !strings.Contains(ae.Detail, w) {
			t.Errorf("detail %q does not mention %q", ae.Detail, w)
		}
	}
}

func TestFactory(t *testing.T) {
	c := &clock{t: now0}
	reg := newTestRegister(t, &fakeSource{entries: sample}, c)
	tests := []struct {
		name     string
		register bool
		config   string
		wants    string // "" built
	}{
		{"builds over the server's register", true, "", ""},
		{"builds with an empty configuration", true, "{}", ""},
		{"refuses a configuration key", true, `{"source":"x"}`, "source"},
		{"refuses without a register, saying how to give one", false, "", "--register-source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.register {
				UseRegister(reg)
			} else {
				UseRegister(nil)
			}
			t.Cleanup(func() { UseRegister(nil) })
			p, err := policy.Build(PluginName, json.RawMessage(tt.config), policy.Env{})
			if tt.wants == "" {
				if err != nil || p.Name() != "thl" {
					t.Fatalf("Build: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wants) {
				t.Errorf("Build: %v, want an error mentioning %q", err, tt.wants)
			}
		})
	}
}
