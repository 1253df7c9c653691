package dnsserver

import (
	"crypto"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Denial is how a signed zone proves that a name or a type does not exist.
type Denial int

const (
	// NSEC chains the zone's names in canonical order (RFC 4034).
	NSEC Denial = iota
	// NSEC3 chains hashed names: SHA-1, no extra iterations, empty salt (RFC 9276),
	// no opt-out (RFC 5155).
	NSEC3
)

// Fault is what is wrong with a signed zone, for tests of a validator's refusals.
type Fault int

const (
	// NoFault is a zone a validator accepts.
	NoFault Fault = iota
	// BadSignature flips a bit in every RRSIG of the zone.
	BadSignature
	// Expired makes every RRSIG of the zone expire an hour ago, a day after its
	// inception.
	Expired
	// Stripped leaves the zone's RRSIG, NSEC and NSEC3 records out of answers, as an
	// on-path attacker would.
	Stripped
	// WrongDS makes the parent zone publish a DS that matches no DNSKEY of the zone.
	WrongDS
)

// ZoneOptions are how AddZone makes a zone.
type ZoneOptions struct {
	// Signed makes a DNSSEC-signed zone. An unsigned zone under a signed parent is an
	// insecure delegation: the parent proves it has no DS.
	Signed bool
	Denial Denial
	Fault  Fault
}

// ttl is the TTL of every record in a zone. A validator may keep the keys and
// delegations it proved for that long, as it would with real zones (whose TTLs are
// longer); faults still show at once, for every answer's own signatures are checked.
const ttl = 60

// zone is one zone added by AddZone; its names are those it encloses that no deeper
// zone encloses.
type zone struct {
	apex   string // canonical
	signed bool
	denial Denial
	fault  Fault
	key    *dns.DNSKEY // signed zones only: one combined signing key (flags 257)
	signer crypto.Signer
	view   *view  // the names for denial proofs, built at viewGen
	viewAt uint64 // the server's gen view was built at
}

// AddZone makes apex a zone of its own: SOA and NS at the apex are synthesised, and a
// signed zone gets a fresh ECDSA P-256 (algorithm 13) combined signing key published
// as its DNSKEY. A zone under another added zone is delegated from it: the parent
// holds NS at the child apex, and a DS when the child is signed. Records set before or
// after AddZone belong to the deepest zone enclosing their name.
func (s *Server) AddZone(apex string, opts ZoneOptions) error {
	if err := checkName(apex); err != nil {
		return err
	}
	if opts.Denial != NSEC && opts.Denial != NSEC3 {
		return fmt.Errorf("dnsserver: zone %s: unknown denial %d", apex, opts.Denial)
	}
	if err := checkFault(apex, opts.Signed, opts.Fault); err != nil {
		return err
	}
	z := &zone{apex: canonical(apex), signed: opts.Signed, denial: opts.Denial, fault: opts.Fault}
	if opts.Signed {
		z.key = &dns.DNSKEY{
			Hdr:   dns.RR_Header{Name: z.apex + ".", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: ttl},
			Flags: dns.ZONE | dns.SEP, Protocol: 3, Algorithm: dns.ECDSAP256SHA256,
		}
		priv, err := z.key.Generate(256)
		if err != nil {
			return fmt.Errorf("dnsserver: zone %s: %w", apex, err)
		}
		z.signer = priv.(crypto.Signer)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.zones[z.apex]; ok {
		return fmt.Errorf("dnsserver: zone %s exists already", apex)
	}
	s.zones[z.apex] = z
	s.gen++
	return nil
}

// SetFault changes a zone's fault at run time, to turn a zone bogus and back.
func (s *Server) SetFault(apex string, f Fault) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	z, ok := s.zones[canonical(apex)]
	if !ok {
		return fmt.Errorf("dnsserver: no zone %s", apex)
	}
	if err := checkFault(apex, z.signed, f); err != nil {
		return err
	}
	z.fault = f
	return nil
}

func checkFault(apex string, signed bool, f Fault) error {
	switch {
	case f < NoFault || f > WrongDS:
		return fmt.Errorf("dnsserver: zone %s: unknown fault %d", apex, f)
	case f != NoFault && !signed:
		return fmt.Errorf("dnsserver: zone %s is unsigned: it can have no signing fault", apex)
	}
	return nil
}

// TrustAnchor is the DS record (SHA-256 digest) of a signed zone's key in zone-file
// presentation format, e.g. "test. 3600 IN DS 12345 13 2 ABCD…", for a validator's
// trust-anchor file. It is the true DS, whatever the zone's fault.
func (s *Server) TrustAnchor(apex string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	z, ok := s.zones[canonical(apex)]
	switch {
	case !ok:
		return "", fmt.Errorf("dnsserver: no zone %s", apex)
	case !z.signed:
		return "", fmt.Errorf("dnsserver: zone %s is unsigned: it has no trust anchor", apex)
	}
	ds := z.key.ToDS(dns.SHA256)
	ds.Hdr.Ttl = 3600
	return strings.Join(strings.Fields(ds.String()), " "), nil
}

// zoneOf is the deepest zone enclosing key, or nil. The caller holds s.mu.
func (s *Server) zoneOf(key string) *zone {
	for name := key; ; {
		if z, ok := s.zones[name]; ok {
			return z
		}
		_, rest, ok := strings.Cut(name, ".")
		if !ok {
			return nil
		}
		name = rest
	}
}

// parentOf is the zone that delegates z, or nil.
func (s *Server) parentOf(z *zone) *zone {
	if _, rest, ok := strings.Cut(z.apex, "."); ok {
		return s.zoneOf(rest)
	}
	return nil
}

// lookup finds the answer to one question, chasing CNAMEs inside the server's names
// and zones. do is the query's DNSSEC OK bit.
func (s *Server) lookup(qname string, qtype uint16, do bool) (rcode int, answer, authority []dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := answering{now: time.Now(), do: do, s: s}
	owner, key := qname, canonical(qname)
	for hop := 0; hop <= maxCNAMEHops; hop++ {
		n := s.names[key]
		if n != nil && n.servfail {
			return dns.RcodeServerFailure, nil, nil
		}
		z := s.zoneOf(key)
		if z == nil {
			// Outside every zone: flat names, no SOA, no proofs.
			switch {
			case n == nil && hop == 0:
				return dns.RcodeNameError, nil, nil
			case n == nil:
				return dns.RcodeSuccess, answer, nil // a dangling alias
			case n.cname != "":
				answer = append(answer, cname(owner, n.cname))
				if qtype == dns.TypeCNAME {
					return dns.RcodeSuccess, answer, nil
				}
				owner, key = n.cname+".", n.cname
				continue
			}
			return dns.RcodeSuccess, append(answer, withOwner(n.records(qtype), owner)...), nil
		}
		if qtype == dns.TypeDS && key == z.apex {
			if p := s.parentOf(z); p != nil {
				// The DS of a zone is the parent's data (RFC 4035 3.1.4.1).
				if ds := s.rrset(p, key, qtype); len(ds) > 0 {
					return dns.RcodeSuccess, append(answer, a.rrset(p, withOwner(ds, owner))...), nil
				}
				return dns.RcodeSuccess, answer, a.negative(s, p, key, false)
			}
		}
		if n == nil && key != z.apex {
			if s.view(z).exists[key] {
				return dns.RcodeSuccess, answer, a.negative(s, z, key, false) // an empty non-terminal
			}
			return dns.RcodeNameError, answer, a.negative(s, z, key, true)
		}
		if n != nil && n.cname != "" && key != z.apex {
			answer = append(answer, a.rrset(z, []dns.RR{cname(owner, n.cname)})...)
			if qtype == dns.TypeCNAME {
				return dns.RcodeSuccess, answer, nil
			}
			owner, key = n.cname+".", n.cname
			continue
		}
		if rrs := s.rrset(z, key, qtype); len(rrs) > 0 {
			return dns.RcodeSuccess, append(answer, a.rrset(z, withOwner(rrs, owner))...), nil
		}
		return dns.RcodeSuccess, answer, a.negative(s, z, key, false)
	}
	return dns.RcodeServerFailure, nil, nil // an alias loop
}

// cname is one CNAME record.
func cname(owner, target string) dns.RR {
	return &dns.CNAME{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl}, Target: target + "."}
}

