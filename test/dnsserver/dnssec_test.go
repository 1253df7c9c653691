package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// signedTree starts a server holding the zone tree the DNSSEC tests share:
//
//	test.               signed, NSEC (the trust anchor)
//	  sec.test.         signed, NSEC3
//	    deep.sec.test.  signed, NSEC
//	    plain.sec.test. unsigned (an insecure delegation proved by NSEC3)
//	  nsec.test.        signed, NSEC
//	  plain.test.       unsigned (an insecure delegation proved by NSEC)
//	  bad.test., expired.test., stripped.test., wrongds.test.: signed, with that fault
func signedTree(t *testing.T) *Server {
	t.Helper()
	s := start(t)
	zones := []struct {
		apex string
		opts ZoneOptions
	}{
		{"test", ZoneOptions{Signed: true, Denial: NSEC}},
		{"sec.test", ZoneOptions{Signed: true, Denial: NSEC3}},
		{"deep.sec.test", ZoneOptions{Signed: true, Denial: NSEC}},
		{"plain.sec.test", ZoneOptions{}},
		{"nsec.test", ZoneOptions{Signed: true, Denial: NSEC}},
		{"plain.test", ZoneOptions{}},
		{"bad.test", ZoneOptions{Signed: true, Fault: BadSignature}},
		{"expired.test", ZoneOptions{Signed: true, Denial: NSEC3, Fault: Expired}},
		{"stripped.test", ZoneOptions{Signed: true, Fault: Stripped}},
		{"wrongds.test", ZoneOptions{Signed: true, Fault: WrongDS}},
	}
	for _, z := range zones {
		if err := s.AddZone(z.apex, z.opts); err != nil {
			t.Fatal(err)
		}
		s.SetA("www."+z.apex, "192.0.2.1")
	}
	for _, apex := range []string{"sec.test", "nsec.test"} {
		s.SetTXT("_acme-challenge.www."+apex, "token")
		s.SetCAA(apex, 0, "issue", "ca.example")
		s.SetTXT("a.b."+apex, "below an empty non-terminal")
	}
	many := make([]string, 100)
	for i := range many {
		many[i] = fmt.Sprintf("192.0.2.%d", i+1)
	}
	s.SetA("many.sec.test", many...)
	s.SetTXT("*.w.nsec.test", "a literal wildcard name")
	s.SetCNAME("alias.nsec.test", "www.sec.test")
	s.SetCNAME("dangling.nsec.test", "nope.sec.test")
	s.SetServfail("broken.sec.test")
	return s
}

// ask sends one query over TCP (so nothing is truncated), with the DO bit when do.
func ask(t *testing.T, s *Server, name string, typ uint16, do bool) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), typ)
	m.SetEdns0(1232, do)
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, s.Addr())
	if err != nil {
		t.Fatalf("%s %s: %v", name, dns.TypeToString[typ], err)
	}
	return r
}

// rrsets groups the records of one section by owner and type, RRSIGs apart.
func rrsets(section []dns.RR) (sets map[string][]dns.RR, sigs map[string][]*dns.RRSIG, order []string) {
	sets, sigs = map[string][]dns.RR{}, map[string][]*dns.RRSIG{}
	for _, rr := range section {
		h := rr.Header()
		if sig, ok := rr.(*dns.RRSIG); ok {
			k := strings.ToLower(h.Name) + "/" + dns.TypeToString[sig.TypeCovered]
			sigs[k] = append(sigs[k], sig)
			continue
		}
		k := strings.ToLower(h.Name) + "/" + dns.TypeToString[h.Rrtype]
		if _, ok := sets[k]; !ok {
			order = append(order, k)
		}
		sets[k] = append(sets[k], rr)
	}
	return sets, sigs, order
}

// verifySigned checks that every RRset of the answer and authority sections carries
// an RRSIG that verifies with the signer's key in keys and is valid now.
func verifySigned(r *dns.Msg, keys map[string]*dns.DNSKEY) error {
	for _, section := range [][]dns.RR{r.Answer, r.Ns} {
		sets, sigs, order := rrsets(section)
		for _, k := range order {
			if len(sigs[k]) == 0 {
				return fmt.Errorf("%s: no RRSIG", k)
			}
			for _, sig := range sigs[k] {
				key, ok := keys[strings.ToLower(sig.SignerName)]
				if !ok {
					return fmt.Errorf("%s: signed by %s, whose key is unknown", k, sig.SignerName)
				}
				if sig.KeyTag != key.KeyTag() {
					return fmt.Errorf("%s: RRSIG key tag %d, the key's is %d", k, sig.KeyTag, key.KeyTag())
				}
				if err := sig.Verify(key, sets[k]); err != nil {
					return fmt.Errorf("%s: signature: %w", k, err)
				}
				if !sig.ValidityPeriod(time.Now()) {
					return fmt.Errorf("%s: RRSIG outside its validity period", k)
				}
			}
		}
	}
	return nil
}

