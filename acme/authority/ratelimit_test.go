package authority

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws/jwstest"
	"github.com/varmenne/varmenne/store"
)

// wantRateLimited checks a refusal names the limit and the count, and says when to
// retry both in the detail and in RetryAfter (at most window).
func wantRateLimited(t *testing.T, err error, limit, count string, window time.Duration) *acme.Error {
	t.Helper()
	ae := wantKind(t, err, acme.RateLimited)
	for _, want := range []string{"rate limit " + limit, count, "resets at "} {
		if !strings.Contains(ae.Detail, want) {
			t.Errorf("detail %q does not say %q", ae.Detail, want)
		}
	}
	if ae.RetryAfter <= 0 || ae.RetryAfter > window {
		t.Errorf("RetryAfter %v, want within (0, %v]", ae.RetryAfter, window)
	}
	if ae.HTTPStatus() != 429 {
		t.Errorf("status %d, want 429", ae.HTTPStatus())
	}
	return ae
}

func TestRateLimitNewOrdersPerAccount(t *testing.T) {
	f := newFixture(t, Config{RateLimits: RateLimits{NewOrdersPerAccount: 2}})
	acct, other := f.account(), f.account()
	f.order(acct, "a.example.fi")
	f.order(acct, "b.example.fi")
	_, err := f.a.NewOrder(f.ctx, acct, acme.NewOrderRequest{Identifiers: dnsIDs("c.example.fi")})
	wantRateLimited(t, err, LimitNewOrders, "new orders of account "+acct.ID+": 2 of at most 2 this hour", time.Hour)

	t.Run("another account of the organisation is counted apart", func(t *testing.T) {
		f.order(other, "c.example.fi")
	})
	t.Run("the next hour the account may order again", func(t *testing.T) {
		f.a.now = func() time.Time { return time.Now().Add(time.Hour) }
		defer func() { f.a.now = time.Now }()
		f.order(acct, "c.example.fi")
	})
}

func TestRateLimitCertificatesPerOrganisation(t *testing.T) {
	f := newFixture(t, Config{RateLimits: RateLimits{CertificatesPerOrganisation: 1}})
	acct, other := f.account(), f.account()
	f.issue(acct, "a.example.fi")

	// The organisation's limit holds for its every account.
	o := f.readyOrder(other, "b.example.fi")
	key := newKey(t)
	_, err := f.finalize(other, o.ID, makeCSR(t, key, &x509.CertificateRequest{DNSNames: []string{"b.example.fi"}}))
	wantRateLimited(t, err, LimitCertificates, "certificates of organisation "+testOrgOID+": 1 of at most 1 this week", 7*24*time.Hour)
	// Nothing was signed, and the order stays ready for a finalize after the reset.
	if n := f.rec.n.Load(); n != 1 {
		t.Errorf("%d intents recorded, want only the first certificate's", n)
	}
	cur, err := f.a.Order(f.ctx, other, o.ID)
	if err != nil || cur.Status != string(acme.StatusReady) {
		t.Fatalf("refused order: %v, %v; want it still ready", cur, err)
	}

	t.Run("another organisation is counted apart", func(t *testing.T) {
		f.addOrg(otherOrgOID, "Toinen Oy", "Toinen Oy", "toinen.fi")
		acct, _ := f.accountFor(otherOrgOID)
		f.issue(acct, "www.toinen.fi")
	})
	t.Run("next week the organisation gets certificates again", func(t *testing.T) {
		f.a.now = func() time.Time { return time.Now().Add(7 * 24 * time.Hour) }
		defer func() { f.a.now = time.Now }()
		f.issue(other, "c.example.fi")
	})
}

