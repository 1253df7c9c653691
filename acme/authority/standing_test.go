package authority

import (
	"context"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
	"github.com/varmenne/varmenne/policy/thl"
	"github.com/varmenne/varmenne/revocation"
	"github.com/varmenne/varmenne/store"
)

// storeRef lets the register read the fixture's store, which exists only once the
// fixture (and its Config) is made.
type storeRef struct{ st *store.SQL }

func (r *storeRef) GetRegisterRecord(ctx context.Context, oid string) (store.RegisterRecord, error) {
	return r.st.GetRegisterRecord(ctx, oid)
}

// loadRegister writes a register load into the store at at, as a server's refresh
// (or "varmenne org import") does: the organisations listed, and the load's time.
func (w *standingWorld) loadRegister(t *testing.T, at time.Time, listed ...store.RegisterImport) {
	t.Helper()
	if _, err := w.f.st.ImportRegister(w.f.ctx, listed, at); err != nil {
		t.Fatal(err)
	}
	if err := w.f.st.RecordRegisterLoad(w.f.ctx, store.RegisterLoad{Source: "test", LoadedAt: at, Records: len(listed)}); err != nil {
		t.Fatal(err)
	}
}

// activeUntil is the test organisation's register record, active until end (zero:
// open).
func activeUntil(end time.Time) store.RegisterImport {
	return store.RegisterImport{OID: testOrgOID, Name: testOrgName, LongName: testOrgLong,
		Register: store.OrganisationRegister{Status: "active", ExpirationDate: end}}
}

// standingWorld is an account of the test organisation with what each step needs,
// made while its standing was good: a certificate, an order ready to finalize and
// a pending challenge.
type standingWorld struct {
	f        *fixture
	acct     *store.Account
	acctKey  *jwsKey
	cert     *store.Certificate
	certKey  *jwsKey
	ready    *store.Order
	pending  *store.Challenge
	intents  int32
	valCalls int32
}

