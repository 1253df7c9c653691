// Package dnsserver is a small DNS server for tests and the load generator. It answers
// only from records set through its methods, on one loopback port over both UDP and
// TCP, so a test that points its resolver here never needs the system resolver.
//
// Names are flat by default: no SOA, no DNSSEC, NXDOMAIN for any name not set. AddZone
// turns a name into a zone of its own, optionally DNSSEC-signed with NSEC or NSEC3
// denial and with faults a validator must refuse; then the server answers as a
// recursive resolver answers a stub, following the delegations between its zones
// itself (it never refers a client elsewhere). Only a query with the DO bit gets
// RRSIG, NSEC and NSEC3 records. Every TTL is 0, so no cache outlives a change a test
// makes, and a name such as "*.x" is a literal name: there is no wildcard synthesis.
// It is not meant for production: keys are made per server and thrown away, and
// signatures are made per answer.
package dnsserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/dns/dnsmessage"
)

// maxCNAMEHops bounds the chase through CNAMEs so a loop set by a test ends.
const maxCNAMEHops = 8

// Server is a running DNS server. Its methods are safe for concurrent use.
type Server struct {
	udp *net.UDPConn
	tcp *net.TCPListener
	wg  sync.WaitGroup

	mu    sync.Mutex
	names map[string]*node
	zones map[string]*zone
	// What signed answers reuse while the names are the same (zone.go): gen counts
	// the changes to the set of names and zones, views are built for one gen, hashes
	// are NSEC3 hashes of names, sigs are signatures of RRsets.
	gen     uint64
	hashes  map[string]string
	sigs    map[string]cachedSig
	conns   map[net.Conn]struct{}
	closed  bool
	queries int
}

// node holds the records of one name. Each record's owner is the name's canonical
// form; answers copy it under the owner name the query asked for.
type node struct {
	rrs      map[uint16][]dns.RR
	seqs     map[uint16]*sequence
	cname    string
	servfail bool
}

// sequence hands out successive answers; the last one repeats once they run out.
type sequence struct {
	answers [][]dns.RR
	next    int
}

// Start listens on addr (e.g. "127.0.0.1:0") over TCP and UDP on the same port and
// serves until Close. With port 0 it retries until it finds a port free for both.
func Start(addr string) (*Server, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dnsserver: %w", err)
	}
	for range 20 {
		tl, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("dnsserver: %w", err)
		}
		bound := tl.Addr().(*net.TCPAddr)
		uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: bound.IP, Port: bound.Port})
		if err != nil {
			tl.Close()
			if port != "0" {
				return nil, fmt.Errorf("dnsserver: %w", err)
			}
			continue // the UDP side of this port is taken; try another port
		}
		s := &Server{
			udp:   uc,
			tcp:   tl.(*net.TCPListener),
			names: make(map[string]*node),
			zones: make(map[string]*zone), hashes: make(map[string]string), sigs: make(map[string]cachedSig),
			conns: make(map[net.Conn]struct{}),
		}
		s.wg.Add(2)
		go s.serveUDP()
		go s.serveTCP()
		return s, nil
	}
	return nil, errors.New("dnsserver: found no port free for both UDP and TCP")
}

// Addr is the "host:port" the server answers on, over UDP and TCP.
func (s *Server) Addr() string { return s.tcp.Addr().String() }

// SetA replaces the A records of name.
func (s *Server) SetA(name string, ips ...string) {
	s.set(name, dns.TypeA, mustRecords(dns.TypeA, ips))
}

// SetAAAA replaces the AAAA records of name.
func (s *Server) SetAAAA(name string, ips ...string) {
	s.set(name, dns.TypeAAAA, mustRecords(dns.TypeAAAA, ips))
}

// SetTXT replaces the TXT records of name, one record per value.
func (s *Server) SetTXT(name string, values ...string) {
	s.set(name, dns.TypeTXT, mustRecords(dns.TypeTXT, values))
}

// SetCNAME makes name an alias of target. Queries of any type for name are answered
// with the CNAME followed by target's records, as a recursive resolver would answer,
// because Go's stub resolver does not chase CNAMEs itself. A CNAME at a zone's apex
// is ignored.
func (s *Server) SetCNAME(name, target string) {
	mustName(target)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.node(name).cname = canonical(target)
}

