// Package dnssec checks DNS answers as a validating stub resolver does (RFC 4033–4035,
// RFC 5155): every record set a validation or CAA check reads must be signed along an
// unbroken chain of trust from a trust anchor, or belong to a zone that is provably
// unsigned; every "no such record" must be proven by signed NSEC or NSEC3 records. An
// answer that fails is bogus, and the Baseline Requirements (since March 2026) forbid
// issuing on it.
//
// The upstream resolver is asked with DO and CD set, so it returns signatures and
// proofs and leaves the judgement to us: a resolver that validates itself would
// answer SERVFAIL for bogus data and we could not say why.
package dnssec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Exchanger asks the upstream resolver one question (with DO and CD set) and returns
// its NOERROR or NXDOMAIN answer; any other outcome is an error.
type Exchanger func(ctx context.Context, name string, qtype uint16) (*dns.Msg, error)

// Config says what the Checker trusts.
type Config struct {
	// Anchors are the trust anchors, DS or DNSKEY records (a DNSKEY must have the
	// secure-entry-point flag). None means the root zone's (RootAnchors).
	Anchors []dns.RR
	// Insecure are zones whose names are taken without signatures (negative trust
	// anchors, RFC 7646): an internal split-horizon zone that has none.
	Insecure []string
	// Now is the clock signatures are judged by; nil means time.Now.
	Now func() time.Time
}

// Checker judges answers; it is safe for concurrent use and caches the zone keys and
// delegations it proved for as long as their records' TTLs allow (at most maxCache).
type Checker struct {
	anchors  map[string][]dns.RR // by canonical apex
	insecure []string            // canonical
	ask      Exchanger
	now      func() time.Time

	mu    sync.Mutex
	cache map[string]cached // by "apex" for anchor zones, "ds child" for delegation steps
}

// maxCache bounds how long a proven key set or delegation is reused.
const maxCache = 5 * time.Minute

// maxNSEC3Iterations: answers of zones hashing more often are treated as unsigned
// (RFC 9276 section 3.2), as validating resolvers do since 2022.
const maxNSEC3Iterations = 100

// BogusError says why an answer failed DNSSEC validation, in words for a problem
// detail.
type BogusError struct {
	Name   string // the name whose answer is bogus
	Reason string
}

func (e *BogusError) Error() string {
	return "the DNS answer for " + trim(e.Name) + " failed DNSSEC validation: " + e.Reason
}

func bogus(name, format string, args ...any) *BogusError {
	return &BogusError{Name: name, Reason: fmt.Sprintf(format, args...)}
}

// New returns a Checker that asks its questions through ask.
func New(cfg Config, ask Exchanger) (*Checker, error) {
	anchors := cfg.Anchors
	if len(anchors) == 0 {
		anchors = RootAnchors()
	}
	c := &Checker{anchors: map[string][]dns.RR{}, ask: ask, now: cfg.Now, cache: map[string]cached{}}
	if c.now == nil {
		c.now = time.Now
	}
	for _, rr := range anchors {
		switch a := rr.(type) {
		case *dns.DS:
		case *dns.DNSKEY:
			if a.Flags&dns.SEP == 0 || a.Flags&dns.ZONE == 0 {
				return nil, fmt.Errorf("dnssec: the trust anchor DNSKEY of %s (key tag %d) is not a secure entry point (flags %d, want 257)", a.Hdr.Name, a.KeyTag(), a.Flags)
			}
		default:
			return nil, fmt.Errorf("dnssec: a trust anchor must be a DS or DNSKEY record, not %s", dns.TypeToString[rr.Header().Rrtype])
		}
		apex := dns.CanonicalName(rr.Header().Name)
		c.anchors[apex] = append(c.anchors[apex], rr)
	}
	for _, z := range cfg.Insecure {
		if _, ok := dns.IsDomainName(z); !ok || z == "" {
			return nil, fmt.Errorf("dnssec: insecure zone %q is not a domain name", z)
		}
		c.insecure = append(c.insecure, dns.CanonicalName(z))
	}
	return c, nil
}

