package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/audit"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/store"
)

const otherOID = "1.2.246.10.87654321.10.0"

// seedCertificate stores a certificate as a finished issuance of org's account does;
// the DER is a placeholder, which renew-early never reads.
func seedCertificate(t *testing.T, st *store.SQL, org, serial, issuer string, notAfter time.Time) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	acct := "acct-" + serial
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.CreateEAB(ctx, store.EABKey{KID: "kid-" + serial, OrgOID: org, HMACKey: []byte("k"), Status: store.EABApproved, CreatedAt: now}))
	must(st.CreateAccount(ctx, store.Account{ID: acct, Thumbprint: "thumb-" + serial, JWK: []byte("{}"), OrgOID: org, Status: "valid", CreatedAt: now}, "kid-"+serial))
	o := store.Order{ID: "o-" + serial, AccountID: acct, OrgOID: org, Status: "ready", Expires: now.Add(time.Hour),
		Names: []string{"www.example.fi"}, Profile: "sote-server", CreatedAt: now}
	must(st.CreateOrder(ctx, o, nil))
	must(st.BeginFinalize(ctx, o.ID))
	keyHash := fmt.Sprintf("%064s", serial)
	must(st.RecordIntent(ctx, store.IssuanceIntent{Serial: serial, OrderID: o.ID, Issuer: issuer, Names: o.Names, KeyHash: keyHash, CreatedAt: now}))
	must(st.FinishIssuance(ctx, store.Certificate{Serial: serial, Issuer: issuer, DER: []byte("der"), Names: o.Names, KeyHash: keyHash,
		NotBefore: now.Add(-time.Hour), NotAfter: notAfter, OrgOID: org, AccountID: acct, OrderID: o.ID, Profile: "sote-server", CreatedAt: now}))
}

