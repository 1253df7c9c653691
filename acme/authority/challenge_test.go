package authority

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/store"
)

// pendingChallenge makes an order for name and returns it with its challenge id.
func (f *fixture) pendingChallenge(acct *store.Account, name string) (*store.Order, string) {
	f.t.Helper()
	o := f.order(acct, name)
	az, err := f.a.Authorization(f.ctx, acct, o.AuthzIDs[0])
	if err != nil {
		f.t.Fatal(err)
	}
	return o, httpChallenge(f.t, az).ID
}

func problemOf(t *testing.T, raw []byte) acme.Problem {
	t.Helper()
	var p acme.Problem
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("stored problem %q: %v", raw, err)
	}
	return p
}

func TestRespondChallengeFastResultIsInTheResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		result      error
		want        acme.Status // challenge and authorization
		wantOrder   acme.Status
		wantProblem acme.ErrorKind
	}{
		{"a passed validation makes challenge, authorization valid and the order ready", nil, acme.StatusValid, acme.StatusReady, ""},
		{"a typed refusal makes challenge, authorization and order invalid", acme.Errorf(acme.IncorrectResponse, "the key authorization differs"), acme.StatusInvalid, acme.StatusInvalid, acme.IncorrectResponse},
		{"an untyped validator error is stored as a generic serverInternal", errors.New("dial tcp 10.1.2.3:80: internal secret"), acme.StatusInvalid, acme.StatusInvalid, acme.ServerInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, Config{})
			f.val.set(tt.result, nil)
			acct := f.account()
			o, chID := f.pendingChallenge(acct, "www.example.fi")

			ch, az, err := f.a.RespondChallenge(f.ctx, acct, chID)
			if err != nil {
				t.Fatalf("RespondChallenge: %v", err)
			}
			if ch.Status != string(tt.want) || az.Status != string(tt.want) {
				t.Errorf("challenge %q, authorization %q in the response; want %q", ch.Status, az.Status, tt.want)
			}
			if tt.want == acme.StatusValid && ch.Validated.IsZero() {
				t.Error("a valid challenge has no validated time")
			}
			if tt.wantProblem == "" {
				if len(ch.Error) != 0 {
					t.Errorf("challenge error %s, want none", ch.Error)
				}
			} else {
				p := problemOf(t, ch.Error)
				if p.Type != tt.wantProblem.URN() {
					t.Errorf("challenge problem %s, want %s", p.Type, tt.wantProblem.URN())
				}
				if strings.Contains(p.Detail, "secret") || strings.Contains(p.Detail, "10.1.2.3") {
					t.Errorf("challenge problem leaks the internal error: %q", p.Detail)
				}
			}
			cur, err := f.a.Order(f.ctx, acct, o.ID)
			if err != nil || cur.Status != string(tt.wantOrder) {
				t.Errorf("order %+v, %v; want %s", cur, err, tt.wantOrder)
			}
			f.val.mu.Lock()
			defer f.val.mu.Unlock()
			if f.val.calls.Load() != 1 || f.val.names[0] != "www.example.fi" ||
				f.val.keyAuths[0] != ch.Token+"."+acct.Thumbprint {
				t.Errorf("validator called %d times with %q %q, want once for www.example.fi with token.thumbprint",
					f.val.calls.Load(), f.val.names, f.val.keyAuths)
			}
		})
	}
}

func TestRespondChallengeSlowValidationAnswersProcessing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{ValidationWait: 20 * time.Millisecond})
	gate := make(chan struct{})
	f.val.set(nil, gate)
	acct := f.account()
	o, chID := f.pendingChallenge(acct, "www.example.fi")

	// The request goes away right after its answer; the validation must not.
	ctx, cancel := context.WithCancel(f.ctx)
	start := time.Now()
	ch, az, err := f.a.RespondChallenge(ctx, acct, chID)
	cancel()
	if err != nil {
		t.Fatalf("RespondChallenge: %v", err)
	}
	if ch.Status != string(acme.StatusProcessing) || az.Status != string(acme.StatusPending) {
		t.Errorf("challenge %q authorization %q, want processing and pending", ch.Status, az.Status)
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Errorf("the response took %s; ValidationWait is 20ms", waited)
	}
	if cur, _ := f.a.Order(f.ctx, acct, o.ID); cur.Status != string(acme.StatusPending) {
		t.Errorf("order %q while validating, want pending", cur.Status)
	}

	close(gate)
	f.a.Close()
	ch, az, err = f.a.Challenge(f.ctx, acct, chID)
	if err != nil || ch.Status != string(acme.StatusValid) || az.Status != string(acme.StatusValid) {
		t.Fatalf("after the validation: challenge %+v authorization %+v, %v; want both valid", ch, az, err)
	}
	if cur, _ := f.a.Order(f.ctx, acct, o.ID); cur.Status != string(acme.StatusReady) {
		t.Errorf("order %q after the validation, want ready", cur.Status)
	}
	if n := f.val.calls.Load(); n != 1 {
		t.Errorf("validator called %d times, want 1", n)
	}
}

