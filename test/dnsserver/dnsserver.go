// Package dnsserver is a small authoritative DNS server for tests and the load
// generator. It answers only from records set through its methods, on one loopback
// port over both UDP and TCP, so a test that points its resolver here never needs the
// system resolver. It is not meant for production: no zones, no DNSSEC, no recursion.
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

	"golang.org/x/net/dns/dnsmessage"
)

// typeCAA is RR type 257 (RFC 8659); dnsmessage has no constant for it.
const typeCAA = dnsmessage.Type(257)

// maxCNAMEHops bounds the chase through CNAMEs so a loop set by a test ends.
const maxCNAMEHops = 8

// Server is a running DNS server. Its methods are safe for concurrent use.
type Server struct {
	udp *net.UDPConn
	tcp *net.TCPListener
	wg  sync.WaitGroup

	mu      sync.Mutex
	names   map[string]*node
	conns   map[net.Conn]struct{}
	closed  bool
	queries int
}

// node holds the records of one name.
type node struct {
	rrs      map[dnsmessage.Type][]dnsmessage.ResourceBody
	seqs     map[dnsmessage.Type]*sequence
	cname    string
	servfail bool
}

// sequence hands out successive answers; the last one repeats once they run out.
type sequence struct {
	answers [][]dnsmessage.ResourceBody
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
	s.set(name, dnsmessage.TypeA, mustBodies(dnsmessage.TypeA, ips))
}

// SetAAAA replaces the AAAA records of name.
func (s *Server) SetAAAA(name string, ips ...string) {
	s.set(name, dnsmessage.TypeAAAA, mustBodies(dnsmessage.TypeAAAA, ips))
}

// SetTXT replaces the TXT records of name, one record per value.
func (s *Server) SetTXT(name string, values ...string) {
	s.set(name, dnsmessage.TypeTXT, mustBodies(dnsmessage.TypeTXT, values))
}

// SetCNAME makes name an alias of target. Queries of any type for name are answered
// with the CNAME followed by target's records, as a recursive resolver would answer,
// because Go's stub resolver does not chase CNAMEs itself.
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
	data := append([]byte{flag, byte(len(tag))}, tag...)
	data = append(data, value...)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.node(name)
	n.rrs[typeCAA] = append(n.rrs[typeCAA], &dnsmessage.UnknownResource{Type: typeCAA, Data: data})
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
	typ, ok := map[string]dnsmessage.Type{
		"A": dnsmessage.TypeA, "AAAA": dnsmessage.TypeAAAA, "TXT": dnsmessage.TypeTXT,
	}[strings.ToUpper(qtype)]
	if !ok {
		panic(fmt.Sprintf("dnsserver: SetSequence supports A, AAAA and TXT, not %q", qtype))
	}
	if len(answers) == 0 {
		panic("dnsserver: SetSequence needs at least one answer")
	}
	seq := &sequence{}
	for _, a := range answers {
		seq.answers = append(seq.answers, mustBodies(typ, a))
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
func (s *Server) set(name string, typ dnsmessage.Type, bodies []dnsmessage.ResourceBody) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.node(name)
	n.rrs[typ] = bodies
	delete(n.seqs, typ)
}

// node returns name's node, making it. The caller holds s.mu.
func (s *Server) node(name string) *node {
	mustName(name)
	key := canonical(name)
	n, ok := s.names[key]
	if !ok {
		n = &node{
			rrs:  make(map[dnsmessage.Type][]dnsmessage.ResourceBody),
			seqs: make(map[dnsmessage.Type]*sequence),
		}
		s.names[key] = n
	}
	return n
}

// records are the bodies for one query type at this moment; a sequence advances.
func (n *node) records(typ dnsmessage.Type) []dnsmessage.ResourceBody {
	if seq, ok := n.seqs[typ]; ok {
		i := min(seq.next, len(seq.answers)-1)
		seq.next++
		return seq.answers[i]
	}
	return n.rrs[typ]
}