// SetCAA appends one CAA record (RFC 8659) to name.
func (s *Server) SetCAA(name string, flag uint8, tag, value string) {
	if len(tag) == 0 || len(tag) > 255 {
		panic(fmt.Sprintf("dnsserver: CAA tag %q must be 1 to 255 bytes", tag))
	}
	rr := &dns.CAA{Hdr: header(dns.TypeCAA), Flag: flag, Tag: escape(tag), Value: escape(value)}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.node(name)
	n.rrs[dns.TypeCAA] = append(n.rrs[dns.TypeCAA], rr)
}

// SetServfail makes every query for name answer SERVFAIL.
func (s *Server) SetServfail(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.node(name).servfail = true
}

// SetSequence makes successive queries of qtype ("A", "AAAA" or "TXT") for name get
// successive answers: the first query answers[0], the second answers[1], and so on;
// the last answer repeats. It overrides the records set for that type, which is what
// a DNS-rebinding test needs.
func (s *Server) SetSequence(name string, qtype string, answers ...[]string) {
	typ, ok := map[string]uint16{
		"A": dns.TypeA, "AAAA": dns.TypeAAAA, "TXT": dns.TypeTXT,
	}[strings.ToUpper(qtype)]
	if !ok {
		panic(fmt.Sprintf("dnsserver: SetSequence supports A, AAAA and TXT, not %q", qtype))
	}
	if len(answers) == 0 {
		panic("dnsserver: SetSequence needs at least one answer")
	}
	seq := &sequence{}
	for _, a := range answers {
		seq.answers = append(seq.answers, mustRecords(typ, a))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.node(name).seqs[typ] = seq
}

// Clear forgets every record of name; it answers NXDOMAIN again.
func (s *Server) Clear(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.names, canonical(name))
	s.gen++
}

// Queries is the number of queries answered so far, over UDP and TCP.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

// Close stops the server and waits until every connection is done. It is safe to
// call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := errors.Join(s.udp.Close(), s.tcp.Close())
	s.wg.Wait()
	return err
}

// set replaces the records of one type; the caller already converted them.
func (s *Server) set(name string, typ uint16, rrs []dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.node(name)
	n.rrs[typ] = rrs
	delete(n.seqs, typ)
}

// node returns name's node, making it. The caller holds s.mu.
func (s *Server) node(name string) *node {
	mustName(name)
	key := canonical(name)
	n, ok := s.names[key]
	if !ok {
		n = &node{
			rrs:  make(map[uint16][]dns.RR),
			seqs: make(map[uint16]*sequence),
		}
		s.names[key] = n
		s.gen++
	}
	return n
}

// records are the records of one type at this moment; a sequence advances.
func (n *node) records(typ uint16) []dns.RR {
	if seq, ok := n.seqs[typ]; ok {
		i := min(seq.next, len(seq.answers)-1)
		seq.next++
		return seq.answers[i]
	}
	return n.rrs[typ]
}

// has tells whether the node holds records of typ, without advancing a sequence.
func (n *node) has(typ uint16) bool {
	if _, ok := n.seqs[typ]; ok {
		return true
	}
	return len(n.rrs[typ]) > 0
}

// canonical is the map key of a name: lower case, without the trailing dot.
func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// checkName says why DNS cannot carry name, or nil.
func checkName(name string) error {
	key := canonical(name)
	if _, err := dnsmessage.NewName(key + "."); err != nil || key == "" || len(key) > 253 {
		return fmt.Errorf("dnsserver: bad name %q", name)
	}
	for label := range strings.SplitSeq(key, ".") {
		if len(label) == 0 || len(label) > 63 {
			return fmt.Errorf("dnsserver: bad name %q: labels must be 1 to 63 bytes", name)
		}
	}
	return nil
}

// mustName panics on a name DNS cannot carry: a test that sets one has a bug.
func mustName(name string) {
	if err := checkName(name); err != nil {
		panic(err.Error())
	}
}

