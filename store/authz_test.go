package store

import (
	"errors"
	"testing"
	"time"
)

// testAuthzReuse: FindReusableAuthorization finds only the account's own valid,
// recently validated, long-enough-living authorization for the exact name and
// wildcard flag; SetValidAuthorizationExpiry changes only a valid one.
func testAuthzReuse(t *testing.T, open func(t *testing.T) *SQL) {
	// validAuthz is a valid authorization of account for name, validated at
	// validated and expiring at expires, stored with a ready order o-<id>.
	validAuthz := func(w *world, id, account, name string, wildcard bool, validated, expires time.Time) {
		w.t.Helper()
		a := Authorization{ID: id, AccountID: account, Name: name, Wildcard: wildcard, Status: "valid",
			Expires: expires, CreatedAt: validated,
			Challenges: []Challenge{
				{ID: id + "-c0", AuthzID: id, Type: "http-01", Token: "tok-" + id + "-0", Status: "pending"},
				{ID: id + "-c1", AuthzID: id, Type: "dns-01", Token: "tok-" + id + "-1", Status: "valid", Validated: validated},
			}}
		o := order("o-"+id, "ready", id)
		o.AccountID = account
		w.must(w.s.CreateOrder(w.ctx, o, []Authorization{a}))
	}
	withSecondAccount := func(w *world) {
		w.must(w.s.CreateAccount(w.ctx, account("acct-2", "thumb-2"), "kid-free"))
	}
	expires := t0.Add(30 * 24 * time.Hour)
	type query struct {
		account, name  string
		wildcard       bool
		since, outlive time.Time
	}
	base := query{"acct-1", "www.example.fi", false, t0.Add(-time.Hour), t0.Add(7 * 24 * time.Hour)}
	cases := []struct {
		name  string
		setup func(w *world)
		q     func(q query) query
		want  string // authorization id, "" for ErrNotFound
	}{
		{"the account's valid authorization is found",
			func(w *world) { validAuthz(w, "az1", "acct-1", "www.example.fi", false, t0, expires) },
			func(q query) query { return q }, "az1"},
		{"another account's is never found",
			func(w *world) {
				withSecondAccount(w)
				validAuthz(w, "az1", "acct-2", "www.example.fi", false, t0, expires)
			},
			func(q query) query { return q }, ""},
		{"of two accounts' authorizations the asking account's is found",
			func(w *world) {
				withSecondAccount(w)
				validAuthz(w, "az2", "acct-2", "www.example.fi", false, t0, expires.Add(time.Hour))
				validAuthz(w, "az1", "acct-1", "www.example.fi", false, t0, expires)
			},
			func(q query) query { return q }, "az1"},
		{"another name is not found",
			func(w *world) { validAuthz(w, "az1", "acct-1", "mail.example.fi", false, t0, expires) },
			func(q query) query { return q }, ""},
		{"a wildcard authorization does not serve the base name",
			func(w *world) { validAuthz(w, "az1", "acct-1", "www.example.fi", true, t0, expires) },
			func(q query) query { return q }, ""},
		{"a wildcard authorization serves the wildcard",
			func(w *world) { validAuthz(w, "az1", "acct-1", "www.example.fi", true, t0, expires) },
			func(q query) query { q.wildcard = true; return q }, "az1"},
		{"one validated before the window is not found",
			func(w *world) { validAuthz(w, "az1", "acct-1", "www.example.fi", false, t0, expires) },
			func(q query) query { q.since = t0.Add(time.Microsecond); return q }, ""},
		{"one validated at the window's start is found",
			func(w *world) { validAuthz(w, "az1", "acct-1", "www.example.fi", false, t0, expires) },
			func(q query) query { q.since = t0; return q }, "az1"},
		{"one expiring before the new order would is not found",
			func(w *world) { validAuthz(w, "az1", "acct-1", "www.example.fi", false, t0, expires) },
			func(q query) query { q.outlive = expires; return q }, ""},
		{"a pending authorization is not found",
			func(w *world) {
				a := authz("az1", 1)
				a.Name = "www.example.fi"
				w.must(w.s.CreateOrder(w.ctx, order("o1", "pending", "az1"), []Authorization{a}))
			},
			func(q query) query { return q }, ""},
		{"of two, the one living longest is found",
			func(w *world) {
				validAuthz(w, "az1", "acct-1", "www.example.fi", false, t0, expires)
				validAuthz(w, "az2", "acct-1", "www.example.fi", false, t0, expires.Add(time.Hour))
			},
			func(q query) query { return q }, "az2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, open)
			tc.setup(w)
			q := tc.q(base)
			got, err := w.s.FindReusableAuthorization(w.ctx, q.account, q.name, q.wildcard, q.since, q.outlive)
			if tc.want == "" {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("got %+v, %v; want ErrNotFound", got, err)
				}
				return
			}
			w.must(err)
			if got.ID != tc.want || got.AccountID != q.account || got.Status != "valid" || len(got.Challenges) != 2 {
				t.Fatalf("got %+v, want valid %s of %s with its two challenges", got, tc.want, q.account)
			}
		})
	}

	t.Run("a valid authorization's expiry is set", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, open)
		validAuthz(w, "az1", "acct-1", "www.example.fi", false, t0, t0.Add(time.Hour))
		w.must(w.s.SetValidAuthorizationExpiry(w.ctx, "az1", expires))
		a, err := w.s.GetAuthorization(w.ctx, "az1")
		w.must(err)
		if !a.Expires.Equal(expires) || a.Status != "valid" {
			t.Errorf("expires %v status %s, want %v valid", a.Expires, a.Status, expires)
		}
	})
	t.Run("a pending authorization's expiry is not changed", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, open)
		w.pendingOrder("o1", "az1")
		if err := w.s.SetValidAuthorizationExpiry(w.ctx, "az1", expires); !errors.Is(err, ErrConflict) {
			t.Fatalf("got %v, want ErrConflict", err)
		}
		a, err := w.s.GetAuthorization(w.ctx, "az1")
		w.must(err)
		if !a.Expires.Equal(t0.Add(time.Hour)) {
			t.Errorf("expires %v changed", a.Expires)
		}
	})
	t.Run("an unknown authorization is not found", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, open)
		if err := w.s.SetValidAuthorizationExpiry(w.ctx, "nope", expires); !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
	})
}