// RootAnchors are the root zone's key-signing keys as DS records: KSK-2017 and
// KSK-2024, from IANA's https://data.iana.org/root-anchors/root-anchors.xml (as
// Debian's dns-root-data 2024071801 ships them in /usr/share/dns/root.ds).
func RootAnchors() []dns.RR {
	anchors, err := ParseAnchors(strings.NewReader(rootAnchors), "built-in root anchors")
	if err != nil {
		panic(err)
	}
	return anchors
}

const rootAnchors = `. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D
. IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16
`

// ParseAnchors reads trust anchors in zone-file syntax: DS records, or DNSKEY records
// with flags 257, one per line (the format of /usr/share/dns/root.ds and root.key).
// Comments and blank lines are allowed; any other record is an error naming its line.
func ParseAnchors(r io.Reader, source string) ([]dns.RR, error) {
	zp := dns.NewZoneParser(r, ".", source)
	var out []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		switch a := rr.(type) {
		case *dns.DS:
			out = append(out, a)
		case *dns.DNSKEY:
			if a.Flags != 257 {
				return nil, fmt.Errorf("%s: the DNSKEY of %s has flags %d; a trust anchor is a key-signing key (flags 257)", source, a.Hdr.Name, a.Flags)
			}
			out = append(out, a)
		default:
			return nil, fmt.Errorf("%s: %s records are not trust anchors; give DS or DNSKEY records", source, dns.TypeToString[rr.Header().Rrtype])
		}
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", source, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no DS or DNSKEY record", source)
	}
	return out, nil
}

// supportedAlgorithm: the signing algorithms RFC 8624 says a validator must (or
// should) check, without the SHA-1 ones. A zone signed only with others is treated as
// unsigned, as RFC 4035 section 5.2 says.
func supportedAlgorithm(alg uint8) bool {
	switch alg {
	case dns.RSASHA256, dns.RSASHA512, dns.ECDSAP256SHA256, dns.ECDSAP384SHA384, dns.ED25519:
		return true
	}
	return false
}

func supportedDigest(t uint8) bool {
	return t == dns.SHA1 || t == dns.SHA256 || t == dns.SHA384
}

// zone is the closest enclosing zone of a name, as proven from an anchor.
type zone struct {
	apex     string
	keys     []*dns.DNSKEY // the zone's validated keys; nil when insecure
	insecure bool
}

// step is what a DS question at a name proved about it.
type step int

const (
	stepCut         step = iota // a signed child zone starts here
	stepInsecureCut             // an unsigned child zone starts here (no DS, or opt-out)
	stepNoCut                   // the name is inside the parent zone
	stepNoName                  // the name does not exist; neither does anything below it
)

type cached struct {
	step    step
	zone    *zone
	expires time.Time
}

func (c *Checker) cached(key string) (cached, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.cache[key]
	if !ok || c.now().After(e.expires) {
		return cached{}, false
	}
	return e, true
}

func (c *Checker) store(key string, e cached, ttl uint32) {
	d := min(time.Duration(ttl)*time.Second, maxCache)
	e.expires = c.now().Add(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cache) > 10000 { // a bound, not a policy: start over
		clear(c.cache)
	}
	c.cache[key] = e
}

// zoneOf proves the closest enclosing zone of name from the nearest trust anchor
// down, asking for the DS records at every name on the way: a signed delegation is
// followed to the child's keys, a proven unsigned delegation ends the chain as
// insecure, and anything unproven is bogus.
func (c *Checker) zoneOf(ctx context.Context, name string) (*zone, error) {
	name = dns.CanonicalName(name)
	for _, nta := range c.insecure {
		if dns.IsSubDomain(nta, name) {
			return &zone{apex: nta, insecure: true}, nil // configured so
		}
	}
	anchor, found := "", false
	for apex := range c.anchors {
		if dns.IsSubDomain(apex, name) && (!found || dns.CountLabel(apex) > dns.CountLabel(anchor)) {
			anchor, found = apex, true
		}
	}
	if !found {
		return &zone{apex: name, insecure: true}, nil // no trust anchor covers it
	}
	z, err := c.anchorZone(ctx, anchor)
	if err != nil || z.insecure {
		return z, err
	}
	labels := dns.SplitDomainName(name)
	for i := len(labels) - dns.CountLabel(anchor) - 1; i >= 0; i-- {
		child := dns.Fqdn(strings.Join(labels[i:], "."))
		st, next, err := c.delegation(ctx, z, child)
		if err != nil {
			return nil, err
		}
		switch st {
		case stepCut:
			z = next
		case stepInsecureCut:
			return next, nil
		case stepNoName:
			return z, nil
		}
	}
	return z, nil
}