// canonical is the map key of a name: lower case, without the trailing dot.
func canonical(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// mustName panics on a name DNS cannot carry: a test that sets one has a bug.
func mustName(name string) dnsmessage.Name {
	key := canonical(name)
	n, err := dnsmessage.NewName(key + ".")
	if err != nil || key == "" || len(key) > 253 {
		panic(fmt.Sprintf("dnsserver: bad name %q", name))
	}
	for label := range strings.SplitSeq(key, ".") {
		if len(label) == 0 || len(label) > 63 {
			panic(fmt.Sprintf("dnsserver: bad name %q: labels must be 1 to 63 bytes", name))
		}
	}
	return n
}

// mustBodies converts the textual values of a Set call into record bodies.
func mustBodies(typ dnsmessage.Type, values []string) []dnsmessage.ResourceBody {
	var out []dnsmessage.ResourceBody
	for _, v := range values {
		switch typ {
		case dnsmessage.TypeA, dnsmessage.TypeAAAA:
			ip, err := netip.ParseAddr(v)
			if err != nil || ip.Zone() != "" {
				panic(fmt.Sprintf("dnsserver: bad IP address %q", v))
			}
			if typ == dnsmessage.TypeA {
				if !ip.Is4() {
					panic(fmt.Sprintf("dnsserver: %q is not an IPv4 address", v))
				}
				out = append(out, &dnsmessage.AResource{A: ip.As4()})
			} else {
				out = append(out, &dnsmessage.AAAAResource{AAAA: ip.As16()})
			}
		case dnsmessage.TypeTXT:
			out = append(out, &dnsmessage.TXTResource{TXT: chunks(v)})
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
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}

// answer builds the response to one query message, or nil when the message is too
// broken to answer at all. maxSize is the largest response the transport carries.
func (s *Server) answer(query []byte, maxSize int) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil || h.Response {
		return nil
	}
	resp := dnsmessage.Message{Header: dnsmessage.Header{
		ID: h.ID, Response: true, OpCode: h.OpCode, Authoritative: true,
		RecursionDesired: h.RecursionDesired,
	}}
	q, err := p.Question()
	switch {
	case err != nil:
		resp.RCode = dnsmessage.RCodeFormatError
	case h.OpCode != 0:
		resp.Questions = []dnsmessage.Question{q}
		resp.RCode = dnsmessage.RCodeNotImplemented
	default:
		resp.Questions = []dnsmessage.Question{q}
		resp.RCode, resp.Answers = s.lookup(q)
		if maxSize < 0 {
			maxSize = udpSize(&p)
		}
	}
	s.mu.Lock()
	s.queries++
	s.mu.Unlock()
	out, err := resp.Pack()
	if err == nil && maxSize > 0 && len(out) > maxSize {
		// Too big for UDP: say so, and the client retries over TCP.
		resp.Answers, resp.Truncated = nil, true
		out, err = resp.Pack()
	}
	if err != nil {
		return nil
	}
	return out
}

// udpSize is the response size the client accepts over UDP: 512 bytes, or what its
// EDNS(0) OPT record offers.
func udpSize(p *dnsmessage.Parser) int {
	if p.SkipAllQuestions() != nil || p.SkipAllAnswers() != nil || p.SkipAllAuthorities() != nil {
		return 512
	}
	for {
		h, err := p.AdditionalHeader()
		if err != nil {
			return 512
		}
		if h.Type == dnsmessage.TypeOPT {
			return max(512, int(h.Class))
		}
		if p.SkipAdditional() != nil {
			return 512
		}
	}
}

// lookup finds the answer to one question, chasing CNAMEs inside the server's names.
func (s *Server) lookup(q dnsmessage.Question) (dnsmessage.RCode, []dnsmessage.Resource) {
	s.mu.Lock()
	defer s.mu.Unlock()
	owner, key := q.Name, canonical(q.Name.String())
	var answers []dnsmessage.Resource
	for hop := 0; hop <= maxCNAMEHops; hop++ {
		n, ok := s.names[key]
		if !ok {
			if hop == 0 {
				return dnsmessage.RCodeNameError, nil
			}
			return dnsmessage.RCodeSuccess, answers // a dangling alias
		}
		if n.servfail {
			return dnsmessage.RCodeServerFailure, nil
		}
		hdr := dnsmessage.ResourceHeader{Name: owner, Class: dnsmessage.ClassINET}
		if n.cname != "" {
			target := mustName(n.cname)
			answers = append(answers, dnsmessage.Resource{Header: hdr, Body: &dnsmessage.CNAMEResource{CNAME: target}})
			if q.Type == dnsmessage.TypeCNAME {
				return dnsmessage.RCodeSuccess, answers
			}
			owner, key = target, n.cname
			continue
		}
		for _, b := range n.records(q.Type) {
			answers = append(answers, dnsmessage.Resource{Header: hdr, Body: b})
		}
		return dnsmessage.RCodeSuccess, answers
	}
	return dnsmessage.RCodeServerFailure, nil // an alias loop
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
