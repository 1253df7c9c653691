package store

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testCRL is the contract of revocation records, CRL state and the publisher lease.
func testCRL(t *testing.T, open func(t *testing.T) *SQL) {
	t.Run("revocation round trip with request time and invalidity date", func(t *testing.T) {
		put := func(w *world, r Revocation) error {
			w.issue(r.Serial, "ee"+r.Serial)
			return w.s.Revoke(w.ctx, r, nil)
		}
		runRoundTrips(t, open, []roundTripCase[Revocation]{
			{name: "all fields", in: Revocation{Serial: "05", RevokedAt: t0, Reason: 1, RequestedBy: "Maija Meikäläinen",
				IdentifiedBy: "strong identification in the e-service", PerformedBy: "operator", Note: "ticket 42",
				RequestedAt: t0.Add(-time.Hour), InvalidityDate: t0.Add(-48 * time.Hour), ReceivedBy: "admin API (operator)"}},
		}, put, func(w *world, r Revocation) (*Revocation, error) { return w.s.GetRevocation(w.ctx, r.Serial) })
	})
	t.Run("revoking intents", func(t *testing.T) { testRevokeIntents(t, open) })
	t.Run("serial status", func(t *testing.T) { testSerialStatus(t, open) })
	t.Run("CRL entries", func(t *testing.T) { testCRLEntries(t, open) })
	t.Run("publishing", func(t *testing.T) { testPublishCRL(t, open) })
	t.Run("revoking an organisation", func(t *testing.T) { testRevokeOrganisation(t, open) })
	t.Run("revocation notices", func(t *testing.T) { testRevocationNotices(t, open) })
}

// issueCert runs a whole issuance of c on a new order o-<serial> of org1; c.OrgOID
// and c.Issuer are stored as given.
func (w *world) issueCert(c Certificate) {
	w.t.Helper()
	c.OrderID = "o-" + c.Serial
	w.processingOrder(c.OrderID)
	w.must(w.s.RecordIntent(w.ctx, intent(c.Serial, c.OrderID, c.KeyHash)))
	w.must(w.s.FinishIssuance(w.ctx, c))
}

// pendingIntent records an intent (never finished) on a new order o-<serial>.
func (w *world) pendingIntent(serial, keyHash string, tbs []byte) {
	w.t.Helper()
	o := "o-" + serial
	w.processingOrder(o)
	in := intent(serial, o, keyHash)
	in.LintTBS = tbs
	w.must(w.s.RecordIntent(w.ctx, in))
}

// realTBS is the TBSCertificate of a certificate valid until notAfter, as the signer
// records it in an intent.
func realTBS(t *testing.T, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), NotBefore: notAfter.AddDate(-1, 0, 0), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c.RawTBSCertificate
}

func testRevokeIntents(t *testing.T, open func(t *testing.T) *SQL) {
	notAfter := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	late := time.Date(2051, 1, 2, 3, 4, 5, 0, time.UTC) // GeneralizedTime in the TBS
	cases := []struct {
		name         string
		setup        func(w *world)
		serial       string
		want         error
		wantNotAfter time.Time
	}{
		{name: "a pending intent (possibly signed) is revocable; its notAfter comes from the TBS",
			setup:  func(w *world) { w.pendingIntent("0c", "cc", realTBS(w.t, notAfter)) },
			serial: "0c", wantNotAfter: notAfter},
		{name: "a notAfter after 2049 is read from a GeneralizedTime",
			setup:  func(w *world) { w.pendingIntent("0c", "cc", realTBS(w.t, late)) },
			serial: "0c", wantNotAfter: late},
		{name: "an intent whose TBS cannot be read is revocable with an unknown notAfter",
			setup:  func(w *world) { w.pendingIntent("0c", "cc", []byte("not a TBS")) },
			serial: "0c"},
		{name: "a failed intent (the key never signed) is not revocable",
			setup: func(w *world) {
				w.pendingIntent("0c", "cc", realTBS(w.t, notAfter))
				w.must(w.s.AbandonIntent(w.ctx, "0c"))
			},
			serial: "0c", want: ErrNotFound},
		{name: "a stored certificate takes its notAfter from the certificate",
			setup:  func(w *world) { w.issue("0a", "aa") },
			serial: "0A", wantNotAfter: t0.AddDate(1, 0, 0)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, open)
			tc.setup(w)
			err := w.s.Revoke(w.ctx, Revocation{Serial: tc.serial, RevokedAt: t0, Reason: 4}, nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Revoke: %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				return
			}
			entries, _, err := w.s.CRLEntries(w.ctx, "production", time.Time{})
			w.must(err)
			if len(entries) != 1 || entries[0].Serial != strings.ToLower(tc.serial) {
				t.Fatalf("CRL entries %+v, want serial %s", entries, tc.serial)
			}
			if got, want := entries[0].NotAfter, normalized(tc.wantNotAfter); !got.Equal(want) {
				t.Errorf("notAfter %s, want %s", got, want)
			}
			if err := w.s.Revoke(w.ctx, Revocation{Serial: tc.serial, RevokedAt: t0, Reason: 1}, nil); !errors.Is(err, ErrDuplicate) {
				t.Errorf("second revocation: %v, want ErrDuplicate", err)
			}
		})
	}
}

