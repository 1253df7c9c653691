package dnsserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// typeCAA is RR type 257 (RFC 8659); dnsmessage has no constant for it.
const typeCAA = dnsmessage.Type(257)

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// exchange sends one query over network ("udp" or "tcp"), optionally with an EDNS(0)
// OPT record, and returns the parsed response.
func exchange(t *testing.T, addr, network, name string, typ dnsmessage.Type, edns bool) dnsmessage.Message {
	t.Helper()
	q := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: 4242, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}},
	}
	if edns {
		var h dnsmessage.ResourceHeader
		if err := h.SetEDNS0(1232, dnsmessage.RCodeSuccess, false); err != nil {
			t.Fatal(err)
		}
		q.Additionals = []dnsmessage.Resource{{Header: h, Body: &dnsmessage.OPTResource{}}}
	}
	msg, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65535)
	var n int
	if network == "tcp" {
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:2]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint16(buf[:2]))
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			t.Fatal(err)
		}
	} else {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if n, err = c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	var resp dnsmessage.Message
	if err := resp.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	if resp.ID != 4242 || !resp.Response || len(resp.Questions) != 1 || resp.Questions[0] != q.Questions[0] {
		t.Fatalf("response header or question does not match the query: %+v", resp)
	}
	return resp
}

// show renders answers as comparable strings.
func show(rrs []dnsmessage.Resource) []string {
	var out []string
	for _, rr := range rrs {
		switch b := rr.Body.(type) {
		case *dnsmessage.AResource:
			out = append(out, fmt.Sprintf("%s A %d.%d.%d.%d", rr.Header.Name, b.A[0], b.A[1], b.A[2], b.A[3]))
		case *dnsmessage.AAAAResource:
			out = append(out, fmt.Sprintf("%s AAAA %s", rr.Header.Name, net.IP(b.AAAA[:])))
		case *dnsmessage.CNAMEResource:
			out = append(out, fmt.Sprintf("%s CNAME %s", rr.Header.Name, b.CNAME))
		case *dnsmessage.TXTResource:
			out = append(out, fmt.Sprintf("%s TXT %q", rr.Header.Name, b.TXT))
		case *dnsmessage.UnknownResource:
			d := b.Data
			out = append(out, fmt.Sprintf("%s TYPE%d flag=%d %s %q", rr.Header.Name, b.Type, d[0], d[2:2+d[1]], d[2+d[1]:]))
		default:
			out = append(out, fmt.Sprintf("%s %v", rr.Header.Name, rr.Header.Type))
		}
	}
	return out
}