func TestRespondChallengeDoesNotValidateTwice(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		result error
		slow   bool
		want   acme.Status
	}{
		{"a processing challenge", nil, true, acme.StatusProcessing},
		{"a valid challenge", nil, false, acme.StatusValid},
		{"an invalid challenge", acme.Errorf(acme.Connection, "connection refused"), false, acme.StatusInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is returned as it is", func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, Config{ValidationWait: 20 * time.Millisecond})
			gate := make(chan struct{})
			if tt.slow {
				f.val.set(tt.result, gate)
			} else {
				f.val.set(tt.result, nil)
			}
			acct := f.account()
			_, chID := f.pendingChallenge(acct, "www.example.fi")
			if _, _, err := f.a.RespondChallenge(f.ctx, acct, chID); err != nil {
				t.Fatal(err)
			}
			if !tt.slow {
				f.a.Close()
			}
			// The slow validation must have taken its gate before the validator's
			// answer changes below; on a loaded machine it may not have in
			// ValidationWait.
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				f.val.mu.Lock()
				asked := len(f.val.names) > 0 // set under the lock that took the gate
				f.val.mu.Unlock()
				if asked {
					break
				}
			}
			// Whatever the validator would say now, it must not be asked.
			f.val.set(acme.Errorf(acme.Unauthorized, "second validation"), nil)
			for range 3 {
				ch, _, err := f.a.RespondChallenge(f.ctx, acct, chID)
				if err != nil {
					t.Fatal(err)
				}
				if ch.Status != string(tt.want) {
					t.Errorf("challenge %q on a repeated response, want %q", ch.Status, tt.want)
				}
			}
			close(gate)
			f.a.Close()
			if n := f.val.calls.Load(); n != 1 {
				t.Errorf("validator called %d times, want 1", n)
			}
		})
	}
}

func TestRespondChallengeConcurrentRequestsValidateOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{ValidationWait: 20 * time.Millisecond})
	gate := make(chan struct{})
	f.val.set(nil, gate)
	acct := f.account()
	_, chID := f.pendingChallenge(acct, "www.example.fi")

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { _, _, errs[i] = f.a.RespondChallenge(f.ctx, acct, chID) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	close(gate)
	f.a.Close()
	if n := f.val.calls.Load(); n != 1 {
		t.Errorf("validator called %d times for 8 concurrent responses, want 1", n)
	}
	if ch, _, _ := f.a.Challenge(f.ctx, acct, chID); ch.Status != string(acme.StatusValid) {
		t.Errorf("challenge %q, want valid", ch.Status)
	}
}

func TestRespondChallengeInvalidResultFailsEveryOrderOfTheAuthorization(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{})
	f.val.set(acme.Errorf(acme.IncorrectResponse, "wrong key authorization"), nil)
	acct := f.account()
	o := f.order(acct, "www.example.fi", "api.example.fi")
	o = f.validateAll(acct, o)
	if o.Status != string(acme.StatusInvalid) {
		t.Errorf("order %q, want invalid", o.Status)
	}
	for _, id := range o.AuthzIDs {
		az, err := f.a.Authorization(f.ctx, acct, id)
		if err != nil || az.Status != string(acme.StatusInvalid) {
			t.Errorf("authorization %+v, %v; want invalid", az, err)
		}
	}
	_, err := f.finalize(acct, o.ID, []byte("unused"))
	wantKind(t, err, acme.OrderNotReady)
}

func TestValidationHasItsOwnDeadline(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{ValidationWait: 10 * time.Millisecond, ValidationTimeout: 50 * time.Millisecond})
	f.val.set(nil, make(chan struct{})) // never opens: only the deadline ends it
	acct := f.account()
	_, chID := f.pendingChallenge(acct, "www.example.fi")
	if _, _, err := f.a.RespondChallenge(f.ctx, acct, chID); err != nil {
		t.Fatal(err)
	}
	f.a.Close()
	ch, _, err := f.a.Challenge(f.ctx, acct, chID)
	if err != nil || ch.Status != string(acme.StatusInvalid) {
		t.Errorf("challenge %+v, %v after the validation deadline; want invalid, not left processing", ch, err)
	}
	f.val.mu.Lock()
	defer f.val.mu.Unlock()
	if f.val.deadline <= 0 || f.val.deadline > 50*time.Millisecond {
		t.Errorf("validator context had %s left, want a deadline within ValidationTimeout", f.val.deadline)
	}
}
