package validate

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/test/dnsserver"
)

const (
	token   = "tok_123-ABC"
	keyAuth = "tok_123-ABC.thumbprint-xyz"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func startDNS(t *testing.T) *dnsserver.Server {
	t.Helper()
	s, err := dnsserver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// countingListener counts accepted connections: the proof that a connection was or
// was not made.
type countingListener struct {
	net.Listener
	accepts atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepts.Add(1)
	}
	return c, err
}

func (l *countingListener) port() int { return l.Addr().(*net.TCPAddr).Port }

func listen(t *testing.T, addr string) *countingListener {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return &countingListener{Listener: l}
}

// serveHTTP serves h on addr ("127.0.0.1:0", or a fixed port), over TLS when tls.
func serveHTTP(t *testing.T, addr string, useTLS bool, h http.Handler) *countingListener {
	t.Helper()
	l := listen(t, addr)
	s := httptest.NewUnstartedServer(h)
	s.Listener.Close()
	s.Listener = l
	if useTLS {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return l
}

// silent accepts connections and never answers, until the test ends.
func silent(t *testing.T, addr string) *countingListener {
	t.Helper()
	l := listen(t, addr)
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l
}

func body(s string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(s)) }
}

func redirect(location string, status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if location != "" {
			w.Header().Set("Location", location)
		}
		w.WriteHeader(status)
	}
}

// dialLog records every address the validator dials.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
}

func (d *dialLog) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// newValidator makes a validator that resolves through dns and logs its dials.
func newValidator(t *testing.T, dns *dnsserver.Server, cfg Config) (*Validator, *dialLog) {
	t.Helper()
	cfg.Resolver = dns.Addr()
	if cfg.TrustAnchors == "" && cfg.InsecureZones == nil {
		// The test server's plain zones: these tests are about other things;
		// dnssec_test.go serves signed zones.
		cfg.InsecureZones = []string{"."}
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := &dialLog{}
	dial := v.dial
	v.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		log.mu.Lock()
		log.addrs = append(log.addrs, addr)
		log.mu.Unlock()
		return dial(ctx, network, addr)
	}
	return v, log
}

// checkErr fails unless err is nil (kind "") or an *acme.Error of kind whose detail
// holds every one of details.
func checkErr(t *testing.T, err error, kind acme.ErrorKind, details ...string) {
	t.Helper()
	if kind == "" {
		if err != nil {
			t.Fatalf("got %v, want success", err)
		}
		return
	}
	ae, ok := acme.AsError(err)
	if !ok {
		t.Fatalf("got %v (%T), want an *acme.Error of kind %s", err, err, kind)
	}
	if ae.Kind != kind {
		t.Errorf("kind %s, want %s (detail %q)", ae.Kind, kind, ae.Detail)
	}
	for _, d := range details {
		if !strings.Contains(ae.Detail, d) {
			t.Errorf("detail %q does not contain %q", ae.Detail, d)
		}
	}
}

func hostPortOf(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// waitNoClientConns fails if a client connection of the validator's transport is
// still alive: after an attempt ends none may be left behind.
func waitNoClientConns(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		if !bytes.Contains(buf, []byte("net/http.(*persistConn)")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client connections left running:\n%s", buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
