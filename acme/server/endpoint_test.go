package server

import "testing"

// TestEndpointOf: every route maps to its fixed endpoint label, never to an id or
// a serial, and anything else is "other" (the label set stays bounded).
func TestEndpointOf(t *testing.T) {
	for _, tt := range []struct{ path, want string }{
		{"/acme/directory", "directory"},
		{"/acme/new-nonce", "new-nonce"},
		{"/acme/new-account", "new-account"},
		{"/acme/new-order", "new-order"},
		{"/acme/revoke-cert", "revoke-cert"},
		{"/acme/key-change", "key-change"},
		{"/acme/account/abc123", "account"},
		{"/acme/account/abc123/orders", "orders"},
		{"/acme/order/xyz", "order"},
		{"/acme/order/xyz/finalize", "finalize"},
		{"/acme/authz/q", "authz"},
		{"/acme/chall/q", "challenge"},
		{"/acme/cert/0123abcd", "certificate"},
		{"/acme/cert/0123abcd/alt/1", "certificate"},
		{"/acme/renewal-info/aaa.bbb", "renewal-info"},
		{"/acme/directoryX", "other"},
		{"/acme/new-order/", "other"},
		{"/acme//new-order", "other"},
		{"/", "other"},
		{"/www.example.fi", "other"},
	} {
		if got := endpointOf(tt.path); got != tt.want {
			t.Errorf("endpointOf(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}
