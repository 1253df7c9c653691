package signer

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestIssuerLife: a profile whose longest certificate would outlast its issuer is
// refused at start with what to do; a request that would end after the issuer is
// refused as a client error (ErrInvalidRequest and ErrOutlastsIssuer) saying the
// latest notAfter the issuer can sign, never a fault of the CA.
func TestIssuerLife(t *testing.T) {
	const day = 24 * time.Hour
	p := newTestPKI(t, "p256")
	// An issuer with 400 days left: a 365-day profile fits only if its start delay
	// does.
	rootKey := p.rootKey
	issuerKey := newKey(t, "p256")
	p.issuer.Cert = makeCA(t, "ending issuer", issuerKey.Public(), p.root, rootKey, 400*day)
	p.issuer.Key = issuerKey
	prof := testProfile()
	clock := func() time.Time { return testNow }

	t.Run("a profile that fits starts", func(t *testing.T) {
		prof.MaxStartDelay = 30 * day
		if err := New(p.issuer, prof, &fakeRecorder{ev: &events{}}, clock, nil).CheckIssuerLife(testNow); err != nil {
			t.Fatalf("365 days starting up to 30 days ahead, issuer 400 days left: %v", err)
		}
	})
	t.Run("a profile that would outlast its issuer is refused with what to do", func(t *testing.T) {
		prof.MaxStartDelay = 60 * day
		err := New(p.issuer, prof, &fakeRecorder{ev: &events{}}, clock, nil).CheckIssuerLife(testNow)
		for _, want := range []string{`profile "sote-server" issues certificates of up to 365 days starting up to 60 days ahead`,
			`issuer "production" ends on 2027-04-14, 400 days from now`, "roll over to a new issuer generation", "at most 340 days"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("CheckIssuerLife = %v, want it to say %q", err, want)
			}
		}
	})
	t.Run("a request that would end after the issuer is the client's to change", func(t *testing.T) {
		prof.MaxStartDelay = 60 * day
		ca := New(p.issuer, prof, &fakeRecorder{ev: &events{}}, clock, nil)
		_, _, err := ca.Validity(Request{NotBefore: testNow.Add(50 * day)})
		if !errors.Is(err, ErrOutlastsIssuer) || !errors.Is(err, ErrInvalidRequest) ||
			!strings.Contains(err.Error(), "ask for a notAfter no later than 2027-04-14T12:00:00Z") {
			t.Fatalf("Validity of a certificate ending after the issuer = %v", err)
		}
		if _, notAfter, err := ca.Validity(Request{NotBefore: testNow.Add(50 * day), NotAfter: testNow.Add(399 * day)}); err != nil || !notAfter.Equal(testNow.Add(399*day)) {
			t.Fatalf("Validity of one ending before it = %s, %v", notAfter, err)
		}
	})
}
