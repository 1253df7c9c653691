package authority

import (
	"crypto/x509"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/validate"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// Tests of issue 21: a dns-persist-01 validation is recorded with its record, its
// authorisation ends with the record's persistUntil, and its reuse follows the
// profile's PersistReuse.

func TestPersistentValidationIsRecorded(t *testing.T) {
	f, v := newScriptedFixture(t, Config{ValidAuthzLifetime: 30 * 24 * time.Hour})
	clock := time.Now().UTC().Truncate(time.Second)
	f.a.now = func() time.Time { return clock }
	acct := f.account()
	until := clock.Add(5 * 24 * time.Hour)
	value := "ca.test; accounturi=" + testAccountURIPrefix + acct.ID + "; persistUntil=" + strconv.FormatInt(until.Unix(), 10)
	v.persist["www.example.fi"] = validate.PersistRecord{Owner: "p.vendor.example", Value: value, PersistUntil: until}
	o := f.order(acct, "www.example.fi")
	az := f.respond(acct, o.AuthzIDs[0], acme.ChallengeDNSPersist01)
	if az.Status != string(acme.StatusValid) {
		t.Fatalf("authorization %s, want valid", az.Status)
	}

	t.Run("the authorization keeps the method, the record and the time", func(t *testing.T) {
		i := slices.IndexFunc(az.Challenges, func(c store.Challenge) bool { return c.Type == acme.ChallengeDNSPersist01 })
		ch := az.Challenges[i]
		if ch.Status != string(acme.StatusValid) || !ch.Validated.Equal(clock) {
			t.Errorf("challenge %s validated %v, want valid at %v", ch.Status, ch.Validated, clock)
		}
		if want := `p.vendor.example TXT "` + value + `"`; ch.Evidence != want {
			t.Errorf("evidence %q, want %q", ch.Evidence, want)
		}
		for _, other := range az.Challenges {
			if other.Type != acme.ChallengeDNSPersist01 && other.Evidence != "" {
				t.Errorf("%s carries evidence %q", other.Type, other.Evidence)
			}
		}
	})
	t.Run("the authorization ends with persistUntil, before the valid lifetime", func(t *testing.T) {
		if !az.Expires.Equal(until) {
			t.Errorf("authorization expires %v, want persistUntil %v", az.Expires, until)
		}
	})
	t.Run("the audit log names the record", func(t *testing.T) {
		events, err := f.st.AuditEvents(f.ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(events, func(e store.AuditEvent) bool { return e.Action == string(audit.ActPersistValidate) })
		if i < 0 {
			t.Fatalf("no %s event among %d", audit.ActPersistValidate, len(events))
		}
		for _, want := range []string{"authz=" + az.ID, "account=" + acct.ID, "org=" + acct.OrgOID, "name=www.example.fi", "owner=p.vendor.example", "accounturi=" + testAccountURIPrefix + acct.ID, "persist_until="} {
			if !strings.Contains(events[i].Object, want) {
				t.Errorf("event %q lacks %q", events[i].Object, want)
			}
		}
	})
}

func TestPersistentValidationRefusedRecordsNothing(t *testing.T) {
	f, v := newScriptedFixture(t, Config{})
	acct := f.account()
	v.set("dns-persist-01 www.example.fi", acme.Errorf(acme.Unauthorized, "no TXT record authorizes this account: names another account"))
	o := f.order(acct, "www.example.fi")
	az := f.respond(acct, o.AuthzIDs[0], acme.ChallengeDNSPersist01)
	if az.Status != string(acme.StatusInvalid) {
		t.Fatalf("authorization %s, want invalid", az.Status)
	}
	for _, ch := range az.Challenges {
		if ch.Type == acme.ChallengeDNSPersist01 && (ch.Evidence != "" || !strings.Contains(string(ch.Error), "names another account")) {
			t.Errorf("refused challenge: evidence %q, error %s", ch.Evidence, ch.Error)
		}
	}
	events, _ := f.st.AuditEvents(f.ctx, 0, 100)
	for _, e := range events {
		if e.Action == string(audit.ActPersistValidate) {
			t.Errorf("a refused validation was audited as done: %s", e.Object)
		}
	}
}

func TestPersistentAuthorizationReuse(t *testing.T) {
	tests := []struct {
		name         string
		persistReuse time.Duration // the profile's; 0 the default
		method       string
		advance      time.Duration
		reused       bool
	}{
		{"within the default of 7 days it is reused", 0, acme.ChallengeDNSPersist01, 6 * 24 * time.Hour, true},
		{"past the default of 7 days the record is read again", 0, acme.ChallengeDNSPersist01, 7*24*time.Hour + time.Minute, false},
		{"a profile's shorter limit holds", 24 * time.Hour, acme.ChallengeDNSPersist01, 25 * time.Hour, false},
		{"within a profile's shorter limit it is reused", 24 * time.Hour, acme.ChallengeDNSPersist01, 23 * time.Hour, true},
		{"a profile that reuses none reads the record every order", -1, acme.ChallengeDNSPersist01, time.Minute, false},
		{"the profile's limit does not touch other methods", -1, acme.ChallengeDNS01, time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := newScriptedFixture(t, Config{AuthzReuse: 30 * 24 * time.Hour})
			for _, p := range f.a.profiles {
				p.PersistReuse = tt.persistReuse
			}
			clock := time.Now().UTC()
			f.a.now = func() time.Time { return clock }
			acct := f.account()
			first := f.order(acct, "www.example.fi")
			if az := f.respond(acct, first.AuthzIDs[0], tt.method); az.Status != string(acme.StatusValid) {
				t.Fatalf("first authorization %s", az.Status)
			}
			clock = clock.Add(tt.advance)
			second := f.order(acct, "www.example.fi")
			if got := second.AuthzIDs[0] == first.AuthzIDs[0]; got != tt.reused {
				t.Errorf("reused %v, want %v", got, tt.reused)
			}
		})
	}
}

func TestPersistentAuthorizationNotReusedPastPersistUntil(t *testing.T) {
	// The record allows two more days; an order lives 7 days, so the authorisation,
	// which ends with the record, cannot serve a new order: a new one reads the record.
	f, v := newScriptedFixture(t, Config{})
	clock := time.Now().UTC()
	f.a.now = func() time.Time { return clock }
	acct := f.account()
	v.persist["www.example.fi"] = validate.PersistRecord{Owner: "_validation-persist.www.example.fi", Value: "x", PersistUntil: clock.Add(48 * time.Hour)}
	first := f.order(acct, "www.example.fi")
	f.respond(acct, first.AuthzIDs[0], acme.ChallengeDNSPersist01)
	clock = clock.Add(time.Hour)
	if second := f.order(acct, "www.example.fi"); second.AuthzIDs[0] == first.AuthzIDs[0] {
		t.Error("an authorization ending with persistUntil inside the order's life was reused")
	}
}

func TestPersistentAuthorizationDoesNotOutliveTheRecordAtFinalize(t *testing.T) {
	// The order is ready while the record holds; once persistUntil has passed, the
	// authorisation resting on it has expired and finalize refuses.
	f, v := newScriptedFixture(t, Config{})
	clock := time.Now().UTC()
	f.a.now = func() time.Time { return clock }
	acct := f.account()
	v.persist["www.example.fi"] = validate.PersistRecord{Owner: "_validation-persist.www.example.fi", Value: "x", PersistUntil: clock.Add(time.Hour)}
	o := f.order(acct, "www.example.fi")
	f.respond(acct, o.AuthzIDs[0], acme.ChallengeDNSPersist01)
	clock = clock.Add(2 * time.Hour)
	key := newKey(t)
	_, err := f.finalize(acct, o.ID, makeCSR(t, key, &x509.CertificateRequest{DNSNames: []string{"www.example.fi"}}))
	if ae := wantKind(t, err, acme.OrderNotReady); !strings.Contains(ae.Detail, "no longer valid") {
		t.Errorf("detail %q", ae.Detail)
	}
}
