package dnssec

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/varmenne/varmenne/test/dnsserver"
)

// The answers come signed from a real DNS server (test/dnsserver); an on-path attacker
// (tamper) rewrites them before the Checker sees them, as one between the CA and its
// resolver, or a poisoned resolver, could. Every rewrite must be bogus, and the
// untouched answers must pass.

// tamper rewrites the answer m to (qname, qtype); genuine asks the server, untouched,
// for another question's answer, whose signed records an attacker may replay.
type tamper func(qname string, qtype uint16, m *dns.Msg, genuine func(name string, qtype uint16) *dns.Msg)

func signedServer(t testing.TB) (*dnsserver.Server, []dns.RR) {
	t.Helper()
	d, err := dnsserver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	for apex, denial := range map[string]dnsserver.Denial{"test": dnsserver.NSEC, "n1.test": dnsserver.NSEC, "n3.test": dnsserver.NSEC3} {
		if err := d.AddZone(apex, dnsserver.ZoneOptions{Signed: true, Denial: denial}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.AddZone("plain.test", dnsserver.ZoneOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, z := range []string{"n1.test", "n3.test", "plain.test"} {
		d.SetTXT("www."+z, "proof")
		d.SetTXT("b."+z, "another")
		d.SetA("www."+z, "192.0.2.1")
	}
	text, err := d.TrustAnchor("test")
	if err != nil {
		t.Fatal(err)
	}
	anchors, err := ParseAnchors(strings.NewReader(text), "anchor")
	if err != nil {
		t.Fatal(err)
	}
	return d, anchors
}

func checker(t testing.TB, d *dnsserver.Server, anchors []dns.RR, tm tamper) (*Checker, func(name string, qtype uint16) error) {
	t.Helper()
	genuine := func(name string, qtype uint16) *dns.Msg {
		m, err := askServer(context.Background(), d.Addr(), name, qtype)
		if err != nil {
			t.Errorf("asking %s %s: %v", name, dns.TypeToString[qtype], err)
			return new(dns.Msg)
		}
		return m
	}
	ask := func(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
		m, err := askServer(ctx, d.Addr(), name, qtype)
		if err == nil && tm != nil {
			tm(dns.CanonicalName(name), qtype, m, genuine)
		}
		return m, err
	}
	c, err := New(Config{Anchors: anchors}, ask)
	if err != nil {
		t.Fatal(err)
	}
	return c, func(name string, qtype uint16) error {
		m, err := ask(context.Background(), name, qtype)
		if err != nil {
			return err
		}
		return c.Check(context.Background(), name, qtype, m)
	}
}

func drop(rrs []dns.RR, f func(dns.RR) bool) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if !f(rr) {
			out = append(out, rr)
		}
	}
	return out
}

func isType(types ...uint16) func(dns.RR) bool {
	return func(rr dns.RR) bool {
		for _, t := range types {
			if rr.Header().Rrtype == t {
				return true
			}
			if sig, ok := rr.(*dns.RRSIG); ok && sig.TypeCovered == t {
				return true
			}
		}
		return false
	}
}

func TestUntouchedAnswersPass(t *testing.T) {
	d, anchors := signedServer(t)
	_, check := checker(t, d, anchors, nil)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"www.n1.test", dns.TypeTXT}, {"www.n3.test", dns.TypeTXT}, {"www.plain.test", dns.TypeTXT},
		{"www.n1.test", dns.TypeCAA}, {"www.n3.test", dns.TypeCAA}, // NODATA
		{"none.n1.test", dns.TypeTXT}, {"x.none.n3.test", dns.TypeCAA}, // NXDOMAIN
		{"n1.test", dns.TypeCAA}, {"n3.test", dns.TypeCAA}, {"test", dns.TypeCAA}, // at apexes
	} {
		if err := check(q.name, q.qtype); err != nil {
			t.Errorf("%s %s: %v", q.name, dns.TypeToString[q.qtype], err)
		}
	}
}