// hasDNSSEC tells whether a response carries any RRSIG, NSEC or NSEC3 record.
func hasDNSSEC(r *dns.Msg) bool {
	for _, rr := range append(slices.Clone(r.Answer), r.Ns...) {
		switch rr.Header().Rrtype {
		case dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3:
			return true
		}
	}
	return false
}

// chainKey validates zone apex's DNSKEY the way a validator does: its parent's DS (or
// the trust anchor for the top zone) must match it, and the DNSKEY RRset must be
// signed by it. The parent's key must be in keys already; the zone's is added.
func chainKey(t *testing.T, s *Server, apex string, keys map[string]*dns.DNSKEY) error {
	t.Helper()
	r := ask(t, s, apex, dns.TypeDNSKEY, true)
	var key *dns.DNSKEY
	for _, rr := range r.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok {
			key = k
		}
	}
	if key == nil {
		return errors.New("no DNSKEY")
	}
	var ds []*dns.DS
	if _, parent, _ := strings.Cut(apex, "."); keys[parent+"."] != nil {
		dr := ask(t, s, apex, dns.TypeDS, true)
		if err := verifySigned(dr, keys); err != nil {
			return fmt.Errorf("the parent's DS: %w", err)
		}
		for _, rr := range dr.Answer {
			if d, ok := rr.(*dns.DS); ok {
				ds = append(ds, d)
			}
		}
	} else {
		anchor, err := s.TrustAnchor(apex)
		if err != nil {
			return err
		}
		rr, err := dns.NewRR(anchor)
		if err != nil {
			return fmt.Errorf("trust anchor %q: %w", anchor, err)
		}
		ds = append(ds, rr.(*dns.DS))
	}
	matched := slices.ContainsFunc(ds, func(d *dns.DS) bool {
		want := key.ToDS(d.DigestType)
		return want != nil && d.KeyTag == want.KeyTag && d.Algorithm == want.Algorithm && strings.EqualFold(d.Digest, want.Digest)
	})
	if !matched {
		return fmt.Errorf("no DS matches the DNSKEY (%d DS records)", len(ds))
	}
	if err := verifySigned(r, map[string]*dns.DNSKEY{dns.Fqdn(apex): key}); err != nil {
		return fmt.Errorf("the DNSKEY RRset: %w", err)
	}
	keys[dns.Fqdn(apex)] = key
	return nil
}

