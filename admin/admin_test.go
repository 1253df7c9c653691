package admin_test

import (
	"crypto/x509"
	"errors"
	"testing"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/admintest"
	"github.com/varmenne/varmenne/audit"
)

// TestRefusalKinds: the service says what kind of refusal each one is; the front
// ends choose how to show it.
func TestRefusalKinds(t *testing.T) {
	f := admintest.New(t, admin.Config{}, nil)
	id := f.Request("alice")
	decided, _ := f.Approved("eservice", "bob")
	if _, err := f.Svc.Handover(f.Ctx, f.Op("eservice"), decided); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want admin.Kind
	}{
		{"a registrar approving", func() error { _, err := f.Svc.Approve(f.Ctx, f.Op("rita"), id); return err }, admin.Forbidden},
		{"the requester approving", func() error { _, err := f.Svc.Approve(f.Ctx, f.Op("alice"), id); return err }, admin.DualControl},
		{"an unknown request", func() error { _, err := f.Svc.EABRequest(f.Ctx, f.Op("alice"), "nope"); return err }, admin.NotFound},
		{"a decided request approved again", func() error { _, err := f.Svc.Approve(f.Ctx, f.Op("alice"), decided); return err }, admin.Conflict},
		{"a key handed over twice", func() error { _, err := f.Svc.Handover(f.Ctx, f.Op("eservice"), decided); return err }, admin.Gone},
		{"a rejection without a reason", func() error { return f.Svc.Reject(f.Ctx, f.Op("bob"), id, " ") }, admin.Malformed},
		{"a wrong token", func() error {
			_, err := f.Svc.Authenticate(f.Ctx, admin.Credential{Token: f.Tokens["rita"] + "x"})
			return err
		}, admin.Unauthenticated},
		{"an unknown console session", func() error { _, err := f.Svc.Session(f.Ctx, "nope"); return err }, admin.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e *admin.Error
			if err := tt.call(); !errors.As(err, &e) || e.Kind != tt.want {
				t.Fatalf("%v (%T), want a refusal of kind %v", err, err, tt.want)
			}
		})
	}
}

// TestConsoleSessionLifecycle: a session started for an operator finds that
// operator by its cookie until it ends, and the login and logout are audited.
func TestConsoleSessionLifecycle(t *testing.T) {
	f := admintest.New(t, admin.Config{}, nil)
	rita := f.Op("rita")
	before := f.LastSeq()
	sess, err := f.Svc.StartSession(f.Ctx, rita)
	if err != nil || sess.Cookie == "" || sess.Lifetime != admin.SessionLifetime {
		t.Fatalf("StartSession: %+v %v", sess, err)
	}
	if who, err := f.Svc.Session(f.Ctx, sess.Cookie); err != nil || who.Name != "rita" {
		t.Fatalf("Session: %+v %v, want rita", who, err)
	}
	if err := f.Svc.EndSession(f.Ctx, rita, sess.Cookie); err != nil {
		t.Fatal(err)
	}
	var e *admin.Error
	if _, err := f.Svc.Session(f.Ctx, sess.Cookie); !errors.As(err, &e) || e.Kind != admin.Unauthenticated {
		t.Fatalf("Session after EndSession: %v, want Unauthenticated", err)
	}
	events := f.Events(before)
	if !admintest.HasEvent(events, "rita", string(audit.ActOperatorLogin), "ok", "console token login") ||
		!admintest.HasEvent(events, "rita", string(audit.ActOperatorLogout), "ok", "console") {
		t.Errorf("login and logout not audited:%s", admintest.Describe(events))
	}
}

