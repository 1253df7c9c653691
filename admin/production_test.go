package admin_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/admintest"
	"github.com/varmenne/varmenne/store"
)

// TestProductionTakesOrganisationsFromTheRegisterOnly: in production an operator
// cannot add an organisation by hand, and one no register import listed (added by
// hand in development before) gets no EAB key; in development both work. Nothing is
// changed by a refusal.
func TestProductionTakesOrganisationsFromTheRegisterOnly(t *testing.T) {
	const handAdded = "1.2.246.10.7.10.0"
	in := admin.OrganisationInput{OID: handAdded, Name: "Käsin Oy", Domains: []string{"kasin.example"}}
	request := func(f *admintest.Fixture, oid string) error {
		r := admintest.RequestInput()
		r.Organisation, r.Domains = oid, nil
		_, err := f.Svc.RequestEAB(f.Ctx, f.Op("rita"), r)
		return err
	}

	t.Run("production", func(t *testing.T) {
		f := admintest.New(t, admin.Config{}, nil)
		_, err := f.Svc.AddOrganisation(f.Ctx, f.Op("rita"), in)
		var refusal *admin.Error
		if !errors.As(err, &refusal) || refusal.Kind != admin.Conflict || !strings.Contains(refusal.Detail, "cannot be added by hand in production") ||
			!strings.Contains(refusal.Detail, "varmenne org import") {
			t.Fatalf("AddOrganisation in production = %v, want a conflict that points to the register import", err)
		}
		if _, err := f.St.GetOrganisation(f.Ctx, handAdded); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the refused organisation is in the store: %v", err)
		}
		// One that came in by hand before (a development database) gets no key.
		if err := f.St.AddOrganisation(f.Ctx, store.Organisation{OID: handAdded, Name: "Käsin Oy", Domains: []string{"kasin.example"}, CreatedAt: f.Clock.Now()}); err != nil {
			t.Fatal(err)
		}
		err = request(f, handAdded)
		if !errors.As(err, &refusal) || refusal.Kind != admin.Conflict || !strings.Contains(refusal.Detail, "is not listed in THL's SOTE organisation register") {
			t.Fatalf("EAB request for an organisation no import listed = %v, want a conflict naming the register", err)
		}
		// One the register lists is served.
		if err := request(f, admintest.OrgOID); err != nil {
			t.Fatalf("EAB request for a listed organisation: %v", err)
		}
		if reqs, err := f.Svc.EABRequests(f.Ctx, f.Op("alice"), ""); err != nil || len(reqs) != 1 {
			t.Fatalf("EAB requests after one refusal and one request: %d, %v", len(reqs), err)
		}
	})
	t.Run("development", func(t *testing.T) {
		f := admintest.New(t, admin.Config{Development: true}, nil)
		if _, err := f.Svc.AddOrganisation(f.Ctx, f.Op("rita"), in); err != nil {
			t.Fatalf("AddOrganisation in development: %v", err)
		}
		if err := request(f, handAdded); err != nil {
			t.Fatalf("EAB request for an organisation added by hand in development: %v", err)
		}
	})
}
