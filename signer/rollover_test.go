package signer

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestRollover: a profile's CA across two issuer generations issues with the
// active one, names it on what it issued, still knows the other (whose
// certificates are served with their own chain), refuses a generation it does
// not have, and keeps the generation that issued when the one asked for would be
// outlasted by the profile's certificates.
func TestRollover(t *testing.T) {
	const day = 24 * time.Hour
	p := newTestPKI(t, "p256")
	clock := func() time.Time { return testNow }
	second := func(name string, lifetime time.Duration) *CA {
		key := newKey(t, "p256")
		iss := &Issuer{Name: name, Cert: makeCA(t, "issuer "+name, key.Public(), p.root, p.rootKey, lifetime), Key: key}
		return New(iss, testProfile(), &fakeRecorder{ev: &events{}}, clock, nil)
	}
	first := New(p.issuer, testProfile(), &fakeRecorder{ev: &events{}}, clock, nil)
	g2, short := second("production-2", caLifetime), second("production-3", 200*day)

	if _, err := NewRollover("production", []*CA{first, g2}, "production-9", testNow); err == nil || !strings.Contains(err.Error(), `no issuer generation "production-9"`) {
		t.Errorf("a rollover to a generation not loaded: %v", err)
	}
	r, err := NewRollover("production", []*CA{first, g2, short}, "production", testNow)
	if err != nil {
		t.Fatal(err)
	}
	issue := func() *Issued {
		t.Helper()
		got, err := r.Issue(context.Background(), testRequest(t, "p256"))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := issue(); got.Issuer != "production" || got.Cert.CheckSignatureFrom(p.issuer.Cert) != nil {
		t.Errorf("before the switch the certificate names %q", got.Issuer)
	}
	if err := r.Activate("production-2", testNow); err != nil {
		t.Fatal(err)
	}
	if got := issue(); got.Issuer != "production-2" || got.Cert.CheckSignatureFrom(g2.Issuer().Cert) != nil || r.Issuer().Name != "production-2" {
		t.Errorf("after the switch the certificate names %q and verifies: %v", got.Issuer, got.Cert.CheckSignatureFrom(g2.Issuer().Cert))
	}
	if r.Generation("production") != p.issuer || r.Generation("test") != nil {
		t.Error("the rollover does not know its earlier generation, or knows one it lacks")
	}
	if err := r.Activate("production-3", testNow); err == nil || !strings.Contains(err.Error(), "roll over to a new issuer generation") {
		t.Errorf("a generation the profile's certificates would outlast: %v", err)
	}
	if r.Issuer().Name != "production-2" {
		t.Errorf("after a refused switch %q issues, want production-2", r.Issuer().Name)
	}
}