// TestDisabledOperatorIsRefused: a disabled operator's token and client
// certificate stop working at once, and so does an expired token.
func TestDisabledOperatorIsRefused(t *testing.T) {
	f := admintest.New(t, admin.Config{}, nil)
	if _, err := f.Svc.Authenticate(f.Ctx, admin.Credential{Token: f.Tokens["rita"]}); err != nil {
		t.Fatalf("rita before: %v", err)
	}
	disable := func(name string) {
		t.Helper()
		pending, err := f.Svc.DisableOperator(f.Ctx, f.Op("alice"), name, "left")
		if err != nil || pending == nil {
			t.Fatalf("disable %s in production: %+v, %v; want a change waiting for a second administrator", name, pending, err)
		}
		if _, err := f.Svc.ApproveOperatorChange(f.Ctx, f.Op("bob"), nil, pending.ID); err != nil {
			t.Fatal(err)
		}
	}
	disable("rita")
	before := f.LastSeq()
	_, err := f.Svc.Authenticate(f.Ctx, admin.Credential{Token: f.Tokens["rita"]})
	var refusal *admin.Error
	if !errors.As(err, &refusal) || refusal.Kind != admin.Unauthenticated {
		t.Fatalf("a disabled operator's token: %v, want Unauthenticated", err)
	}
	if !admintest.HasEvent(f.Events(before), "unknown", string(audit.ActOperatorLogin), "refused: operator rita is disabled", "token of rita") {
		t.Errorf("the refused login is not recorded:%s", admintest.Describe(f.Events(before)))
	}
	disable("carl")
	cert, err := x509.ParseCertificate(f.CertPair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Svc.Authenticate(f.Ctx, admin.Credential{Cert: cert}); !errors.As(err, &refusal) || refusal.Kind != admin.Unauthenticated {
		t.Fatalf("a disabled operator's client certificate: %v, want Unauthenticated", err)
	}
	f.Clock.Add(admin.DefaultTokenLifetime)
	before = f.LastSeq()
	if _, err := f.Svc.Authenticate(f.Ctx, admin.Credential{Token: f.Tokens["bob"]}); !errors.As(err, &refusal) || refusal.Kind != admin.Unauthenticated {
		t.Fatalf("an expired token: %v, want Unauthenticated", err)
	}
	if !admintest.HasEvent(f.Events(before), "unknown", string(audit.ActOperatorLogin), "refused: the token of bob expired at", "token of bob") {
		t.Errorf("the expired token's refusal is not recorded:%s", admintest.Describe(f.Events(before)))
	}
}

// TestOperatorChangesNeedTwoAdministrators: in production a change to operators
// one administrator asks for is applied only when another approves it, with both
// names on the record; the requester cannot approve it, and the new credential
// goes to the approver.
func TestOperatorChangesNeedTwoAdministrators(t *testing.T) {
	f := admintest.New(t, admin.Config{}, nil)
	made, err := f.Svc.AddOperator(f.Ctx, f.Op("alice"), f.CA, admin.OperatorInput{Name: "uusi", Role: "registrar", Token: true})
	if err != nil || made.Pending == nil || made.Token != "" {
		t.Fatalf("add in production: %+v, %v; want a pending change and no credential", made, err)
	}
	if _, err := f.St.GetOperator(f.Ctx, "uusi"); err == nil {
		t.Fatal("the operator exists before the second administrator approved")
	}
	_, err = f.Svc.ApproveOperatorChange(f.Ctx, f.Op("alice"), f.CA, made.Pending.ID)
	var refusal *admin.Error
	if !errors.As(err, &refusal) || refusal.Kind != admin.DualControl {
		t.Fatalf("the requester approving: %v, want DualControl", err)
	}
	if _, err := f.Svc.ApproveOperatorChange(f.Ctx, f.Op("rita"), f.CA, made.Pending.ID); !errors.As(err, &refusal) || refusal.Kind != admin.Forbidden {
		t.Fatalf("a registrar approving: %v, want Forbidden", err)
	}
	before := f.LastSeq()
	got, err := f.Svc.ApproveOperatorChange(f.Ctx, f.Op("bob"), f.CA, made.Pending.ID)
	if err != nil || got.Token == "" {
		t.Fatalf("bob approving: %+v, %v", got, err)
	}
	if _, err := f.Svc.Authenticate(f.Ctx, admin.Credential{Token: got.Token}); err != nil {
		t.Fatalf("the new operator's token: %v", err)
	}
	events := f.Events(before)
	if !admintest.HasEvent(events, "bob", string(audit.ActOperatorApprove), "ok", made.Pending.ID) ||
		!admintest.HasEvent(events, "alice+bob", string(audit.ActOperatorAdd), "ok", "operator=uusi role=registrar") {
		t.Errorf("events after the approval:%s", admintest.Describe(events))
	}
	if _, err := f.Svc.ApproveOperatorChange(f.Ctx, f.Op("carl"), f.CA, made.Pending.ID); !errors.As(err, &refusal) || refusal.Kind != admin.Conflict {
		t.Fatalf("approving twice: %v, want Conflict", err)
	}
	// An operator's own new credential needs no second administrator.
	if own, err := f.Svc.RotateOperator(f.Ctx, f.Op("rita"), nil, admin.OperatorInput{Name: "rita", Token: true}); err != nil || own.Pending != nil || own.Token == "" {
		t.Fatalf("rita's own new token: %+v, %v", own, err)
	}
	// A rejected change is never applied.
	pending, err := f.Svc.RemoveOperator(f.Ctx, f.Op("alice"), "aino")
	if err != nil || pending == nil {
		t.Fatalf("remove: %+v, %v", pending, err)
	}
	if err := f.Svc.RejectOperatorChange(f.Ctx, f.Op("bob"), pending.ID, "she stays"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Svc.ApproveOperatorChange(f.Ctx, f.Op("carl"), nil, pending.ID); !errors.As(err, &refusal) || refusal.Kind != admin.Conflict {
		t.Fatalf("approving a rejected change: %v, want Conflict", err)
	}
	if _, err := f.St.GetOperator(f.Ctx, "aino"); err != nil {
		t.Fatalf("the rejected removal was applied: %v", err)
	}
}
