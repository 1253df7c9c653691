package store

import (
	"testing"
	"time"
)

// testPersistentAuthorizations: an organisation's valid, unexpired authorizations
// proven by a persistent record are listed with their record and end; one proven
// otherwise, one expired, one still pending and another organisation's are not.
func testPersistentAuthorizations(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	w.must(w.s.CreateEAB(w.ctx, EABKey{KID: "kid-org2", OrgOID: org2, HMACKey: []byte("secret-org2"), Status: EABApproved, CreatedAt: t0}))
	w.must(w.s.CreateAccount(w.ctx, Account{ID: "acct-2", Thumbprint: "thumb-2", JWK: []byte(`{"kty":"EC","x":"2"}`), OrgOID: org2,
		Status: "valid", CreatedAt: t0}, "kid-org2"))
	record := `_validation-persist.az-p.example.fi TXT "ca.example; accounturi=https://ca.example/acme/account/acct-1"`
	// proven makes authorization id of account with one challenge of type, valid
	// (with the record for dns-persist-01), then valid until expires.
	proven := func(id, account, typ string, expires time.Time) {
		t.Helper()
		a := authz(id, 1)
		a.AccountID, a.Challenges[0].Type = account, typ
		o := order("o-"+id, "pending", id)
		o.AccountID = account
		w.must(w.s.CreateOrder(w.ctx, o, []Authorization{a}))
		w.must(w.s.StartChallenge(w.ctx, id+"-c0"))
		_, err := w.s.AuditedRows(w.ctx, testSeal, func(tx *Tx) ([]AuditEvent, error) {
			ev := ""
			if typ == "dns-persist-01" {
				ev = record
			}
			return []AuditEvent{event("authz.validate", "authz="+id)}, tx.FinishChallengeWithEvidence(id+"-c0", t0, ev)
		})
		w.must(err)
		w.must(w.s.SetValidAuthorizationExpiry(w.ctx, id, expires))
	}
	proven("az-p", "acct-1", "dns-persist-01", t0.Add(10*24*time.Hour))
	proven("az-h", "acct-1", "http-01", t0.Add(10*24*time.Hour))
	proven("az-old", "acct-1", "dns-persist-01", t0.Add(-time.Minute))
	proven("az-other", "acct-2", "dns-persist-01", t0.Add(10*24*time.Hour))
	w.pendingOrder("o-pending", "az-pending")

	got, err := w.s.PersistentAuthorizations(w.ctx, org1, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].AuthzID != "az-p" || got[0].AccountID != "acct-1" || got[0].Name != "az-p.example.fi" ||
		got[0].Evidence != record || !got[0].Expires.Equal(t0.Add(10*24*time.Hour)) || !got[0].Validated.Equal(t0) {
		t.Errorf("persistent authorizations of %s: %+v, want az-p only, with its record and end", org1, got)
	}
	if other, err := w.s.PersistentAuthorizations(w.ctx, org2, t0); err != nil || len(other) != 1 || other[0].AuthzID != "az-other" {
		t.Errorf("persistent authorizations of %s: %+v, %v", org2, other, err)
	}
}
