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

func TestExpiryAndTheUsedSet(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	p := NewPool(2, time.Minute)
	p.now = func() time.Time { return now }
	old := issue(t, p)
	now = now.Add(2 * time.Minute)
	if err := p.Redeem(ctx, old); !acme.IsKind(err, acme.BadNonce) {
		t.Fatalf("expired nonce: want badNonce, got %v", err)
	}
	a := issue(t, p)
	var b, c, d string
	for _, n := range []*string{&b, &c, &d} {
		now = now.Add(time.Second)
		*n = issue(t, p)
	}
	for _, n := range []string{b, c, d} { // the used set (2) is full after c: a's era is forgotten
		if err := p.Redeem(ctx, n); err != nil {
			t.Fatalf("live nonce refused: %v", err)
		}
	}
	if err := p.Redeem(ctx, a); !acme.IsKind(err, acme.BadNonce) {
		t.Fatalf("a nonce older than the remembered used set: want badNonce, got %v", err)
	}
	for _, n := range []string{b, c, d} {
		if err := p.Redeem(ctx, n); !acme.IsKind(err, acme.BadNonce) {
			t.Fatalf("a used nonce accepted again: %v", err)
		}
	}
	if got := len(p.used); got > 2 {
		t.Fatalf("%d used nonces remembered, over the bound of 2", got)
	}
	forged := p.prefix + "AAAAAAAAAAAAAAAAAAAAAA"
	if err := p.Redeem(ctx, forged); !acme.IsKind(err, acme.BadNonce) {
		t.Fatalf("a nonce without our MAC: want badNonce, got %v", err)
	}
}

// TestNewNonceFloodEvictsNoClientsNonce: the review's flood — 136,000 anonymous
// new-nonce requests — evicted a waiting client's nonce from the old window of
// 131,072. Issuing now stores nothing, so 140,000 of them (more than the old window) leave it valid.
func TestNewNonceFloodEvictsNoClientsNonce(t *testing.T) {
	p := NewPool(1<<17, time.Hour)
	waiting := issue(t, p)
	for range 140_000 {
		issue(t, p)
	}
	if err := p.Redeem(ctx, waiting); err != nil {
		t.Fatalf("the waiting client's nonce after 140,000 new nonces: %v", err)
	}
	if len(p.used) != 1 {
		t.Errorf("%d nonces stored after the flood, want only the one redeemed", len(p.used))
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