// withOwner copies stored records under the owner name a query asked for.
func withOwner(rrs []dns.RR, owner string) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
		out[i].Header().Name = owner
		out[i].Header().Ttl = ttl
	}
	return out
}

// rrset is the records of typ at key, a name of zone z, with the apex's SOA, NS,
// DNSKEY and NSEC3PARAM and a delegation's DS synthesised. A sequence advances.
func (s *Server) rrset(z *zone, key string, typ uint16) []dns.RR {
	hdr := dns.RR_Header{Name: key + ".", Rrtype: typ, Class: dns.ClassINET, Ttl: ttl}
	if child, ok := s.zones[key]; ok && child != z {
		if typ == dns.TypeDS && child.signed {
			ds := child.key.ToDS(dns.SHA256)
			ds.Hdr = hdr
			if child.fault == WrongDS {
				ds.Digest = flipHex(ds.Digest)
			}
			return []dns.RR{ds}
		}
		return nil // the parent side of a delegation answers nothing else
	}
	if key == z.apex {
		switch typ {
		case dns.TypeSOA:
			return []dns.RR{soa(z)}
		case dns.TypeNS:
			return []dns.RR{&dns.NS{Hdr: hdr, Ns: z.apex + "."}}
		case dns.TypeDNSKEY:
			if z.signed {
				return []dns.RR{dns.Copy(z.key)}
			}
		case dns.TypeNSEC3PARAM:
			if z.signed && z.denial == NSEC3 {
				return []dns.RR{&dns.NSEC3PARAM{Hdr: hdr, Hash: dns.SHA1}}
			}
		}
	}
	if n := s.names[key]; n != nil {
		return n.records(typ)
	}
	return nil
}

