package dnssec

import (
	"context"
	"crypto"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// A wildcard-synthesised answer (RFC 4035 section 5.3.4): the records of *.w.test
// answer for a.w.test, signed over the wildcard. It is valid only with a proof that
// a.w.test itself does not exist; without that proof an attacker could replay the
// wildcard's records for a name that has records of its own.

// wildZone signs records for the zone w.test with one key, the trust anchor.
type wildZone struct {
	key  *dns.DNSKEY
	priv crypto.Signer
}

func newWildZone(t *testing.T) *wildZone {
	t.Helper()
	k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: "w.test.", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 60},
		Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	priv, err := k.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	return &wildZone{key: k, priv: priv.(crypto.Signer)}
}

// sign signs set as owned by signedOwner (the wildcard, for a synthesised answer),
// and returns it with owner shown and its RRSIG.
func (z *wildZone) sign(t *testing.T, signedOwner, shown string, set ...dns.RR) []dns.RR {
	t.Helper()
	for _, rr := range set {
		rr.Header().Name = signedOwner
		rr.Header().Class = dns.ClassINET
		rr.Header().Ttl = 60
	}
	now := time.Now()
	sig := &dns.RRSIG{Hdr: dns.RR_Header{Name: signedOwner, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: 60},
		Algorithm: z.key.Algorithm, SignerName: "w.test.", KeyTag: z.key.KeyTag(),
		Inception: uint32(now.Add(-time.Hour).Unix()), Expiration: uint32(now.Add(time.Hour).Unix())}
	if err := sig.Sign(z.priv, set); err != nil {
		t.Fatal(err)
	}
	out := []dns.RR{}
	for _, rr := range set {
		rr.Header().Name = shown
		out = append(out, rr)
	}
	sig.Hdr.Name = shown
	return append(out, sig)
}

func TestWildcardAnswers(t *testing.T) {
	z := newWildZone(t)
	txt := func() dns.RR {
		return &dns.TXT{Hdr: dns.RR_Header{Rrtype: dns.TypeTXT}, Txt: []string{"from the wildcard"}}
	}
	nsec := func(owner, next string) dns.RR {
		return &dns.NSEC{Hdr: dns.RR_Header{Rrtype: dns.TypeNSEC}, NextDomain: next, TypeBitMap: []uint16{dns.TypeTXT, dns.TypeRRSIG, dns.TypeNSEC}}
	}
	keys := z.sign(t, "w.test.", "w.test.", z.key)
	// a.w.test has no DS: the wildcard's NSEC proves it, as a real server answers.
	noDS := z.sign(t, "*.w.test.", "*.w.test.", nsec("*.w.test.", "b.w.test."))

	for _, tt := range []struct {
		name  string
		proof []dns.RR // authority section beside the synthesised answer
		want  string   // "" for valid
	}{
		{"with the NSEC that proves a.w.test does not exist", z.sign(t, "*.w.test.", "*.w.test.", nsec("*.w.test.", "b.w.test.")), ""},
		{"without a proof", nil, "come from a wildcard"},
		{"with an NSEC that does not cover a.w.test", z.sign(t, "b.w.test.", "b.w.test.", nsec("b.w.test.", "w.test.")), "come from a wildcard"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ask := func(_ context.Context, name string, qtype uint16) (*dns.Msg, error) {
				m := new(dns.Msg)
				m.SetQuestion(dns.Fqdn(name), qtype)
				switch {
				case qtype == dns.TypeDNSKEY && dns.CanonicalName(name) == "w.test.":
					m.Answer = keys
				case qtype == dns.TypeDS:
					m.Ns = noDS
				}
				return m, nil
			}
			c, err := New(Config{Anchors: []dns.RR{z.key}}, ask)
			if err != nil {
				t.Fatal(err)
			}
			resp := new(dns.Msg)
			resp.SetQuestion("a.w.test.", dns.TypeTXT)
			resp.Answer = z.sign(t, "*.w.test.", "a.w.test.", txt())
			resp.Ns = tt.proof
			err = c.Check(context.Background(), "a.w.test", dns.TypeTXT, resp)
			var b *BogusError
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("valid wildcard answer refused: %v", err)
			case tt.want != "" && (!errors.As(err, &b) || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want a BogusError saying %q", err, tt.want)
			}
		})
	}
}