func TestRateLimitNewAccountsPerOrganisation(t *testing.T) {
	f := newFixture(t, Config{RateLimits: RateLimits{NewAccountsPerOrganisation: 1}})
	f.account()
	kid, mac := f.newEAB(testOrgOID, nil, store.EABApproved)
	key := newKey(t)
	_, _, err := f.a.NewAccount(f.ctx, newAccountRequest(t, key, kid, mac), jwstest.JWK(key), newAccountURL)
	wantRateLimited(t, err, LimitNewAccounts, "new accounts of organisation "+testOrgOID+": 1 of at most 1 today", 24*time.Hour)
	// The EAB key was not used up: it creates the account once the day is over.
	if ek, err := f.st.GetEAB(f.ctx, kid); err != nil || ek.Status != store.EABApproved {
		t.Fatalf("EAB key after the refusal: %+v, %v; want still approved", ek, err)
	}

	t.Run("another organisation is counted apart", func(t *testing.T) {
		f.addOrg(otherOrgOID, "Toinen Oy", "Toinen Oy", "toinen.fi")
		f.accountFor(otherOrgOID)
	})
	t.Run("the next day the key creates its account", func(t *testing.T) {
		f.a.now = func() time.Time { return time.Now().Add(24 * time.Hour) }
		defer func() { f.a.now = time.Now }()
		if _, created, err := f.a.NewAccount(f.ctx, newAccountRequest(t, key, kid, mac), jwstest.JWK(key), newAccountURL); err != nil || !created {
			t.Fatalf("NewAccount after the reset: created %v, %v", created, err)
		}
	})
}

func TestRateLimitFailedValidations(t *testing.T) {
	f := newFixture(t, Config{RateLimits: RateLimits{FailedValidationsPerName: 2}})
	acct := f.account()
	respond := func(name string) error {
		t.Helper()
		o := f.order(acct, name)
		az, err := f.a.Authorization(f.ctx, acct, o.AuthzIDs[0])
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = f.a.RespondChallenge(f.ctx, acct, httpChallenge(t, az).ID)
		f.a.Close()
		return err
	}
	// An internal failure of the server is not the client's: it is not counted.
	f.val.set(acme.Errorf(acme.ServerInternal, "the validator broke"), nil)
	for range 3 {
		if err := respond("a.example.fi"); err != nil {
			t.Fatalf("validation after internal failures: %v", err)
		}
	}
	f.val.set(acme.Errorf(acme.Unauthorized, "the key authorization does not match"), nil)
	for i := range 2 {
		if err := respond("a.example.fi"); err != nil {
			t.Fatalf("failed validation %d: %v", i+1, err)
		}
	}
	calls := f.val.calls.Load()
	err := respond("a.example.fi")
	wantRateLimited(t, err, LimitFailedValidations, "failed to validate a.example.fi 2 times this hour", time.Hour)
	if f.val.calls.Load() != calls {
		t.Error("a validation ran although the limit was reached")
	}

	t.Run("another name is counted apart", func(t *testing.T) {
		f.val.set(nil, nil)
		if err := respond("b.example.fi"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the next hour the name may be validated again", func(t *testing.T) {
		f.a.now = func() time.Time { return time.Now().Add(time.Hour) }
		defer func() { f.a.now = time.Now }()
		if err := respond("a.example.fi"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRateLimitPendingAuthorizations(t *testing.T) {
	f := newFixture(t, Config{RateLimits: RateLimits{PendingAuthorizationsPerAccount: 3}})
	acct := f.account()
	f.order(acct, "a.example.fi", "b.example.fi")
	_, err := f.a.NewOrder(f.ctx, acct, acme.NewOrderRequest{Identifiers: dnsIDs("c.example.fi", "d.example.fi")})
	ae := wantRateLimited(t, err, LimitPendingAuthorizations, "holds 2 pending authorizations and this order would add 2, at most 3", 7*24*time.Hour)
	if !strings.Contains(ae.Detail, "complete or deactivate") {
		t.Errorf("detail %q does not say how to get below the limit", ae.Detail)
	}
	f.order(acct, "c.example.fi") // 3 pending: at the limit, not over it

	t.Run("valid authorizations do not count", func(t *testing.T) {
		other := f.account()
		for _, n := range []string{"e.example.fi", "f.example.fi", "g.example.fi"} {
			f.readyOrder(other, n)
		}
		f.order(other, "h.example.fi", "i.example.fi", "j.example.fi")
	})
}

func TestRateLimitsOffAndValidate(t *testing.T) {
	f := newFixture(t, Config{}) // no limits
	acct := f.account()
	for i := range 3 {
		f.order(acct, string(rune('a'+i))+".example.fi")
	}
	if err := (Config{RateLimits: RateLimits{FailedValidationsPerName: -1}}).Validate(); err == nil ||
		!strings.Contains(err.Error(), LimitFailedValidations) {
		t.Errorf("Validate of a negative limit: %v", err)
	}
	if err := (Config{RateLimits: DefaultRateLimits}).Validate(); err != nil {
		t.Errorf("Validate of the defaults: %v", err)
	}
}