// anchorZone fetches the DNSKEY set of an anchor's zone and checks it against the
// anchor.
func (c *Checker) anchorZone(ctx context.Context, apex string) (*zone, error) {
	key := "anchor " + apex
	if e, ok := c.cached(key); ok {
		return e.zone, nil
	}
	z, ttl, err := c.dnskeys(ctx, apex, c.anchors[apex])
	var b *BogusError
	if errors.As(err, &b) {
		// Most often the resolver is a private test server without the anchor's zone.
		b.Reason += fmt.Sprintf("; the trust anchor's zone %s must be answered with its signed DNSKEY records by the resolver validation asks (a private test resolver needs its own trust anchor, or its zones configured as insecure)", trim(apex))
	}
	if err != nil {
		return nil, err
	}
	c.store(key, cached{zone: z}, ttl)
	return z, nil
}

// delegation asks for the DS records at child, which parent answers, and says what
// they prove.
func (c *Checker) delegation(ctx context.Context, parent *zone, child string) (step, *zone, error) {
	key := "ds " + child
	if e, ok := c.cached(key); ok {
		return e.step, e.zone, nil
	}
	m, err := c.ask(ctx, child, dns.TypeDS)
	if err != nil {
		return 0, nil, err
	}
	a := index(m)
	ttl := uint32(maxCache / time.Second)
	if ds := a.set(child, dns.TypeDS); len(ds) > 0 {
		sigTTL, err := c.verify(parent, ds, a.sigs(child, dns.TypeDS))
		if err != nil {
			return 0, nil, err
		}
		z, keyTTL, err := c.dnskeys(ctx, child, ds)
		if err != nil {
			return 0, nil, err
		}
		st := stepCut
		if z.insecure {
			st = stepInsecureCut
		}
		c.store(key, cached{step: st, zone: z}, min(ttl, sigTTL, keyTTL))
		return st, z, nil
	}
	if cname := a.set(child, dns.TypeCNAME); len(cname) > 0 {
		// An alias, signed by the parent, is no delegation: a zone's apex cannot be one.
		sigTTL, err := c.verify(parent, cname, a.sigs(child, dns.TypeCNAME))
		if err != nil {
			return 0, nil, err
		}
		c.store(key, cached{step: stepNoCut}, min(ttl, sigTTL))
		return stepNoCut, nil, nil
	}
	d, err := c.denial(parent, child, dns.TypeDS, m, a)
	if err != nil {
		return 0, nil, err
	}
	var st step
	var z *zone
	switch {
	case d.kind == nameError:
		st = stepNoName
	case d.kind == unjudged || d.has(dns.TypeNS) && !d.has(dns.TypeSOA):
		// The parent proves the child has no DS record: an unsigned zone.
		st, z = stepInsecureCut, &zone{apex: child, insecure: true}
	default:
		st = stepNoCut
	}
	c.store(key, cached{step: st, zone: z}, min(ttl, d.ttl))
	return st, z, nil
}

