package sote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/policy/thl"
	"github.com/varmenne/varmenne/store"
)

var now0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	hospital     = "1.2.246.10.23456789.10.0"
	pharmacy     = "1.2.246.10.12345678.10.0"
	intermediary = "1.2.246.10.34567890.10.0"
	noSector     = "1.2.246.10.77777777.10.0"
	ended        = "1.2.246.10.45678901.10.0"
	unlisted     = "1.2.246.10.99999999.10.0"
)

var entries = []thl.Entry{
	{OID: hospital, LongName: "Esimerkin sairaanhoitopiirin kuntayhtymä", Status: thl.StatusActive, Sector: thl.SectorPublic},
	{OID: pharmacy, LongName: "Helsingin VI apteekki", Status: thl.StatusActive, Sector: thl.SectorPrivate},
	{OID: intermediary, LongName: "Kanta-välityspalvelu Oy", Status: thl.StatusActive, Sector: thl.SectorPrivate, Intermediary: true},
	{OID: noSector, LongName: "Sektoriton Oy", Status: thl.StatusActive},
	{OID: ended, LongName: "Lakannut Lääkäriasema Oy", Status: thl.StatusActive, Sector: thl.SectorPublic,
		ExpirationDate: time.Date(2020, 12, 31, 23, 59, 59, 0, time.UTC)},
}

// conformity is a fake store of certificates of conformity.
type conformity struct {
	certs map[string][]store.ConformityCertificate
	err   error
}

func (c *conformity) ListConformityCertificates(ctx context.Context, oid string) ([]store.ConformityCertificate, error) {
	return c.certs[oid], c.err
}

func (c *conformity) GetOrganisation(ctx context.Context, oid string) (*store.Organisation, error) {
	return nil, store.ErrNotFound
}

// register is the store's copy of the register as the plugin reads it (thl.Stored
// is tested in thl and store): entries by OID, or stale.
type register struct {
	entries map[string]thl.Entry
	stale   bool
}

func (r *register) Lookup(_ context.Context, oid string) (thl.Entry, error) {
	if r.stale {
		return thl.Entry{}, &thl.StaleError{LoadedAt: now0, MaxStale: 72 * time.Hour}
	}
	e, ok := r.entries[oid]
	if !ok {
		return thl.Entry{}, fmt.Errorf("%s is %w", oid, thl.ErrNotListed)
	}
	return e, nil
}

func newRegister(t *testing.T, entries []thl.Entry) *register {
	t.Helper()
	r := &register{entries: map[string]thl.Entry{}}
	for _, e := range entries {
		r.entries[e.OID] = e
	}
	return r
}

func cc(system string, expires time.Time) store.ConformityCertificate {
	return store.ConformityCertificate{System: system, Expires: expires}
}

func TestEligibility(t *testing.T) {
	now := now0
	reg := newRegister(t, entries)
	valid := cc("Apteekkijärjestelmä Y", now0.AddDate(1, 0, 0))
	expired := cc("Apteekkijärjestelmä Y", time.Date(2026, 5, 31, 0, 0, 0, 0, time.UTC))
	tests := []struct {
		name  string
		oid   string
		certs []store.ConformityCertificate
		kind  acme.ErrorKind // "" allowed
		wants []string
	}{
		{"a public hospital district needs no certificate of conformity", hospital, nil, "", nil},
		{"a private pharmacy with an unexpired certificate may order", pharmacy, []store.ConformityCertificate{expired, valid}, "", nil},
		{"a private pharmacy without one is refused", pharmacy, nil, acme.Unauthorized,
			[]string{pharmacy, "Helsingin VI apteekki", "is a private provider and has no valid certificate of conformity on file",
				"varmenne org conformity add " + pharmacy + " --system NAME --expires"}},
		{"a private pharmacy whose certificate expired is refused with its date", pharmacy, []store.ConformityCertificate{expired}, acme.Unauthorized,
			[]string{"no valid certificate of conformity", "the latest, for Apteekkijärjestelmä Y, expired on 2026-05-31"}},
		{"a certificate expiring at this instant no longer counts", pharmacy, []store.ConformityCertificate{cc("X", now0)}, acme.Unauthorized,
			[]string{"expired on 2026-06-01"}},
		{"a private Kanta intermediary with a certificate may order in its own name", intermediary, []store.ConformityCertificate{valid}, "", nil},
		{"a private Kanta intermediary without one is refused", intermediary, nil, acme.Unauthorized,
			[]string{"a Kanta intermediary", "no valid certificate of conformity"}},
		{"an organisation without a sector is treated as private", noSector, nil, acme.Unauthorized,
			[]string{"no sector", "treated as a private provider", "no valid certificate of conformity"}},
		{"an organisation that ended is refused whatever its sector", ended, nil, acme.Unauthorized, []string{"ended on 2020-12-31"}},
		{"an organisation the register lacks is refused", unlisted, nil, acme.Unauthorized, []string{"is not in THL's SOTE organisation register"}},
	}
	for _, tt := range tests {
		conf := &conformity{certs: map[string][]store.ConformityCertificate{tt.oid: tt.certs}}
		p := PluginFor(reg, conf, func() time.Time { return now })
		for _, step := range []struct {
			name  string
			check func(context.Context, *policy.Request) error
		}{{"newOrder", p.CheckOrder}, {"finalize", p.CheckCSR}} {
			t.Run(tt.name+" at "+step.name, func(t *testing.T) {
				err := step.check(context.Background(), &policy.Request{Profile: "sote-system-signature",
					Org: &store.Organisation{OID: tt.oid, Name: "Org"}})
				wantRefusal(t, err, tt.kind, tt.wants...)
			})
		}
	}
}

