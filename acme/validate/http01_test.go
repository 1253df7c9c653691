package validate

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
)

func TestHTTP01Response(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		kind    acme.ErrorKind
		details []string
	}{
		{"exact key authorization succeeds", body(keyAuth), "", nil},
		{"trailing newline is tolerated", body(keyAuth + "\n"), "", nil},
		{"trailing spaces, tabs and CRLF are tolerated", body(keyAuth + " \t\r\n \n"), "", nil},
		{"256 bytes padded with newlines succeed", body(keyAuth + strings.Repeat("\n", 256-len(keyAuth))), "", nil},
		{"wrong content is an incorrect response that echoes it", body("nope"), acme.IncorrectResponse, []string{`answered "nope"`, keyAuth}},
		{"empty body is an incorrect response", body(""), acme.IncorrectResponse, []string{`answered ""`}},
		{"leading junk is refused", body("x" + keyAuth), acme.IncorrectResponse, []string{`answered "x` + keyAuth}},
		{"leading whitespace is refused", body(" " + keyAuth), acme.IncorrectResponse, nil},
		{"trailing junk other than whitespace is refused", body(keyAuth + "\x00"), acme.IncorrectResponse, []string{`\x00"`}},
		{"trailing vertical tab is refused", body(keyAuth + "\v"), acme.IncorrectResponse, []string{`\v"`}},
		{"key authorization of another token is refused", body("other.thumbprint-xyz"), acme.IncorrectResponse, nil},
		{"257 bytes are too large", body(keyAuth + strings.Repeat("\n", 257-len(keyAuth))), acme.IncorrectResponse, []string{"larger than 256 bytes"}},
		{"404 is an incorrect response naming the status", redirect("", http.StatusNotFound), acme.IncorrectResponse, []string{"HTTP 404 Not Found"}},
		{"500 with the right body is refused", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(keyAuth))
		}, acme.IncorrectResponse, []string{"HTTP 500 Internal Server Error"}},
		{"the server's reason phrase is not echoed", func(w http.ResponseWriter, r *http.Request) {
			c, buf, _ := http.NewResponseController(w).Hijack()
			defer c.Close()
			buf.WriteString("HTTP/1.1 403 <script>x</script>\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			buf.Flush()
		}, acme.IncorrectResponse, []string{"HTTP 403 Forbidden"}},
		{"304 is not a redirect to follow", redirect("/elsewhere", http.StatusNotModified), acme.IncorrectResponse, []string{"HTTP 304"}},
		{"garbage instead of HTTP is a connection problem", func(w http.ResponseWriter, r *http.Request) {
			c, buf, _ := http.NewResponseController(w).Hijack()
			defer c.Close()
			buf.WriteString("\x16\x03\x01garbage\r\n\r\n")
			buf.Flush()
		}, acme.Connection, []string{"did not send a valid HTTP response"}},
	}

	dns := startDNS(t)
	dns.SetA("www.example.fi", "127.0.0.1")
	var h atomic.Value
	srv := serveHTTP(t, "127.0.0.1:0", false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.Load().(http.HandlerFunc)(w, r)
	}))
	v, _ := newValidator(t, dns, Config{HTTPPort: srv.port(), AllowedNets: loopback})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.Store(tt.handler)
			checkErr(t, v.HTTP01(context.Background(), "www.example.fi", token, keyAuth), tt.kind, tt.details...)
		})
	}
}

func TestHTTP01EchoIsShortAndEscaped(t *testing.T) {
	content := "\x1b[31m\u202e" + strings.Repeat("A", 200)
	dns := startDNS(t)
	dns.SetA("www.example.fi", "127.0.0.1")
	srv := serveHTTP(t, "127.0.0.1:0", false, body(content))
	v, _ := newValidator(t, dns, Config{HTTPPort: srv.port(), AllowedNets: loopback})

	err := v.HTTP01(context.Background(), "www.example.fi", token, keyAuth)
	checkErr(t, err, acme.IncorrectResponse, strconv.Quote(content[:maxEcho])+" (cut)")
	detail := err.(*acme.Error).Detail
	for _, bad := range []string{"\x1b", "\u202e", strings.Repeat("A", maxEcho)} {
		if strings.Contains(detail, bad) {
			t.Errorf("detail %q contains %q", detail, bad)
		}
	}
}

