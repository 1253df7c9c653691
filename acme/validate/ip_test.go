package validate

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"

	"github.com/varmenne/varmenne/acme"
)

// IP identifiers (RFC 8738): http-01 to the address itself with the address as Host,
// tls-alpn-01 with the reverse DNS name as SNI and the address as the one SAN, no
// DNS lookup, and the same rule on non-public addresses as for resolved names.

func TestHTTP01IPIdentifier(t *testing.T) {
	var mu sync.Mutex
	var hosts []string
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.Host)
		mu.Unlock()
		if r.URL.Path != "/.well-known/acme-challenge/"+token {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(keyAuth))
	})
	srv := serveHTTP(t, "127.0.0.1:0", false, handler)
	port := srv.port()

	t.Run("IPv4 address validates with the address as Host and no DNS query", func(t *testing.T) {
		dns := startDNS(t)
		v, dials := newValidator(t, dns, Config{HTTPPort: port, AllowedNets: loopback})
		checkErr(t, v.HTTP01(context.Background(), "127.0.0.1", token, keyAuth), "")
		mu.Lock()
		got := hosts[len(hosts)-1]
		mu.Unlock()
		if want := "127.0.0.1:" + strconv.Itoa(port); got != want {
			t.Errorf("Host header %q, want %q", got, want)
		}
		if d := dials.list(); len(d) != 1 || d[0] != hostPortOf("127.0.0.1", port) {
			t.Errorf("dialled %v, want only the identifier's address", d)
		}
		if n := dns.Queries(); n != 0 {
			t.Errorf("%d DNS queries for an IP identifier", n)
		}
	})
	t.Run("a wrong answer at the address is an incorrect response", func(t *testing.T) {
		dns := startDNS(t)
		v, _ := newValidator(t, dns, Config{HTTPPort: port, AllowedNets: loopback})
		checkErr(t, v.HTTP01(context.Background(), "127.0.0.1", token, "other.key-authorization"), acme.IncorrectResponse)
	})
	t.Run("a non-public address outside --validation-allow is never dialled", func(t *testing.T) {
		dns := startDNS(t)
		v, dials := newValidator(t, dns, Config{HTTPPort: port})
		checkErr(t, v.HTTP01(context.Background(), "127.0.0.1", token, keyAuth), acme.Connection, "127.0.0.1 is a non-public address")
		only10 := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		v2, dials2 := newValidator(t, dns, Config{HTTPPort: port, AllowedNets: only10})
		checkErr(t, v2.HTTP01(context.Background(), "169.254.169.254", token, keyAuth), acme.Connection, "non-public address")
		if len(dials.list())+len(dials2.list()) != 0 {
			t.Errorf("dialled %v %v", dials.list(), dials2.list())
		}
	})
	t.Run("IPv6 address is bracketed in the Host header", func(t *testing.T) {
		l, err := net.Listen("tcp", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback on this machine: %v", err)
		}
		l.Close()
		srv6 := serveHTTP(t, "[::1]:0", false, handler)
		dns := startDNS(t)
		v, _ := newValidator(t, dns, Config{HTTPPort: srv6.port(), AllowedNets: []netip.Prefix{netip.MustParsePrefix("::1/128")}})
		checkErr(t, v.HTTP01(context.Background(), "::1", token, keyAuth), "")
		mu.Lock()
		got := hosts[len(hosts)-1]
		mu.Unlock()
		if want := "[::1]:" + strconv.Itoa(srv6.port()); got != want {
			t.Errorf("Host header %q, want %q", got, want)
		}
	})
}

func TestHostPortBracketsIPv6(t *testing.T) {
	for _, tt := range []struct {
		host      string
		port, def int
		want      string
	}{
		{"www.example.fi", 80, 80, "www.example.fi"},
		{"192.0.2.1", 80, 80, "192.0.2.1"},
		{"2001:db8::1", 80, 80, "[2001:db8::1]"},
		{"2001:db8::1", 8080, 80, "[2001:db8::1]:8080"},
	} {
		if got := hostPort(tt.host, tt.port, tt.def); got != tt.want {
			t.Errorf("hostPort(%q, %d) = %q, want %q", tt.host, tt.port, got, tt.want)
		}
	}
}

func TestReverseName(t *testing.T) {
	for _, tt := range []struct{ ip, want string }{
		{"192.0.2.1", "1.2.0.192.in-addr.arpa"},
		{"127.0.0.1", "1.0.0.127.in-addr.arpa"},
		{"2001:db8::567:89ab", "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"},
	} {
		if got := reverseName(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("reverseName(%s) = %q, want %q", tt.ip, got, tt.want)
		}
	}
}

func TestTLSALPN01IPIdentifier(t *testing.T) {
	ip := net.IPv4(127, 0, 0, 1)
	good := acmeExt(OIDACMEIdentifier, true, keyAuth)
	tests := []struct {
		name    string
		cert    alpnCert
		kind    acme.ErrorKind
		details []string
	}{
		{"the address as the one iPAddress SAN validates", alpnCert{ips: []net.IP{ip}, exts: []pkix.Extension{good}}, "", nil},
		{"the address written as a DNS name is refused", alpnCert{dnsNames: []string{"127.0.0.1"}, exts: []pkix.Extension{good}},
			acme.Unauthorized, []string{"the IP address 127.0.0.1"}},
		{"the reverse name as a DNS name is refused", alpnCert{dnsNames: []string{"1.0.0.127.in-addr.arpa"}, exts: []pkix.Extension{good}},
			acme.Unauthorized, []string{"exactly one subjectAltName"}},
		{"another address is refused", alpnCert{ips: []net.IP{net.IPv4(127, 0, 0, 2)}, exts: []pkix.Extension{good}},
			acme.Unauthorized, []string{"127.0.0.2"}},
		{"a second SAN is refused", alpnCert{ips: []net.IP{ip}, dnsNames: []string{"www.example.fi"}, exts: []pkix.Extension{good}},
			acme.Unauthorized, []string{"it holds 2"}},
		{"another digest is an incorrect response", alpnCert{ips: []net.IP{ip}, exts: []pkix.Extension{acmeExt(OIDACMEIdentifier, true, "other")}},
			acme.IncorrectResponse, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, hellos := alpnResponder(t, &tls.Config{Certificates: []tls.Certificate{tt.cert.build(t)}, NextProtos: []string{ALPNProto}})
			dns := startDNS(t)
			v, _ := newValidator(t, dns, Config{TLSALPNPort: l.port(), AllowedNets: loopback})
			checkErr(t, v.TLSALPN01(context.Background(), "127.0.0.1", keyAuth), tt.kind, tt.details...)
			h := hellos()
			if len(h) != 1 || h[0].serverName != "1.0.0.127.in-addr.arpa" {
				t.Errorf("ClientHellos %+v, want one with SNI 1.0.0.127.in-addr.arpa", h)
			}
			if n := dns.Queries(); n != 0 {
				t.Errorf("%d DNS queries for an IP identifier", n)
			}
		})
	}
	t.Run("a non-public address outside --validation-allow is never dialled", func(t *testing.T) {
		dns := startDNS(t)
		v, dials := newValidator(t, dns, Config{TLSALPNPort: 1})
		checkErr(t, v.TLSALPN01(context.Background(), "127.0.0.1", keyAuth), acme.Connection, "non-public address")
		if d := dials.list(); len(d) != 0 {
			t.Errorf("dialled %v", d)
		}
	})
}
