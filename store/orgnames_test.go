package store

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

func testOrgNames(t *testing.T, open func(t *testing.T) *SQL) {
	t.Run("added domains and networks are kept once, after the existing ones", func(t *testing.T) {
		w := newWorld(t, open)
		oid := "1.2.246.10.5555555.10.0"
		w.must(w.s.AddOrganisation(w.ctx, Organisation{OID: oid, Name: "Tuonti", Domains: []string{"tuonti.example"}, CreatedAt: t0}))
		net1, net2 := netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")
		got, err := w.s.AddOrganisationNames(w.ctx, oid, []string{"tuonti.example", "toinen.example"}, []netip.Prefix{net1})
		w.must(err)
		if want := []string{"tuonti.example", "toinen.example"}; !slices.Equal(got.Domains, want) {
			t.Errorf("domains %v, want %v", got.Domains, want)
		}
		got, err = w.s.AddOrganisationNames(w.ctx, oid, nil, []netip.Prefix{net1, net2})
		w.must(err)
		if want := []netip.Prefix{net1, net2}; !slices.Equal(got.Networks, want) || len(got.Domains) != 2 {
			t.Errorf("after adding networks: domains %v, networks %v; want 2 domains, networks %v", got.Domains, got.Networks, want)
		}
		read, err := w.s.GetOrganisation(w.ctx, oid)
		w.must(err)
		if !slices.Equal(read.Domains, got.Domains) || !slices.Equal(read.Networks, got.Networks) || read.Name != "Tuonti" {
			t.Errorf("read back %+v, want what AddOrganisationNames returned %+v", read, got)
		}
	})
	t.Run("unknown organisation", func(t *testing.T) {
		w := newWorld(t, open)
		if _, err := w.s.AddOrganisationNames(w.ctx, "1.2.246.10.9999999.10.0", []string{"x.example"}, nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("AddOrganisationNames on an unknown organisation: %v, want ErrNotFound", err)
		}
	})
	t.Run("concurrent additions all land", func(t *testing.T) {
		w := newWorld(t, open)
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = w.s.AddOrganisationNames(w.ctx, org1, []string{fmt.Sprintf("d%d.example", i)},
					[]netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32)})
			}()
		}
		wg.Wait()
		for _, err := range errs {
			w.must(err)
		}
		o, err := w.s.GetOrganisation(w.ctx, org1)
		w.must(err)
		if len(o.Domains) != n || len(o.Networks) != n {
			t.Errorf("after %d concurrent additions: %d domains, %d networks; want %d each (a lost update)", n, len(o.Domains), len(o.Networks), n)
		}
	})
}
