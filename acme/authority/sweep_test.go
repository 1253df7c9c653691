package authority

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
)

// TestSweep: a challenge and an order left processing by a replica that died are
// failed once older than their ages, with a problem telling the client to start over.
func TestSweep(t *testing.T) {
	f := newFixture(t, Config{ValidationTimeout: 50 * time.Millisecond})
	acct := f.account()

	// A validation started and never recorded.
	stuck := f.order(acct, "stuck.example.fi")
	az, err := f.a.Authorization(f.ctx, acct, stuck.AuthzIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	ch := httpChallenge(t, az)
	if err := f.st.StartChallenge(f.ctx, ch.ID); err != nil {
		t.Fatal(err)
	}
	// A finalize begun and never finished.
	issuing := f.readyOrder(acct, "issuing.example.fi")
	if err := f.st.BeginFinalize(f.ctx, issuing.ID); err != nil {
		t.Fatal(err)
	}
	// Finished work, which no sweep touches.
	_, _, _ = f.issue(acct, "done.example.fi")

	sweep := func(after time.Duration, wantChallenges, wantOrders int) {
		t.Helper()
		f.a.now = func() time.Time { return time.Now().Add(after) }
		c, o, err := f.a.Sweep(f.ctx)
		if err != nil {
			t.Fatalf("Sweep: %v", err)
		}
		if c != wantChallenges || o != wantOrders {
			t.Fatalf("Sweep %s later: %d challenges, %d orders; want %d, %d", after, c, o, wantChallenges, wantOrders)
		}
	}
	sweep(0, 0, 0)
	// Past ValidationTimeout + 1 min, within the issuance timeout + 1 min.
	sweep(time.Minute+time.Second, 1, 0)
	ch, az, err = f.a.Challenge(f.ctx, acct, ch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Status != string(acme.StatusInvalid) || az.Status != string(acme.StatusInvalid) {
		t.Errorf("swept challenge %s, authorization %s; want both invalid", ch.Status, az.Status)
	}
	wantProblem(t, "challenge", ch.Error, "the validation was interrupted; create a new order")
	if o, _ := f.a.Order(f.ctx, acct, stuck.ID); o.Status != string(acme.StatusInvalid) {
		t.Errorf("order of the swept challenge is %s, want invalid", o.Status)
	}
	if o, _ := f.a.Order(f.ctx, acct, issuing.ID); o.Status != string(acme.StatusProcessing) {
		t.Errorf("finalizing order is %s before the issuance age, want processing", o.Status)
	}

	sweep(issueTimeout+time.Minute+time.Second, 0, 1)
	o, err := f.a.Order(f.ctx, acct, issuing.ID)
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != string(acme.StatusInvalid) {
		t.Errorf("swept order is %s, want invalid", o.Status)
	}
	wantProblem(t, "order", o.Error, "issuance was interrupted; create a new order with a new key")
	sweep(time.Hour, 0, 0)
}

func wantProblem(t *testing.T, what string, doc []byte, detail string) {
	t.Helper()
	if !strings.Contains(string(doc), string(acme.ServerInternal)) || !strings.Contains(string(doc), detail) {
		t.Errorf("%s problem %s, want serverInternal with %q", what, doc, detail)
	}
}

// TestRunSweeper sweeps at once and stops with its context.
func TestRunSweeper(t *testing.T) {
	f := newFixture(t, Config{})
	acct := f.account()
	o := f.readyOrder(acct, "issuing.example.fi")
	if err := f.st.BeginFinalize(f.ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	f.a.now = func() time.Time { return time.Now().Add(time.Hour) }
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { defer close(done); f.a.RunSweeper(ctx, time.Hour) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cur, err := f.a.Order(f.ctx, acct, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.Status == string(acme.StatusInvalid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order still %s after the sweeper started", cur.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunSweeper did not stop with its context")
	}
}