func newStandingWorld(t *testing.T) *standingWorld {
	t.Helper()
	// THL's register as the store holds it, which the server's refreshes write:
	// the organisation is listed and active in the last load.
	ref := &storeRef{}
	f := newFixture(t, Config{Register: thl.NewStored(ref, 72*time.Hour, nil)})
	ref.st = f.st
	w := &standingWorld{f: f}
	w.loadRegister(t, time.Now().Add(-time.Hour), activeUntil(time.Time{}))
	acct, key := f.accountFor(testOrgOID)
	w.acct, w.acctKey = acct, &jwsKey{key: key}
	rec, _, certKey := f.issue(acct, "www.example.fi")
	w.cert, w.certKey = rec, &jwsKey{key: certKey}
	w.ready = f.readyOrder(acct, "ready.example.fi")
	o := f.order(acct, "pending.example.fi")
	az, err := f.a.Authorization(f.ctx, acct, o.AuthzIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	w.pending = httpChallenge(t, az)
	w.intents, w.valCalls = f.rec.n.Load(), f.val.calls.Load()
	return w
}

// TestStandingAtEveryStep is the standing table: every step that can lead to a
// certificate, for every standing, with the refusal a person can act on; and
// revocation and download by the holder, which no standing stops.
func TestStandingAtEveryStep(t *testing.T) {
	t.Parallel()
	standings := []struct {
		name string
		// apply puts the world's account into the standing. It returns the EAB key
		// and MAC a new account of the organisation would bind now.
		apply func(t *testing.T, w *standingWorld) (kid string, mac []byte)
		// want: "" allowed; else the problem kind and what its detail says.
		want   acme.ErrorKind
		says   []string
		status int // HTTP status of the refusal; 0: the kind's own
	}{
		{name: "all good", apply: func(t *testing.T, w *standingWorld) (string, []byte) {
			return w.f.newEAB(testOrgOID, nil, store.EABApproved)
		}},
		{name: "organisation suspended", apply: func(t *testing.T, w *standingWorld) (string, []byte) {
			if err := w.f.st.SuspendOrganisation(w.f.ctx, testOrgOID, "anna", "unpaid invoice", time.Now()); err != nil {
				t.Fatal(err)
			}
			return w.f.newEAB(testOrgOID, nil, store.EABApproved)
		}, want: acme.Unauthorized, says: []string{"organisation " + testOrgOID + " is suspended (unpaid invoice)", "ask the CA's registrar to resume it"}},
		{name: "organisation left the register", apply: func(t *testing.T, w *standingWorld) (string, []byte) {
			// A later load that no longer lists it.
			w.loadRegister(t, time.Now(), store.RegisterImport{OID: otherOrgOID, Name: "Muu", LongName: "Muu Oy",
				Register: store.OrganisationRegister{Status: "active"}})
			return w.f.newEAB(testOrgOID, nil, store.EABApproved)
		}, want: acme.Unauthorized, says: []string{testOrgOID, "is not in THL's SOTE organisation register"}},
		{name: "organisation no longer active in the register", apply: func(t *testing.T, w *standingWorld) (string, []byte) {
			w.loadRegister(t, time.Now(), activeUntil(time.Date(2020, 12, 31, 23, 59, 59, 0, time.UTC)))
			return w.f.newEAB(testOrgOID, nil, store.EABApproved)
		}, want: acme.Unauthorized, says: []string{testOrgOID, "ended on 2020-12-31"}},
		{name: "the register copy is too old to trust", apply: func(t *testing.T, w *standingWorld) (string, []byte) {
			if err := w.f.st.RecordRegisterLoad(w.f.ctx, store.RegisterLoad{Source: "test", LoadedAt: time.Now().Add(-73 * time.Hour), Records: 1}); err != nil {
				t.Fatal(err)
			}
			return w.f.newEAB(testOrgOID, nil, store.EABApproved)
		}, want: acme.ServerInternal, status: http.StatusServiceUnavailable, says: []string{"issuance is paused"}},
		{name: "EAB key revoked (accounts not deactivated)", apply: func(t *testing.T, w *standingWorld) (string, []byte) {
			if _, err := w.f.st.RevokeEABKey(w.f.ctx, w.acct.EABKID, "anna", "key leaked", false); err != nil {
				t.Fatal(err)
			}
			// A new account would bind a key that was revoked too.
			kid, mac := w.f.newEAB(testOrgOID, nil, store.EABApproved)
			if _, err := w.f.st.RevokeEABKey(w.f.ctx, kid, "anna", "key leaked", false); err != nil {
				t.Fatal(err)
			}
			return kid, mac
		}, want: acme.Unauthorized, says: []string{"was revoked by the CA's operators (key leaked)"}},
		{name: "account deactivated", apply: func(t *testing.T, w *standingWorld) (string, []byte) {
			if _, err := w.f.a.UpdateAccount(w.f.ctx, w.acct, []byte(`{"status":"deactivated"}`)); err != nil {
				t.Fatal(err)
			}
			return "", nil // newAccount with the deactivated account's own key
		}, want: acme.Unauthorized, says: []string{"deactivated"}},
	}
	for _, sd := range standings {
		t.Run(sd.name, func(t *testing.T) {
			t.Parallel()
			w := newStandingWorld(t)
			f := w.f
			kid, mac := sd.apply(t, w)
			refused := func(t *testing.T, err error) {
				t.Helper()
				ae := wantKind(t, err, sd.want)
				if ae == nil {
					return
				}
				if sd.status != 0 && ae.HTTPStatus() != sd.status {
					t.Errorf("HTTP status %d, want %d", ae.HTTPStatus(), sd.status)
				}
				for _, s := range sd.says {
					if !strings.Contains(ae.Detail, s) {
						t.Errorf("detail %q does not say %q", ae.Detail, s)
					}
				}
			}

			t.Run("newAccount", func(t *testing.T) {
				key := w.acctKey.key // the deactivated account's key
				if kid != "" {
					key = newKey(t)
				}
				var req acme.NewAccountRequest
				if kid != "" {
					req = newAccountRequest(t, key, kid, mac)
				} else {
					req = acme.NewAccountRequest{TermsOfServiceAgreed: true}
				}
				_, created, err := f.a.NewAccount(f.ctx, req, jwstest.JWK(key), newAccountURL)
				refused(t, err)
				if sd.want == "" && !created {
					t.Error("no account was created")
				}
			})
			t.Run("newOrder", func(t *testing.T) {
				_, err := f.a.NewOrder(f.ctx, w.acct, acme.NewOrderRequest{Identifiers: dnsIDs("new.example.fi")})
				refused(t, err)
			})
			t.Run("challenge", func(t *testing.T) {
				ch, _, err := f.a.RespondChallenge(f.ctx, w.acct, w.pending.ID)
				refused(t, err)
				f.a.Close()
				if sd.want != "" {
					if n := f.val.calls.Load(); n != w.valCalls {
						t.Errorf("the validator ran %d times after the refusal", n-w.valCalls)
					}
					if cur, err := f.st.GetChallenge(f.ctx, w.pending.ID); err != nil || cur.Status != string(acme.StatusPending) {
						t.Errorf("challenge after the refusal: %+v, %v; want pending", cur, err)
					}
				} else if ch == nil {
					t.Error("no challenge")
				}
			})
			t.Run("finalize", func(t *testing.T) {
				o, err := f.finalize(w.acct, w.ready.ID, makeCSR(t, newKey(t), &x509.CertificateRequest{DNSNames: []string{"ready.example.fi"}}))
				refused(t, err)
				if sd.want != "" {
					if n := f.rec.n.Load(); n != w.intents {
						t.Errorf("%d issuance intents recorded after the refusal", n-w.intents)
					}
					if cur, err := f.st.GetOrder(f.ctx, w.ready.ID); err != nil || cur.Status != string(acme.StatusReady) || cur.CertSerial != "" {
						t.Errorf("order after the refusal: %+v, %v; want ready without a certificate", cur, err)
					}
				} else if o.Status != string(acme.StatusValid) {
					t.Errorf("order %s after finalize, want valid", o.Status)
				}
			})
			t.Run("keyChange", func(t *testing.T) {
				before := w.acct.Thumbprint
				old, _ := jwstest.JWK(w.acctKey.key).MarshalJSON()
				const url = "https://acme.test/acme/account/x"
				newK := newKey(t)
				_, err := f.a.ChangeKey(f.ctx, w.acct, url, acme.KeyChangeInner{Account: url, OldKey: old}, jwstest.JWK(newK))
				refused(t, err)
				cur, gerr := f.st.GetAccount(f.ctx, w.acct.ID)
				if gerr != nil {
					t.Fatal(gerr)
				}
				if changed := cur.Thumbprint != before; changed != (sd.want == "") {
					t.Errorf("account key changed: %v", changed)
				}
				if sd.want == "" {
					w.acctKey = &jwsKey{key: newK}
				}
			})
			t.Run("the holder may still download its certificate", func(t *testing.T) {
				if _, err := f.a.Certificate(f.ctx, w.acct, w.cert.Serial); err != nil {
					t.Fatalf("download: %v", err)
				}
			})
			t.Run("the holder may still revoke its certificate", func(t *testing.T) {
				who := RevokeCaller{Account: w.acct}
				if w.acct.Status != string(acme.StatusValid) {
					// A deactivated account signs nothing (acme/server refuses its kid);
					// the certificate's key still revokes.
					who = RevokeCaller{Key: jwstest.JWK(w.certKey.key)}
				}
				reason := revocation.KeyCompromise.Code
				if err := f.a.Revoke(f.ctx, who, revokeRequest(w.cert.DER, &reason)); err != nil {
					t.Fatalf("revoke: %v", err)
				}
			})
		})
	}
}

// TestStandingEABKeyExpiry: an EAB key's expiry bounds when it may bind an account;
// once bound it lives as long as its account, until an operator revokes it.
func TestStandingEABKeyExpiry(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	past := time.Now().Add(-time.Hour)
	mk := func(t *testing.T, expires time.Time) (string, []byte) {
		kid, mac := newID(), []byte("0123456789abcdef0123456789abcdef")
		if err := f.st.CreateEAB(f.ctx, store.EABKey{KID: kid, OrgOID: testOrgOID, HMACKey: mac, Status: store.EABApproved,
			CreatedAt: time.Now().Add(-2 * time.Hour), ExpiresAt: expires}); err != nil {
			t.Fatal(err)
		}
		return kid, mac
	}
	t.Run("an unbound key past its expiry binds nothing, even before the expiry job ran", func(t *testing.T) {
		kid, mac := mk(t, past)
		key := newKey(t)
		_, _, err := f.a.NewAccount(f.ctx, newAccountRequest(t, key, kid, mac), jwstest.JWK(key), newAccountURL)
		ae := wantKind(t, err, acme.Unauthorized)
		if !strings.Contains(ae.Detail, "expired on") || !strings.Contains(ae.Detail, testOrgOID) {
			t.Errorf("detail %q", ae.Detail)
		}
	})
	t.Run("a key the expiry job expired binds nothing", func(t *testing.T) {
		kid, mac := mk(t, past)
		if _, _, err := f.st.ExpireEAB(f.ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		key := newKey(t)
		_, _, err := f.a.NewAccount(f.ctx, newAccountRequest(t, key, kid, mac), jwstest.JWK(key), newAccountURL)
		wantKind(t, err, acme.Unauthorized)
	})
	t.Run("a bound key whose binding deadline passed keeps its account ordering", func(t *testing.T) {
		kid, mac := mk(t, time.Now().Add(time.Hour))
		key := newKey(t)
		acct, _, err := f.a.NewAccount(f.ctx, newAccountRequest(t, key, kid, mac), jwstest.JWK(key), newAccountURL)
		if err != nil {
			t.Fatal(err)
		}
		f.a.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
		defer func() { f.a.now = time.Now }()
		if _, err := f.a.NewOrder(f.ctx, acct, acme.NewOrderRequest{Identifiers: dnsIDs("late.example.fi")}); err != nil {
			t.Fatalf("newOrder after the key's binding deadline: %v", err)
		}
	})
}

// TestStandingExistingAccountLookup: finding an existing account (newAccount with
// its key, as clients do before revoking) is no step towards a certificate, so a
// suspended organisation's account is still found.
func TestStandingExistingAccountLookup(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	acct, key := f.accountFor(testOrgOID)
	if err := f.st.SuspendOrganisation(f.ctx, testOrgOID, "anna", "unpaid invoice", time.Now()); err != nil {
		t.Fatal(err)
	}
	got, created, err := f.a.NewAccount(f.ctx, acme.NewAccountRequest{OnlyReturnExisting: true}, jwstest.JWK(key), newAccountURL)
	if err != nil || created || got.ID != acct.ID {
		t.Fatalf("lookup of the existing account: %+v, created %v, %v", got, created, err)
	}
}

// TestRightsFollowTheNarrowing: revocation and download by another account of the
// organisation follow that account's EAB narrowing (revocation.AccountMay), through
// the authority's doors.
func TestRightsFollowTheNarrowing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	owner := f.account()
	wide := f.account()
	narrow, _ := f.accountFor(testOrgOID, "sub.example.fi")
	f.addOrg(otherOrgOID, "Terveyskeskus", "Terveyskeskus Oy", "terveys.example")
	stranger, _ := f.accountFor(otherOrgOID)

	tests := []struct {
		name  string
		who   *store.Account
		names []string
		ok    bool
	}{
		{"the owner", owner, []string{"www.example.fi"}, true},
		{"an account with an unnarrowed key", wide, []string{"www.example.fi"}, true},
		{"a key narrowed to sub.example.fi: inside", narrow, []string{"api.sub.example.fi"}, true},
		{"a key narrowed to sub.example.fi: www.example.fi is outside", narrow, []string{"www.example.fi"}, false},
		{"a key narrowed to sub.example.fi: one name outside", narrow, []string{"a.sub.example.fi", "www2.example.fi"}, false},
		{"another organisation", stranger, []string{"www3.example.fi"}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			names := make([]string, len(tt.names))
			for j, n := range tt.names {
				names[j] = strings.Replace(n, ".", "-"+string(rune('a'+i))+".", 1)
			}
			rec, _, _ := f.issue(owner, names...)
			_, derr := f.a.Certificate(f.ctx, tt.who, rec.Serial)
			reason := revocation.KeyCompromise.Code
			rerr := f.a.Revoke(f.ctx, RevokeCaller{Account: tt.who}, revokeRequest(rec.DER, &reason))
			if tt.ok {
				if derr != nil || rerr != nil {
					t.Fatalf("download: %v; revoke: %v; want both allowed", derr, rerr)
				}
				return
			}
			if ae := wantKind(t, derr, acme.Malformed); ae.HTTPStatus() != 404 {
				t.Errorf("download answered %d, want 404 (the certificate does not exist for this account)", ae.HTTPStatus())
			}
			wantKind(t, rerr, acme.Unauthorized)
			if _, err := f.st.GetRevocation(f.ctx, rec.Serial); !isStoreNotFound(err) {
				t.Errorf("the certificate was revoked (lookup: %v)", err)
			}
			if blocked, _ := f.st.KeyBlocked(f.ctx, rec.KeyHash); blocked {
				t.Error("keyCompromise from an account without the right blocked the key")
			}
		})
	}
}
