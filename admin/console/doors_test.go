package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/admintest"
	"github.com/varmenne/varmenne/audit"
)

// consoleForm is one of the console's state changes: the form, who may and who
// may not send it, and the audit actions one success records.
type consoleForm struct {
	name             string
	allowed, refused string
	form             func(f *admintest.Fixture) (string, url.Values)
	actions          []audit.Action
}

func consoleForms() []consoleForm {
	serial := 0x0200
	made := map[*admintest.Fixture]bool{} // the organisation's one certificate
	return []consoleForm{
		{"request an EAB key", "rita", "aino", func(*admintest.Fixture) (string, url.Values) {
			return "/console/requests", url.Values{"organisation": {admintest.OrgOID}, "person": {"Maija"}, "identified_by": {"suomi.fi"}, "technical_contact": {"it@vendor.example"}}
		}, []audit.Action{audit.ActEABRequest}},
		{"approve", "alice", "rita", func(f *admintest.Fixture) (string, url.Values) {
			return "/console/requests/" + f.Request("rita") + "/approve", url.Values{}
		}, []audit.Action{audit.ActEABApprove}},
		{"reject", "alice", "rita", func(f *admintest.Fixture) (string, url.Values) {
			return "/console/requests/" + f.Request("rita") + "/reject", url.Values{"reason": {"no contract"}}
		}, []audit.Action{audit.ActEABReject}},
		{"hand the key over", "rita", "aino", func(f *admintest.Fixture) (string, url.Values) {
			id, _ := f.Approved("rita", "alice")
			return "/console/requests/" + id + "/key", url.Values{}
		}, []audit.Action{audit.ActEABHandover}},
		{"revoke an EAB key", "alice", "rita", func(f *admintest.Fixture) (string, url.Values) {
			_, kid := f.Approved("rita", "bob")
			return "/console/eab-keys/" + kid + "/revoke", url.Values{"reason": {"lost"}, "organisation": {admintest.OrgOID}}
		}, []audit.Action{audit.ActEABRevoke}},
		{"suspend", "alice", "rita", func(*admintest.Fixture) (string, url.Values) {
			return "/console/organisations/" + admintest.OrgOID + "/suspend", url.Values{"reason": {"unpaid"}}
		}, []audit.Action{audit.ActOrganisationSuspend}},
		{"resume", "alice", "rita", func(f *admintest.Fixture) (string, url.Values) {
			_ = f.Svc.Suspend(f.Ctx, f.Op("bob"), admintest.OrgOID, "unpaid") // suspended already on the second call
			return "/console/organisations/" + admintest.OrgOID + "/resume", url.Values{}
		}, []audit.Action{audit.ActOrganisationResume}},
		{"revoke a certificate", "alice", "rita", func(f *admintest.Fixture) (string, url.Values) {
			serial++
			s := fmt.Sprintf("%04x", serial)
			f.Certificate(s, "www.apteekki.example")
			return "/console/certificates/" + s + "/revoke", url.Values{"reason": {"superseded"}, "requested_by": {"Maija"}, "identified_by": {"phone"}}
		}, []audit.Action{audit.ActRevoke}},
		{"revoke a certificate on its organisation's page", "alice", "rita", func(f *admintest.Fixture) (string, url.Values) {
			serial++
			s := fmt.Sprintf("%04x", serial)
			f.Certificate(s, "www.apteekki.example")
			return "/console/organisations/" + admintest.OrgOID + "/certificates/" + s + "/revoke",
				url.Values{"reason": {"keyCompromise"}, "requested_by": {"Maija"}, "identified_by": {"suomi.fi"}}
		}, []audit.Action{audit.ActRevoke}}, // the key is blocked in the same transaction, recorded in the revocation
		{"revoke every certificate of an organisation", "alice", "rita", func(f *admintest.Fixture) (string, url.Values) {
			if !made[f] {
				made[f] = true
				serial++
				f.Certificate(fmt.Sprintf("%04x", serial), "www.apteekki.example")
			}
			return "/console/organisations/" + admintest.OrgOID + "/revoke", url.Values{"reason": {"cessationOfOperation"}, "requested_by": {"Maija"}, "identified_by": {"contract"}}
		}, []audit.Action{audit.ActRevoke}},
	}
}

// TestEveryConsoleFormThroughTheService: each console form is refused for a role
// the service refuses (recorded, nothing changed), records exactly its audit
// actions when allowed, and changes nothing when the audit log cannot be written.
func TestEveryConsoleFormThroughTheService(t *testing.T) {
	for _, cf := range consoleForms() {
		t.Run(cf.name, func(t *testing.T) {
			f := newFixture(t, admin.Config{})
			// The role check: refused, recorded, nothing changed.
			b := newBrowser(f, f.Srv.Client())
			csrf := b.login(cf.refused)
			path, form := cf.form(f)
			form.Set("csrf", csrf)
			snap, before := admintest.Snapshot(t, f.Path), f.LastSeq()
			if resp, _ := b.post(path, form); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%s sent %s: %d, want 403", cf.refused, cf.name, resp.StatusCode)
			}
			if !admintest.HasEvent(f.Events(before), cf.refused, string(audit.ActAccessDenied), "refused: role", "") {
				t.Errorf("the refusal is not recorded:%s", admintest.Describe(f.Events(before)))
			}
			if admintest.Snapshot(t, f.Path) != snap {
				t.Errorf("a refused form changed the database")
			}
			// The audit log down: nothing changes.
			b = newBrowser(f, f.Srv.Client())
			csrf = b.login(cf.allowed)
			path, form = cf.form(f)
			form.Set("csrf", csrf)
			snap, before = admintest.Snapshot(t, f.Path), f.LastSeq()
			restore := admintest.AuditDown(t, f.Path)
			resp, _ := b.post(path, form)
			restore()
			if resp.StatusCode != http.StatusInternalServerError {
				t.Errorf("with the audit log down: %d, want 500", resp.StatusCode)
			}
			if admintest.Snapshot(t, f.Path) != snap || len(f.Events(before)) != 0 {
				t.Errorf("the database changed although the audit write failed")
			}
			// The same form, sent again with the log up, records exactly its actions.
			before = f.LastSeq()
			if resp, body := b.post(path, form); resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d %s", cf.name, resp.StatusCode, body)
			}
			var got []audit.Action
			for _, e := range f.Events(before) {
				if e.Actor != cf.allowed {
					t.Errorf("event %+v: want one of %s", e, cf.allowed)
				}
				got = append(got, audit.Action(e.Action))
			}
			if !slices.Equal(got, cf.actions) {
				t.Errorf("actions %v, want %v", got, cf.actions)
			}
		})
	}
}
