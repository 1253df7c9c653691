package store

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func eabRequest(id, by string, expires time.Time) EABRequest {
	return EABRequest{ID: id, OrgOID: org1, RequestedBy: by, Person: "Maija Meikäläinen", IdentifiedBy: "suomi.fi (strong identification)",
		TechnicalContact: "it@vendor.example", Domains: []string{"example.fi"}, Profiles: []string{"sote-server"},
		CreatedAt: t0, ExpiresAt: expires}
}

func approvedKey(kid string, expires time.Time) EABKey {
	return EABKey{KID: kid, HMACKey: []byte("hmac-" + kid), CreatedAt: t0, ExpiresAt: expires}
}

// testOperators: operators, EAB requests with dual control, the key handover, key
// revocation and expiry, organisation suspension, certificate search (issue 6).
func testOperators(t *testing.T, open func(t *testing.T) *SQL) {
	later := t0.Add(24 * time.Hour)

	t.Run("operators are found by name and by certificate, names are unique", func(t *testing.T) {
		w := newWorld(t, open)
		op := Operator{Name: "alice", Role: RoleAdministrator, CertFingerprint: "ab12", CreatedBy: "setup", CreatedAt: t0}
		w.must(w.s.AddOperator(w.ctx, op))
		w.must(w.s.AddOperator(w.ctx, Operator{Name: "eservice", Role: RoleRegistrar, TokenHash: "99", CreatedBy: "setup", CreatedAt: t0}))
		if err := w.s.AddOperator(w.ctx, op); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("second alice: %v, want ErrDuplicate", err)
		}
		got, err := w.s.GetOperatorByCert(w.ctx, "AB12")
		w.must(err)
		mustEqual(t, "operator by certificate", got.Name+"/"+got.Role, "alice/administrator")
		if _, err := w.s.GetOperatorByCert(w.ctx, ""); !errors.Is(err, ErrNotFound) {
			t.Fatalf("operator by empty fingerprint: %v, want ErrNotFound (a token operator has none)", err)
		}
		got, err = w.s.GetOperator(w.ctx, "eservice")
		w.must(err)
		mustEqual(t, "token hash", got.TokenHash, "99")
		all, err := w.s.ListOperators(w.ctx)
		w.must(err)
		if len(all) != 2 || all[0].Name != "alice" {
			t.Fatalf("ListOperators = %+v", all)
		}
	})

	t.Run("approval is refused to the requester under dual control and makes the key once", func(t *testing.T) {
		w := newWorld(t, open)
		w.must(w.s.CreateEABRequest(w.ctx, eabRequest("r1", "rita", later)))
		if _, err := w.s.ApproveEABRequest(w.ctx, "r1", "rita", true, t0, approvedKey("k1", later)); !errors.Is(err, ErrConflict) {
			t.Fatalf("requester approving: %v, want ErrConflict", err)
		}
		if _, err := w.s.GetEAB(w.ctx, "k1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a refused approval stored a key: %v", err)
		}
		k, err := w.s.ApproveEABRequest(w.ctx, "r1", "anna", true, t0, approvedKey("k1", later))
		w.must(err)
		mustEqual(t, "key status", k.Status, EABApproved)
		stored := mustEAB(w, "k1")
		mustEqual(t, "stored key", stored.OrgOID+" "+stored.RequestID+" "+stored.RequestedBy+" "+stored.ApprovedBy+" "+stored.Domains[0]+" "+stored.Profiles[0],
			org1+" r1 rita anna example.fi sote-server")
		r, err := w.s.GetEABRequest(w.ctx, "r1")
		w.must(err)
		mustEqual(t, "request", r.Status+" "+r.DecidedBy+" "+r.KID, "approved anna k1")
		if _, err := w.s.ApproveEABRequest(w.ctx, "r1", "bob", true, t0, approvedKey("k2", later)); !errors.Is(err, ErrConflict) {
			t.Fatalf("second approval: %v, want ErrConflict", err)
		}
		if _, err := w.s.ApproveEABRequest(w.ctx, "nope", "bob", true, t0, approvedKey("k3", later)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("approving an unknown request: %v, want ErrNotFound", err)
		}
	})

	t.Run("without dual control the requester may approve", func(t *testing.T) {
		w := newWorld(t, open)
		w.must(w.s.CreateEABRequest(w.ctx, eabRequest("r1", "rita", later)))
		_, err := w.s.ApproveEABRequest(w.ctx, "r1", "rita", false, t0, approvedKey("k1", later))
		w.must(err)
	})

	t.Run("an expired request cannot be approved", func(t *testing.T) {
		w := newWorld(t, open)
		w.must(w.s.CreateEABRequest(w.ctx, eabRequest("r1", "rita", t0)))
		if _, err := w.s.ApproveEABRequest(w.ctx, "r1", "anna", true, t0, approvedKey("k1", later)); !errors.Is(err, ErrConflict) {
			t.Fatalf("approving at its expiry: %v, want ErrConflict", err)
		}
	})

	t.Run("concurrent approvals make one key", func(t *testing.T) {
		w := newWorld(t, open)
		w.must(w.s.CreateEABRequest(w.ctx, eabRequest("r1", "rita", later)))
		var mu sync.Mutex
		ok := 0
		errs := race(4, func(i int) error {
			_, err := w.s.ApproveEABRequest(w.ctx, "r1", "anna", true, t0, approvedKey("kc"+string(rune('0'+i)), later))
			if err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
			return err
		})
		for _, err := range errs {
			if err != nil && !errors.Is(err, ErrConflict) {
				t.Fatalf("concurrent approval: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d approvals succeeded, want 1", ok)
		}
	})

	t.Run("rejection is final", func(t *testing.T) {
		w := newWorld(t, open)
		w.must(w.s.CreateEABRequest(w.ctx, eabRequest("r1", "rita", later)))
		w.must(w.s.RejectEABRequest(w.ctx, "r1", "anna", "not in the register", t0))
		r, err := w.s.GetEABRequest(w.ctx, "r1")
		w.must(err)
		mustEqual(t, "rejected request", r.Status+"/"+r.Reason, "rejected/not in the register")
		if _, err := w.s.ApproveEABRequest(w.ctx, "r1", "anna", true, t0, approvedKey("k1", later)); !errors.Is(err, ErrConflict) {
			t.Fatalf("approving a rejected request: %v, want ErrConflict", err)
		}
		if err := w.s.RejectEABRequest(w.ctx, "r1", "anna", "again", t0); !errors.Is(err, ErrConflict) {
			t.Fatalf("second rejection: %v, want ErrConflict", err)
		}
		list, err := w.s.ListEABRequests(w.ctx, EABRequestRequested, "")
		w.must(err)
		if len(list) != 0 {
			t.Fatalf("pending requests = %+v, want none", list)
		}
	})

	t.Run("the HMAC key is revealed once, to the requester only", func(t *testing.T) {
		w := newWorld(t, open)
		w.must(w.s.CreateEABRequest(w.ctx, eabRequest("r1", "rita", later)))
		_, err := w.s.ApproveEABRequest(w.ctx, "r1", "anna", true, t0, approvedKey("k1", later))
		w.must(err)
		if _, err := w.s.RevealEABKey(w.ctx, "k1", "anna", t0); !errors.Is(err, ErrConflict) {
			t.Fatalf("reveal to the approver: %v, want ErrConflict", err)
		}
		k, err := w.s.RevealEABKey(w.ctx, "k1", "rita", t0)
		w.must(err)
		mustEqual(t, "revealed key", string(k.HMACKey), "hmac-k1")
		if _, err := w.s.RevealEABKey(w.ctx, "k1", "rita", t0); !errors.Is(err, ErrConflict) {
			t.Fatalf("second reveal: %v, want ErrConflict", err)
		}
		if mustEAB(w, "k1").RevealedAt.IsZero() {
			t.Fatal("RevealedAt not recorded")
		}
	})

	t.Run("an expired key cannot bind even before the sweep marks it", func(t *testing.T) {
		w := newWorld(t, open)
		w.must(w.s.CreateEABRequest(w.ctx, eabRequest("r1", "rita", later)))
		_, err := w.s.ApproveEABRequest(w.ctx, "r1", "anna", true, t0, approvedKey("k1", t0.Add(time.Hour)))
		w.must(err)
		a := account("acct-late", "thumb-late")
		a.CreatedAt = t0.Add(time.Hour)
		if err := w.s.CreateAccount(w.ctx, a, "k1"); !errors.Is(err, ErrConflict) {
			t.Fatalf("binding at expiry: %v, want ErrConflict", err)
		}
		a.CreatedAt = t0.Add(time.Minute)
		w.must(w.s.CreateAccount(w.ctx, a, "k1"))
	})

	t.Run("expiry moves undecided requests and unbound keys only", func(t *testing.T) {
		w := newWorld(t, open)
		for _, id := range []string{"r1", "r2", "r3"} {
			w.must(w.s.CreateEABRequest(w.ctx, eabRequest(id, "rita", later)))
		}
		w.must(w.s.CreateEABRequest(w.ctx, eabRequest("r-late", "rita", later.Add(time.Hour))))
		_, err := w.s.ApproveEABRequest(w.ctx, "r1", "anna", true, t0, approvedKey("k1", later))
		w.must(err)
		_, err = w.s.ApproveEABRequest(w.ctx, "r2", "anna", true, t0, approvedKey("k2", later))
		w.must(err)
		w.must(w.s.CreateAccount(w.ctx, account("acct-2", "thumb-2"), "k2"))
		reqs, keys, err := w.s.ExpireEAB(w.ctx, later)
		w.must(err)
		if !slices.Equal(reqs, []string{"r3"}) || !slices.Equal(keys, []string{"k1"}) {
			t.Fatalf("expired requests %v keys %v, want [r3] [k1]", reqs, keys)
		}
		mustEqual(t, "bound key", w.eabStatus("k2"), EABBound)
		mustEqual(t, "expired key", w.eabStatus("k1"), EABExpired)
		mustEqual(t, "key without expiry", w.eabStatus("kid-free"), EABApproved)
		r, err := w.s.GetEABRequest(w.ctx, "r-late")
		w.must(err)
		mustEqual(t, "later request", r.Status, EABRequestRequested)
		if all, err := w.s.ListEABRequests(w.ctx, "", org1); err != nil || len(all) != 4 || all[0].ID != "r-late" { // equal times: by id
			t.Fatalf("requests of %s: %d, %v", org1, len(all), err)
		}
		if other, err := w.s.ListEABRequests(w.ctx, "", org2); err != nil || len(other) != 0 {
			t.Fatalf("requests of %s: %+v, %v", org2, other, err)
		}
		if expired, err := w.s.ListEABRequests(w.ctx, EABRequestExpired, ""); err != nil || len(expired) != 1 || expired[0].ID != "r3" {
			t.Fatalf("expired requests: %+v, %v", expired, err)
		}
		if reqs, keys, err = w.s.ExpireEAB(w.ctx, later); err != nil || len(reqs)+len(keys) != 0 {
			t.Fatalf("second sweep: %v %v %v, want nothing", reqs, keys, err)
		}
	})

	t.Run("revoking a key stops binding and may deactivate its accounts", func(t *testing.T) {
		w := newWorld(t, open)
		ids, err := w.s.RevokeEABKey(w.ctx, "kid-bound", "anna", "compromised", true)
		w.must(err)
		if !slices.Equal(ids, []string{"acct-1"}) {
			t.Fatalf("deactivated %v, want [acct-1]", ids)
		}
		mustEqual(t, "account", mustAccount(w, "acct-1").Status, "deactivated")
		ids, err = w.s.RevokeEABKey(w.ctx, "kid-free", "anna", "unused", false)
		w.must(err)
		if len(ids) != 0 {
			t.Fatalf("deactivated %v for an unbound key", ids)
		}
		if err := w.s.CreateAccount(w.ctx, account("acct-x", "thumb-x"), "kid-free"); !errors.Is(err, ErrConflict) {
			t.Fatalf("binding a revoked key: %v, want ErrConflict", err)
		}
		if _, err := w.s.RevokeEABKey(w.ctx, "kid-free", "anna", "again", false); !errors.Is(err, ErrConflict) {
			t.Fatalf("second revocation: %v, want ErrConflict", err)
		}
		k := mustEAB(w, "kid-free")
		mustEqual(t, "revocation", k.Status+" "+k.RevokedBy+" "+k.RevokeReason, "revoked anna unused")
		keys, err := w.s.ListEABKeys(w.ctx, org1)
		w.must(err)
		if len(keys) != 3 {
			t.Fatalf("ListEABKeys = %d keys, want 3", len(keys))
		}
	})

	t.Run("suspension and resumption are transitions", func(t *testing.T) {
		w := newWorld(t, open)
		w.must(w.s.SuspendOrganisation(w.ctx, org1, "anna", "unpaid invoices", t0))
		o, err := w.s.GetOrganisation(w.ctx, org1)
		w.must(err)
		if o.SuspendedAt.IsZero() || o.SuspendedBy != "anna" || o.SuspendReason != "unpaid invoices" {
			t.Fatalf("suspended organisation = %+v", o)
		}
		if err := w.s.SuspendOrganisation(w.ctx, org1, "anna", "again", t0); !errors.Is(err, ErrConflict) {
			t.Fatalf("second suspension: %v, want ErrConflict", err)
		}
		list, err := w.s.ListOrganisations(w.ctx)
		w.must(err)
		if list[0].OID != org1 || list[0].SuspendedAt.IsZero() {
			t.Fatalf("ListOrganisations does not show the suspension: %+v", list[0])
		}
		w.must(w.s.ResumeOrganisation(w.ctx, org1))
		if err := w.s.ResumeOrganisation(w.ctx, org1); !errors.Is(err, ErrConflict) {
			t.Fatalf("resuming an active organisation: %v, want ErrConflict", err)
		}
		if err := w.s.SuspendOrganisation(w.ctx, "1.2.3", "anna", "x", t0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("suspending an unknown organisation: %v, want ErrNotFound", err)
		}
		accts, err := w.s.ListAccounts(w.ctx, org1)
		w.must(err)
		if len(accts) != 1 || accts[0].ID != "acct-1" {
			t.Fatalf("ListAccounts = %+v", accts)
		}
	})

	t.Run("certificates are found by serial and by exact name", func(t *testing.T) {
		w := newWorld(t, open)
		w.issueAs("AA01", "f1", func(c *Certificate) { c.Names = []string{"www.example.fi"} })
		w.issueAs("AA02", "f2", func(c *Certificate) { c.Names = []string{"api.example.fi"} })
		find := func(f CertificateFilter) []string {
			cs, err := w.s.FindCertificates(w.ctx, f)
			w.must(err)
			var out []string
			for _, c := range cs {
				out = append(out, c.Serial)
			}
			slices.Sort(out)
			return out
		}
		for _, tc := range []struct {
			name string
			f    CertificateFilter
			want []string
		}{
			{"by upper-case serial", CertificateFilter{Serial: "AA02"}, []string{"aa02"}},
			{"by name", CertificateFilter{Name: "WWW.example.fi"}, []string{"aa01"}},
			{"a name that is only a substring", CertificateFilter{Name: "example.fi"}, nil},
			{"a LIKE wildcard does not match another name", CertificateFilter{Name: "w_w.example.fi"}, nil},
			{"by organisation", CertificateFilter{OrgOID: org1}, []string{"aa01", "aa02"}},
			{"of another organisation", CertificateFilter{OrgOID: org2}, nil},
		} {
			if got := find(tc.f); !slices.Equal(got, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
	})
}