func TestHTTP01Request(t *testing.T) {
	dns := startDNS(t)
	dns.SetA("www.example.fi", "127.0.0.1")
	var mu sync.Mutex
	var got *http.Request
	srv := serveHTTP(t, "127.0.0.1:0", false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r
		mu.Unlock()
		w.Write([]byte(keyAuth))
	}))
	v, _ := newValidator(t, dns, Config{HTTPPort: srv.port(), AllowedNets: loopback})
	checkErr(t, v.HTTP01(context.Background(), "WWW.Example.FI.", token, keyAuth), "")

	mu.Lock()
	defer mu.Unlock()
	tests := []struct{ name, got, want string }{
		{"method", got.Method, http.MethodGet},
		{"path", got.URL.Path, "/.well-known/acme-challenge/" + token},
		{"host header is the lower-case name with the port", got.Host, hostPortOf("www.example.fi", srv.port())},
		{"user agent", got.UserAgent(), "varmenne-validator"},
		{"no compression asked", got.Header.Get("Accept-Encoding"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

// countingConn counts the bytes the validator reads off the wire.
type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read.Add(int64(n))
	return n, err
}

func TestHTTP01LargeBodyIsNotRead(t *testing.T) {
	const size = 10 << 20
	dns := startDNS(t)
	dns.SetA("www.example.fi", "127.0.0.1")
	srv := serveHTTP(t, "127.0.0.1:0", false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		chunk := []byte(strings.Repeat(keyAuth, 32<<10/len(keyAuth)+1)[:32<<10])
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return // the validator hung up, as it should
			}
		}
	}))
	v, _ := newValidator(t, dns, Config{HTTPPort: srv.port(), AllowedNets: loopback})
	var read atomic.Int64
	dial := v.dial
	v.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c, &read}, nil
	}

	checkErr(t, v.HTTP01(context.Background(), "www.example.fi", token, keyAuth), acme.IncorrectResponse, "larger than 256 bytes")
	// The transport reads the wire through a 4 KiB buffer: headers and one buffer of
	// body at most, never the 10 MB.
	if n := read.Load(); n > 8<<10 {
		t.Errorf("read %d bytes off the wire, want at most 8 KiB", n)
	}
}

