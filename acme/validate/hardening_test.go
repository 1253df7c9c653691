package validate

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
)

// publicValidator is a validator whose DNS answers the public address 8.8.8.8 for
// www.example.fi, and whose dialer connects that address to the loopback test
// server: the validator believes it talks to a public server.
func publicValidator(t *testing.T, srvPort int, cfg Config) (*Validator, *dialLog) {
	t.Helper()
	dns := startDNS(t)
	dns.SetA("www.example.fi", "8.8.8.8")
	dns.SetA("intranet.example.fi", "10.1.2.3")
	dns.SetA("other.example.fi", "8.8.4.4")
	cfg.HTTPPort = srvPort
	cfg.AllowedNets = append(cfg.AllowedNets, loopback...)
	v, log := newValidator(t, dns, cfg)
	dial := v.dial
	v.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, _ := net.SplitHostPort(addr)
		if host == "8.8.8.8" || host == "8.8.4.4" || host == "10.1.2.3" {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return dial(ctx, network, addr)
	}
	return v, log
}

// TestHTTP01RedirectFromPublicIntoAllowedRangeIsRefused: --validation-allow opens
// 10.0.0.0/8 for internal names, but a public name's redirect may not lead there,
// or the CA would read internal pages for anyone.
func TestHTTP01RedirectFromPublicIntoAllowedRangeIsRefused(t *testing.T) {
	var redirectTo string
	srv := serveHTTP(t, "127.0.0.1:0", false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host == hostPortOf("www.example.fi", 0) || strings.HasPrefix(r.Host, "www.example.fi") {
			http.Redirect(w, r, redirectTo, http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte("SECRET internal page"))
	}))
	v, log := publicValidator(t, srv.port(), Config{AllowedNets: prefixes("10.0.0.0/8")})

	redirectTo = "http://" + hostPortOf("intranet.example.fi", srv.port()) + "/admin"
	err := v.HTTP01(context.Background(), "www.example.fi", token, keyAuth)
	checkErr(t, err, acme.Connection, "intranet.example.fi", "non-public")
	for _, d := range log.list() {
		if strings.HasPrefix(d, "10.") {
			t.Errorf("the validator dialled %s, inside the allowed range, after a redirect from a public name", d)
		}
	}

	// A redirect to another public host is followed, but what it answers is not
	// echoed: neither its status nor its page.
	redirectTo = "http://" + hostPortOf("other.example.fi", srv.port()) + "/page"
	err = v.HTTP01(context.Background(), "www.example.fi", token, keyAuth)
	checkErr(t, err, acme.IncorrectResponse, "redirect target")
	if ae, _ := acme.AsError(err); ae != nil && (strings.Contains(ae.Detail, "SECRET") || strings.Contains(ae.Detail, "403")) {
		t.Errorf("the detail echoes the redirect target's answer: %s", ae.Detail)
	}
}

// TestNamesAreNotResolvedThroughEtcHosts: "localhost" is in every /etc/hosts; the
// validator asks only its configured DNS server, which does not know it.
func TestNamesAreNotResolvedThroughEtcHosts(t *testing.T) {
	dns := startDNS(t)
	srv := serveHTTP(t, "127.0.0.1:0", false, body(keyAuth))
	v, log := newValidator(t, dns, Config{HTTPPort: srv.port(), AllowedNets: loopback, Timeout: 2 * time.Second})
	err := v.HTTP01(context.Background(), "localhost", token, keyAuth)
	checkErr(t, err, acme.DNS, "localhost")
	if d := log.list(); len(d) != 0 {
		t.Errorf("the validator dialled %v for a name only /etc/hosts knows", d)
	}
}

// TestValidationsAreBounded: with every slot taken, a validation waits until its
// deadline and then answers rateLimited, saying why.
func TestValidationsAreBounded(t *testing.T) {
	dns := startDNS(t)
	dns.SetA("www.example.fi", "127.0.0.1")
	srv := serveHTTP(t, "127.0.0.1:0", false, body(keyAuth))
	v, log := newValidator(t, dns, Config{HTTPPort: srv.port(), AllowedNets: loopback, MaxConcurrent: 2, Timeout: 200 * time.Millisecond})
	for range 2 {
		v.slots <- struct{}{} // two validations running
	}
	checkErr(t, v.HTTP01(context.Background(), "www.example.fi", token, keyAuth), acme.RateLimited, "maximum of 2 validations at once")
	checkErr(t, v.DNS01(context.Background(), "www.example.fi", keyAuth), acme.RateLimited, "maximum of 2")
	if d := log.list(); len(d) != 0 {
		t.Errorf("a validation without a slot dialled %v", d)
	}
	<-v.slots // one ends
	checkErr(t, v.HTTP01(context.Background(), "www.example.fi", token, keyAuth), "")
}
