package admin

import "testing"

// TestNewIDNeverLooksLikeAFlag: request ids and kids go to the CLI as arguments, so
// none may begin with "-".
func TestNewIDNeverLooksLikeAFlag(t *testing.T) {
	for range 10000 {
		if id := newID(); id[0] == '-' || len(id) != 22 {
			t.Fatalf("newID() = %q", id)
		}
	}
}