// TestHTTP01RefusesNonPublic: a name resolving only to non-public addresses is
// refused before any connection; a loopback listener on the port proves it.
func TestHTTP01RefusesNonPublic(t *testing.T) {
	tests := []struct {
		name    string
		a       []string
		aaaa    []string
		allowed []netip.Prefix
		details []string
	}{
		{"loopback 127.0.0.1", []string{"127.0.0.1"}, nil, nil, []string{"resolves only to 127.0.0.1, a non-public address; validation does not connect there"}},
		{"private 10.0.0.1", []string{"10.0.0.1"}, nil, nil, []string{"only to 10.0.0.1,"}},
		{"private 192.168.1.1", []string{"192.168.1.1"}, nil, nil, []string{"only to 192.168.1.1,"}},
		{"cloud metadata 169.254.169.254", []string{"169.254.169.254"}, nil, nil, []string{"only to 169.254.169.254,"}},
		{"carrier-grade NAT 100.64.0.1", []string{"100.64.0.1"}, nil, nil, []string{"only to 100.64.0.1,"}},
		{"unspecified 0.0.0.0, which Linux connects to the local host", []string{"0.0.0.0"}, nil, nil, []string{"only to 0.0.0.0,"}},
		{"IPv6 loopback ::1", nil, []string{"::1"}, nil, []string{"only to ::1,"}},
		{"IPv6 unique local fc00::1", nil, []string{"fc00::1"}, nil, []string{"only to fc00::1,"}},
		{"IPv6 link-local fe80::1", nil, []string{"fe80::1"}, nil, []string{"only to fe80::1,"}},
		{"IPv4-mapped loopback ::ffff:127.0.0.1", nil, []string{"::ffff:127.0.0.1"}, nil, []string{"only to 127.0.0.1,"}},
		{"IPv4-mapped metadata ::ffff:169.254.169.254", nil, []string{"::ffff:169.254.169.254"}, nil, []string{"only to 169.254.169.254,"}},
		{"both loopbacks", []string{"127.0.0.1"}, []string{"::1"}, nil, []string{"127.0.0.1", "::1", "non-public addresses"}},
		{"loopback while only 192.168.0.0/16 is allowed", []string{"127.0.0.1"}, nil,
			[]netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}, []string{"only to 127.0.0.1,"}},
	}

	dns := startDNS(t)
	srv4 := serveHTTP(t, "127.0.0.1:0", false, body(keyAuth))
	var srv6 *countingListener
	if l, err := net.Listen("tcp", hostPortOf("::1", srv4.port())); err == nil {
		l.Close()
		srv6 = serveHTTP(t, hostPortOf("::1", srv4.port()), false, body(keyAuth))
	} else {
		t.Logf("no IPv6 loopback listener (%v); ::1 is checked by the dial log only", err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("n%d.example.fi", i)
			dns.SetA(name, tt.a...)
			dns.SetAAAA(name, tt.aaaa...)
			v, dials := newValidator(t, dns, Config{HTTPPort: srv4.port(), AllowedNets: tt.allowed})

			checkErr(t, v.HTTP01(context.Background(), name, token, keyAuth), acme.Connection, append(tt.details, name)...)
			if d := dials.list(); len(d) != 0 {
				t.Errorf("dialled %v", d)
			}
			if n := srv4.accepts.Load(); n != 0 {
				t.Errorf("the 127.0.0.1 listener accepted %d connections", n)
			}
			if srv6 != nil && srv6.accepts.Load() != 0 {
				t.Errorf("the ::1 listener accepted %d connections", srv6.accepts.Load())
			}
		})
	}
}

// TestHTTP01AllowedNets: an operator's allowed range is reached, and only the allowed
// address of a name is dialled.
func TestHTTP01AllowedNets(t *testing.T) {
	tests := []struct {
		name    string
		a       []string
		aaaa    []string
		allowed []string
	}{
		{"loopback inside an allowed range", []string{"127.0.0.1"}, nil, []string{"127.0.0.0/8"}},
		{"only the allowed of two addresses is dialled", []string{"10.0.0.1", "127.0.0.1"}, nil, []string{"127.0.0.1/32"}},
		{"IPv4-mapped answer and IPv4-mapped allowed range", nil, []string{"::ffff:127.0.0.1"}, []string{"::ffff:127.0.0.0/104"}},
	}
	dns := startDNS(t)
	srv := serveHTTP(t, "127.0.0.1:0", false, body(keyAuth))
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("n%d.example.fi", i)
			dns.SetA(name, tt.a...)
			dns.SetAAAA(name, tt.aaaa...)
			var allowed []netip.Prefix
			for _, p := range tt.allowed {
				allowed = append(allowed, netip.MustParsePrefix(p))
			}
			v, dials := newValidator(t, dns, Config{HTTPPort: srv.port(), AllowedNets: allowed})
			checkErr(t, v.HTTP01(context.Background(), name, token, keyAuth), "")
			if d, want := dials.list(), []string{hostPortOf("127.0.0.1", srv.port())}; !slices.Equal(d, want) {
				t.Errorf("dialled %v, want %v", d, want)
			}
		})
	}
}