func TestRenewEarly(t *testing.T) {
	isolate(t)
	data := newData(t)
	if err, _, _ := runCmd(t, "org", "add", "--data", data, "--oid", testOID, "--name", "Apteekki Oy", "--domain", "example.fi"); err != nil {
		t.Fatal(err)
	}
	if err, _, _ := runCmd(t, "org", "add", "--data", data, "--oid", otherOID, "--name", "Toinen Oy", "--domain", "toinen.fi"); err != nil {
		t.Fatal(err)
	}
	st := openData(t, data)
	future := time.Now().Add(365 * 24 * time.Hour)
	const (
		a1      = "0100000168f0a805c366b43b5de968c691a1" // testOID, production
		a2      = "0100000168f0a805c366b43b5de968c691a2" // testOID, test
		b1      = "0100000168f0a805c366b43b5de968c691b1" // otherOID, production
		expired = "0100000168f0a805c366b43b5de968c691e0"
		revoked = "0100000168f0a805c366b43b5de968c691f0"
	)
	seedCertificate(t, st, testOID, a1, "production", future)
	seedCertificate(t, st, testOID, a2, "test", future)
	seedCertificate(t, st, otherOID, b1, "production", future)
	seedCertificate(t, st, testOID, expired, "production", time.Now().Add(-time.Minute))
	seedCertificate(t, st, testOID, revoked, "production", future)
	if err := st.Revoke(context.Background(), store.Revocation{Serial: revoked, RevokedAt: time.Now(), Reason: 1,
		RequestedBy: "x", IdentifiedBy: "y", PerformedBy: "z"}, nil); err != nil {
		t.Fatal(err)
	}

	t.Run("refusals are one line and change nothing", func(t *testing.T) {
		base := []string{"renew-early", "--data", data}
		for _, tc := range []struct {
			name  string
			args  []string
			wants []string
		}{
			{"no selector", []string{"--reason", "r"}, []string{"exactly one of --serial", "--org", "--issuer"}},
			{"two selectors", []string{"--serial", a1, "--org", testOID, "--reason", "r"}, []string{"exactly one"}},
			{"no reason", []string{"--serial", a1}, []string{"--reason is required"}},
			{"a blank reason", []string{"--serial", a1, "--reason", "  "}, []string{"--reason is required"}},
			{"an --org that is not an OID", []string{"--org", "Apteekki", "--reason", "r"}, []string{`"Apteekki"`, "not an OID"}},
			{"an unknown organisation", []string{"--org", "1.2.246.10.1.10.0", "--reason", "r"}, []string{"organisation 1.2.246.10.1.10.0 is not known"}},
			{"an unknown serial", []string{"--serial", "0x0abc", "--reason", "r"}, []string{"no certificate with serial 0abc"}},
			{"an expired certificate", []string{"--serial", expired, "--reason", "r"}, []string{expired, "expired"}},
			{"a revoked certificate", []string{"--serial", revoked, "--reason", "r"}, []string{revoked, "revoked", "ARI already"}},
			{"an issuer with no certificates", []string{"--issuer", "staging", "--reason", "r"}, []string{`issuer "staging"`, "production or test"}},
			{"a missing database", []string{"--data", t.TempDir(), "--serial", a1, "--reason", "r"}, []string{"no database"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err, stdout, _ := runCmd(t, append(base, tc.args...)...)
				wantOneLineError(t, err, tc.wants...)
				if stdout != "" {
					t.Errorf("stdout %q on a refusal", stdout)
				}
			})
		}
		for _, s := range []string{a1, a2, b1, expired, revoked} {
			if _, err := st.GetRenewalWindow(context.Background(), s); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("window of %s after refusals: %v, want none", s, err)
			}
		}
	})

	// moved runs renew-early and returns the serials it printed.
	moved := func(t *testing.T, args ...string) []string {
		t.Helper()
		err, stdout, _ := runCmd(t, append([]string{"renew-early", "--data", data}, args...)...)
		if err != nil {
			t.Fatalf("renew-early %v: %v", args, err)
		}
		var serials []string
		for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
			if strings.HasPrefix(l, "0100") {
				serials = append(serials, l)
			}
		}
		if !strings.HasPrefix(stdout, "moved the renewal window of ") {
			t.Errorf("stdout %q", stdout)
		}
		return serials
	}
	wantMoved := func(t *testing.T, got []string, want ...string) {
		t.Helper()
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("moved %v, want %v", got, want)
		}
		for _, s := range want {
			w, err := st.GetRenewalWindow(context.Background(), s)
			if err != nil {
				t.Fatalf("window of %s: %v", s, err)
			}
			if !w.End.Before(time.Now()) || w.SetBy != admin.BootstrapOperator {
				t.Errorf("window of %s: %+v, want one in the past set by the operator who ran the command", s, w)
			}
		}
	}

	t.Run("--serial moves one certificate and audits it", func(t *testing.T) {
		wantMoved(t, moved(t, "--serial", strings.ToUpper(a1), "--reason", "key compromise, ticket 1234"), a1)
		events, err := st.AuditEvents(context.Background(), 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, e := range events {
			if e.Action == string(audit.ActRenewEarly) && strings.Contains(e.Object, "serial="+a1) {
				found = true
				if e.Actor != admin.BootstrapOperator || !strings.Contains(e.Object, `reason="key compromise, ticket 1234"`) {
					t.Errorf("audit event %+v", e)
				}
			}
		}
		if !found {
			t.Errorf("no %s audit event for %s in %d events", string(audit.ActRenewEarly), a1, len(events))
		}
	})
	t.Run("--org moves the organisation's unexpired, unrevoked certificates", func(t *testing.T) {
		wantMoved(t, moved(t, "--org", testOID, "--reason", "mis-issuance"), a1, a2)
	})
	t.Run("--issuer moves the issuer's certificates of every organisation", func(t *testing.T) {
		wantMoved(t, moved(t, "--issuer", "production", "--reason", "issuer retired"), a1, b1)
	})
}
