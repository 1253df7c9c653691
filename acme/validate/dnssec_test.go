package validate

import (
	"context"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/test/dnsserver"
)

// signedTree serves a DNSSEC tree under the trust anchor "test.": zones signed with
// NSEC and NSEC3, an unsigned delegation, and zones whose answers are bogus in each
// way an attacker or a broken signer makes them.
func signedTree(t *testing.T) (*dnsserver.Server, string) {
	t.Helper()
	d := startDNS(t)
	zones := []struct {
		apex string
		opts dnsserver.ZoneOptions
	}{
		{"test", dnsserver.ZoneOptions{Signed: true, Denial: dnsserver.NSEC}},
		{"nsec.test", dnsserver.ZoneOptions{Signed: true, Denial: dnsserver.NSEC}},
		{"nsec3.test", dnsserver.ZoneOptions{Signed: true, Denial: dnsserver.NSEC3}},
		{"plain.test", dnsserver.ZoneOptions{}},
		{"bad.test", dnsserver.ZoneOptions{Signed: true, Fault: dnsserver.BadSignature}},
		{"old.test", dnsserver.ZoneOptions{Signed: true, Fault: dnsserver.Expired}},
		{"strip.test", dnsserver.ZoneOptions{Signed: true, Denial: dnsserver.NSEC3, Fault: dnsserver.Stripped}},
		{"wrongds.test", dnsserver.ZoneOptions{Signed: true, Fault: dnsserver.WrongDS}},
		{"split.test", dnsserver.ZoneOptions{Signed: true, Fault: dnsserver.Stripped}},
	}
	for _, z := range zones {
		if err := d.AddZone(z.apex, z.opts); err != nil {
			t.Fatal(err)
		}
	}
	anchor, err := d.TrustAnchor("test")
	if err != nil {
		t.Fatal(err)
	}
	return d, anchor
}