// header is the header of a stored record; answers fill in owner and TTL.
func header(typ uint16) dns.RR_Header {
	return dns.RR_Header{Rrtype: typ, Class: dns.ClassINET}
}

// escape protects the backslashes of a raw string from miekg/dns, which reads
// backslash escapes when it packs TXT and CAA strings.
func escape(v string) string { return strings.ReplaceAll(v, `\`, `\\`) }

// mustRecords converts the textual values of a Set call into records.
func mustRecords(typ uint16, values []string) []dns.RR {
	var out []dns.RR
	for _, v := range values {
		switch typ {
		case dns.TypeA, dns.TypeAAAA:
			ip, err := netip.ParseAddr(v)
			if err != nil || ip.Zone() != "" {
				panic(fmt.Sprintf("dnsserver: bad IP address %q", v))
			}
			if typ == dns.TypeA {
				if !ip.Is4() {
					panic(fmt.Sprintf("dnsserver: %q is not an IPv4 address", v))
				}
				out = append(out, &dns.A{Hdr: header(typ), A: ip.AsSlice()})
			} else {
				out = append(out, &dns.AAAA{Hdr: header(typ), AAAA: net.IP(ip.AsSlice())})
			}
		case dns.TypeTXT:
			out = append(out, &dns.TXT{Hdr: header(typ), Txt: chunks(v)})
		}
	}
	return out
}

// chunks splits a TXT value into the 255-byte character-strings DNS carries.
func chunks(v string) []string {
	if v == "" {
		return []string{""}
	}
	var out []string
	for len(v) > 255 {
		out = append(out, escape(v[:255]))
		v = v[255:]
	}
	return append(out, escape(v))
}

// answer builds the response to one query message, or nil when the message is too
// broken to answer at all. maxSize is the largest response the transport carries;
// -1 means UDP, where it is what the query offers.
func (s *Server) answer(query []byte, maxSize int) []byte {
	if len(query) < 12 || query[2]&0x80 != 0 {
		return nil // not even a header, or a response
	}
	var q dns.Msg
	resp := &dns.Msg{Compress: true}
	resp.Id = binary.BigEndian.Uint16(query)
	resp.Response, resp.Authoritative = true, true
	resp.Opcode = int(query[2]>>3) & 0xf
	resp.RecursionDesired = query[2]&1 != 0
	switch err := q.Unpack(query); {
	case err != nil || len(q.Question) == 0:
		resp.Rcode = dns.RcodeFormatError
	case q.Opcode != dns.OpcodeQuery:
		resp.Question = q.Question[:1]
		resp.Rcode = dns.RcodeNotImplemented
	default:
		resp.Question = q.Question[:1]
		opt := q.IsEdns0()
		if maxSize < 0 {
			maxSize = 512
			if opt != nil {
				maxSize = max(512, int(opt.UDPSize()))
			}
		}
		do := opt != nil && opt.Do()
		resp.Rcode, resp.Answer, resp.Ns = s.lookup(q.Question[0].Name, q.Question[0].Qtype, do)
		if opt != nil {
			// RFC 6891 7: an EDNS query gets an OPT back, with the DO bit copied (RFC 3225).
			resp.SetEdns0(1232, do)
		}
	}
	s.mu.Lock()
	s.queries++
	s.mu.Unlock()
	out, err := resp.Pack()
	if err == nil && maxSize > 0 && len(out) > maxSize {
		// Too big for UDP: say so, and the client retries over TCP.
		resp.Answer, resp.Ns, resp.Truncated = nil, nil, true
		out, err = resp.Pack()
	}
	if err != nil {
		return nil
	}
	return out
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if out := s.answer(buf[:n], -1); out != nil {
			s.udp.WriteToUDPAddrPort(out, from)
		}
	}
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// serveConn answers length-prefixed messages on one TCP connection (RFC 1035 4.2.2).
func (s *Server) serveConn(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
		s.wg.Done()
	}()
	for {
		// An idle client must not keep the connection forever.
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		var size [2]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		out := s.answer(msg, 65535)
		if out == nil {
			return
		}
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...)); err != nil {
			return
		}
	}
}
