package store

import (
	"context"
	"testing"
	"time"
)

// testShared is the contract of what replicas share: nonces and the CRL lease.
func testShared(t *testing.T, open func(t *testing.T) *SQL) {
	t.Run("nonces", func(t *testing.T) { testNonces(t, open) })
}

func testNonces(t *testing.T, open func(t *testing.T) *SQL) {
	ctx := context.Background()
	s := open(t)
	defer s.Close()
	now := t0
	if err := s.AddNonces(ctx, []string{"n-live", "n-used", "n-old", "n-race"}, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddNonces(ctx, []string{"n-expired"}, now.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.RedeemNonce(ctx, "n-used", now); !ok || err != nil {
		t.Fatalf("first redeem: %v, %v", ok, err)
	}
	cases := []struct {
		name  string
		nonce string
		at    time.Time
		want  bool
	}{
		{"a live nonce is accepted", "n-live", now, true},
		{"a used nonce is refused", "n-used", now, false},
		{"an unknown nonce is refused", "n-never", now, false},
		{"an expired nonce is refused", "n-expired", now, false},
		{"a nonce is refused at its expiry", "n-old", now.Add(time.Hour), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := s.RedeemNonce(ctx, tc.nonce, tc.at)
			if err != nil || ok != tc.want {
				t.Errorf("RedeemNonce(%s) = %v, %v; want %v", tc.nonce, ok, err, tc.want)
			}
		})
	}
	t.Run("of concurrent redeemers exactly one succeeds", func(t *testing.T) {
		var wins int
		oks := make([]bool, 10)
		for _, err := range race(len(oks), func(i int) error {
			var err error
			oks[i], err = s.RedeemNonce(ctx, "n-race", now)
			return err
		}) {
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, ok := range oks {
			if ok {
				wins++
			}
		}
		if wins != 1 {
			t.Errorf("%d redeemers succeeded, want 1", wins)
		}
	})
	t.Run("cleanup removes exactly the expired", func(t *testing.T) {
		// Left: n-expired (expired) and n-old (expires at now+1h).
		n, err := s.DeleteExpiredNonces(ctx, now)
		if err != nil || n != 1 {
			t.Errorf("DeleteExpiredNonces(now) = %d, %v; want 1", n, err)
		}
		n, err = s.DeleteExpiredNonces(ctx, now.Add(time.Hour))
		if err != nil || n != 1 {
			t.Errorf("DeleteExpiredNonces(now+1h) = %d, %v; want 1", n, err)
		}
	})
	t.Run("a duplicate nonce fails the whole batch", func(t *testing.T) {
		err := s.AddNonces(ctx, []string{"n-dup-new", "n-dup-new"}, now.Add(time.Hour))
		if err == nil {
			t.Fatal("stored a batch holding one value twice")
		}
		if ok, _ := s.RedeemNonce(ctx, "n-dup-new", now); ok {
			t.Error("part of a failed batch was stored")
		}
	})
}