func testSerialStatus(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	w.issue("0a", "aa")
	w.issue("0b", "bb")
	w.must(w.s.Revoke(w.ctx, Revocation{Serial: "0b", RevokedAt: t0, Reason: 1, PerformedBy: "op"}, nil))
	w.pendingIntent("0c", "cc", nil)
	cases := []struct {
		serial    string
		want      error
		certified bool
		revoked   bool
	}{
		{serial: "0a", certified: true},
		{serial: "0B", certified: true, revoked: true},
		{serial: "0c"},
		{serial: "ff", want: ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.serial, func(t *testing.T) {
			st, err := w.s.SerialStatus(w.ctx, tc.serial)
			if !errors.Is(err, tc.want) {
				t.Fatalf("SerialStatus: %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			if st.Serial != strings.ToLower(tc.serial) || st.Issuer != "production" || st.OrgOID != org1 {
				t.Errorf("status %+v: want serial %s of issuer production and %s", st, tc.serial, org1)
			}
			if st.Certified != tc.certified || (st.Revocation != nil) != tc.revoked {
				t.Errorf("certified %v, revoked %v: want %v, %v", st.Certified, st.Revocation != nil, tc.certified, tc.revoked)
			}
			if tc.revoked && (st.Revocation.Reason != 1 || st.Revocation.PerformedBy != "op") {
				t.Errorf("revocation %+v: want reason 1 performed by op", st.Revocation)
			}
		})
	}
}

func testCRLEntries(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	at := func(serial, issuer string, notAfter time.Time) {
		c := cert(serial, "", "ee"+serial)
		c.Issuer, c.NotAfter = issuer, notAfter
		w.issueCert(c)
	}
	at("0b", "production", t0.Add(time.Hour))
	at("0a", "production", t0.AddDate(1, 0, 0))
	at("0d", "production", t0.Add(-time.Minute)) // expired before the cut-off
	at("0e", "production", t0)                   // expires exactly at the cut-off
	at("0f", "production", t0.AddDate(1, 0, 0))  // not revoked
	at("1a", "test", t0.AddDate(1, 0, 0))
	w.pendingIntent("0c", "eec0", []byte("unreadable"))
	inv := t0.Add(-24 * time.Hour)
	for _, r := range []Revocation{
		{Serial: "0b", RevokedAt: t0, Reason: 1, InvalidityDate: inv},
		{Serial: "0a", RevokedAt: t0.Add(time.Second)},
		{Serial: "0d", RevokedAt: t0, Reason: 4},
		{Serial: "0e", RevokedAt: t0, Reason: 5},
		{Serial: "1a", RevokedAt: t0, Reason: 9},
		{Serial: "0c", RevokedAt: t0, Reason: 3},
	} {
		w.must(w.s.Revoke(w.ctx, r, nil))
	}

	entries, count, err := w.s.CRLEntries(w.ctx, "production", t0)
	w.must(err)
	var got []string
	for _, e := range entries {
		got = append(got, e.Serial)
	}
	cases := []struct{ name, got, want string }{
		{"sorted, unexpired at the cut-off or unknown, of this issuer only", strings.Join(got, ","), "0a,0b,0c,0e"},
		{"count covers every revocation of the issuer, expired ones too", fmt.Sprint(count), "5"},
		{"reason and invalidity date", fmt.Sprint(entries[1].Reason, entries[1].InvalidityDate.Equal(inv)), "1 true"},
		{"revocation time", entries[0].RevokedAt.Format(time.RFC3339Nano), normalized(t0.Add(time.Second)).Format(time.RFC3339Nano)},
		{"unknown notAfter is zero", fmt.Sprint(entries[2].NotAfter.IsZero()), "true"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { mustEqual(t, tc.name, tc.got, tc.want) })
	}
	t.Run("RevocationCount", func(t *testing.T) {
		for issuer, want := range map[string]int64{"production": 5, "test": 1, "other": 0} {
			n, err := w.s.RevocationCount(w.ctx, issuer)
			if err != nil || n != want {
				t.Errorf("RevocationCount(%s) = %d, %v; want %d", issuer, n, err, want)
			}
		}
	})
}

func crlState(number int64, this time.Time) CRLState {
	return CRLState{Issuer: "production", Number: number, ThisUpdate: this, NextUpdate: this.Add(8 * time.Hour),
		DER: []byte(fmt.Sprintf("crl-%d", number)), Entries: number * 2, Revocations: number * 3, PublishedBy: "replica-a"}
}

func testPublishCRL(t *testing.T, open func(t *testing.T) *SQL) {
	cases := []struct {
		name  string
		first []CRLState // published first, each must succeed
		then  CRLState
		want  error
	}{
		{name: "the first CRL", then: crlState(1, t0)},
		{name: "a higher number and a later thisUpdate", first: []CRLState{crlState(1, t0)}, then: crlState(2, t0.Add(time.Hour))},
		{name: "a number far higher, the same thisUpdate", first: []CRLState{crlState(1, t0)}, then: crlState(1<<62, t0)},
		{name: "the same number is refused", first: []CRLState{crlState(1, t0)}, then: crlState(1, t0.Add(time.Hour)), want: ErrConflict},
		{name: "a lower number is refused", first: []CRLState{crlState(1, t0), crlState(5, t0)}, then: crlState(4, t0.Add(time.Hour)), want: ErrConflict},
		{name: "a thisUpdate before the last one (clock went back) is refused", first: []CRLState{crlState(1, t0)},
			then: crlState(2, t0.Add(-time.Second)), want: ErrConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, open)
			if _, err := w.s.GetCRLState(w.ctx, "production"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("GetCRLState before any CRL: %v, want ErrNotFound", err)
			}
			for _, st := range tc.first {
				w.must(w.s.PublishCRL(w.ctx, st))
			}
			err := w.s.PublishCRL(w.ctx, tc.then)
			if !errors.Is(err, tc.want) {
				t.Fatalf("PublishCRL: %v, want %v", err, tc.want)
			}
			want := tc.then
			if err != nil {
				want = tc.first[len(tc.first)-1]
			}
			got, err := w.s.GetPublishedCRL(w.ctx, "production")
			w.must(err)
			want.ThisUpdate, want.NextUpdate = normalized(want.ThisUpdate), normalized(want.NextUpdate)
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("published\n%+v\nwant\n%+v", *got, want)
			}
			meta, err := w.s.GetCRLState(w.ctx, "production")
			w.must(err)
			if meta.DER != nil || meta.Number != want.Number {
				t.Errorf("GetCRLState: number %d with %d DER bytes; want %d without DER", meta.Number, len(meta.DER), want.Number)
			}
		})
	}

	t.Run("refusals of bad input", func(t *testing.T) {
		w := newWorld(t, open)
		bad := map[string]CRLState{
			"number 0":                  crlState(0, t0),
			"no DER":                    func() CRLState { s := crlState(1, t0); s.DER = nil; return s }(),
			"nextUpdate not after this": func() CRLState { s := crlState(1, t0); s.NextUpdate = t0; return s }(),
		}
		for name, st := range bad {
			if err := w.s.PublishCRL(w.ctx, st); err == nil {
				t.Errorf("%s: published", name)
			}
		}
	})

	t.Run("of concurrent publications of one number exactly one wins", func(t *testing.T) {
		w := newWorld(t, open)
		w.must(w.s.PublishCRL(w.ctx, crlState(1, t0)))
		errs := race(8, func(i int) error { return w.s.PublishCRL(w.ctx, crlState(2, t0.Add(time.Minute))) })
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrConflict):
				t.Errorf("unexpected error: %v", err)
			}
		}
		if won != 1 {
			t.Errorf("%d publications of number 2 succeeded, want 1", won)
		}
	})
}

