package dnssec

import (
	"bytes"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// denialKind is what a signed proof of absence says.
type denialKind int

const (
	noData    denialKind = iota // the name exists (or a wildcard covers it) without the type
	nameError                   // the name does not exist, nor a wildcard that would cover it
	unjudged                    // the zone's proofs cannot be judged (NSEC3 opt-out for a DS, too many iterations, unknown hash): insecure
)

// proof is a checked denial.
type proof struct {
	kind  denialKind
	types []uint16 // the types at the name, for noData
	ttl   uint32
}

func (p proof) has(t uint16) bool { return slices.Contains(p.types, t) }

// denial proves from the NSEC or NSEC3 records of an answer, signed by z, that name
// has no records of qtype (RFC 4035 section 5.4, RFC 5155 section 8).
func (c *Checker) denial(z *zone, name string, qtype uint16, m *dns.Msg, a *answer) (proof, error) {
	var nsecs []*dns.NSEC
	var nsec3s []*dns.NSEC3
	ttl := uint32(maxCache.Seconds())
	var failed error
	for k, set := range a.sets {
		if (k.typ != dns.TypeNSEC && k.typ != dns.TypeNSEC3) || !dns.IsSubDomain(z.apex, k.owner) {
			continue
		}
		t, err := c.verify(z, set, a.sigs(k.owner, k.typ))
		if err != nil {
			failed = err
			continue
		}
		ttl = min(ttl, t)
		for _, rr := range set {
			switch r := rr.(type) {
			case *dns.NSEC:
				nsecs = append(nsecs, r)
			case *dns.NSEC3:
				nsec3s = append(nsec3s, r)
			}
		}
	}
	what := dns.TypeToString[qtype]
	if len(nsecs) == 0 && len(nsec3s) == 0 {
		if failed != nil {
			return proof{}, failed
		}
		return proof{}, bogus(name, "the answer says %s has no %s records, but carries no signed NSEC or NSEC3 record to prove it", trim(name), what)
	}
	var p proof
	var err error
	if len(nsecs) > 0 {
		p, err = nsecDenial(z, name, qtype, nsecs)
	} else {
		p, err = nsec3Denial(z, name, qtype, nsec3s)
	}
	p.ttl = ttl
	return p, err
}

// noDataProof is the proof a matching NSEC or NSEC3 record (at the name or at the
// wildcard that covers it) gives, if its type bitmap denies the question.
func noDataProof(name string, qtype uint16, types []uint16) (proof, error) {
	if err := typesDeny(name, qtype, types); err != nil {
		return proof{}, err
	}
	return proof{kind: noData, types: types}, nil
}

// nsecAt is the NSEC record owned by name, or nil.
func nsecAt(nsecs []*dns.NSEC, name string) *dns.NSEC {
	for _, n := range nsecs {
		if dns.CanonicalName(n.Hdr.Name) == name {
			return n
		}
	}
	return nil
}

// typesDeny checks a matching record's type bitmap against the question.
func typesDeny(name string, qtype uint16, types []uint16) error {
	has := func(t uint16) bool { return slices.Contains(types, t) }
	switch {
	case has(qtype):
		return bogus(name, "the answer says %s has no %s records, but its signed proof lists them", trim(name), dns.TypeToString[qtype])
	case has(dns.TypeCNAME):
		return bogus(name, "the answer says %s has no %s records, but its signed proof shows it is an alias", trim(name), dns.TypeToString[qtype])
	case qtype != dns.TypeDS && has(dns.TypeNS) && !has(dns.TypeSOA):
		// The parent's record of a delegation says nothing about the child's data.
		return bogus(name, "the proof that %s has no %s records comes from the parent of its zone, not the zone", trim(name), dns.TypeToString[qtype])
	}
	return nil
}

func nsecDenial(z *zone, name string, qtype uint16, nsecs []*dns.NSEC) (proof, error) {
	if n := nsecAt(nsecs, name); n != nil {
		return noDataProof(name, qtype, n.TypeBitMap)
	}
	for _, n := range nsecs {
		owner, next := dns.CanonicalName(n.Hdr.Name), dns.CanonicalName(n.NextDomain)
		if !covers(z.apex, owner, next, name) || underDelegation(owner, name, n.TypeBitMap) {
			continue
		}
		if dns.IsSubDomain(name, next) {
			// The next name lies below: name is an empty non-terminal, which exists.
			return proof{kind: noData}, nil
		}
		ce := closestEncloser(name, owner, next)
		wildcard := "*." + ce
		if w := nsecAt(nsecs, wildcard); w != nil {
			return noDataProof(name, qtype, w.TypeBitMap)
		}
		for _, w := range nsecs {
			wo, wn := dns.CanonicalName(w.Hdr.Name), dns.CanonicalName(w.NextDomain)
			if covers(z.apex, wo, wn, wildcard) {
				return proof{kind: nameError}, nil
			}
		}
		return proof{}, bogus(name, "the answer proves %s does not exist, but not that no wildcard %s exists", trim(name), trim(wildcard))
	}
	return proof{}, bogus(name, "no signed NSEC record in the answer covers %s", trim(name))
}

// underDelegation: an NSEC at a delegation point (NS without SOA) above name cannot
// deny name, which the child zone answers for.
func underDelegation(owner, name string, types []uint16) bool {
	return owner != name && dns.IsSubDomain(owner, name) &&
		slices.Contains(types, dns.TypeNS) && !slices.Contains(types, dns.TypeSOA)
}

// closestEncloser is the longest ancestor of name that an NSEC's owner or next name
// proves to exist.
func closestEncloser(name, owner, next string) string {
	n := max(dns.CompareDomainName(name, owner), dns.CompareDomainName(name, next))
	labels := dns.SplitDomainName(name)
	if n == 0 {
		return "."
	}
	return dns.Fqdn(strings.Join(labels[len(labels)-n:], "."))
}

// covers reports whether name falls strictly between an NSEC's owner and next name in
// canonical order (RFC 4034 section 6.1); the last NSEC of a zone points back to the
// apex and covers everything after its owner.
func covers(apex, owner, next, name string) bool {
	if !dns.IsSubDomain(apex, name) || canonicalCompare(owner, name) >= 0 {
		return false
	}
	return canonicalCompare(name, next) < 0 || canonicalCompare(next, owner) <= 0
}

// canonicalCompare orders names as RFC 4034 section 6.1 says: label by label from the
// root, each compared as lower-case octets.
func canonicalCompare(a, b string) int {
	la, lb := wireLabels(a), wireLabels(b)
	for i := 1; i <= len(la) && i <= len(lb); i++ {
		if c := bytes.Compare(la[len(la)-i], lb[len(lb)-i]); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}

// wireLabels are a name's labels as octets (escapes resolved), lower case.
func wireLabels(name string) [][]byte {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.CanonicalName(name), buf, 0, nil, false)
	if err != nil {
		return [][]byte{[]byte(strings.ToLower(name))}
	}
	var out [][]byte
	for i := 0; i < n && buf[i] != 0; i += int(buf[i]) + 1 {
		out = append(out, bytes.ToLower(buf[i+1:i+1+int(buf[i])]))
	}
	return out
}

func nsec3Denial(z *zone, name string, qtype uint16, all []*dns.NSEC3) (proof, error) {
	first := all[0]
	if first.Hash != dns.SHA1 || first.Iterations > maxNSEC3Iterations {
		return proof{kind: unjudged}, nil
	}
	var recs []*dns.NSEC3
	for _, n := range all {
		if n.Hash == first.Hash && n.Iterations == first.Iterations && strings.EqualFold(n.Salt, first.Salt) {
			recs = append(recs, n)
		}
	}
	h := func(n string) string {
		return strings.ToUpper(dns.HashName(n, first.Hash, first.Iterations, first.Salt))
	}
	match := func(n string) *dns.NSEC3 {
		hash := h(n)
		for _, r := range recs {
			if ownerHash(r, z.apex) == hash {
				return r
			}
		}
		return nil
	}
	cover := func(n string) *dns.NSEC3 {
		hash := h(n)
		for _, r := range recs {
			if nsec3Covers(r, z.apex, hash) {
				return r
			}
		}
		return nil
	}
	if r := match(name); r != nil {
		return noDataProof(name, qtype, r.TypeBitMap)
	}
	labels := dns.SplitDomainName(name)
	for i := 1; i < len(labels) || i == len(labels) && z.apex == "."; i++ {
		ce := "."
		if i < len(labels) {
			ce = dns.Fqdn(strings.Join(labels[i:], "."))
		}
		if !dns.IsSubDomain(z.apex, ce) {
			break
		}
		r := match(ce)
		if r == nil {
			continue
		}
		if underDelegation(ce, name, r.TypeBitMap) || slices.Contains(r.TypeBitMap, dns.TypeDNAME) {
			return proof{}, bogus(name, "the NSEC3 proof for %s names %s, which is delegated or an alias, as its closest encloser", trim(name), trim(ce))
		}
		nextCloser := dns.Fqdn(strings.Join(labels[i-1:], "."))
		cov := cover(nextCloser)
		if cov == nil {
			return proof{}, bogus(name, "no signed NSEC3 record in the answer covers %s", trim(nextCloser))
		}
		if qtype == dns.TypeDS && cov.Flags&1 == 1 {
			// Opt-out: unsigned delegations may exist in the covered span.
			return proof{kind: unjudged}, nil
		}
		wildcard := "*." + strings.TrimPrefix(ce, ".")
		if ce == "." {
			wildcard = "*."
		}
		if w := match(wildcard); w != nil {
			return noDataProof(name, qtype, w.TypeBitMap)
		}
		if cover(wildcard) != nil {
			return proof{kind: nameError}, nil
		}
		return proof{}, bogus(name, "the answer proves %s does not exist, but not that no wildcard %s exists", trim(name), trim(wildcard))
	}
	return proof{}, bogus(name, "no signed NSEC3 record in the answer proves a closest encloser of %s", trim(name))
}

// ownerHash is the hash label of an NSEC3's owner, upper case, or "" when the owner
// is not directly under the zone's apex.
func ownerHash(r *dns.NSEC3, apex string) string {
	owner := dns.CanonicalName(r.Hdr.Name)
	label, rest, ok := strings.Cut(owner, ".")
	if !ok || dns.CanonicalName(rest) != apex && !(apex == "." && rest == "") {
		return ""
	}
	return strings.ToUpper(label)
}

// provesNoName checks, for a wildcard-synthesised answer at owner, that the answer
// also proves owner itself does not exist: an NSEC covering it, or an NSEC3 covering
// the next closer name below the wildcard's parent (RFC 5155 section 8.8).
func (c *Checker) provesNoName(z *zone, owner string, sigLabels int, a *answer) bool {
	labels := dns.SplitDomainName(owner)
	nextCloser := dns.Fqdn(strings.Join(labels[len(labels)-sigLabels-1:], "."))
	for k, set := range a.sets {
		if k.typ != dns.TypeNSEC && k.typ != dns.TypeNSEC3 {
			continue
		}
		if _, err := c.verify(z, set, a.sigs(k.owner, k.typ)); err != nil {
			continue
		}
		for _, rr := range set {
			switch r := rr.(type) {
			case *dns.NSEC:
				if covers(z.apex, dns.CanonicalName(r.Hdr.Name), dns.CanonicalName(r.NextDomain), owner) {
					return true
				}
			case *dns.NSEC3:
				if nsec3Covers(r, z.apex, strings.ToUpper(dns.HashName(nextCloser, r.Hash, r.Iterations, r.Salt))) {
					return true
				}
			}
		}
	}
	return false
}

// nsec3Covers reports whether hash falls strictly between an NSEC3's owner hash and
// its next hash; the last NSEC3 of a zone wraps around to the first.
func nsec3Covers(r *dns.NSEC3, apex, hash string) bool {
	own, next := ownerHash(r, apex), strings.ToUpper(r.NextDomain)
	if own == "" || hash == own {
		return false
	}
	if own < next {
		return own < hash && hash < next
	}
	return hash > own || hash < next
}
