package e2e

import (
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"

	"golang.org/x/crypto/acme"

	"github.com/varmenne/varmenne/test/dnsserver"
)

// Issue 21 item 3 end to end. The harness's DNS tree is signed from its root, and
// every server it starts trusts only that root's key (--dnssec-anchors), so every
// end-to-end validation already passes DNSSEC. Here an organisation's signed zone
// breaks in the ways the Baseline Requirements name, and the CA refuses it with a
// dns problem that says so — also when the zone turns bogus between validation and
// finalize, where CAA is checked again.
func TestDNSSECBogusAnswersAreRefused(t *testing.T) {
	in := startWith(t, "", "--caa-recheck-after", "1ns")
	const oid = "1.2.246.10.10101010.10.0"
	kid, mac := in.org(oid, "Kymmenes apteekki", "kymmenes.example")
	c := in.client(kid, mac)
	if err := in.DNS.AddZone("kymmenes.example", dnsserver.ZoneOptions{Signed: true, Denial: dnsserver.NSEC3}); err != nil {
		t.Fatal(err)
	}
	byDNS := func(c *acme.Client, az *acme.Authorization, ch *acme.Challenge) error {
		v, err := c.DNS01ChallengeRecord(ch.Token)
		in.DNS.SetTXT("_acme-challenge."+az.Identifier.Value, v)
		return err
	}
	fault := func(f dnsserver.Fault) {
		t.Helper()
		if err := in.DNS.SetFault("kymmenes.example", f); err != nil {
			t.Fatal(err)
		}
	}
	const bogus = "failed DNSSEC validation"

	t.Run("a signed zone validates", func(t *testing.T) {
		chain, err := in.order(c, "dns-01", byDNS, newKey(t), "www.kymmenes.example")
		if err != nil {
			t.Fatalf("%v\n%s", err, tail([]byte(in.Logs.String()), 2000))
		}
		if leaf, _ := x509.ParseCertificate(chain[0]); leaf == nil || leaf.DNSNames[0] != "www.kymmenes.example" {
			t.Fatalf("certificate %v", leaf)
		}
	})

	for _, tt := range []struct {
		fault dnsserver.Fault
		name  string
		says  string
	}{
		{dnsserver.BadSignature, "bad", "does not verify"},
		{dnsserver.Expired, "expired", "expired at"},
		{dnsserver.Stripped, "stripped", "stripped.kymmenes.example"}, // fails at the first unsigned answer: the proof of no DS, or the TXT records
	} {
		t.Run("dns-01 on a zone with "+tt.name+" signatures is a dns problem", func(t *testing.T) {
			fault(tt.fault)
			defer fault(dnsserver.NoFault)
			_, err := in.order(c, "dns-01", byDNS, newKey(t), tt.name+".kymmenes.example")
			p := problemOf(err, "dns")
			if p == nil || !strings.Contains(p.Detail, bogus) || !strings.Contains(p.Detail, tt.says) {
				t.Fatalf("got %v, want a dns problem saying %q and %q", err, bogus, tt.says)
			}
		})
	}

	t.Run("http-01 resolves a host only through valid answers", func(t *testing.T) {
		fault(dnsserver.BadSignature)
		defer fault(dnsserver.NoFault)
		r := in.responder()
		_, _, err := in.tryFinalize(c, r, newKey(t), "web.kymmenes.example")
		if p := problemOf(err, "dns"); p == nil || !strings.Contains(p.Detail, bogus) {
			t.Fatalf("got %v, want a dns problem saying %q", err, bogus)
		}
	})

	t.Run("a zone that turns bogus after validation refuses at finalize, where CAA is read again", func(t *testing.T) {
		name := "late.kymmenes.example"
		ctx := ctxT(t)
		order, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name))
		if err != nil {
			t.Fatal(err)
		}
		az, err := c.GetAuthorization(ctx, order.AuthzURLs[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range az.Challenges {
			if ch.Type != "dns-01" {
				continue
			}
			if err := byDNS(c, az, ch); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Accept(ctx, ch); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.WaitOrder(ctx, order.URI); err != nil {
			t.Fatalf("validation on the good zone: %v", err)
		}
		fault(dnsserver.BadSignature)
		defer fault(dnsserver.NoFault)
		csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, newKey(t))
		_, _, err = c.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
		p := problemOf(err, "dns")
		if p == nil || !strings.Contains(p.Detail, bogus) || !strings.Contains(p.Detail, "CAA") {
			t.Fatalf("finalize on a bogus zone: %v, want a dns problem about CAA saying %q", err, bogus)
		}
	})

	t.Run("repaired, the zone validates again", func(t *testing.T) {
		if _, err := in.order(c, "dns-01", byDNS, newKey(t), "again.kymmenes.example"); err != nil {
			t.Fatal(err)
		}
	})
}
