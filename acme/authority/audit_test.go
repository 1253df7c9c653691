package authority

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// failingAuditor refuses every event.
type failingAuditor struct{}

func (failingAuditor) Audit(context.Context, audit.Event, string) error {
	return errors.New("audit log unavailable")
}

func (failingAuditor) Change(context.Context, audit.Event, string, func(*store.Tx) error) error {
	return errors.New("audit log unavailable")
}

func TestAuditIssueAndRevoke(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	log := audit.New(f.st, nil)
	rec := audit.Recorder{Log: log, Actor: "varmenne serve"}
	f.a.cfg.Audit = rec
	f.ca.WithAuditor(rec)

	acct := f.account()
	cr, _, _ := f.issue(acct, "www.example.fi")
	reason := 4
	if err := f.a.Revoke(f.ctx, RevokeCaller{Account: acct}, revokeRequest(cr.DER, &reason)); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	events, err := f.st.AuditEvents(f.ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
	}
	want := []string{string(audit.ActAccountCreate), string(audit.ActOrderCreate), string(audit.ActSignBegin), string(audit.ActSignEnd), string(audit.ActRevoke)}
	if strings.Join(actions, " ") != strings.Join(want, " ") {
		t.Fatalf("audit actions = %v, want %v", actions, want)
	}
	rev := events[4]
	for _, s := range []string{"serial=" + cr.Serial, "reason=superseded", "requested_by=", acct.ID, "identified_by=", "performed_by="} {
		if !strings.Contains(rev.Object, s) {
			t.Errorf("revocation event object %q lacks %q", rev.Object, s)
		}
	}
	if rev.Outcome != audit.OK || rev.Actor != "varmenne ACME revokeCert" {
		t.Errorf("revocation event = %+v", rev)
	}
	for _, s := range []string{"account=" + acct.ID, "org=" + acct.OrgOID, "eab_kid=" + acct.EABKID} {
		if !strings.Contains(events[0].Object, s) {
			t.Errorf("account event object %q lacks %q", events[0].Object, s)
		}
	}
	if !strings.Contains(events[1].Object, "names=www.example.fi") || !strings.Contains(events[1].Object, "account="+acct.ID) {
		t.Errorf("order event object %q lacks the names or the account", events[1].Object)
	}
	if n, err := log.Verify(f.ctx); err != nil || n != 5 {
		t.Errorf("Verify = %d, %v; want 5, nil", n, err)
	}
}

func TestSuspendedOrganisationGetsNoNewOrders(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	acct := f.account()
	if err := f.st.SuspendOrganisation(f.ctx, acct.OrgOID, "anna", "contract ended", time.Now()); err != nil {
		t.Fatal(err)
	}
	_, err := f.a.NewOrder(f.ctx, acct, acme.NewOrderRequest{Identifiers: dnsIDs("www.example.fi")})
	wantKind(t, err, acme.Unauthorized)
	if !strings.Contains(err.Error(), "organisation "+acct.OrgOID+" is suspended") {
		t.Errorf("refusal %q does not say the organisation is suspended", err)
	}
	if err := f.st.ResumeOrganisation(f.ctx, acct.OrgOID); err != nil {
		t.Fatal(err)
	}
	f.order(acct, "www.example.fi")
}

func TestAuditFailureRefusesIssuance(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.ca.WithAuditor(failingAuditor{})
	acct := f.account()
	o := f.readyOrder(acct, "www.example.fi")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.finalize(acct, o.ID, makeCSR(t, key, &x509.CertificateRequest{DNSNames: []string{"www.example.fi"}}))
	wantKind(t, err, acme.ServerInternal)
}

// failAuditWrites makes every insert into the audit log fail, as a full disk or a
// database going down between the change and its event would.
func (f *fixture) failAuditWrites() {
	f.t.Helper()
	db, err := sql.Open("sqlite", f.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		f.t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER audit_down BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END`); err != nil {
		f.t.Fatal(err)
	}
}

// TestNoChangeWithoutItsEvent: an account or an order exists only with its audit
// event; when the event cannot be written the client gets serverInternal and
// nothing was created (the fault test saw orders issued without order.create).
func TestNoChangeWithoutItsEvent(t *testing.T) {
	t.Parallel()
	t.Run("order", func(t *testing.T) {
		f := newFixture(t, Config{})
		acct := f.account()
		f.failAuditWrites()
		_, err := f.a.NewOrder(f.ctx, acct, acme.NewOrderRequest{Identifiers: dnsIDs("www.example.fi")})
		wantKind(t, err, acme.ServerInternal)
		if !strings.Contains(err.Error(), "could not record the order; try again later") {
			t.Errorf("refusal %q does not say what failed", err)
		}
		ids, err := f.st.ListOrderIDs(f.ctx, acct.ID)
		if err != nil || len(ids) != 0 {
			t.Errorf("orders %v, %v: want none", ids, err)
		}
	})
	t.Run("account", func(t *testing.T) {
		f := newFixture(t, Config{})
		kid, mac := f.newEAB(testOrgOID, nil, store.EABApproved)
		key := newKey(t)
		f.failAuditWrites()
		_, _, err := f.a.NewAccount(f.ctx, newAccountRequest(t, key, kid, mac), jwstest.JWK(key), newAccountURL)
		wantKind(t, err, acme.ServerInternal)
		// The EAB key is still free: the client can try again.
		if ek, err := f.st.GetEAB(f.ctx, kid); err != nil || ek.Status != store.EABApproved {
			t.Errorf("EAB key %+v, %v: want it still approved", ek, err)
		}
	})
	t.Run("deactivation", func(t *testing.T) {
		f := newFixture(t, Config{})
		acct := f.account()
		f.failAuditWrites()
		_, err := f.a.UpdateAccount(f.ctx, acct, []byte(`{"status":"deactivated"}`))
		wantKind(t, err, acme.ServerInternal)
		if got, err := f.st.GetAccount(f.ctx, acct.ID); err != nil || got.Status != "valid" {
			t.Errorf("account %+v, %v: want it still valid", got, err)
		}
	})
	t.Run("events of account and order changes", func(t *testing.T) {
		f := newFixture(t, Config{})
		acct := f.account()
		f.order(acct, "www.example.fi")
		if _, err := f.a.UpdateAccount(f.ctx, acct, []byte(`{"status":"deactivated"}`)); err != nil {
			t.Fatal(err)
		}
		// Deactivating again changes nothing and records nothing.
		if _, err := f.a.UpdateAccount(f.ctx, acct, []byte(`{"status":"deactivated"}`)); err != nil {
			t.Fatal(err)
		}
		events, err := f.st.AuditEvents(f.ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range events {
			actions = append(actions, e.Action)
		}
		want := []string{string(audit.ActAccountCreate), string(audit.ActOrderCreate), string(audit.ActAccountDeactivate)}
		if strings.Join(actions, " ") != strings.Join(want, " ") {
			t.Errorf("audit actions = %v, want %v", actions, want)
		}
	})
}