func TestDNSSEC(t *testing.T) {
	good := DNS01Value(keyAuth)
	d, anchor := signedTree(t)
	for _, z := range []string{"nsec.test", "nsec3.test", "plain.test", "bad.test", "old.test", "strip.test", "wrongds.test", "split.test"} {
		d.SetTXT("_acme-challenge.www."+z, good)
		d.SetA("www."+z, "127.0.0.1")
	}
	d.SetCNAME("_acme-challenge.alias.nsec.test", "alias-target.nsec3.test")
	d.SetTXT("alias-target.nsec3.test", good)
	d.SetCNAME("_acme-challenge.tobad.nsec.test", "target.bad.test")
	d.SetTXT("target.bad.test", good)
	d.SetCAA("other.nsec3.test", 0, "issue", "other-ca.example")
	d.SetCAA("other.bad.test", 0, "issue", "other-ca.example")

	v, _ := newValidator(t, d, Config{TrustAnchors: anchor, CAAIdentities: []string{ourCA}})
	split, _ := newValidator(t, d, Config{TrustAnchors: anchor, CAAIdentities: []string{ourCA}, InsecureZones: []string{"split.test"}})
	ctx := context.Background()
	const bogus = "failed DNSSEC validation"

	dns01 := []struct {
		name    string
		v       *Validator
		ask     string
		kind    acme.ErrorKind
		details []string
	}{
		{"a record signed in an NSEC zone", v, "www.nsec.test", "", nil},
		{"a record signed in an NSEC3 zone", v, "www.nsec3.test", "", nil},
		{"a CNAME from one signed zone into another", v, "alias.nsec.test", "", nil},
		{"an unsigned zone its signed parent proves unsigned", v, "www.plain.test", "", nil},
		{"a proven absence in an NSEC zone is no record, not bogus", v, "none.nsec.test", acme.DNS, []string{"publish the TXT record"}},
		{"a proven absence in an NSEC3 zone is no record, not bogus", v, "deep.none.nsec3.test", acme.DNS, []string{"publish the TXT record"}},
		{"a bad signature", v, "www.bad.test", acme.DNS, []string{bogus, "does not verify", "bad.test"}},
		{"a CNAME into a zone with bad signatures", v, "tobad.nsec.test", acme.DNS, []string{bogus, "bad.test"}},
		{"expired signatures", v, "www.old.test", acme.DNS, []string{bogus, "expired at"}},
		{"signatures stripped on the way", v, "www.strip.test", acme.DNS, []string{bogus, "carry no signature", "strip.test is a signed zone"}},
		{"a proof of absence stripped on the way", v, "none.strip.test", acme.DNS, []string{bogus, "carry no signature"}},
		{"a DS that matches no key of the zone", v, "www.wrongds.test", acme.DNS, []string{bogus, "matches the DS records"}},
		{"an internal zone without signatures is bogus by default", v, "www.split.test", acme.DNS, []string{bogus}},
		{"an internal zone configured as insecure is taken unsigned", split, "www.split.test", "", nil},
	}
	for _, tt := range dns01 {
		t.Run("dns-01: "+tt.name, func(t *testing.T) {
			checkErr(t, tt.v.DNS01(ctx, tt.ask, keyAuth), tt.kind, tt.details...)
			if tt.kind == acme.DNS && !strings.Contains(strings.Join(tt.details, " "), bogus) {
				if err := tt.v.DNS01(ctx, tt.ask, keyAuth); strings.Contains(err.Error(), "DNSSEC") {
					t.Errorf("a proven absence reads as a DNSSEC failure: %v", err)
				}
			}
		})
	}

	caa := []struct {
		name    string
		ask     string
		kind    acme.ErrorKind
		details []string
	}{
		{"a proven absence of CAA in an NSEC zone permits", "www.nsec.test", "", nil},
		{"a proven absence of CAA in an NSEC3 zone permits", "a.b.c.nsec3.test", "", nil},
		{"a signed CAA record of another CA refuses", "other.nsec3.test", acme.CAA, []string{"other-ca.example"}},
		{"no CAA in an unsigned zone permits", "www.plain.test", "", nil},
		// The attack DNSSEC stops: a forged "no CAA" must not permit issuance.
		{"a bogus absence of CAA is refused as a dns problem", "www.bad.test", acme.DNS, []string{bogus, "CAA"}},
		{"a stripped absence of CAA is refused", "www.strip.test", acme.DNS, []string{bogus}},
		{"a bogus CAA record is refused", "other.bad.test", acme.DNS, []string{bogus}},
	}
	for _, tt := range caa {
		t.Run("CAA: "+tt.name, func(t *testing.T) {
			checkErr(t, v.CAA(ctx, tt.ask, "https://ca.example/acct/1", "dns-01"), tt.kind, tt.details...)
		})
	}

	t.Run("http-01 addresses come only from valid answers", func(t *testing.T) {
		if _, err := v.lookupAddrs(ctx, "www.nsec3.test"); err != nil {
			t.Errorf("signed A record: %v", err)
		}
		_, err := v.lookupAddrs(ctx, "www.bad.test")
		checkErr(t, err, acme.DNS, bogus)
	})

	t.Run("a zone that turns bogus is refused at once, and accepted when repaired", func(t *testing.T) {
		checkErr(t, v.DNS01(ctx, "www.nsec.test", keyAuth), "")
		if err := d.SetFault("nsec.test", dnsserver.BadSignature); err != nil {
			t.Fatal(err)
		}
		checkErr(t, v.DNS01(ctx, "www.nsec.test", keyAuth), acme.DNS, bogus)
		checkErr(t, v.CAA(ctx, "www.nsec.test", "https://ca.example/acct/1", "dns-01"), acme.DNS, bogus)
		if err := d.SetFault("nsec.test", dnsserver.NoFault); err != nil {
			t.Fatal(err)
		}
		checkErr(t, v.DNS01(ctx, "www.nsec.test", keyAuth), "")
	})

	t.Run("without the tree's anchor, the built-in root anchors find no chain", func(t *testing.T) {
		root, _ := newValidator(t, d, Config{TrustAnchors: "", InsecureZones: []string{}})
		checkErr(t, root.DNS01(ctx, "www.nsec.test", keyAuth), acme.DNS, bogus)
	})
}

func TestTrustAnchorsAreChecked(t *testing.T) {
	for _, bad := range []string{"test. IN A 192.0.2.1", "nonsense"} {
		if _, err := New(Config{TrustAnchors: bad}); err == nil {
			t.Errorf("trust anchors %q accepted", bad)
		}
	}
	if _, err := New(Config{InsecureZones: []string{"bad..name"}}); err == nil {
		t.Error("insecure zone bad..name accepted")
	}
}
