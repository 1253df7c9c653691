package store

import (
	"errors"
	"testing"
	"time"
)

// testGenerations: the database holds the issuer lifecycle's rules — one active
// generation per hierarchy, a retirement carried out by someone other than who
// asked, a retired generation's key asked to sign nothing, and after retirement
// one final CRL, valid past the last certificate, and nothing after it.
func testGenerations(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	gen := func(name, hierarchy string, n int) IssuerGeneration {
		return IssuerGeneration{Name: name, Hierarchy: hierarchy, Generation: n, Subject: "CN=" + name, CertSHA256: "sha-" + name,
			NotBefore: t0, NotAfter: t0.AddDate(5, 0, 0)}
	}
	first, _, err := w.s.RegisterGeneration(w.ctx, gen("production", "production", 1), "serve", t0)
	if err != nil || first.State != GenerationActive {
		t.Fatalf("first generation: %+v, %v; want active", first, err)
	}
	second, _, err := w.s.RegisterGeneration(w.ctx, gen("production-2", "production", 2), "ceremony", t0)
	if err != nil || second.State != GenerationStandby {
		t.Fatalf("second generation: %+v, %v; want standby", second, err)
	}
	if again, replaced, err := w.s.RegisterGeneration(w.ctx, gen("production-2", "production", 2), "serve", t0.Add(time.Hour)); err != nil ||
		!again.Registered.Equal(second.Registered) || again.StateBy != "ceremony" || replaced != "" {
		t.Errorf("registering a known generation again: %+v, %q, %v; want it unchanged", again, replaced, err)
	}
	recertified := gen("production-2", "production", 2)
	recertified.CertSHA256, recertified.NotAfter = "sha-recertified", t0.AddDate(6, 0, 0)
	if got, replaced, err := w.s.RegisterGeneration(w.ctx, recertified, "serve", t0); err != nil || replaced != "sha-production-2" ||
		got.CertSHA256 != "sha-recertified" || got.State != GenerationStandby || !got.NotAfter.Equal(recertified.NotAfter) {
		t.Errorf("the key certified anew: %+v, replaced %q, %v; want the new certificate, the state kept", got, replaced, err)
	}
	stolen := gen("production-3", "production", 3)
	stolen.CertSHA256 = "sha-recertified"
	if _, _, err := w.s.RegisterGeneration(w.ctx, stolen, "serve", t0); !errors.Is(err, ErrDuplicate) {
		t.Errorf("a certificate registered under a second name: %v, want ErrDuplicate", err)
	}
	if _, err := w.s.db.ExecContext(w.ctx, `UPDATE issuer_generations SET state = 'active' WHERE name = 'production-2'`); err == nil {
		t.Error("the database let two generations of one hierarchy be active")
	}

	// Certificates of the first generation: one valid, one revoked, one expired,
	// and an issuance still pending.
	valid := cert("a1", "", "eea1")
	valid.NotAfter = t0.AddDate(1, 0, 0)
	w.issueCert(valid)
	w.issueCert(cert("a2", "", "eea2"))
	w.must(w.s.Revoke(w.ctx, Revocation{Serial: "a2", RevokedAt: t0, Reason: 1, RequestedBy: "x", IdentifiedBy: "y", PerformedBy: "z"}, nil))
	expired := cert("a3", "", "eea3")
	expired.NotAfter = t0.Add(-time.Hour)
	w.issueCert(expired)
	w.pendingIntent("a4", "eea4", []byte("tbs"))

	if _, err := w.s.RetireGeneration(w.ctx, "production", "bob", Revocation{}, t0); !errors.Is(err, ErrConflict) {
		t.Errorf("retiring the active generation unasked: %v, want ErrConflict", err)
	}
	if err := w.s.RequestRetirement(w.ctx, "production", "done", "anna", t0); !errors.Is(err, ErrConflict) {
		t.Errorf("asking to retire the active generation: %v, want ErrConflict", err)
	}
	prev, err := w.s.ActivateGeneration(w.ctx, "production-2", "anna", t0)
	if err != nil || prev != "production" {
		t.Fatalf("activate production-2: %q, %v", prev, err)
	}
	if active, err := w.s.ActiveIssuers(w.ctx); err != nil || active["production"] != "production-2" {
		t.Fatalf("active issuers %v, %v", active, err)
	}
	w.must(w.s.RequestRetirement(w.ctx, "production", "rolled over", "anna", t0))
	r := Revocation{RevokedAt: t0, RequestedAt: t0, Reason: 5, RequestedBy: "anna", IdentifiedBy: "credentials", PerformedBy: "bob"}
	if _, err := w.s.RetireGeneration(w.ctx, "production", "anna", r, t0); !errors.Is(err, ErrConflict) {
		t.Errorf("retirement carried out by who asked: %v, want ErrConflict", err)
	}
	if _, err := w.s.db.ExecContext(w.ctx, `UPDATE issuer_generations SET state = 'retired', retired_by = 'anna' WHERE name = 'production'`); err == nil {
		t.Error("the database let the administrator who asked carry the retirement out")
	}
	done, err := w.s.RetireGeneration(w.ctx, "production", "bob", r, t0)
	if err != nil {
		t.Fatalf("retirement by a second administrator: %v", err)
	}
	if want := []string{"a1", "a4"}; len(done.Revoked) != 2 || done.Revoked[0] != want[0] || done.Revoked[1] != want[1] {
		t.Errorf("revoked %q, want the valid certificate and the pending issuance %q", done.Revoked, want)
	}
	if !done.LastExpiry.Equal(valid.NotAfter.Truncate(time.Microsecond)) || !done.FinalUntil.Equal(done.LastExpiry.Add(FinalCRLMargin).Truncate(time.Second)) {
		t.Errorf("last expiry %s, final until %s; want %s and %s later", done.LastExpiry, done.FinalUntil, valid.NotAfter, FinalCRLMargin)
	}

	t.Run("a retired generation's key signs nothing", func(t *testing.T) {
		w.processingOrder("o-late")
		in := intent("a5", "o-late", "eea5")
		w.must(w.s.RecordIntent(w.ctx, in))
		if err := w.s.BeginSigning(w.ctx, "a5"); !errors.Is(err, ErrIssuerRetired) {
			t.Errorf("BeginSigning on the retired generation: %v, want ErrIssuerRetired", err)
		}
	})
	t.Run("one final CRL, valid until final_until, and nothing after it", func(t *testing.T) {
		st, err := w.s.GetCRLState(w.ctx, "production")
		if err != nil || !st.FinalUntil.Equal(done.FinalUntil) || st.Number != 0 {
			t.Fatalf("CRL state %+v, %v", st, err)
		}
		regular := CRLState{Issuer: "production", Number: 1, ThisUpdate: t0, NextUpdate: t0.Add(8 * time.Hour), DER: []byte("crl")}
		if err := w.s.PublishCRL(w.ctx, regular); !errors.Is(err, ErrConflict) {
			t.Errorf("a regular CRL of a retired issuer: %v, want ErrConflict", err)
		}
		wrong := regular
		wrong.Final, wrong.NextUpdate = true, done.FinalUntil.Add(time.Hour)
		if err := w.s.PublishCRL(w.ctx, wrong); !errors.Is(err, ErrConflict) {
			t.Errorf("a final CRL valid past final_until: %v, want ErrConflict", err)
		}
		final := regular
		final.Final, final.NextUpdate = true, done.FinalUntil
		w.must(w.s.PublishCRL(w.ctx, final))
		after := final
		after.Number, after.ThisUpdate = 2, t0.Add(time.Hour)
		if err := w.s.PublishCRL(w.ctx, after); !errors.Is(err, ErrConflict) {
			t.Errorf("a CRL after the final one: %v, want ErrConflict", err)
		}
		long := CRLState{Issuer: "production-2", Number: 1, ThisUpdate: t0, NextUpdate: t0.AddDate(1, 0, 0), DER: []byte("crl"), Final: true}
		if err := w.s.PublishCRL(w.ctx, long); !errors.Is(err, ErrConflict) {
			t.Errorf("a final CRL of an issuer that is not retired: %v, want ErrConflict", err)
		}
	})
	if _, err := w.s.ActivateGeneration(w.ctx, "production", "anna", t0); !errors.Is(err, ErrConflict) {
		t.Errorf("activating the retired generation: %v, want ErrConflict", err)
	}
}
