package signer

import (
	"context"
	"testing"
)

// BenchmarkLint: the zlint pass one issuance pays, on a typical sote-server
// certificate from a P-384 issuer.
func BenchmarkLint(b *testing.B) {
	h := newHarness(b, "p384", testProfile())
	got, err := h.ca.Issue(context.Background(), testRequest(b, "p256"))
	if err != nil {
		b.Fatal(err)
	}
	l := DefaultLinter()
	for b.Loop() {
		if err := l.Lint(got.DER); err != nil {
			b.Fatal(err)
		}
	}
}
