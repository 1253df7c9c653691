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
	if err := f.Svc.DisableOperator(f.Ctx, f.Op("alice"), "rita", "left"); err != nil {
		t.Fatal(err)
	}
	before := f.LastSeq()
	_, err := f.Svc.Authenticate(f.Ctx, admin.Credential{Token: f.Tokens["rita"]})
	var refusal *admin.Error
	if !errors.As(err, &refusal) || refusal.Kind != admin.Unauthenticated {
		t.Fatalf("a disabled operator's token: %v, want Unauthenticated", err)
	}
	if !admintest.HasEvent(f.Events(before), "unknown", string(audit.ActOperatorLogin), "refused: operator rita is disabled", "token of rita") {
		t.Errorf("the refused login is not recorded:%s", admintest.Describe(f.Events(before)))
	}
	if err := f.Svc.DisableOperator(f.Ctx, f.Op("alice"), "carl", "left"); err != nil {
		t.Fatal(err)
	}
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