func TestFailsClosed(t *testing.T) {
	now := now0
	reg := newRegister(t, entries)
	req := &policy.Request{Profile: "sote-system-signature", Org: &store.Organisation{OID: pharmacy}}
	t.Run("a store that fails refuses", func(t *testing.T) {
		p := PluginFor(reg, &conformity{err: errors.New("database is locked")}, func() time.Time { return now })
		err := p.CheckOrder(context.Background(), req)
		if err == nil {
			t.Fatal("allowed with a failing store")
		}
		if _, ok := acme.AsError(err); ok {
			t.Errorf("a store failure became a client-facing refusal %v; the chain should log it and refuse generically", err)
		}
	})
	t.Run("a stale register refuses with 503", func(t *testing.T) {
		reg.stale = true
		p := PluginFor(reg, &conformity{}, func() time.Time { return now })
		err := p.CheckOrder(context.Background(), &policy.Request{Org: &store.Organisation{OID: hospital}})
		var ae *acme.Error
		if !errors.As(err, &ae) || ae.HTTPStatus() != http.StatusServiceUnavailable || !strings.Contains(ae.Detail, "issuance is paused") {
			t.Errorf("error %v, want a 503 saying issuance is paused", err)
		}
	})
}

func TestFactory(t *testing.T) {
	reg := newRegister(t, entries)
	sig := policy.ProfileInfo{Name: "sote-system-signature", Kind: policy.KindSystemSignature}
	tests := []struct {
		name     string
		register bool
		env      policy.Env
		config   string
		wants    string // "" built
	}{
		{"builds for a system signature profile", true, policy.Env{Profile: sig, Orgs: &conformity{}}, "", ""},
		{"builds with an empty configuration", true, policy.Env{Profile: sig, Orgs: &conformity{}}, "{}", ""},
		{"refuses a configuration key", true, policy.Env{Profile: sig, Orgs: &conformity{}}, `{"strict":true}`, "strict"},
		{"refuses a server profile", true, policy.Env{Profile: policy.ProfileInfo{Name: "sote-server", Kind: policy.KindServer}, Orgs: &conformity{}}, "", `"sote-server"`},
		{"refuses without a register", false, policy.Env{Profile: sig, Orgs: &conformity{}}, "", "--register-source"},
		{"refuses without a conformity store", true, policy.Env{Profile: sig}, "", "certificates of conformity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.register {
				thl.UseRegister(reg)
			} else {
				thl.UseRegister(nil)
			}
			t.Cleanup(func() { thl.UseRegister(nil) })
			p, err := policy.Build(PluginName, json.RawMessage(tt.config), tt.env)
			if tt.wants == "" {
				if err != nil || p.Name() != "sote" {
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

func wantRefusal(t *testing.T, err error, kind acme.ErrorKind, wants ...string) {
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
	if ae.Kind != kind || ae.HTTPStatus() != http.StatusForbidden {
		t.Errorf("kind %s status %d, want %s 403", ae.Kind, ae.HTTPStatus(), kind)
	}
	for _, w := range wants {
		if !strings.Contains(ae.Detail, w) {
			t.Errorf("detail %q does not mention %q", ae.Detail, w)
		}
	}
}
