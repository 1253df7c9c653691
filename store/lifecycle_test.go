package store

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
)

func testOperatorLifecycle(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	s, ctx := w.s, w.ctx
	w.must(s.AddOperator(ctx, Operator{Name: "maija", Role: RoleRegistrar, TokenHash: "aa", CreatedBy: "anna", CreatedAt: t0, TokenExpiresAt: t0.AddDate(1, 0, 0)}))
	w.must(s.CreateConsoleSession(ctx, ConsoleSession{IDHash: "ab", Operator: "maija", Method: "token", CreatedAt: t0, LastSeen: t0, Idle: 1e9, ExpiresAt: t0.AddDate(1, 0, 0)}))

	t.Run("a new credential replaces the old and ends the sessions", func(t *testing.T) {
		w.must(s.SetOperatorCredential(ctx, Operator{Name: "maija", TokenHash: "bb"}))
		o, err := s.GetOperator(ctx, "maija")
		w.must(err)
		if o.TokenHash != "bb" || !o.TokenExpiresAt.IsZero() {
			t.Fatalf("operator %+v: want the new token hash and no expiry", o)
		}
		if _, err := s.TouchConsoleSession(ctx, "ab", t0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the session survived the new credential: %v", err)
		}
	})
	t.Run("disable", func(t *testing.T) {
		w.must(s.DisableOperator(ctx, "maija", "anna", t0))
		o, err := s.GetOperator(ctx, "maija")
		w.must(err)
		if !o.DisabledAt.Equal(t0) || o.DisabledBy != "anna" {
			t.Fatalf("operator %+v: want disabled by anna at t0", o)
		}
		if err := s.DisableOperator(ctx, "maija", "anna", t0); !errors.Is(err, ErrConflict) {
			t.Fatalf("second disable: %v, want ErrConflict", err)
		}
		if err := s.SetOperatorCredential(ctx, Operator{Name: "maija", TokenHash: "cc"}); !errors.Is(err, ErrConflict) {
			t.Fatalf("a disabled operator got a new credential: %v", err)
		}
	})
	t.Run("remove", func(t *testing.T) {
		w.must(s.RemoveOperator(ctx, "maija"))
		if _, err := s.GetOperator(ctx, "maija"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("removed operator still found: %v", err)
		}
		if err := s.RemoveOperator(ctx, "maija"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second remove: %v, want ErrNotFound", err)
		}
	})
	t.Run("production is recorded once", func(t *testing.T) {
		if p, err := s.Production(ctx); err != nil || p {
			t.Fatalf("Production = %t, %v on a new store", p, err)
		}
		w.must(s.MarkProduction(ctx, t0))
		w.must(s.MarkProduction(ctx, t0))
		if p, err := s.Production(ctx); err != nil || !p {
			t.Fatalf("Production = %t, %v after MarkProduction", p, err)
		}
	})
	t.Run("remove names", func(t *testing.T) {
		net := netip.MustParsePrefix("192.0.2.0/24")
		_, err := s.AddOrganisationNames(ctx, org1, []string{"a.fi", "b.fi"}, []netip.Prefix{net})
		w.must(err)
		if _, err := s.RemoveOrganisationNames(ctx, org1, []string{"a.fi", "c.fi"}, nil); !errors.Is(err, ErrConflict) {
			t.Fatalf("removing a name the organisation lacks: %v, want ErrConflict", err)
		}
		o, err := s.RemoveOrganisationNames(ctx, org1, []string{"a.fi"}, []netip.Prefix{net})
		w.must(err)
		if !slices.Equal(o.Domains, []string{"b.fi"}) || len(o.Networks) != 0 {
			t.Fatalf("after removal: domains %v networks %v; want [b.fi] and none", o.Domains, o.Networks)
		}
		if _, err := s.RemoveOrganisationNames(ctx, "1.2.3", []string{"b.fi"}, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown organisation: %v, want ErrNotFound", err)
		}
	})
}