// dnskeys fetches apex's DNSKEY set and accepts it when a key that one of the
// anchors (DS records from the parent, or trusted DNSKEYs) names has signed it.
func (c *Checker) dnskeys(ctx context.Context, apex string, anchors []dns.RR) (*zone, uint32, error) {
	usable := false
	for _, rr := range anchors {
		switch a := rr.(type) {
		case *dns.DS:
			usable = usable || supportedAlgorithm(a.Algorithm) && supportedDigest(a.DigestType)
		case *dns.DNSKEY:
			usable = usable || supportedAlgorithm(a.Algorithm)
		}
	}
	if !usable {
		// Signed only with algorithms this validator does not check: unsigned to it.
		return &zone{apex: apex, insecure: true}, uint32(maxCache / time.Second), nil
	}
	m, err := c.ask(ctx, apex, dns.TypeDNSKEY)
	if err != nil {
		return nil, 0, err
	}
	a := index(m)
	set := a.set(apex, dns.TypeDNSKEY)
	if len(set) == 0 {
		return nil, 0, bogus(apex, "the zone %s has no DNSKEY records, though the DS records of its parent (or the trust anchor) say it is signed", trim(apex))
	}
	var keys []*dns.DNSKEY
	var entry []*dns.DNSKEY // the keys an anchor names
	for _, rr := range set {
		k := rr.(*dns.DNSKEY)
		if k.Flags&dns.ZONE == 0 || k.Protocol != 3 {
			continue
		}
		keys = append(keys, k)
		for _, ar := range anchors {
			switch a := ar.(type) {
			case *dns.DS:
				if a.KeyTag == k.KeyTag() && a.Algorithm == k.Algorithm && supportedDigest(a.DigestType) {
					if ds := k.ToDS(a.DigestType); ds != nil && strings.EqualFold(ds.Digest, a.Digest) {
						entry = append(entry, k)
					}
				}
			case *dns.DNSKEY:
				if a.Algorithm == k.Algorithm && a.Flags == k.Flags && a.PublicKey == k.PublicKey {
					entry = append(entry, k)
				}
			}
		}
	}
	if len(entry) == 0 {
		return nil, 0, bogus(apex, "no DNSKEY of %s matches the DS records of its parent (or the trust anchor)", trim(apex))
	}
	ttl, err := c.verify(&zone{apex: apex, keys: entry}, set, a.sigs(apex, dns.TypeDNSKEY))
	if err != nil {
		return nil, 0, err
	}
	return &zone{apex: apex, keys: keys}, ttl, nil
}

// verify checks that one of sigs, made by z, signs set now; it returns the TTL the
// set may be trusted for (its TTL, the signature's original TTL and its expiry).
func (c *Checker) verify(z *zone, set []dns.RR, sigs []*dns.RRSIG) (uint32, error) {
	owner := set[0].Header().Name
	what := fmt.Sprintf("the %s records of %s", dns.TypeToString[set[0].Header().Rrtype], trim(owner))
	if len(sigs) == 0 {
		return 0, bogus(owner, "%s carry no signature, but %s is a signed zone", what, trim(z.apex))
	}
	now := c.now()
	reason := ""
	for _, sig := range sigs {
		switch {
		case !strings.EqualFold(dns.CanonicalName(sig.SignerName), z.apex):
			reason = fmt.Sprintf("%s are signed by %s, not by their zone %s", what, trim(sig.SignerName), trim(z.apex))
			continue
		case !supportedAlgorithm(sig.Algorithm):
			reason = fmt.Sprintf("%s are signed only with algorithm %d, which this validator does not check", what, sig.Algorithm)
			continue
		case !sig.ValidityPeriod(now):
			if now.Unix() > int64(sig.Expiration) {
				reason = fmt.Sprintf("the signature of %s expired at %s", what, time.Unix(int64(sig.Expiration), 0).UTC().Format(time.RFC3339))
			} else {
				reason = fmt.Sprintf("the signature of %s is not valid before %s", what, time.Unix(int64(sig.Inception), 0).UTC().Format(time.RFC3339))
			}
			continue
		}
		for _, k := range z.keys {
			if k.KeyTag() != sig.KeyTag || k.Algorithm != sig.Algorithm {
				continue
			}
			if err := sig.Verify(k, set); err == nil {
				ttl := min(set[0].Header().Ttl, sig.OrigTtl)
				if left := int64(sig.Expiration) - now.Unix(); left < int64(ttl) {
					ttl = uint32(max(left, 0))
				}
				return ttl, nil
			}
		}
		reason = fmt.Sprintf("the signature of %s does not verify with the keys of %s (key tag %d)", what, trim(z.apex), sig.KeyTag)
	}
	return 0, bogus(owner, "%s", reason)
}