func TestAnswers(t *testing.T) {
	setup := func(s *Server) {
		s.SetA("WWW.Example.FI.", "192.0.2.1", "192.0.2.2")
		s.SetAAAA("www.example.fi", "2001:db8::1")
		s.SetTXT("_acme-challenge.example.fi", "abc", strings.Repeat("x", 300))
		s.SetCNAME("alias.example.fi", "www.example.fi")
		s.SetCNAME("dangling.example.fi", "nowhere.example.fi")
		s.SetCNAME("loop1.example.fi", "loop2.example.fi")
		s.SetCNAME("loop2.example.fi", "loop1.example.fi")
		s.SetCAA("example.fi", 0, "issue", "ca.example")
		s.SetCAA("example.fi", 128, "tbs", "x")
		s.SetServfail("broken.example.fi")
		s.SetA("empty.example.fi")
		s.SetTXT("raw.example.fi", `back\slash "quoted" \065 `+"\xff\x00")
		s.SetCAA("raw.example.fi", 0, `is\sue`, `ca.example; a=\b`)
	}
	tests := []struct {
		name      string
		qname     string
		qtype     dnsmessage.Type
		wantRCode dnsmessage.RCode
		want      []string
	}{
		{"A records of a name set in mixed case with a trailing dot", "www.example.fi.", dnsmessage.TypeA, dnsmessage.RCodeSuccess,
			[]string{"www.example.fi. A 192.0.2.1", "www.example.fi. A 192.0.2.2"}},
		{"question in upper case is answered and echoed as asked", "WWW.EXAMPLE.FI.", dnsmessage.TypeA, dnsmessage.RCodeSuccess,
			[]string{"WWW.EXAMPLE.FI. A 192.0.2.1", "WWW.EXAMPLE.FI. A 192.0.2.2"}},
		{"AAAA record", "www.example.fi.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess,
			[]string{"www.example.fi. AAAA 2001:db8::1"}},
		{"TXT over 255 bytes is split into character-strings", "_acme-challenge.example.fi.", dnsmessage.TypeTXT, dnsmessage.RCodeSuccess,
			[]string{`_acme-challenge.example.fi. TXT ["abc"]`,
				fmt.Sprintf("_acme-challenge.example.fi. TXT [%q %q]", strings.Repeat("x", 255), strings.Repeat("x", 45))}},
		{"CAA records are raw type 257 in the order set", "example.fi.", typeCAA, dnsmessage.RCodeSuccess,
			[]string{`example.fi. TYPE257 flag=0 issue "ca.example"`, `example.fi. TYPE257 flag=128 tbs "x"`}},
		{"TXT bytes are carried as set, backslashes and all", "raw.example.fi.", dnsmessage.TypeTXT, dnsmessage.RCodeSuccess,
			[]string{`raw.example.fi. TXT ["back\\slash \"quoted\" \\065 \xff\x00"]`}},
		{"CAA bytes are carried as set", "raw.example.fi.", typeCAA, dnsmessage.RCodeSuccess,
			[]string{`raw.example.fi. TYPE257 flag=0 is\sue "ca.example; a=\\b"`}},
		{"CNAME is followed to the target's records", "alias.example.fi.", dnsmessage.TypeA, dnsmessage.RCodeSuccess,
			[]string{"alias.example.fi. CNAME www.example.fi.", "www.example.fi. A 192.0.2.1", "www.example.fi. A 192.0.2.2"}},
		{"CNAME query gets only the CNAME", "alias.example.fi.", dnsmessage.TypeCNAME, dnsmessage.RCodeSuccess,
			[]string{"alias.example.fi. CNAME www.example.fi."}},
		{"CNAME to an unknown name gives the CNAME alone", "dangling.example.fi.", dnsmessage.TypeA, dnsmessage.RCodeSuccess,
			[]string{"dangling.example.fi. CNAME nowhere.example.fi."}},
		{"CNAME loop is SERVFAIL", "loop1.example.fi.", dnsmessage.TypeA, dnsmessage.RCodeServerFailure, nil},
		{"known name without records of the type is NOERROR and empty", "example.fi.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, nil},
		{"name set with no addresses is NOERROR and empty", "empty.example.fi.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, nil},
		{"unknown name is NXDOMAIN", "other.example.fi.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
		{"parent of a known name is not known by itself", "fi.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
		{"SERVFAIL name", "broken.example.fi.", dnsmessage.TypeA, dnsmessage.RCodeServerFailure, nil},
	}
	s := start(t)
	setup(s)
	for _, network := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(network+"/"+tt.name, func(t *testing.T) {
				resp := exchange(t, s.Addr(), network, tt.qname, tt.qtype, true)
				if resp.RCode != tt.wantRCode {
					t.Errorf("rcode %v, want %v", resp.RCode, tt.wantRCode)
				}
				if !resp.Authoritative {
					t.Error("answer is not authoritative")
				}
				if got := show(resp.Answers); !slices.Equal(got, tt.want) {
					t.Errorf("answers\n got %q\nwant %q", got, tt.want)
				}
			})
		}
	}
}

// resolver is a Go resolver that sends every query to s, over TCP only when
// forceTCP, otherwise over the network the resolver asks for.
func resolver(s *Server, forceTCP bool) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		if forceTCP {
			network = "tcp"
		}
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr())
	}}
}

func TestGoResolver(t *testing.T) {
	s := start(t)
	s.SetA("www.example.fi", "192.0.2.1")
	s.SetAAAA("www.example.fi", "2001:db8::1")
	s.SetCNAME("alias.example.fi", "www.example.fi")
	s.SetTXT("txt.example.fi", strings.Repeat("y", 600))
	s.SetServfail("broken.example.fi")
	many := make([]string, 100)
	for i := range many {
		many[i] = fmt.Sprintf("192.0.2.%d", i+1)
	}
	s.SetA("many.example.fi", many...)

	ctx := context.Background()
	for _, network := range []string{"udp", "tcp"} {
		r := resolver(s, network == "tcp")
		t.Run(network+"/addresses through a CNAME", func(t *testing.T) {
			ips, err := r.LookupHost(ctx, "alias.example.fi.")
			slices.Sort(ips)
			if err != nil || !slices.Equal(ips, []string{"192.0.2.1", "2001:db8::1"}) {
				t.Errorf("got %v, %v", ips, err)
			}
		})
		t.Run(network+"/long TXT comes back whole", func(t *testing.T) {
			txt, err := r.LookupTXT(ctx, "txt.example.fi.")
			if err != nil || len(txt) != 1 || txt[0] != strings.Repeat("y", 600) {
				t.Errorf("got %d values, %v", len(txt), err)
			}
		})
		t.Run(network+"/100 A records, more than one UDP answer carries, come back whole", func(t *testing.T) {
			ips, err := r.LookupHost(ctx, "many.example.fi.")
			if err != nil || len(ips) != 100 {
				t.Errorf("got %d addresses, %v", len(ips), err)
			}
		})
		t.Run(network+"/NXDOMAIN is not found", func(t *testing.T) {
			_, err := r.LookupHost(ctx, "nothing.example.fi.")
			if de, ok := err.(*net.DNSError); !ok || !de.IsNotFound {
				t.Errorf("got %v, want a not-found DNS error", err)
			}
		})
		t.Run(network+"/SERVFAIL is temporary", func(t *testing.T) {
			_, err := r.LookupHost(ctx, "broken.example.fi.")
			if de, ok := err.(*net.DNSError); !ok || !de.IsTemporary || de.IsNotFound {
				t.Errorf("got %v, want a temporary DNS error", err)
			}
		})
	}
}