func TestTamperedAnswersAreBogus(t *testing.T) {
	for _, tt := range []struct {
		name   string
		qname  string
		qtype  uint16
		tamper tamper
		says   string
	}{
		{"a changed TXT value", "www.n1.test", dns.TypeTXT, func(q string, qt uint16, m *dns.Msg, genuine func(string, uint16) *dns.Msg) {
			if q == "www.n1.test." && qt == dns.TypeTXT {
				m.Answer[0].(*dns.TXT).Txt = []string{"forged"}
			}
		}, "does not verify"},
		{"a record set with its signature removed", "www.n3.test", dns.TypeTXT, func(q string, qt uint16, m *dns.Msg, genuine func(string, uint16) *dns.Msg) {
			if qt == dns.TypeTXT {
				m.Answer = drop(m.Answer, isType(dns.TypeRRSIG))
			}
		}, "carry no signature"},
		{"an existing TXT answered as NODATA", "www.n1.test", dns.TypeTXT, func(q string, qt uint16, m *dns.Msg, genuine func(string, uint16) *dns.Msg) {
			if q == "www.n1.test." && qt == dns.TypeTXT {
				m.Answer = nil
			}
		}, "no signed NSEC"},
		{"an existing TXT answered as NODATA with another name's proof", "www.n1.test", dns.TypeTXT, func(q string, qt uint16, m *dns.Msg, genuine func(string, uint16) *dns.Msg) {
			if q == "www.n1.test." && qt == dns.TypeTXT {
				other := genuine("b.n1.test", dns.TypeCAA)
				m.Answer, m.Ns = nil, other.Ns
			}
		}, "covers"},
		{"an existing name answered NXDOMAIN with its genuine NODATA proof", "www.n3.test", dns.TypeCAA, func(q string, qt uint16, m *dns.Msg, genuine func(string, uint16) *dns.Msg) {
			if q == "www.n3.test." && qt == dns.TypeCAA {
				m.Rcode = dns.RcodeNameError
			}
		}, "does not exist, but its proof shows it does"},
		{"a missing name answered NOERROR with its genuine NXDOMAIN proof", "none.n1.test", dns.TypeCAA, func(q string, qt uint16, m *dns.Msg, genuine func(string, uint16) *dns.Msg) {
			if q == "none.n1.test." && qt == dns.TypeCAA {
				m.Rcode = dns.RcodeSuccess
			}
		}, "exists, but its proof shows it does not"},
		{"a CAA NODATA whose NSEC proofs were stripped", "www.n3.test", dns.TypeCAA, func(q string, qt uint16, m *dns.Msg, genuine func(string, uint16) *dns.Msg) {
			if qt == dns.TypeCAA {
				m.Ns = drop(m.Ns, isType(dns.TypeNSEC, dns.TypeNSEC3))
			}
		}, "no signed NSEC or NSEC3"},
		{"the NSEC3 record of the name itself, shown for a missing CAA (its bitmap lists TXT, so it proves nothing for TXT)", "www.n3.test", dns.TypeTXT, func(q string, qt uint16, m *dns.Msg, genuine func(string, uint16) *dns.Msg) {
			if q == "www.n3.test." && qt == dns.TypeTXT {
				other := genuine("www.n3.test", dns.TypeCAA)
				m.Answer, m.Ns = nil, other.Ns
			}
		}, "lists them"},
		{"a signed zone's DS removed to pass it off as unsigned", "www.n1.test", dns.TypeTXT, func(q string, qt uint16, m *dns.Msg, genuine func(string, uint16) *dns.Msg) {
			if q == "n1.test." && qt == dns.TypeDS {
				m.Answer = nil
				m.Ns = nil
			}
			if qt == dns.TypeTXT {
				m.Answer = drop(m.Answer, isType(dns.TypeRRSIG))
			}
		}, "no signed NSEC"},
		{"an unsigned answer for a signed zone, with the parent's proof of an unsigned child replayed", "www.n1.test", dns.TypeTXT, func(q string, qt uint16, m *dns.Msg, genuine func(string, uint16) *dns.Msg) {
			if q == "n1.test." && qt == dns.TypeDS {
				other := genuine("plain.test", dns.TypeDS)
				m.Answer, m.Ns = nil, other.Ns
			}
		}, "covers"},
		{"a DNSKEY set with a key added by the attacker and the signature kept", "www.n1.test", dns.TypeTXT, func(q string, qt uint16, m *dns.Msg, genuine func(string, uint16) *dns.Msg) {
			if q == "n1.test." && qt == dns.TypeDNSKEY {
				k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "n1.test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET}, Flags: 256, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
				k.Generate(256)
				m.Answer = append(m.Answer, k)
			}
		}, "does not verify"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, anchors := signedServer(t)
			_, check := checker(t, d, anchors, tt.tamper)
			err := check(tt.qname, tt.qtype)
			var b *BogusError
			if !errors.As(err, &b) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("got %v, want a BogusError saying %q", err, tt.says)
			}
		})
	}
}

// askServer asks the test server one question as the validator's resolver is asked:
// DO and CD set, over TCP so that no answer is truncated.
func askServer(ctx context.Context, addr, name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.SetEdns0(1232, true)
	q.CheckingDisabled = true
	m, _, err := (&dns.Client{Net: "tcp"}).ExchangeContext(ctx, q, addr)
	return m, err
}