func testRevokeOrganisation(t *testing.T, open func(t *testing.T) *SQL) {
	now := t0.Add(time.Hour)
	setup := func(w *world) {
		at := func(serial, org string, notAfter time.Time) {
			c := cert(serial, "", "ee"+serial)
			c.OrgOID, c.NotAfter = org, notAfter
			w.issueCert(c)
		}
		at("0a", org1, now.AddDate(1, 0, 0))
		at("0b", org1, now.AddDate(1, 0, 0))
		at("0d", org1, now.Add(-time.Second)) // expired
		at("0e", org1, now.AddDate(1, 0, 0))  // already revoked
		at("2a", org2, now.AddDate(1, 0, 0))  // another organisation
		w.must(w.s.Revoke(w.ctx, Revocation{Serial: "0e", RevokedAt: t0, Reason: 4, RequestedBy: "earlier"}, nil))
		w.pendingIntent("0c", "ee0c", realTBS(w.t, now.AddDate(1, 0, 0))) // possibly signed
		w.pendingIntent("0f", "ee0f", realTBS(w.t, now.Add(-time.Hour)))  // possibly signed, expired
		w.pendingIntent("10", "ee10", nil)                                // abandoned: never signed
		w.must(w.s.AbandonIntent(w.ctx, "10"))
	}
	r := Revocation{RevokedAt: now, Reason: 5, RequestedBy: "THL register", IdentifiedBy: "register extract", PerformedBy: "op"}
	cases := []struct {
		name      string
		org       string
		block     bool
		want      error
		revoked   string
		blocked   []string
		unblocked []string
	}{
		{name: "every unexpired, unrevoked certificate and possibly signed intent of the organisation",
			org: org1, revoked: "0a,0b,0c", unblocked: []string{"ee0a"}},
		{name: "keyCompromise blocks their keys", org: org1, block: true, revoked: "0a,0b,0c",
			blocked: []string{"ee0a", "ee0b", "ee0c"}, unblocked: []string{"ee0e", "ee2a"}},
		{name: "an unknown organisation", org: "1.2.246.10.1.10.0", want: ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, open)
			setup(w)
			got, err := w.s.RevokeOrganisation(w.ctx, tc.org, now, r, tc.block)
			if !errors.Is(err, tc.want) {
				t.Fatalf("RevokeOrganisation: %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			mustEqual(t, "revoked", strings.Join(got, ","), tc.revoked)
			for _, k := range tc.blocked {
				mustBool(w, "blocked "+k, w.s.KeyBlocked, k, true)
			}
			for _, k := range tc.unblocked {
				mustBool(w, "blocked "+k, w.s.KeyBlocked, k, false)
			}
			rec, err := w.s.GetRevocation(w.ctx, "0a")
			w.must(err)
			want := r
			want.Serial, want.RevokedAt = "0a", normalized(now)
			if !reflect.DeepEqual(*rec, want) {
				t.Errorf("record %+v, want %+v", *rec, want)
			}
			earlier, err := w.s.GetRevocation(w.ctx, "0e")
			w.must(err)
			mustEqual(t, "the earlier revocation stays", earlier.RequestedBy, "earlier")
			again, err := w.s.RevokeOrganisation(w.ctx, tc.org, now, r, tc.block)
			if err != nil || len(again) != 0 {
				t.Errorf("second run revoked %v, %v; want nothing", again, err)
			}
		})
	}
}
