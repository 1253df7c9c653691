package main

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// An organisation that "org import" brought in has no domains; "org domains add"
// approves them, and networks for IP identifiers, so its EAB keys become of use.
func TestOrgDomainsAdd(t *testing.T) {
	isolate(t)
	ctx := context.Background()
	data := newData(t)
	mustRun(t, "org", "import", registerJSON, "--data", data)
	if o, err := openData(t, data).GetOrganisation(ctx, unitOID); err != nil || len(o.Domains) != 0 {
		t.Fatalf("imported organisation %+v, %v; want it without domains", o, err)
	}

	out := mustRun(t, "org", "domains", "add", unitOID, "--data", data, "--domain", "Poliklinikka.Example", "--network", "192.0.2.0/24")
	for _, want := range []string{unitOID, "poliklinikka.example", "192.0.2.0/24"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q does not name %s", out, want)
		}
	}
	mustRun(t, "org", "domains", "add", unitOID, "--data", data, "--domain", "poliklinikka.example,toinen.example", "--network", "2001:db8:10::/48")
	o, err := openData(t, data).GetOrganisation(ctx, unitOID)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"poliklinikka.example", "toinen.example"}; !slices.Equal(o.Domains, want) {
		t.Errorf("domains %v, want %v (each once, the register's long name kept: %q)", o.Domains, want, o.LongName)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:10::/48")}; !slices.Equal(o.Networks, want) {
		t.Errorf("networks %v, want %v", o.Networks, want)
	}
	if show := mustRun(t, "org", "show", unitOID, "--data", data); !strings.Contains(show, "192.0.2.0/24, 2001:db8:10::/48") {
		t.Errorf("org show does not list the networks:\n%s", show)
	}

	// An EAB key narrows the organisation's networks and never widens them.
	mustRun(t, "eab", "create", "--data", data, "--org", unitOID, "--network", "192.0.2.128/25")
	err, _, _ = runCmd(t, "eab", "create", "--data", data, "--org", unitOID, "--network", "198.51.100.0/24")
	wantOneLineError(t, err, "network 198.51.100.0/24", "not inside", "org domains add")
	err, _, _ = runCmd(t, "eab", "create", "--data", data, "--org", unitOID, "--network", "192.0.0.0/16")
	wantOneLineError(t, err, "network 192.0.0.0/16", "not inside")

	refusals := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"nothing to add", []string{unitOID}, []string{"--domain or --network"}},
		{"no OID", []string{"--domain", "x.example"}, []string{"OID"}},
		{"an unknown organisation", []string{"1.2.246.10.99999999.10.0", "--domain", "x.example"}, []string{"1.2.246.10.99999999.10.0", "unknown"}},
		{"a wildcard domain", []string{unitOID, "--domain", "*.x.example"}, []string{"domain", "not a valid domain"}},
		{"a network with host bits", []string{unitOID, "--network", "192.0.2.7/24"}, []string{"network", "host bits", "192.0.2.0/24"}},
		{"every address", []string{unitOID, "--network", "0.0.0.0/0"}, []string{"network", "every address"}},
		{"not a network", []string{unitOID, "--network", "lan"}, []string{"network", "CIDR"}},
	}
	for _, tt := range refusals {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			err, stdout, _ := runCmd(t, append([]string{"org", "domains", "add", "--data", data}, tt.args...)...)
			wantOneLineError(t, err, tt.wants...)
			if stdout != "" {
				t.Errorf("stdout %q after an error", stdout)
			}
		})
	}
	if o2, _ := openData(t, data).GetOrganisation(ctx, unitOID); len(o2.Domains) != 2 || len(o2.Networks) != 2 {
		t.Errorf("a refused command changed the organisation: %+v", o2)
	}
}

func TestOrgAddNetworks(t *testing.T) {
	isolate(t)
	data := newData(t)
	mustRun(t, "org", "add", "--data", data, "--oid", testOID, "--name", "Verkko Oy", "--domain", "verkko.example", "--network", "192.0.2.0/24,198.51.100.7")
	o, err := openData(t, data).GetOrganisation(context.Background(), testOID)
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.7/32")}; !slices.Equal(o.Networks, want) {
		t.Errorf("networks %v, want %v", o.Networks, want)
	}
	err, _, _ = runCmd(t, "org", "add", "--data", data, "--oid", "1.2.246.10.7.10.0", "--name", "X", "--domain", "x.example", "--network", "10.0.0.1/8")
	wantOneLineError(t, err, "network", "host bits")
}