func TestChainOfTrust(t *testing.T) {
	s := signedTree(t)
	keys := map[string]*dns.DNSKEY{}
	tests := []struct {
		zone    string
		wantErr string // "" for a zone a validator accepts
	}{
		{"test", ""},
		{"sec.test", ""},
		{"deep.sec.test", ""},
		{"nsec.test", ""},
		{"bad.test", "the DNSKEY RRset: bad.test./DNSKEY: signature: "},
		{"expired.test", "the DNSKEY RRset: expired.test./DNSKEY: RRSIG outside its validity period"},
		{"stripped.test", "the DNSKEY RRset: stripped.test./DNSKEY: no RRSIG"},
		{"wrongds.test", "no DS matches the DNSKEY (1 DS records)"},
	}
	for _, tt := range tests {
		t.Run(tt.zone, func(t *testing.T) {
			err := chainKey(t, s, tt.zone, keys)
			if got := fmt.Sprint(err); tt.wantErr == "" && err != nil || tt.wantErr != "" && !strings.Contains(got, tt.wantErr) {
				t.Errorf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
	t.Run("the trust anchor is a DS in presentation format", func(t *testing.T) {
		anchor, err := s.TrustAnchor("TEST.")
		if err != nil || !strings.HasPrefix(anchor, fmt.Sprintf("test. 3600 IN DS %d 13 2 ", keys["test."].KeyTag())) {
			t.Errorf("got %q, %v", anchor, err)
		}
	})
	t.Run("an unsigned or unknown zone has no trust anchor", func(t *testing.T) {
		for _, apex := range []string{"plain.test", "nowhere.test"} {
			if _, err := s.TrustAnchor(apex); err == nil {
				t.Errorf("%s: no error", apex)
			}
		}
	})
	t.Run("SetFault turns a zone bogus and back", func(t *testing.T) {
		for _, step := range []struct {
			fault   Fault
			wantErr bool
		}{{BadSignature, true}, {NoFault, false}, {WrongDS, true}, {NoFault, false}} {
			if err := s.SetFault("nsec.test", step.fault); err != nil {
				t.Fatal(err)
			}
			if err := chainKey(t, s, "nsec.test", keys); (err != nil) != step.wantErr {
				t.Errorf("fault %d: got %v", step.fault, err)
			}
		}
	})
	t.Run("bad arguments are errors", func(t *testing.T) {
		for name, err := range map[string]error{
			"a zone added twice":          s.AddZone("Sec.Test.", ZoneOptions{Signed: true}),
			"an unknown denial":           s.AddZone("x.test", ZoneOptions{Signed: true, Denial: 7}),
			"a fault on an unsigned zone": s.AddZone("y.test", ZoneOptions{Fault: Expired}),
			"a bad name":                  s.AddZone("a..test", ZoneOptions{}),
			"a fault of an unknown zone":  s.SetFault("nowhere.test", BadSignature),
			"a fault of an unsigned zone": s.SetFault("plain.test", Stripped),
			"an unknown fault":            s.SetFault("sec.test", 99),
		} {
			if err == nil {
				t.Errorf("%s: no error", name)
			}
		}
	})
}

// goodKeys are the validated keys of the zones without faults.
func goodKeys(t *testing.T, s *Server) map[string]*dns.DNSKEY {
	t.Helper()
	keys := map[string]*dns.DNSKEY{}
	for _, apex := range []string{"test", "sec.test", "deep.sec.test", "nsec.test"} {
		if err := chainKey(t, s, apex, keys); err != nil {
			t.Fatalf("%s: %v", apex, err)
		}
	}
	return keys
}

// canonicalKey sorts as RFC 4034 6.1 orders names: labels from the right, each
// compared as lower-case bytes (a label never holds a zero byte).
func canonicalKey(name string) string {
	labels := dns.SplitDomainName(strings.ToLower(name))
	slices.Reverse(labels)
	return strings.Join(labels, "\x00")
}

// nsecCovers tells whether the NSEC covers name: owner < name < next, or past the
// last name of the zone when next is the apex.
func nsecCovers(n *dns.NSEC, name string) bool {
	o, x, nx := canonicalKey(n.Hdr.Name), canonicalKey(name), canonicalKey(n.NextDomain)
	if o < nx {
		return o < x && x < nx
	}
	return o < x || x < nx
}

// ancestors are name's ancestors from its parent up to (and with) apex.
func ancestors(name, apex string) []string {
	var out []string
	for n := dns.Fqdn(strings.ToLower(name)); n != apex && n != "."; {
		i, _ := dns.NextLabel(n, 0)
		n = n[i:]
		out = append(out, n)
	}
	return out
}

// denies checks the denial proof of a negative answer from zone apex: for NSEC, the
// NSEC at the name without the type (or covering an empty non-terminal), or the NSEC
// covering the name and the one covering the wildcard at the closest encloser; for
// NSEC3, the matching NSEC3 without the type, or the closest-encloser proof.
func denies(r *dns.Msg, apex, name string, typ uint16, nxdomain bool) error {
	var nsecs []*dns.NSEC
	var nsec3s []*dns.NSEC3
	for _, rr := range r.Ns {
		switch x := rr.(type) {
		case *dns.NSEC:
			nsecs = append(nsecs, x)
		case *dns.NSEC3:
			nsec3s = append(nsec3s, x)
		}
	}
	name = dns.Fqdn(strings.ToLower(name))
	without := func(bitmap []uint16) bool {
		return !slices.Contains(bitmap, typ) && !slices.Contains(bitmap, dns.TypeCNAME)
	}
	switch {
	case len(nsecs) > 0 && !nxdomain:
		for _, n := range nsecs {
			if strings.EqualFold(n.Hdr.Name, name) && without(n.TypeBitMap) {
				return nil
			}
			if nsecCovers(n, name) && dns.IsSubDomain(name, strings.ToLower(n.NextDomain)) {
				return nil // an empty non-terminal: the next name is below it
			}
		}
		return errors.New("no NSEC proves the type absent")
	case len(nsecs) > 0:
		i := slices.IndexFunc(nsecs, func(n *dns.NSEC) bool { return nsecCovers(n, name) })
		if i < 0 {
			return errors.New("no NSEC covers the name")
		}
		// The closest encloser is the deepest ancestor of the name that is an
		// ancestor of the covering NSEC's owner or next name.
		var ce string
		for _, a := range ancestors(name, apex) {
			if dns.IsSubDomain(a, strings.ToLower(nsecs[i].Hdr.Name)) || dns.IsSubDomain(a, strings.ToLower(nsecs[i].NextDomain)) {
				ce = a
				break
			}
		}
		if !slices.ContainsFunc(nsecs, func(n *dns.NSEC) bool { return nsecCovers(n, "*."+ce) }) {
			return fmt.Errorf("no NSEC covers the wildcard *.%s", ce)
		}
		return nil
	case len(nsec3s) > 0 && !nxdomain:
		for _, n := range nsec3s {
			if n.Match(name) && without(n.TypeBitMap) {
				return nil
			}
		}
		return errors.New("no NSEC3 matches the name without the type")
	case len(nsec3s) > 0:
		if slices.ContainsFunc(nsec3s, func(n *dns.NSEC3) bool { return n.Match(name) }) {
			return errors.New("an NSEC3 matches the name said not to exist")
		}
		next := name
		for _, ce := range ancestors(name, apex) {
			if slices.ContainsFunc(nsec3s, func(n *dns.NSEC3) bool { return n.Match(ce) }) {
				if !slices.ContainsFunc(nsec3s, func(n *dns.NSEC3) bool { return n.Cover(next) }) {
					return fmt.Errorf("no NSEC3 covers the next closer name %s", next)
				}
				if !slices.ContainsFunc(nsec3s, func(n *dns.NSEC3) bool { return n.Cover("*." + ce) }) {
					return fmt.Errorf("no NSEC3 covers the wildcard *.%s", ce)
				}
				return nil
			}
			next = ce
		}
		return errors.New("no NSEC3 matches a closest encloser")
	}
	return errors.New("no NSEC or NSEC3 records")
}

func TestSignedAnswers(t *testing.T) {
	s := signedTree(t)
	keys := goodKeys(t, s)
	const positive, nodata, nxdomain = "positive", "nodata", "nxdomain"
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		want   string
		zone   string   // the zone whose SOA and proof a negative answer carries
		answer []string // the types of the answer's RRsets, in order
	}{
		{"A in an NSEC3 zone", "www.sec.test", dns.TypeA, positive, "", []string{"A"}},
		{"TXT in an NSEC zone", "_acme-challenge.www.nsec.test", dns.TypeTXT, positive, "", []string{"TXT"}},
		{"CAA at an NSEC3 apex", "sec.test", dns.TypeCAA, positive, "", []string{"CAA"}},
		{"CAA at an NSEC apex", "nsec.test", dns.TypeCAA, positive, "", []string{"CAA"}},
		{"a question in mixed case", "WWW.Sec.Test", dns.TypeA, positive, "", []string{"A"}},
		{"A in a zone two delegations down", "www.deep.sec.test", dns.TypeA, positive, "", []string{"A"}},
		{"a literal wildcard name", "*.w.nsec.test", dns.TypeTXT, positive, "", []string{"TXT"}},
		{"SOA at the apex", "test", dns.TypeSOA, positive, "", []string{"SOA"}},
		{"NS at the apex", "sec.test", dns.TypeNS, positive, "", []string{"NS"}},
		{"NSEC3PARAM at an NSEC3 apex", "sec.test", dns.TypeNSEC3PARAM, positive, "", []string{"NSEC3PARAM"}},
		{"DS of a signed child from its NSEC parent", "sec.test", dns.TypeDS, positive, "", []string{"DS"}},
		{"DS of a signed child from its NSEC3 parent", "deep.sec.test", dns.TypeDS, positive, "", []string{"DS"}},
		{"a CNAME into another zone, each RRset signed by its zone", "alias.nsec.test", dns.TypeA, positive, "", []string{"CNAME", "A"}},
		{"NXDOMAIN in an NSEC3 zone", "nope.sec.test", dns.TypeA, nxdomain, "sec.test.", nil},
		{"NXDOMAIN two labels below the closest encloser (NSEC3)", "x.nope.www.sec.test", dns.TypeA, nxdomain, "sec.test.", nil},
		{"NXDOMAIN in an NSEC zone", "nope.nsec.test", dns.TypeA, nxdomain, "nsec.test.", nil},
		{"NXDOMAIN two labels below the closest encloser (NSEC)", "x.nope.www.nsec.test", dns.TypeA, nxdomain, "nsec.test.", nil},
		{"NXDOMAIN after the last name of an NSEC zone", "zzz.nsec.test", dns.TypeA, nxdomain, "nsec.test.", nil},
		{"NXDOMAIN in the anchor zone", "nope.test", dns.TypeTXT, nxdomain, "test.", nil},
		{"NXDOMAIN at the end of a CNAME into another zone", "dangling.nsec.test", dns.TypeA, nxdomain, "sec.test.", []string{"CNAME"}},
		{"NODATA in an NSEC3 zone", "www.sec.test", dns.TypeMX, nodata, "sec.test.", nil},
		{"NODATA in an NSEC zone", "www.nsec.test", dns.TypeTXT, nodata, "nsec.test.", nil},
		{"NODATA at an NSEC3 apex", "sec.test", dns.TypeA, nodata, "sec.test.", nil},
		{"NODATA at an empty non-terminal (NSEC3)", "b.sec.test", dns.TypeTXT, nodata, "sec.test.", nil},
		{"NODATA at an empty non-terminal (NSEC)", "b.nsec.test", dns.TypeTXT, nodata, "nsec.test.", nil},
		{"no DS of an unsigned child, proved by NSEC", "plain.test", dns.TypeDS, nodata, "test.", nil},
		{"no DS of an unsigned child, proved by NSEC3", "plain.sec.test", dns.TypeDS, nodata, "sec.test.", nil},
		{"no DS at a name that is no delegation", "www.nsec.test", dns.TypeDS, nodata, "nsec.test.", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ask(t, s, tt.qname, tt.qtype, true)
			wantRcode := map[string]int{positive: dns.RcodeSuccess, nodata: dns.RcodeSuccess, nxdomain: dns.RcodeNameError}[tt.want]
			if r.Rcode != wantRcode {
				t.Fatalf("rcode %s, want %s\n%v", dns.RcodeToString[r.Rcode], dns.RcodeToString[wantRcode], r)
			}
			if opt := r.IsEdns0(); opt == nil || !opt.Do() {
				t.Error("the response has no OPT with the DO bit")
			}
			_, _, order := rrsets(r.Answer)
			var types []string
			for _, k := range order {
				types = append(types, k[strings.Index(k, "/")+1:])
			}
			if !slices.Equal(types, tt.answer) {
				t.Errorf("answer RRsets %q, want %q", types, tt.answer)
			}
			if err := verifySigned(r, keys); err != nil {
				t.Errorf("%v\n%v", err, r)
			}
			if tt.want == positive {
				if len(r.Ns) != 0 {
					t.Errorf("a positive answer has an authority section: %v", r.Ns)
				}
				return
			}
			soa := slices.IndexFunc(r.Ns, func(rr dns.RR) bool {
				return rr.Header().Rrtype == dns.TypeSOA && rr.Header().Name == tt.zone
			})
			if soa < 0 {
				t.Errorf("no SOA of %s in the authority section: %v", tt.zone, r.Ns)
			}
			target := tt.qname
			if len(tt.answer) > 0 {
				target = r.Answer[len(r.Answer)-2].(*dns.CNAME).Target
			}
			if err := denies(r, tt.zone, target, tt.qtype, tt.want == nxdomain); err != nil {
				t.Errorf("%v\n%v", err, r)
			}
		})
	}
	t.Run("a query without DO gets no DNSSEC records", func(t *testing.T) {
		for _, q := range []struct {
			name string
			typ  uint16
		}{{"www.sec.test", dns.TypeA}, {"nope.nsec.test", dns.TypeA}, {"www.sec.test", dns.TypeMX}, {"sec.test", dns.TypeDNSKEY}} {
			r := ask(t, s, q.name, q.typ, false)
			if hasDNSSEC(r) || len(r.Answer)+len(r.Ns) == 0 {
				t.Errorf("%s %s: %v", q.name, dns.TypeToString[q.typ], r)
			}
		}
	})
	t.Run("an unsigned zone answers without DNSSEC records but with its SOA", func(t *testing.T) {
		r := ask(t, s, "www.plain.test", dns.TypeA, true)
		if hasDNSSEC(r) || len(r.Answer) != 1 {
			t.Errorf("positive: %v", r)
		}
		r = ask(t, s, "nope.plain.sec.test", dns.TypeA, true)
		if hasDNSSEC(r) || r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 || r.Ns[0].Header().Name != "plain.sec.test." {
			t.Errorf("negative: %v", r)
		}
	})
	t.Run("the Stripped zone answers without RRSIG and NSEC", func(t *testing.T) {
		for _, typ := range []uint16{dns.TypeA, dns.TypeMX} {
			if r := ask(t, s, "www.stripped.test", typ, true); hasDNSSEC(r) || len(r.Answer)+len(r.Ns) == 0 {
				t.Errorf("%v", r)
			}
		}
		// The parent's DS is the parent's data and stays signed.
		if err := verifySigned(ask(t, s, "stripped.test", dns.TypeDS, true), keys); err != nil {
			t.Error(err)
		}
	})
	t.Run("SERVFAIL and sequences work in a zone", func(t *testing.T) {
		if r := ask(t, s, "broken.sec.test", dns.TypeA, true); r.Rcode != dns.RcodeServerFailure {
			t.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
		}
		s.SetSequence("seq.sec.test", "A", []string{"192.0.2.7"}, []string{"192.0.2.8"})
		for _, want := range []string{"192.0.2.7", "192.0.2.8", "192.0.2.8"} {
			r := ask(t, s, "seq.sec.test", dns.TypeA, true)
			if len(r.Answer) != 2 || r.Answer[0].(*dns.A).A.String() != want {
				t.Errorf("got %v, want %s", r.Answer, want)
			}
			if err := verifySigned(r, keys); err != nil {
				t.Error(err)
			}
		}
	})
	t.Run("a large signed answer is truncated over UDP and whole over TCP", func(t *testing.T) {
		m := new(dns.Msg)
		m.SetQuestion("many.sec.test.", dns.TypeA)
		m.SetEdns0(1232, true)
		r, _, err := (&dns.Client{Net: "udp", Timeout: 5 * time.Second}).Exchange(m, s.Addr())
		if err != nil || !r.Truncated || len(r.Answer) != 0 {
			t.Errorf("UDP: %v, %v", r, err)
		}
		if r := ask(t, s, "many.sec.test", dns.TypeA, true); len(r.Answer) != 101 || verifySigned(r, keys) != nil {
			t.Errorf("TCP: %d records, %v", len(r.Answer), verifySigned(r, keys))
		}
	})
}

// nsecAt is zone apex's NSEC record at name, found through a NODATA answer, or for a
// delegation point or an alias (whose queries another zone answers) through the
// NXDOMAIN of a name sorting right after it.
func nsecAt(t *testing.T, s *Server, apex, name string) *dns.NSEC {
	t.Helper()
	first, rest, _ := strings.Cut(name, ".")
	for _, q := range []string{name, first + "-." + rest} {
		r := ask(t, s, q, dns.TypeMX, true)
		_, sigs, _ := rrsets(r.Ns)
		for _, rr := range r.Ns {
			n, ok := rr.(*dns.NSEC)
			if ok && strings.EqualFold(n.Hdr.Name, name) && slices.ContainsFunc(sigs[name+"/NSEC"], func(sig *dns.RRSIG) bool {
				return sig.SignerName == apex
			}) {
				return n
			}
		}
	}
	t.Fatalf("no NSEC at %s", name)
	return nil
}

func TestNSECChain(t *testing.T) {
	s := signedTree(t)
	tests := []struct {
		apex  string
		chain []string // every name holding data, in canonical order, with its types
	}{
		{"nsec.test.", []string{
			"nsec.test. NS SOA RRSIG NSEC DNSKEY CAA",
			"alias.nsec.test. CNAME RRSIG NSEC",
			"a.b.nsec.test. TXT RRSIG NSEC", // b.nsec.test is an empty non-terminal: no NSEC
			"dangling.nsec.test. CNAME RRSIG NSEC",
			"*.w.nsec.test. TXT RRSIG NSEC",
			"www.nsec.test. A RRSIG NSEC",
			"_acme-challenge.www.nsec.test. TXT RRSIG NSEC",
		}},
		{"test.", []string{
			"test. NS SOA RRSIG NSEC DNSKEY",
			"bad.test. NS DS RRSIG NSEC",
			"expired.test. NS DS RRSIG NSEC",
			"nsec.test. NS DS RRSIG NSEC",
			"plain.test. NS RRSIG NSEC", // an insecure delegation
			"sec.test. NS DS RRSIG NSEC",
			"stripped.test. NS DS RRSIG NSEC",
			"wrongds.test. NS DS RRSIG NSEC",
			"www.test. A RRSIG NSEC",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.apex, func(t *testing.T) {
			var got []string
			name := tt.apex
			for range 20 {
				n := nsecAt(t, s, tt.apex, name)
				types := []string{n.Hdr.Name}
				for _, typ := range n.TypeBitMap {
					types = append(types, dns.TypeToString[typ])
				}
				got = append(got, strings.Join(types, " "))
				if name = strings.ToLower(n.NextDomain); name == tt.apex {
					break
				}
			}
			if !slices.Equal(got, tt.chain) {
				t.Errorf("chain\n got %q\nwant %q", got, tt.chain)
			}
		})
	}
}

func TestNSEC3Chain(t *testing.T) {
	s := signedTree(t)
	// Every name of sec.test that exists, empty non-terminals and delegations too.
	names := []string{"sec.test.", "www.sec.test.", "_acme-challenge.www.sec.test.", "b.sec.test.", "a.b.sec.test.",
		"many.sec.test.", "broken.sec.test.", "deep.sec.test.", "plain.sec.test."}
	var hashes []string
	for _, n := range names {
		hashes = append(hashes, dns.HashName(n, dns.SHA1, 0, ""))
	}
	slices.Sort(hashes)
	// The NSEC3 records reachable through NODATA answers, with their types.
	tests := []struct {
		name  string
		qtype uint16
		types string
	}{
		{"sec.test.", dns.TypeMX, "NS SOA RRSIG DNSKEY NSEC3PARAM CAA"},
		{"www.sec.test.", dns.TypeMX, "A RRSIG"},
		{"_acme-challenge.www.sec.test.", dns.TypeMX, "TXT RRSIG"},
		{"b.sec.test.", dns.TypeMX, ""}, // an empty non-terminal
		{"a.b.sec.test.", dns.TypeMX, "TXT RRSIG"},
		{"many.sec.test.", dns.TypeMX, "A RRSIG"},
		{"plain.sec.test.", dns.TypeDS, "NS"}, // an insecure delegation: its NS is not signed
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n3 *dns.NSEC3
			for _, rr := range ask(t, s, tt.name, tt.qtype, true).Ns {
				if n, ok := rr.(*dns.NSEC3); ok && n.Match(tt.name) {
					n3 = n
				}
			}
			if n3 == nil {
				t.Fatal("no matching NSEC3")
			}
			if n3.Hash != dns.SHA1 || n3.Iterations != 0 || n3.Salt != "" || n3.Flags != 0 {
				t.Errorf("parameters: %v", n3)
			}
			var types []string
			for _, typ := range n3.TypeBitMap {
				types = append(types, dns.TypeToString[typ])
			}
			if got := strings.Join(types, " "); got != tt.types {
				t.Errorf("types %q, want %q", got, tt.types)
			}
			owner, _, _ := strings.Cut(n3.Hdr.Name, ".")
			i := slices.Index(hashes, strings.ToUpper(owner))
			if want := hashes[(i+1)%len(hashes)]; n3.NextDomain != want {
				t.Errorf("next hashed owner %s, want %s (the chain is not over exactly %q)", n3.NextDomain, want, names)
			}
		})
	}
}

// writeAnchor writes a delv trust-anchor file for zone apex from s's TrustAnchor.
func writeAnchor(t *testing.T, s *Server, apex string) string {
	t.Helper()
	ta, err := s.TrustAnchor(apex)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(ta) // owner TTL IN DS tag algorithm digest-type digest
	path := filepath.Join(t.TempDir(), "anchor.conf")
	conf := fmt.Sprintf("trust-anchors {\n\t%s static-ds %s %s %s \"%s\";\n};\n", f[0], f[4], f[5], f[6], f[7])
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDelv has BIND's validator (delv, from bind9-dnsutils; scripts/install-test-deps
// installs it) judge the signed zones, with test. as its only trust anchor.
func TestDelv(t *testing.T) {
	delv, err := exec.LookPath("delv")
	if err != nil {
		t.Skip("delv is not installed (bind9-dnsutils; run scripts/install-test-deps)")
	}
	s := signedTree(t)
	anchor := writeAnchor(t, s, "test")
	_, port, _ := strings.Cut(s.Addr(), ":")
	run := func(t *testing.T, name, typ string, opts ...string) string {
		t.Helper()
		// The timeout only keeps a hung delv from hanging the test run.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		args := append([]string{"@127.0.0.1", "-p", port, "-a", anchor, "+root=test.", name, typ}, opts...)
		out, _ := exec.CommandContext(ctx, delv, args...).CombinedOutput()
		return string(out)
	}
	const (
		validated = "; fully validated\n"
		negative  = "; negative response, fully validated\n"
		unsigned  = "; unsigned answer\n"
		broken    = ";; resolution failed: broken trust chain\n"
	)
	tests := []struct {
		name  string
		qname string
		qtype string
		opts  []string
		want  string
	}{
		{"TXT in an NSEC3 zone", "_acme-challenge.www.sec.test", "TXT", nil, validated},
		{"TXT in an NSEC zone", "_acme-challenge.www.nsec.test", "TXT", nil, validated},
		{"A in an NSEC3 zone", "www.sec.test", "A", nil, validated},
		{"A in an NSEC zone, over TCP", "www.nsec.test", "A", []string{"+tcp"}, validated},
		{"CAA at an NSEC3 apex", "sec.test", "CAA", nil, validated},
		{"CAA at an NSEC apex", "nsec.test", "CAA", nil, validated},
		{"A two delegations down", "www.deep.sec.test", "A", nil, validated},
		{"A through a CNAME into another zone", "alias.nsec.test", "A", nil, validated},
		{"100 A records: truncated over UDP, then TCP", "many.sec.test", "A", nil, validated},
		{"NXDOMAIN in an NSEC3 zone", "nope.sec.test", "A", nil, negative},
		{"NXDOMAIN below an existing name (NSEC3)", "x.nope.www.sec.test", "TXT", nil, negative},
		{"NXDOMAIN in an NSEC zone", "nope.nsec.test", "A", nil, negative},
		{"NXDOMAIN below an existing name (NSEC)", "x.nope.www.nsec.test", "TXT", nil, negative},
		{"NXDOMAIN in the anchor zone", "nope.test", "A", nil, negative},
		{"NODATA in an NSEC3 zone", "www.sec.test", "TXT", nil, negative},
		{"NODATA in an NSEC zone", "www.nsec.test", "TXT", nil, negative},
		{"NODATA at an empty non-terminal (NSEC3)", "b.sec.test", "TXT", nil, negative},
		{"NODATA at an empty non-terminal (NSEC)", "b.nsec.test", "TXT", nil, negative},
		{"NODATA at an apex (NSEC)", "deep.sec.test", "CAA", nil, negative},
		{"an insecure delegation proved by NSEC", "www.plain.test", "A", nil, unsigned},
		{"an insecure delegation proved by NSEC3", "www.plain.sec.test", "A", nil, unsigned},
		{"NXDOMAIN under an insecure delegation", "nope.plain.test", "A", nil, "; negative response, unsigned answer\n"},
		{"BadSignature", "www.bad.test", "A", nil, broken},
		{"Expired", "www.expired.test", "A", nil, broken},
		{"Stripped", "www.stripped.test", "A", nil, broken},
		{"WrongDS", "www.wrongds.test", "A", nil, broken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := run(t, tt.qname, tt.qtype, tt.opts...)
			if !strings.Contains(out, tt.want) {
				t.Errorf("delv %s %s: want %q in\n%s", tt.qname, tt.qtype, tt.want, out)
			}
			if tt.want == broken && strings.Contains(out, "validated") {
				t.Errorf("a bogus answer was validated:\n%s", out)
			}
		})
	}
	t.Run("what delv says of each fault", func(t *testing.T) {
		for _, c := range []struct{ zone, why string }{
			{"bad.test", ";; validating bad.test/DNSKEY: no valid signature found (DS)\n"},
			{"expired.test", "RRSIG has expired\n"},
			{"stripped.test", "got insecure response; parent indicates it should be secure\n"},
			{"wrongds.test", ";; validating wrongds.test/DNSKEY: no valid signature found (DS)\n"},
		} {
			if out := run(t, "www."+c.zone, "A"); !strings.Contains(out, c.why) {
				t.Errorf("%s: want %q in\n%s", c.zone, c.why, out)
			}
		}
	})
	t.Run("SetFault switches a zone to bogus and back", func(t *testing.T) {
		for _, step := range []struct {
			fault Fault
			want  string
		}{{Expired, broken}, {NoFault, validated}, {Stripped, broken}, {NoFault, validated}} {
			if err := s.SetFault("sec.test", step.fault); err != nil {
				t.Fatal(err)
			}
			if out := run(t, "www.sec.test", "A"); !strings.Contains(out, step.want) {
				t.Errorf("fault %d: want %q in\n%s", step.fault, step.want, out)
			}
		}
	})
}

// TestGoResolverInZones: Go's stub resolver, which sends no DO bit, reads signed and
// unsigned zones as it reads flat names.
func TestGoResolverInZones(t *testing.T) {
	s := signedTree(t)
	ctx := context.Background()
	for _, network := range []string{"udp", "tcp"} {
		r := resolver(s, network == "tcp")
		t.Run(network+"/TXT in a signed zone", func(t *testing.T) {
			txt, err := r.LookupTXT(ctx, "_acme-challenge.www.sec.test.")
			if err != nil || !slices.Equal(txt, []string{"token"}) {
				t.Errorf("got %q, %v", txt, err)
			}
		})
		t.Run(network+"/addresses through a CNAME between zones", func(t *testing.T) {
			ips, err := r.LookupHost(ctx, "alias.nsec.test.")
			if err != nil || !slices.Equal(ips, []string{"192.0.2.1"}) {
				t.Errorf("got %q, %v", ips, err)
			}
		})
		t.Run(network+"/100 A records in a signed zone", func(t *testing.T) {
			ips, err := r.LookupHost(ctx, "many.sec.test.")
			if err != nil || len(ips) != 100 {
				t.Errorf("got %d addresses, %v", len(ips), err)
			}
		})
		for _, name := range []string{"nope.sec.test.", "nope.plain.test.", "b.nsec.test."} {
			t.Run(network+"/not found: "+name, func(t *testing.T) {
				_, err := r.LookupHost(ctx, name)
				if de, ok := err.(*net.DNSError); !ok || !de.IsNotFound {
					t.Errorf("got %v, want a not-found DNS error", err)
				}
			})
		}
	}
}
