package admin_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/admintest"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/policy/thl"
)

// useCase is one operator use case of the service: who may and who may not, what
// it does, and the audit actions it records.
type useCase struct {
	name    string
	allowed string // an operator of a role that may
	refused string // an operator of a role that may not ("": every role may)
	// setup prepares what run acts on and returns its argument.
	setup func(f *admintest.Fixture) string
	run   func(f *admintest.Fixture, who, arg string) error
	// actions are what one successful run records, in order.
	actions []audit.Action
}

func useCases() []useCase {
	none := func(*admintest.Fixture) string { return "" }
	request := func(f *admintest.Fixture) string { return f.Request("rita") }
	approved := func(f *admintest.Fixture) string { id, _ := f.Approved("rita", "alice"); return id }
	approvedKID := func(f *admintest.Fixture) string { _, kid := f.Approved("rita", "alice"); return kid }
	cert := func(f *admintest.Fixture) string {
		f.Certificate("0100000168f0a805c366b43b5de968c691a1", "www.apteekki.example")
		return "0100000168f0a805c366b43b5de968c691a1"
	}
	suspended := func(f *admintest.Fixture) string {
		if err := f.Svc.Suspend(f.Ctx, f.Op("alice"), admintest.OrgOID, "unpaid"); err != nil {
			f.T.Fatal(err)
		}
		return admintest.OrgOID
	}
	revokeIn := admin.RevokeInput{Reason: "superseded", RequestedBy: "Maija, Apteekki Oy", IdentifiedBy: "e-service", Door: admin.DoorCLI}
	return []useCase{
		{"request an EAB key", "rita", "aino", none, func(f *admintest.Fixture, who, _ string) error {
			_, err := f.Svc.RequestEAB(f.Ctx, f.Op(who), admintest.RequestInput())
			return err
		}, []audit.Action{audit.ActEABRequest}},
		{"create an EAB key (development shortcut)", "alice", "rita", none, func(f *admintest.Fixture, who, _ string) error {
			_, err := f.Svc.CreateKey(f.Ctx, f.Op(who), admintest.RequestInput())
			return err
		}, []audit.Action{audit.ActEABRequest, audit.ActEABApprove, audit.ActEABHandover}},
		{"approve an EAB request", "alice", "eservice", request, func(f *admintest.Fixture, who, id string) error {
			_, err := f.Svc.Approve(f.Ctx, f.Op(who), id)
			return err
		}, []audit.Action{audit.ActEABApprove}},
		{"reject an EAB request", "alice", "aino", request, func(f *admintest.Fixture, who, id string) error {
			return f.Svc.Reject(f.Ctx, f.Op(who), id, "no contract")
		}, []audit.Action{audit.ActEABReject}},
		{"hand an EAB key over", "rita", "aino", approved, func(f *admintest.Fixture, who, id string) error {
			_, err := f.Svc.Handover(f.Ctx, f.Op(who), id)
			return err
		}, []audit.Action{audit.ActEABHandover}},
		{"revoke an EAB key", "alice", "rita", approvedKID, func(f *admintest.Fixture, who, kid string) error {
			_, err := f.Svc.RevokeKey(f.Ctx, f.Op(who), kid, "lost", true)
			return err
		}, []audit.Action{audit.ActEABRevoke}},
		{"suspend an organisation", "alice", "rita", none, func(f *admintest.Fixture, who, _ string) error {
			return f.Svc.Suspend(f.Ctx, f.Op(who), admintest.OrgOID, "unpaid")
		}, []audit.Action{audit.ActOrganisationSuspend}},
		{"resume an organisation", "alice", "rita", suspended, func(f *admintest.Fixture, who, oid string) error {
			return f.Svc.Resume(f.Ctx, f.Op(who), oid)
		}, []audit.Action{audit.ActOrganisationResume}},
		{"add an organisation", "rita", "aino", none, func(f *admintest.Fixture, who, _ string) error {
			_, err := f.Svc.AddOrganisation(f.Ctx, f.Op(who), admin.OrganisationInput{OID: "1.2.246.10.5.10.0", Name: "Uusi Oy", Domains: []string{"uusi.example"}})
			return err
		}, []audit.Action{audit.ActOrganisationAdd}},
		{"import the register", "alice", "aino", none, func(f *admintest.Fixture, who, _ string) error {
			_, err := f.Svc.ImportRegister(f.Ctx, f.Op(who), "test", []thl.Entry{{OID: admintest.OrgOID, LongName: "Helsingin apteekki", Status: "active"}})
			return err
		}, []audit.Action{audit.ActRegisterImport}},
		{"approve domains and networks", "rita", "aino", none, func(f *admintest.Fixture, who, _ string) error {
			_, err := f.Svc.AddNames(f.Ctx, f.Op(who), admintest.OrgOID, admin.NamesInput{Domains: []string{"toinen.example"}, Networks: []string{"192.0.2.0/24"}})
			return err
		}, []audit.Action{audit.ActOrganisationNames}},
		{"withdraw a domain", "alice", "aino", none, func(f *admintest.Fixture, who, _ string) error {
			_, err := f.Svc.RemoveNames(f.Ctx, f.Op(who), admintest.OrgOID, admin.NamesInput{Domains: []string{"apteekki.example"}})
			return err
		}, []audit.Action{audit.ActOrganisationUnnames}},
		{"record a certificate of conformity", "rita", "aino", none, func(f *admintest.Fixture, who, _ string) error {
			_, err := f.Svc.AddConformity(f.Ctx, f.Op(who), admintest.OrgOID, admin.ConformityInput{System: "Järjestelmä", Expires: f.Clock.Now().AddDate(1, 0, 0)})
			return err
		}, []audit.Action{audit.ActConformityAdd}},
		{"add an operator", "alice", "rita", none, func(f *admintest.Fixture, who, _ string) error {
			_, err := f.Svc.AddOperator(f.Ctx, f.Op(who), f.CA, admin.OperatorInput{Name: "uusi", Role: "auditor", Token: true})
			return err
		}, []audit.Action{audit.ActOperatorAdd}},
		{"disable an operator", "alice", "rita", none, func(f *admintest.Fixture, who, _ string) error {
			_, err := f.Svc.DisableOperator(f.Ctx, f.Op(who), "aino", "left the company")
			return err
		}, []audit.Action{audit.ActOperatorDisable}},
		{"remove an operator", "alice", "rita", none, func(f *admintest.Fixture, who, _ string) error {
			_, err := f.Svc.RemoveOperator(f.Ctx, f.Op(who), "eservice")
			return err
		}, []audit.Action{audit.ActOperatorRemove}},
		{"give an operator a new credential", "alice", "rita", none, func(f *admintest.Fixture, who, _ string) error {
			_, err := f.Svc.RotateOperator(f.Ctx, f.Op(who), f.CA, admin.OperatorInput{Name: "eservice", Token: true})
			return err
		}, []audit.Action{audit.ActOperatorRotate}},
		{"revoke a certificate", "alice", "rita", cert, func(f *admintest.Fixture, who, serial string) error {
			_, err := f.Svc.RevokeCertificate(f.Ctx, f.Op(who), serial, revokeIn)
			return err
		}, []audit.Action{audit.ActRevoke}},
		{"revoke an organisation's certificates", "alice", "rita", cert, func(f *admintest.Fixture, who, _ string) error {
			_, err := f.Svc.RevokeOrganisation(f.Ctx, f.Op(who), admintest.OrgOID, revokeIn)
			return err
		}, []audit.Action{audit.ActRevoke}},
		{"renew early", "alice", "rita", cert, func(f *admintest.Fixture, who, serial string) error {
			_, _, err := f.Svc.RenewEarly(f.Ctx, f.Op(who), admin.RenewEarlyInput{Serial: serial, Reason: "mis-issuance"})
			return err
		}, []audit.Action{audit.ActRenewEarly}},
		{"block a key", "alice", "rita", none, func(f *admintest.Fixture, who, _ string) error {
			return f.Svc.BlockKey(f.Ctx, f.Op(who), strings.Repeat("ab", 32), "reported compromised")
		}, []audit.Action{audit.ActKeyBlock}},
		{"export the audit log", "aino", "rita", none, func(f *admintest.Fixture, who, _ string) error {
			_, err := f.Svc.ExportAudit(f.Ctx, f.Op(who), time.Time{}, time.Time{}, func(admin.EventView) error { return nil })
			return err
		}, []audit.Action{audit.ActAuditExport}},
		{"log in to the console", "rita", "", none, func(f *admintest.Fixture, who, _ string) error {
			_, err := f.Svc.StartSession(f.Ctx, f.Op(who))
			return err
		}, []audit.Action{audit.ActOperatorLogin}},
	}
}