func TestTruncatesOverUDP(t *testing.T) {
	s := start(t)
	many := make([]string, 60)
	for i := range many {
		many[i] = fmt.Sprintf("192.0.2.%d", i+1)
	}
	s.SetA("many.example.fi", many...)
	tests := []struct {
		name          string
		network       string
		edns          bool
		wantTruncated bool
	}{
		{"UDP without EDNS is capped at 512 bytes", "udp", false, true},
		{"UDP with EDNS 1232 carries 60 records", "udp", true, false},
		{"TCP carries 60 records", "tcp", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := exchange(t, s.Addr(), tt.network, "many.example.fi.", dnsmessage.TypeA, tt.edns)
			if resp.Truncated != tt.wantTruncated {
				t.Errorf("truncated %v, want %v", resp.Truncated, tt.wantTruncated)
			}
			if want := map[bool]int{true: 0, false: 60}[tt.wantTruncated]; len(resp.Answers) != want {
				t.Errorf("%d answers, want %d", len(resp.Answers), want)
			}
		})
	}
}

func TestSequenceClearAndCount(t *testing.T) {
	s := start(t)
	s.SetA("rebind.example.fi", "192.0.2.9")
	s.SetSequence("rebind.example.fi", "a", []string{"192.0.2.1"}, []string{"127.0.0.1", "127.0.0.2"})
	s.SetAAAA("rebind.example.fi", "2001:db8::1")

	want := [][]string{
		{"rebind.example.fi. A 192.0.2.1"},
		{"rebind.example.fi. A 127.0.0.1", "rebind.example.fi. A 127.0.0.2"},
		{"rebind.example.fi. A 127.0.0.1", "rebind.example.fi. A 127.0.0.2"},
	}
	for i, w := range want {
		t.Run(fmt.Sprintf("A query %d gets answer %d", i+1, min(i, 1)+1), func(t *testing.T) {
			if got := show(exchange(t, s.Addr(), "udp", "rebind.example.fi.", dnsmessage.TypeA, true).Answers); !slices.Equal(got, w) {
				t.Errorf("got %q, want %q", got, w)
			}
		})
	}
	t.Run("AAAA queries do not advance the A sequence", func(t *testing.T) {
		got := show(exchange(t, s.Addr(), "udp", "rebind.example.fi.", dnsmessage.TypeAAAA, true).Answers)
		if !slices.Equal(got, []string{"rebind.example.fi. AAAA 2001:db8::1"}) {
			t.Errorf("got %q", got)
		}
	})
	t.Run("SetA replaces the sequence", func(t *testing.T) {
		s.SetA("rebind.example.fi", "192.0.2.9")
		got := show(exchange(t, s.Addr(), "tcp", "rebind.example.fi.", dnsmessage.TypeA, true).Answers)
		if !slices.Equal(got, []string{"rebind.example.fi. A 192.0.2.9"}) {
			t.Errorf("got %q", got)
		}
	})
	t.Run("Clear makes the name NXDOMAIN", func(t *testing.T) {
		s.Clear("REBIND.example.fi.")
		if rc := exchange(t, s.Addr(), "udp", "rebind.example.fi.", dnsmessage.TypeA, true).RCode; rc != dnsmessage.RCodeNameError {
			t.Errorf("rcode %v, want NXDOMAIN", rc)
		}
	})
	t.Run("Queries counts every answered query", func(t *testing.T) {
		if got := s.Queries(); got != 6 {
			t.Errorf("Queries() = %d, want 6", got)
		}
	})
}

func TestConcurrentUseAndClose(t *testing.T) {
	s := start(t)
	r := resolver(s, false)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			name := fmt.Sprintf("n%d.example.fi", i)
			for j := range 20 {
				s.SetA(name, fmt.Sprintf("192.0.2.%d", j+1))
				if _, err := r.LookupNetIP(context.Background(), "ip4", name+"."); err != nil {
					t.Errorf("lookup %s: %v", name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if s.Queries() < 160 {
		t.Errorf("Queries() = %d, want at least 160", s.Queries())
	}

	// A TCP client left connected must not keep Close waiting.
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read on a connection after Close: %v, want EOF", err)
	}
}

func TestBadInputPanics(t *testing.T) {
	s := start(t)
	tests := []struct {
		name string
		call func()
	}{
		{"IPv6 address as A", func() { s.SetA("x.example.fi", "2001:db8::1") }},
		{"not an IP address", func() { s.SetAAAA("x.example.fi", "example") }},
		{"empty name", func() { s.SetA("", "192.0.2.1") }},
		{"label over 63 bytes", func() { s.SetTXT(strings.Repeat("a", 64)+".fi", "v") }},
		{"sequence of an unsupported type", func() { s.SetSequence("x.example.fi", "MX", []string{"a"}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tt.call()
		})
	}
}
