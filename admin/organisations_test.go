package admin_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/admintest"
	"github.com/varmenne/varmenne/policy/thl"
)

// TestRegisterImportRefusesNamesNoSubjectCarries: a register record whose long
// name no certificate subject can carry does not enter: a new organisation is not
// added, a known one keeps its long name, and the report and audit log say so.
func TestRegisterImportRefusesNamesNoSubjectCarries(t *testing.T) {
	f := admintest.New(t, admin.Config{}, nil)
	long := strings.Repeat("x", 65)
	rep, err := f.Svc.ImportRegister(f.Ctx, f.Op("alice"), "test", []thl.Entry{
		{OID: admintest.OrgOID, LongName: long, Status: "active"},
		{OID: "1.2.246.10.7.10.0", LongName: long, Status: "active"},
		{OID: admintest.OrgOther, LongName: "Terveys", Status: "active"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Refused) != 2 || !strings.Contains(rep.Refused[0].Why, "at most 64") {
		t.Fatalf("refused %+v, want both records with the long name of 65 characters", rep.Refused)
	}
	if _, err := f.St.GetOrganisation(f.Ctx, "1.2.246.10.7.10.0"); err == nil {
		t.Error("the new organisation with an unusable long name was added")
	}
	if o, err := f.St.GetOrganisation(f.Ctx, admintest.OrgOID); err != nil || o.LongName != "Helsingin apteekki" {
		t.Errorf("the known organisation's long name: %+v %v, want it kept", o, err)
	}
	if events := f.Events(0); !admintest.HasEvent(events, "alice", "organisation.import", "ok", "refused=") {
		t.Errorf("the import's audit event does not list the refused records:%s", admintest.Describe(events))
	}
}

// TestSharedNamesNeedAnAdministrator: a registrar cannot approve a name for two
// organisations; an administrator can, and the approval is recorded.
func TestSharedNamesNeedAnAdministrator(t *testing.T) {
	f := admintest.New(t, admin.Config{}, nil)
	in := admin.NamesInput{Domains: []string{"www.apteekki.example"}}
	_, err := f.Svc.AddNames(f.Ctx, f.Op("rita"), admintest.OrgOther, in)
	var refusal *admin.Error
	if !errors.As(err, &refusal) || refusal.Kind != admin.Conflict || !strings.Contains(refusal.Detail, admintest.OrgOID) {
		t.Fatalf("an overlapping name: %v, want a Conflict naming %s", err, admintest.OrgOID)
	}
	in.Shared = true
	if _, err := f.Svc.AddNames(f.Ctx, f.Op("rita"), admintest.OrgOther, in); !errors.As(err, &refusal) || refusal.Kind != admin.Forbidden {
		t.Fatalf("a registrar sharing a name: %v, want Forbidden", err)
	}
	if _, err := f.Svc.AddNames(f.Ctx, f.Op("alice"), admintest.OrgOther, in); err != nil {
		t.Fatalf("an administrator sharing a name: %v", err)
	}
	if !admintest.HasEvent(f.Events(0), "alice", "organisation.names.add", "ok", "shared=www.apteekki.example") {
		t.Errorf("the shared approval is not recorded:%s", admintest.Describe(f.Events(0)))
	}
}