// TestEveryUseCase proves for every operator use case of the service: the role
// check (a refused role changes nothing and its attempt is recorded), exactly the
// audit events of the right actions when it succeeds, and that nothing changes
// when the audit log cannot be written.
func TestEveryUseCase(t *testing.T) {
	for _, uc := range useCases() {
		t.Run(uc.name, func(t *testing.T) {
			// Every operator logs in as themselves: login has no refused role, and
			// so no role check to run.
			roleCheck := func(t *testing.T) {
				f := admintest.New(t, admin.Config{Development: true}, nil)
				arg := uc.setup(f)
				before, seq := admintest.Snapshot(t, f.Path), f.LastSeq()
				err := uc.run(f, uc.refused, arg)
				var refusal *admin.Error
				if !errors.As(err, &refusal) || refusal.Kind != admin.Forbidden {
					t.Fatalf("%s (%s): %v, want a Forbidden refusal", uc.refused, f.Op(uc.refused).Role, err)
				}
				if after := admintest.Snapshot(t, f.Path); after != before {
					t.Errorf("a refused attempt changed the database")
				}
				events := f.Events(seq)
				if len(events) != 1 || events[0].Action != string(audit.ActAccessDenied) || events[0].Actor != uc.refused || !strings.HasPrefix(events[0].Outcome, "refused") {
					t.Errorf("events after the refusal:%s\nwant one access.denied of %s", admintest.Describe(events), uc.refused)
				}
			}
			if uc.refused != "" {
				t.Run("the role check", roleCheck)
			}
			t.Run("one audit event of the right type", func(t *testing.T) {
				f := admintest.New(t, admin.Config{Development: true}, nil)
				arg := uc.setup(f)
				before, seq := admintest.Snapshot(t, f.Path), f.LastSeq()
				if err := uc.run(f, uc.allowed, arg); err != nil {
					t.Fatalf("%s: %v", uc.allowed, err)
				}
				var got []audit.Action
				for _, e := range f.Events(seq) {
					if e.Actor != uc.allowed || e.Outcome != audit.OK {
						t.Errorf("event %+v: want one of %s, ok", e, uc.allowed)
					}
					got = append(got, audit.Action(e.Action))
				}
				if !slices.Equal(got, uc.actions) {
					t.Errorf("actions %v, want %v", got, uc.actions)
				}
				if uc.actions[0] != audit.ActAuditExport && admintest.Snapshot(t, f.Path) == before {
					t.Errorf("the use case changed nothing")
				}
			})
			t.Run("nothing changes when the audit log cannot be written", func(t *testing.T) {
				f := admintest.New(t, admin.Config{Development: true}, nil)
				arg := uc.setup(f)
				before, seq := admintest.Snapshot(t, f.Path), f.LastSeq()
				restore := admintest.AuditDown(t, f.Path)
				err := uc.run(f, uc.allowed, arg)
				restore()
				if err == nil {
					t.Fatal("the use case succeeded without its audit record")
				}
				if after := admintest.Snapshot(t, f.Path); after != before {
					t.Errorf("the database changed although the audit write failed")
				}
				if n := len(f.Events(seq)); n != 0 {
					t.Errorf("%d events written", n)
				}
			})
		})
	}
}