func soa(z *zone) *dns.SOA {
	return &dns.SOA{
		Hdr: dns.RR_Header{Name: z.apex + ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:  z.apex + ".", Mbox: "hostmaster." + z.apex + ".",
		Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: ttl,
	}
}

// flipHex changes the first digit of a hex string.
func flipHex(h string) string {
	if strings.HasPrefix(h, "0") {
		return "1" + h[1:]
	}
	return "0" + h[1:]
}

// types are the data types at key, a name of zone z, without DNSSEC's own types.
func (s *Server) types(z *zone, key string) []uint16 {
	var out []uint16
	if child, ok := s.zones[key]; ok && child != z {
		out = append(out, dns.TypeNS)
		if child.signed {
			out = append(out, dns.TypeDS)
		}
		return out
	}
	if key == z.apex {
		out = append(out, dns.TypeSOA, dns.TypeNS)
		if z.signed {
			out = append(out, dns.TypeDNSKEY)
			if z.denial == NSEC3 {
				out = append(out, dns.TypeNSEC3PARAM)
			}
		}
	}
	if n := s.names[key]; n != nil {
		if n.cname != "" && key != z.apex {
			out = append(out, dns.TypeCNAME)
		}
		for typ := range n.rrs {
			if n.has(typ) {
				out = append(out, typ)
			}
		}
		for typ := range n.seqs {
			out = append(out, typ)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// view is a zone's names at one moment, for its denial proofs.
type view struct {
	names  []string        // names holding data, in canonical order; the apex first
	exists map[string]bool // the names and the empty non-terminals above them
	hashes []string        // NSEC3 only: the hashes of every existing name, sorted
	hashed map[string]string
}

// view collects zone z's names: the apex, the names no deeper zone encloses and the
// apexes of the zones it delegates. The caller holds s.mu.
func (s *Server) view(z *zone) *view {
	if z.view != nil && z.viewAt == s.gen {
		return z.view
	}
	z.view, z.viewAt = s.buildView(z), s.gen
	return z.view
}

func (s *Server) buildView(z *zone) *view {
	v := &view{exists: map[string]bool{z.apex: true}}
	add := func(name string) {
		v.names = append(v.names, name)
		for n := name; n != z.apex && !v.exists[n]; {
			v.exists[n] = true
			_, n, _ = strings.Cut(n, ".")
		}
	}
	v.names = append(v.names, z.apex)
	for name := range s.names {
		if name != z.apex && s.zoneOf(name) == z {
			add(name)
		}
	}
	for apex, child := range s.zones {
		if child != z && s.parentOf(child) == z {
			add(apex)
		}
	}
	slices.SortFunc(v.names, compareNames)
	v.names = slices.Compact(v.names)
	if z.denial == NSEC3 {
		v.hashed = make(map[string]string, len(v.exists))
		for name := range v.exists {
			h, ok := s.hashes[name]
			if !ok {
				h = dns.HashName(name+".", dns.SHA1, 0, "")
				s.hashes[name] = h
			}
			v.hashed[h] = name
			v.hashes = append(v.hashes, h)
		}
		slices.Sort(v.hashes) // base32hex keeps the order of the hashes' bytes
	}
	return v
}

// compareNames orders canonical names as DNSSEC does (RFC 4034 6.1): label by label
// from the right, each as lower-case bytes.
func compareNames(a, b string) int {
	la, lb := strings.Split(a, "."), strings.Split(b, ".")
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if c := strings.Compare(la[i], lb[j]); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}

// answering signs the RRsets of one response.
type answering struct {
	now time.Time
	do  bool
	s   *Server // its signature cache; the caller holds s.mu
}

// cachedSig is a signature made for one RRset of one zone's key and fault, reused
// for sigReuse: signing every answer anew made a loaded test slow.
type cachedSig struct {
	sig  *dns.RRSIG
	made time.Time
}

const sigReuse = 10 * time.Minute

// dnssec tells whether the response carries zone z's DNSSEC records.
func (a answering) dnssec(z *zone) bool {
	return a.do && z.signed && z.fault != Stripped
}

// rrset is one RRset of zone z with its RRSIG when the response carries them.
func (a answering) rrset(z *zone, rrs []dns.RR) []dns.RR {
	if !a.dnssec(z) {
		return rrs
	}
	var key strings.Builder
	fmt.Fprintf(&key, "%s %d %d", z.apex, z.fault, z.key.KeyTag())
	for _, rr := range rrs {
		key.WriteString("\n" + rr.String())
	}
	if c, ok := a.s.sigs[key.String()]; ok && a.now.Sub(c.made) < sigReuse {
		return append(rrs, dns.Copy(c.sig))
	}
	sig := a.sign(z, rrs)
	if len(a.s.sigs) > 100000 {
		clear(a.s.sigs)
	}
	a.s.sigs[key.String()] = cachedSig{sig: sig, made: a.now}
	return append(rrs, dns.Copy(sig))
}

// sign makes the RRSIG of one RRset of zone z, as its fault has it.
func (a answering) sign(z *zone, rrs []dns.RR) *dns.RRSIG {
	inception, expiration := a.now.Add(-time.Hour), a.now.Add(24*time.Hour)
	if z.fault == Expired {
		inception, expiration = a.now.Add(-25*time.Hour), a.now.Add(-time.Hour)
	}
	sig := &dns.RRSIG{
		Hdr:        dns.RR_Header{Ttl: ttl},
		Algorithm:  dns.ECDSAP256SHA256,
		Inception:  uint32(inception.Unix()),
		Expiration: uint32(expiration.Unix()),
		KeyTag:     z.key.KeyTag(),
		SignerName: z.apex + ".",
	}
	if err := sig.Sign(z.signer, rrs); err != nil {
		panic(fmt.Sprintf("dnsserver: signing %s: %v", rrs[0].Header().Name, err)) // a bug here
	}
	if z.fault == BadSignature {
		raw, _ := base64.StdEncoding.DecodeString(sig.Signature)
		raw[len(raw)/2] ^= 1
		sig.Signature = base64.StdEncoding.EncodeToString(raw)
	}
	return sig
}

// negative is the authority section saying that key, a name of zone z, does not
// exist (nxdomain) or has no records of the type asked: the zone's SOA and, when the
// response carries DNSSEC records, the NSEC or NSEC3 records proving it.
func (a answering) negative(s *Server, z *zone, key string, nxdomain bool) []dns.RR {
	out := a.rrset(z, []dns.RR{soa(z)})
	if !a.dnssec(z) {
		return out
	}
	v := s.view(z)
	var proof []dns.RR
	if z.denial == NSEC {
		proof = s.nsecProof(z, v, key, nxdomain)
	} else {
		proof = s.nsec3Proof(z, v, key, nxdomain)
	}
	for _, rr := range proof {
		out = append(out, a.rrset(z, []dns.RR{rr})...)
	}
	return out
}

// closestEncloser is the deepest existing ancestor of key in the view.
func (v *view) closestEncloser(key string) string {
	for name := key; ; {
		_, name, _ = strings.Cut(name, ".")
		if v.exists[name] {
			return name
		}
	}
}

// nsecProof: NODATA is the NSEC at the name, or for an empty non-terminal the NSEC
// covering it; NXDOMAIN is the NSEC covering the name and the one covering the
// wildcard at the closest encloser (RFC 4035 3.1.3).
func (s *Server) nsecProof(z *zone, v *view, key string, nxdomain bool) []dns.RR {
	at := func(i int) dns.RR {
		name := v.names[i]
		return &dns.NSEC{
			Hdr:        dns.RR_Header{Name: name + ".", Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
			NextDomain: v.names[(i+1)%len(v.names)] + ".",
			TypeBitMap: withTypes(s.types(z, name), dns.TypeRRSIG, dns.TypeNSEC),
		}
	}
	// covering is the index of the name itself, or of the last name before it.
	covering := func(name string) int {
		i, _ := slices.BinarySearchFunc(v.names, name, compareNames)
		if i < len(v.names) && v.names[i] == name {
			return i
		}
		return i - 1 // never -1: the apex comes first and every name is under it
	}
	if !nxdomain {
		return []dns.RR{at(covering(key))}
	}
	i, j := covering(key), covering("*."+v.closestEncloser(key))
	if i == j {
		return []dns.RR{at(i)}
	}
	return []dns.RR{at(i), at(j)}
}

// nsec3Proof: NODATA is the NSEC3 matching the name; NXDOMAIN is the closest-encloser
// proof: the NSEC3 matching the closest encloser and those covering the next closer
// name and the wildcard at the closest encloser (RFC 5155 7.2.1, 7.2.3, 7.2.4).
func (s *Server) nsec3Proof(z *zone, v *view, key string, nxdomain bool) []dns.RR {
	at := func(i int) dns.RR {
		name := v.hashed[v.hashes[i]]
		types := s.types(z, name)
		signed := slices.DeleteFunc(slices.Clone(types), func(t uint16) bool {
			_, delegation := s.zones[name]
			return t == dns.TypeNS && delegation && name != z.apex
		})
		if len(signed) > 0 {
			types = withTypes(types, dns.TypeRRSIG)
		}
		return &dns.NSEC3{
			Hdr:        dns.RR_Header{Name: strings.ToLower(v.hashes[i]) + "." + z.apex + ".", Rrtype: dns.TypeNSEC3, Class: dns.ClassINET, Ttl: ttl},
			Hash:       dns.SHA1,
			HashLength: 20,
			NextDomain: v.hashes[(i+1)%len(v.hashes)],
			TypeBitMap: types,
		}
	}
	// index is the NSEC3 matching name, or the one covering its hash.
	index := func(name string) int {
		h := dns.HashName(name+".", dns.SHA1, 0, "")
		i, found := slices.BinarySearch(v.hashes, h)
		if found {
			return i
		}
		return (i - 1 + len(v.hashes)) % len(v.hashes) // before the first: the last wraps
	}
	if !nxdomain {
		return []dns.RR{at(index(key))}
	}
	ce := v.closestEncloser(key)
	nextCloser := key
	for {
		_, parent, _ := strings.Cut(nextCloser, ".")
		if parent == ce {
			break
		}
		nextCloser = parent
	}
	var out []dns.RR
	seen := map[int]bool{}
	for _, i := range []int{index(ce), index(nextCloser), index("*." + ce)} {
		if !seen[i] {
			seen[i] = true
			out = append(out, at(i))
		}
	}
	return out
}

// withTypes adds types to a sorted type list.
func withTypes(types []uint16, more ...uint16) []uint16 {
	out := append(slices.Clone(types), more...)
	slices.Sort(out)
	return slices.Compact(out)
}
