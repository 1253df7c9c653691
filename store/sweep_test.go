package store

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// testSweep: what has been processing since before the cut-off is failed, what is
// fresh or finished is left alone.
func testSweep(t *testing.T, open func(t *testing.T) *SQL) {
	swept := []byte(`{"type":"urn:ietf:params:acme:error:serverInternal","detail":"interrupted"}`)
	// Processing rows started now: a cut-off an hour ahead makes them old, one an
	// hour back keeps them fresh.
	old := func() time.Time { return time.Now().Add(time.Hour) }
	fresh := func() time.Time { return time.Now().Add(-time.Hour) }
	mustCount := func(t *testing.T, what string, got int, err error, want int) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, what, fmt.Sprint(got), fmt.Sprint(want))
	}

	t.Run("old processing challenge fails with its authorization and orders", func(t *testing.T) {
		w := newWorld(t, open)
		w.pendingOrder("o1", "az1", "az2")
		w.must(w.s.StartChallenge(w.ctx, "az1-c0"))
		n, err := w.s.SweepStuckChallenges(w.ctx, old(), swept)
		mustCount(t, "swept", n, err, 1)
		c, err := w.s.GetChallenge(w.ctx, "az1-c0")
		w.must(err)
		mustEqual(t, "challenge", c.Status, "invalid")
		mustEqual(t, "challenge error", string(c.Error), string(swept))
		mustEqual(t, "authz", w.authzStatus("az1"), "invalid")
		mustEqual(t, "other authz", w.authzStatus("az2"), "pending")
		mustEqual(t, "order", w.orderStatus("o1"), "invalid")
		// A second sweep finds nothing; a late result is a conflict.
		n, err = w.s.SweepStuckChallenges(w.ctx, old(), swept)
		mustCount(t, "swept again", n, err, 0)
		if err := w.s.FinishChallenge(w.ctx, "az1-c0", true, t0, nil); !errors.Is(err, ErrConflict) {
			t.Errorf("late result: %v, want ErrConflict", err)
		}
	})
	t.Run("fresh processing challenge stays", func(t *testing.T) {
		w := newWorld(t, open)
		w.pendingOrder("o1", "az1")
		w.must(w.s.StartChallenge(w.ctx, "az1-c0"))
		n, err := w.s.SweepStuckChallenges(w.ctx, fresh(), swept)
		mustCount(t, "swept", n, err, 0)
		mustEqual(t, "challenge", w.challengeStatus("az1-c0"), "processing")
		mustEqual(t, "authz", w.authzStatus("az1"), "pending")
		mustEqual(t, "order", w.orderStatus("o1"), "pending")
		// Its validation still records its result.
		w.must(w.s.FinishChallenge(w.ctx, "az1-c0", true, t0, nil))
		mustEqual(t, "order after result", w.orderStatus("o1"), "ready")
	})
	t.Run("finished and pending challenges stay", func(t *testing.T) {
		w := newWorld(t, open)
		w.pendingOrder("o1", "az1")
		w.pendingOrder("o2", "az2")
		w.must(w.s.StartChallenge(w.ctx, "az1-c0"))
		w.must(w.s.FinishChallenge(w.ctx, "az1-c0", true, t0, nil))
		n, err := w.s.SweepStuckChallenges(w.ctx, old(), swept)
		mustCount(t, "swept", n, err, 0)
		mustEqual(t, "valid challenge", w.challengeStatus("az1-c0"), "valid")
		mustEqual(t, "ready order", w.orderStatus("o1"), "ready")
		mustEqual(t, "pending challenge", w.challengeStatus("az2-c0"), "pending")
		mustEqual(t, "pending order", w.orderStatus("o2"), "pending")
	})
	t.Run("old processing order fails; an intent the key was asked for stays, one it never was is freed", func(t *testing.T) {
		w := newWorld(t, open)
		w.processingOrder("o1")
		w.must(w.s.RecordIntent(w.ctx, intent("0a01", "o1", "aa01")))
		_, err := w.s.Audited(w.ctx, testSeal, func(tx *Tx) ([]AuditEvent, error) {
			return []AuditEvent{event("certificate.sign.begin", "serial=0a01")}, tx.BeginSigning("0a01")
		})
		w.must(err)
		w.processingOrder("o2")
		w.must(w.s.RecordIntent(w.ctx, intent("0a02", "o2", "aa02")))
		n, err := w.s.SweepStuckOrders(w.ctx, old(), swept)
		mustCount(t, "swept", n, err, 2)
		o, err := w.s.GetOrder(w.ctx, "o1")
		w.must(err)
		mustEqual(t, "order", o.Status, "invalid")
		mustEqual(t, "order error", string(o.Error), string(swept))
		in, err := w.s.GetIntent(w.ctx, "0a01")
		w.must(err)
		mustEqual(t, "asked intent", in.Status, "pending")
		freed := w.listed("0a02")
		mustEqual(t, "never asked intent", freed.Status+": "+freed.Reason, "failed: "+unaskedReason)
		left, err := w.s.IntentsWithoutCertificate(w.ctx)
		w.must(err)
		mustEqual(t, "intents without certificate", fmt.Sprint(len(left)), "2") // the pending one and the failed one
		// The never-asked intent's key is free for a new order; the asked one's is not.
		w.processingOrder("o3")
		w.must(w.s.RecordIntent(w.ctx, intent("0a03", "o3", "aa02")))
		if err := w.s.RecordIntent(w.ctx, intent("0a04", "o3", "aa01")); !errors.Is(err, ErrKeyInUse) {
			t.Errorf("the key of an intent the issuer key was asked for was given again: %v", err)
		}
		n, err = w.s.SweepStuckOrders(w.ctx, fresh(), swept)
		mustCount(t, "swept again", n, err, 0)
		mustEqual(t, "the new order's intent", w.intentStatus("0a03"), "pending")
	})
	t.Run("fresh processing order stays", func(t *testing.T) {
		w := newWorld(t, open)
		w.processingOrder("o1")
		n, err := w.s.SweepStuckOrders(w.ctx, fresh(), swept)
		mustCount(t, "swept", n, err, 0)
		mustEqual(t, "order", w.orderStatus("o1"), "processing")
	})
	t.Run("valid and ready orders stay", func(t *testing.T) {
		w := newWorld(t, open)
		w.issue("0b01", "aa01")
		w.readyOrder("o2")
		n, err := w.s.SweepStuckOrders(w.ctx, old(), swept)
		mustCount(t, "swept", n, err, 0)
		mustEqual(t, "issued order", w.orderStatus("o-0b01"), "valid")
		mustEqual(t, "ready order", w.orderStatus("o2"), "ready")
	})
}