// Check judges resp, the upstream's answer to (qname, qtype): nil when every record
// set on the way to the answer (CNAMEs included) is signed along a chain of trust or
// provably unsigned, and a missing answer is proven missing. A bogus answer is a
// *BogusError; a question that could not be asked on the way is returned as the
// Exchanger's error.
func (c *Checker) Check(ctx context.Context, qname string, qtype uint16, resp *dns.Msg) error {
	a := index(resp)
	name := dns.CanonicalName(qname)
	for hop := 0; ; hop++ {
		if set := a.set(name, qtype); len(set) > 0 {
			return c.checkSet(ctx, set, a)
		}
		cname := a.set(name, dns.TypeCNAME)
		if len(cname) == 0 || hop > 16 {
			break
		}
		if err := c.checkSet(ctx, cname, a); err != nil {
			return err
		}
		name = dns.CanonicalName(cname[0].(*dns.CNAME).Target)
	}
	if name != dns.CanonicalName(qname) && resp.Rcode != dns.RcodeNameError && len(resp.Ns) == 0 {
		// The resolver stopped at an alias without saying anything about its target:
		// the caller asks for the target itself, and that answer is checked then.
		return nil
	}
	z, err := c.zoneOf(ctx, name)
	if err != nil || z.insecure {
		return err
	}
	d, err := c.denial(z, name, qtype, resp, a)
	if err != nil {
		return err
	}
	if d.kind == unjudged {
		return nil
	}
	if resp.Rcode == dns.RcodeNameError && d.kind != nameError {
		return bogus(name, "the answer says %s does not exist, but its proof shows it does", trim(name))
	}
	if resp.Rcode != dns.RcodeNameError && d.kind == nameError {
		return bogus(name, "the answer says %s exists, but its proof shows it does not", trim(name))
	}
	return nil
}

// checkSet checks one record set of an answer.
func (c *Checker) checkSet(ctx context.Context, set []dns.RR, a *answer) error {
	h := set[0].Header()
	owner := dns.CanonicalName(h.Name)
	z, err := c.zoneOf(ctx, owner)
	if err != nil || z.insecure {
		return err
	}
	sigs := a.sigs(owner, h.Rrtype)
	if _, err := c.verify(z, set, sigs); err != nil {
		return err
	}
	// A signature with fewer labels than its owner was made over a wildcard: the
	// answer was synthesised, which is only right when the name itself does not
	// exist (RFC 4035 section 5.3.4).
	labels := dns.CountLabel(owner)
	if strings.HasPrefix(owner, "*.") {
		labels--
	}
	for _, sig := range sigs {
		if int(sig.Labels) < labels && strings.EqualFold(dns.CanonicalName(sig.SignerName), z.apex) {
			if !c.provesNoName(z, owner, int(sig.Labels), a) {
				return bogus(owner, "the records of %s come from a wildcard, but the answer does not prove that %s itself does not exist", trim(owner), trim(owner))
			}
			break
		}
	}
	return nil
}

func trim(name string) string {
	if name == "." {
		return name
	}
	return strings.TrimSuffix(name, ".")
}

// answer indexes a message's records by owner and type.
type answer struct {
	sets map[setKey][]dns.RR
	sig  map[setKey][]*dns.RRSIG
	ns   []dns.RR // authority section
}

type setKey struct {
	owner string
	typ   uint16
}

func index(m *dns.Msg) *answer {
	a := &answer{sets: map[setKey][]dns.RR{}, sig: map[setKey][]*dns.RRSIG{}, ns: m.Ns}
	for _, sec := range [][]dns.RR{m.Answer, m.Ns} {
		for _, rr := range sec {
			h := rr.Header()
			if h.Class != dns.ClassINET {
				continue
			}
			owner := dns.CanonicalName(h.Name)
			if sig, ok := rr.(*dns.RRSIG); ok {
				k := setKey{owner, sig.TypeCovered}
				a.sig[k] = append(a.sig[k], sig)
				continue
			}
			k := setKey{owner, h.Rrtype}
			if !slices.ContainsFunc(a.sets[k], func(o dns.RR) bool { return dns.IsDuplicate(o, rr) }) {
				a.sets[k] = append(a.sets[k], rr)
			}
		}
	}
	return a
}

func (a *answer) set(owner string, typ uint16) []dns.RR { return a.sets[setKey{owner, typ}] }
func (a *answer) sigs(owner string, typ uint16) []*dns.RRSIG {
	return a.sig[setKey{owner, typ}]
}