func TestHTTP01DNSFailures(t *testing.T) {
	dns := startDNS(t)
	dns.SetServfail("broken.example.fi")
	dns.SetTXT("noaddr.example.fi", "v=spf1 -all")
	dns.SetCNAME("dangling.example.fi", "nowhere.example.fi")
	srv := serveHTTP(t, "127.0.0.1:0", false, body(keyAuth))

	tests := []struct {
		name    string
		host    string
		details []string
	}{
		{"NXDOMAIN", "missing.example.fi", []string{"missing.example.fi does not exist in DNS"}},
		{"SERVFAIL", "broken.example.fi", []string{"broken.example.fi failed: the DNS server answered SERVFAIL"}},
		{"name without addresses", "noaddr.example.fi", []string{"noaddr.example.fi"}},
		{"CNAME to a missing name", "dangling.example.fi", []string{"dangling.example.fi"}},
	}
	v, dials := newValidator(t, dns, Config{HTTPPort: srv.port(), AllowedNets: loopback})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := dns.Queries()
			checkErr(t, v.HTTP01(context.Background(), tt.host, token, keyAuth), acme.DNS, tt.details...)
			if dns.Queries() == before {
				t.Error("the test DNS server was not asked")
			}
		})
	}

	t.Run("DNS server that never answers times out at the deadline", func(t *testing.T) {
		quiet, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer quiet.Close()
		v, err := New(Config{Resolver: quiet.LocalAddr().String(), HTTPPort: srv.port(), AllowedNets: loopback, Timeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		checkErr(t, v.HTTP01(context.Background(), "www.example.fi", token, keyAuth), acme.DNS, "no answer within the validation deadline")
	})
	if d := dials.list(); len(d) != 0 || srv.accepts.Load() != 0 {
		t.Errorf("dialled %v after DNS failures", d)
	}
}

// TestHTTP01Rebinding: the name answers 127.0.0.2 (allowed) first and 127.0.0.3 after;
// only the first, checked address may ever be dialled.
func TestHTTP01Rebinding(t *testing.T) {
	first := serveHTTP(t, "127.0.0.2:0", false, body(keyAuth))
	second := serveHTTP(t, hostPortOf("127.0.0.3", first.port()), false, body(keyAuth))
	dns := startDNS(t)
	dns.SetSequence("rebind.example.fi", "A", []string{"127.0.0.2"}, []string{"127.0.0.3"})
	v, dials := newValidator(t, dns, Config{
		HTTPPort:    first.port(),
		AllowedNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
	})

	checkErr(t, v.HTTP01(context.Background(), "rebind.example.fi", token, keyAuth), "")
	if d, want := dials.list(), []string{hostPortOf("127.0.0.2", first.port())}; !slices.Equal(d, want) {
		t.Errorf("dialled %v, want %v", d, want)
	}
	if first.accepts.Load() != 1 || second.accepts.Load() != 0 {
		t.Errorf("accepts: 127.0.0.2 %d, 127.0.0.3 %d; want 1 and 0", first.accepts.Load(), second.accepts.Load())
	}
}

func TestHTTP01Redirects(t *testing.T) {
	dns := startDNS(t)
	dns.SetA("www.example.fi", "127.0.0.1")
	dns.SetA("other.example.fi", "127.0.0.1")
	dns.SetA("private.example.fi", "10.0.0.1")
	dns.SetSequence("rebind.example.fi", "A", []string{"127.0.0.1"}, []string{"127.0.0.3"})

	var h atomic.Value
	srv := serveHTTP(t, "127.0.0.1:0", false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/final" {
			w.Write([]byte(keyAuth))
			return
		}
		h.Load().(http.HandlerFunc)(w, r)
	}))
	tlsSrv := serveHTTP(t, "127.0.0.1:0", true, body(keyAuth))
	P, Q := srv.port(), tlsSrv.port()
	self := func(host string) string { return hostPortOf(host, P) }

	// chain answers n redirects through /r/1 ... /r/n-1 to /final, each an absolute
	// URL, so every hop is resolved again.
	chain := func(n int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			k := 0
			if s, ok := strings.CutPrefix(r.URL.Path, "/r/"); ok {
				k, _ = strconv.Atoi(s)
			}
			next := fmt.Sprintf("http://%s/r/%d", self("www.example.fi"), k+1)
			if k+1 == n {
				next = "http://" + self("www.example.fi") + "/final"
			}
			http.Redirect(w, r, next, http.StatusFound)
		}
	}

	tests := []struct {
		name      string
		host      string // validated name; "" is www.example.fi
		handler   http.HandlerFunc
		kind      acme.ErrorKind
		details   []string
		wantDials int
	}{
		{"10 redirects are followed", "", chain(10), "", nil, 11},
		{"11 redirects are refused", "", chain(11), acme.Connection, []string{"too many redirects", "after 10 redirects"}, 11},
		{"relative redirect is followed", "", redirect("/final", http.StatusMovedPermanently), "", nil, 2},
		{"307 and 308 are followed", "", redirect("/final", http.StatusPermanentRedirect), "", nil, 2},
		{"redirect to another name is resolved and followed", "", redirect("http://"+self("other.example.fi")+"/final", http.StatusFound), "", nil, 2},
		{"redirect to a name with a non-public address is refused", "", redirect("http://"+self("private.example.fi")+"/final", http.StatusFound),
			acme.Connection, []string{"private.example.fi resolves only to 10.0.0.1"}, 1},
		{"redirect to the same name, which now resolves elsewhere, is checked again", "rebind.example.fi", redirect("http://"+self("rebind.example.fi")+"/final", http.StatusFound),
			acme.Connection, []string{"rebind.example.fi resolves only to 127.0.0.3"}, 1},
		{"redirect to a missing name is a DNS problem", "", redirect("http://"+self("missing.example.fi")+"/final", http.StatusFound),
			acme.DNS, []string{"missing.example.fi"}, 1},
		{"redirect to port 8080 is refused", "", redirect("http://www.example.fi:8080/final", http.StatusFound),
			acme.Connection, []string{"port 8080 is not allowed", fmt.Sprintf("http redirects may only go to port %d", P)}, 1},
		{"redirect to port 80 when the http port is another is refused", "", redirect("http://www.example.fi/final", http.StatusFound),
			acme.Connection, []string{"port 80 is not allowed"}, 1},
		{"redirect to ftp is refused", "", redirect("ftp://www.example.fi/final", http.StatusFound),
			acme.Connection, []string{"only http and https redirects"}, 1},
		{"redirect to an IPv4 literal is refused", "", redirect("http://"+self("127.0.0.1")+"/final", http.StatusFound),
			acme.Connection, []string{"the host is an IP address"}, 1},
		{"redirect to an IPv6 literal is refused", "", redirect("http://"+self("::1")+"/final", http.StatusFound),
			acme.Connection, []string{"the host is an IP address"}, 1},
		{"redirect to an IPv6 literal with a zone is refused", "", redirect("http://[fe80::1%25eth0]:"+strconv.Itoa(P)+"/final", http.StatusFound),
			acme.Connection, []string{"the host is an IP address"}, 1},
		{"redirect to an invalid name is refused", "", redirect("http://bad_name.example.fi/final", http.StatusFound),
			acme.Connection, []string{"not a valid DNS name"}, 1},
		{"redirect without Location is refused", "", redirect("", http.StatusFound),
			acme.Connection, []string{"without a Location header"}, 1},
		{"redirect to https on the https port with a self-signed certificate is followed", "",
			redirect("https://"+hostPortOf("www.example.fi", Q)+"/final", http.StatusFound), "", nil, 2},
		{"redirect to https on the http port is refused", "", redirect("https://"+self("www.example.fi")+"/final", http.StatusFound),
			acme.Connection, []string{fmt.Sprintf("port %d is not allowed; https redirects may only go to port %d", P, Q)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.Store(tt.handler)
			v, dials := newValidator(t, dns, Config{HTTPPort: P, HTTPSPort: Q, AllowedNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
			host := cmp.Or(tt.host, "www.example.fi")
			checkErr(t, v.HTTP01(context.Background(), host, token, keyAuth), tt.kind, tt.details...)
			d := dials.list()
			if len(d) != tt.wantDials {
				t.Errorf("dialled %d times (%v), want %d", len(d), d, tt.wantDials)
			}
			for _, a := range d {
				if a != self("127.0.0.1") && a != hostPortOf("127.0.0.1", Q) {
					t.Errorf("dialled %s", a)
				}
			}
		})
	}
}

// TestHTTP01NetworkFailures: every way of not answering ends in a connection problem
// within the deadline, and leaves no connection behind.
func TestHTTP01NetworkFailures(t *testing.T) {
	const timeout = 300 * time.Millisecond
	dns := startDNS(t)
	dns.SetA("www.example.fi", "127.0.0.1")

	closed := listen(t, "127.0.0.1:0")
	closedPort := closed.port()
	closed.Close()

	drip := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "200")
		rc := http.NewResponseController(w)
		for range 200 {
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			rc.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	hang := silent(t, "127.0.0.1:0")

	tests := []struct {
		name    string
		port    func() (httpPort, httpsPort int)
		details []string
	}{
		{"connection refused", func() (int, int) { return closedPort, 0 }, []string{"from 127.0.0.1 failed: connection refused"}},
		{"listener that accepts and never answers", func() (int, int) { return hang.port(), 0 }, []string{"no complete answer within the validation deadline of 300ms"}},
		{"slow drip of one byte per 100 ms", func() (int, int) {
			return serveHTTP(t, "127.0.0.1:0", false, http.HandlerFunc(drip)).port(), 0
		}, []string{"reading the answer", "no complete answer within the validation deadline"}},
		{"TLS handshake that never completes", func() (int, int) {
			p := serveHTTP(t, "127.0.0.1:0", false, redirect("https://"+hostPortOf("www.example.fi", hang.port())+"/", http.StatusFound)).port()
			return p, hang.port()
		}, []string{"https://", "no complete answer within the validation deadline"}},
		{"TLS 1.1 only server", func() (int, int) {
			l := listen(t, "127.0.0.1:0")
			srv := &http.Server{
				Handler:   body(keyAuth),
				TLSConfig: &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11},
				ErrorLog:  log.New(io.Discard, "", 0), // the refused handshake is expected
			}
			cert, key := testCert(t)
			go srv.ServeTLS(l, cert, key)
			t.Cleanup(func() { srv.Close() })
			p := serveHTTP(t, "127.0.0.1:0", false, redirect("https://"+hostPortOf("www.example.fi", l.port())+"/", http.StatusFound)).port()
			return p, l.port()
		}, []string{"TLS handshake failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			httpPort, httpsPort := tt.port()
			v, _ := newValidator(t, dns, Config{HTTPPort: httpPort, HTTPSPort: httpsPort, AllowedNets: loopback, Timeout: timeout})
			checkErr(t, v.HTTP01(context.Background(), "www.example.fi", token, keyAuth), acme.Connection, tt.details...)
		})
	}
	waitNoClientConns(t)
}

func TestHTTP01Malformed(t *testing.T) {
	dns := startDNS(t)
	v, _ := newValidator(t, dns, Config{})
	tests := []struct {
		name, host, token, detail string
	}{
		{"IPv6 address with a zone", "fe80::1%eth0", token, "without a zone"},
		{"IPv4-mapped IPv6 address", "::ffff:127.0.0.1", token, "without a zone"},
		{"IP address with a bad token", "127.0.0.1", "../../admin", "not base64url"},
		{"wildcard name", "*.example.fi", token, "wildcard"},
		{"name with a space", "www example.fi", token, "not a valid DNS name"},
		{"empty name", "", token, "not a valid DNS name"},
		{"label over 63 bytes", strings.Repeat("a", 64) + ".fi", token, "not a valid DNS name"},
		{"token with a path", "www.example.fi", "../../admin", "not base64url"},
		{"empty token", "www.example.fi", "", "not base64url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, v.HTTP01(context.Background(), tt.host, tt.token, keyAuth), acme.Malformed, tt.detail)
		})
	}
	if n := dns.Queries(); n != 0 {
		t.Errorf("%d DNS queries for malformed input", n)
	}
}
