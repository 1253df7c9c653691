package nonce

import (
	"context"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
)

var ctx = context.Background()

// issue is Issue of a pool, which never fails.
func issue(t testing.TB, p *Pool) string {
	n, err := p.Issue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRedeem(t *testing.T) {
	p := NewPool(100, time.Hour)
	other := NewPool(100, time.Hour)
	good := issue(t, p)
	used := issue(t, p)
	if err := p.Redeem(ctx, used); err != nil {
		t.Fatalf("first redeem: %v", err)
	}
	tests := []struct {
		name  string
		nonce string
		ok    bool
	}{
		{"fresh nonce accepted once", good, true},
		{"same nonce twice refused", good, false},
		{"used nonce refused", used, false},
		{"empty nonce refused", "", false},
		{"wrong length refused", good[:Len-1], false},
		{"not base64url refused", good[:Len-1] + "+", false},
		{"padding refused", good[:Len-1] + "=", false},
		{"another instance's prefix refused", issue(t, other), false},
		{"unknown nonce with our prefix refused", p.prefix + "AAAAAAAAAAAAAAAAAAAAAA", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Redeem(ctx, tc.nonce)
			if tc.ok && err != nil {
				t.Fatalf("want accepted, got %v", err)
			}
			if !tc.ok && !acme.IsKind(err, acme.BadNonce) {
				t.Fatalf("want badNonce, got %v", err)
			}
		})
	}
}

func TestExpiryAndEviction(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := NewPool(2, time.Minute)
	p.now = func() time.Time { return now }
	old := issue(t, p)
	now = now.Add(2 * time.Minute)
	if err := p.Redeem(ctx, old); !acme.IsKind(err, acme.BadNonce) {
		t.Fatalf("expired nonce: want badNonce, got %v", err)
	}
	a, b, c := issue(t, p), issue(t, p), issue(t, p) // a is evicted by c
	if err := p.Redeem(ctx, a); !acme.IsKind(err, acme.BadNonce) {
		t.Fatalf("evicted nonce: want badNonce, got %v", err)
	}
	for _, n := range []string{b, c} {
		if err := p.Redeem(ctx, n); err != nil {
			t.Fatalf("live nonce refused: %v", err)
		}
	}
	if got := len(p.live) + p.order.Len(); got != 0 {
		t.Fatalf("pool not empty after redeeming all: %d", got)
	}
}

func BenchmarkIssueRedeem(b *testing.B) {
	p := NewPool(1<<16, time.Hour)
	for b.Loop() {
		if err := p.Redeem(ctx, issue(b, p)); err != nil {
			b.Fatal(err)
		}
	}
}
