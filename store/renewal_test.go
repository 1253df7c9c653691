package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// issueAs is a whole issuance of serial with the certificate changed by edit.
func (w *world) issueAs(serial, keyHash string, edit func(c *Certificate)) {
	w.t.Helper()
	o := "o-" + serial
	w.processingOrder(o)
	w.must(w.s.RecordIntent(w.ctx, intent(serial, o, keyHash)))
	c := cert(serial, o, keyHash)
	edit(&c)
	w.must(w.s.FinishIssuance(w.ctx, c))
}

// replacing is a new ready order id of acct-1 that replaces the certificate serial.
func replacing(id, serial string) (Order, []Authorization) {
	a := authz(id+"-a", 1)
	a.Status, a.Challenges[0].Status, a.Challenges[0].Validated = "valid", "valid", t0
	o := order(id, "ready", a.ID)
	o.Replaces, o.ReplacesSerial = "certid-"+serial, serial
	return o, []Authorization{a}
}

func (w *world) replace(id, serial string) error {
	o, as := replacing(id, serial)
	return w.s.CreateOrder(w.ctx, o, as)
}

// testRenewal: RFC 9773 "replaces" claims and the renewal windows operators move.
func testRenewal(t *testing.T, open func(t *testing.T) *SQL) {
	t.Run("an order keeps what it replaces", func(t *testing.T) {
		w := newWorld(t, open)
		w.issue("AA01", "f1")
		w.must(w.replace("o-r1", "AA01"))
		o, err := w.s.GetOrder(w.ctx, "o-r1")
		w.must(err)
		mustEqual(t, "Replaces", o.Replaces, "certid-AA01")
		mustEqual(t, "ReplacesSerial", o.ReplacesSerial, "aa01")
		other, err := w.s.GetOrder(w.ctx, "o-AA01")
		w.must(err)
		mustEqual(t, "Replaces of an order replacing nothing", other.Replaces+other.ReplacesSerial, "")
	})

	t.Run("a newer order takes the claim of one that never reached finalize, which becomes invalid", func(t *testing.T) {
		w := newWorld(t, open)
		w.issue("AA01", "f1")
		w.must(w.replace("o-r1", "AA01"))
		w.must(w.replace("o-r2", "AA01"))
		mustEqual(t, "status of the displaced order", w.orderStatus("o-r1"), "invalid")
		mustEqual(t, "status of the newer order", w.orderStatus("o-r2"), "ready")
		o, err := w.s.GetOrder(w.ctx, "o-r1")
		w.must(err)
		mustEqual(t, "Replaces of the displaced order", o.Replaces, "")
		if err := w.s.BeginFinalize(w.ctx, "o-r1"); !errors.Is(err, ErrConflict) {
			t.Errorf("BeginFinalize of the displaced order: %v, want ErrConflict", err)
		}
	})

	for _, state := range []string{"processing", "valid"} {
		t.Run("a claim held by a "+state+" order refuses the next with ErrAlreadyReplaced and stores nothing", func(t *testing.T) {
			w := newWorld(t, open)
			w.issue("AA01", "f1")
			w.must(w.replace("o-r1", "AA01"))
			w.must(w.s.BeginFinalize(w.ctx, "o-r1"))
			if state == "valid" {
				w.must(w.s.RecordIntent(w.ctx, intent("BB02", "o-r1", "f2")))
				w.must(w.s.FinishIssuance(w.ctx, cert("BB02", "o-r1", "f2")))
			}
			err := w.replace("o-r2", "AA01")
			if !errors.Is(err, ErrAlreadyReplaced) {
				t.Fatalf("second replacement: %v, want ErrAlreadyReplaced", err)
			}
			mustNotFound(w, "the refused order", func() error { _, err := w.s.GetOrder(w.ctx, "o-r2"); return err }())
			mustNotFound(w, "the refused order's authorization", func() error { _, err := w.s.GetAuthorization(w.ctx, "o-r2-a"); return err }())
			mustEqual(t, "status of the holder", w.orderStatus("o-r1"), state)
		})
	}

	t.Run("an invalid holder gives up its claim", func(t *testing.T) {
		w := newWorld(t, open)
		w.issue("AA01", "f1")
		w.must(w.replace("o-r1", "AA01"))
		w.must(w.s.BeginFinalize(w.ctx, "o-r1"))
		w.must(w.s.FailOrder(w.ctx, "o-r1", []byte(`{"type":"x"}`)))
		w.must(w.replace("o-r2", "AA01"))
		mustEqual(t, "status of the new order", w.orderStatus("o-r2"), "ready")
	})

	t.Run("replacing an unknown serial is ErrNotFound and stores nothing", func(t *testing.T) {
		w := newWorld(t, open)
		if err := w.replace("o-r1", "CC03"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("CreateOrder: %v, want ErrNotFound", err)
		}
		mustNotFound(w, "the order", func() error { _, err := w.s.GetOrder(w.ctx, "o-r1"); return err }())
	})

	t.Run("concurrent replacements with a processing holder are all refused", func(t *testing.T) {
		w := newWorld(t, open)
		w.issue("AA01", "f1")
		w.must(w.replace("o-r0", "AA01"))
		w.must(w.s.BeginFinalize(w.ctx, "o-r0"))
		errs := race(8, func(i int) error { return w.replace(fmt.Sprintf("o-c%d", i), "AA01") })
		for i, err := range errs {
			if !errors.Is(err, ErrAlreadyReplaced) {
				t.Errorf("replacement %d: %v, want ErrAlreadyReplaced", i, err)
			}
		}
	})

	t.Run("of concurrent replacements exactly one holds the claim, the others are invalid or refused", func(t *testing.T) {
		w := newWorld(t, open)
		w.issue("AA01", "f1")
		const n = 8
		errs := race(n, func(i int) error { return w.replace(fmt.Sprintf("o-c%d", i), "AA01") })
		holders := 0
		for i, err := range errs {
			id := fmt.Sprintf("o-c%d", i)
			switch {
			case errors.Is(err, ErrAlreadyReplaced):
			case err != nil:
				t.Errorf("replacement %d: %v", i, err)
			default:
				o, err := w.s.GetOrder(w.ctx, id)
				w.must(err)
				if o.Status != "invalid" {
					holders++
					mustEqual(t, "Replaces of the live order", o.ReplacesSerial, "aa01")
				}
			}
		}
		if holders != 1 {
			t.Errorf("%d orders are live replacements, want 1", holders)
		}
	})

	window := func(start time.Time, reason string) RenewalWindow {
		return RenewalWindow{Start: start, End: start.Add(time.Hour), Reason: reason, SetBy: "operator", SetAt: t0}
	}

	t.Run("renewal windows: set, read back, replaced by a later move", func(t *testing.T) {
		w := newWorld(t, open)
		w.issue("AA01", "f1")
		mustNotFound(w, "a window never set", func() error { _, err := w.s.GetRenewalWindow(w.ctx, "AA01"); return err }())
		got, err := w.s.MoveRenewalWindows(w.ctx, RenewalSelector{Serial: "AA01"}, window(t0.Add(-2*time.Hour), "first"), t0)
		w.must(err)
		if !slices.Equal(got, []string{"aa01"}) {
			t.Fatalf("moved %v, want [aa01]", got)
		}
		_, err = w.s.MoveRenewalWindows(w.ctx, RenewalSelector{Serial: "aa01"}, window(t0.Add(-time.Hour), "second"), t0)
		w.must(err)
		rw, err := w.s.GetRenewalWindow(w.ctx, "AA01")
		w.must(err)
		want := normalized(RenewalWindow{Serial: "aa01", Start: t0.Add(-time.Hour), End: t0, Reason: "second", SetBy: "operator", SetAt: t0})
		if *rw != want {
			t.Errorf("GetRenewalWindow = %+v, want %+v", *rw, want)
		}
	})

	t.Run("renewal windows: selected by organisation or issuer, skipping expired and revoked certificates", func(t *testing.T) {
		w := newWorld(t, open)
		w.issue("AA01", "f1")                                                              // org1, production
		w.issueAs("AA02", "f2", func(c *Certificate) { c.Issuer = "test" })                // org1, test
		w.issueAs("AA03", "f3", func(c *Certificate) { c.OrgOID = org2 })                  // org2, production
		w.issueAs("AA04", "f4", func(c *Certificate) { c.NotAfter = t0.Add(time.Minute) }) // org1, expires soon
		w.issueAs("AA05", "f5", func(c *Certificate) {})                                   // org1, revoked below
		w.must(w.s.Revoke(w.ctx, Revocation{Serial: "AA05", RevokedAt: t0, Reason: 1, RequestedBy: "x", IdentifiedBy: "y", PerformedBy: "z"}, nil))
		now := t0.Add(time.Hour) // AA04 has expired
		cases := []struct {
			name string
			sel  RenewalSelector
			want []string
		}{
			{"organisation 1", RenewalSelector{OrgOID: org1}, []string{"aa01", "aa02"}},
			{"organisation 2", RenewalSelector{OrgOID: org2}, []string{"aa03"}},
			{"issuer production", RenewalSelector{Issuer: "production"}, []string{"aa01", "aa03"}},
			{"issuer test", RenewalSelector{Issuer: "test"}, []string{"aa02"}},
			{"an issuer with no certificates", RenewalSelector{Issuer: "nobody"}, nil},
			{"a revoked serial", RenewalSelector{Serial: "AA05"}, nil},
			{"an expired serial", RenewalSelector{Serial: "AA04"}, nil},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := w.s.MoveRenewalWindows(w.ctx, tc.sel, window(now.Add(-2*time.Hour), tc.name), now)
				w.must(err)
				if !slices.Equal(got, tc.want) {
					t.Errorf("moved %v, want %v", got, tc.want)
				}
				for _, s := range got {
					rw, err := w.s.GetRenewalWindow(w.ctx, s)
					w.must(err)
					mustEqual(t, "reason of "+s, rw.Reason, tc.name)
				}
			})
		}
		mustNotFound(w, "the revoked certificate's window", func() error { _, err := w.s.GetRenewalWindow(w.ctx, "AA05"); return err }())
	})

	t.Run("renewal windows: refusals", func(t *testing.T) {
		w := newWorld(t, open)
		w.issue("AA01", "f1")
		for _, tc := range []struct {
			name string
			sel  RenewalSelector
			w    RenewalWindow
			want error // nil: any error
		}{
			{"an unknown serial", RenewalSelector{Serial: "BB"}, window(t0, "r"), ErrNotFound},
			{"an unknown organisation", RenewalSelector{OrgOID: "1.2.3"}, window(t0, "r"), ErrNotFound},
			{"no selector", RenewalSelector{}, window(t0, "r"), nil},
			{"two selectors", RenewalSelector{Serial: "AA01", OrgOID: org1}, window(t0, "r"), nil},
			{"a window ending before it starts", RenewalSelector{Serial: "AA01"}, RenewalWindow{Start: t0, End: t0.Add(-time.Second)}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := w.s.MoveRenewalWindows(w.ctx, tc.sel, tc.w, t0)
				if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
					t.Fatalf("MoveRenewalWindows: %v, want %v", err, tc.want)
				}
			})
		}
		mustNotFound(w, "a window after refusals", func() error { _, err := w.s.GetRenewalWindow(w.ctx, "AA01"); return err }())
	})
}
