package validate

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/test/dnsserver"
)

func TestDNS01Value(t *testing.T) {
	// RFC 8555 section 8.4: base64url(SHA-256(keyAuthorization)), no padding. The
	// expected value was computed independently with Python's hashlib.
	ka := "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
	if got, want := DNS01Value(ka), "lCM7cZyQXcVHK2nnW3jjAhNT3Fvm18UN-kWZZknKoYM"; got != want {
		t.Errorf("DNS01Value = %q, want %q", got, want)
	}
}

func TestDNS01(t *testing.T) {
	good := DNS01Value(keyAuth)
	tests := []struct {
		name    string
		setup   func(d *dnsserver.Server)
		ask     string
		kind    acme.ErrorKind
		details []string
	}{
		{"the expected TXT value succeeds", func(d *dnsserver.Server) {
			d.SetTXT("_acme-challenge.www.example.fi", good)
		}, "www.example.fi", "", nil},
		{"one good value among several succeeds", func(d *dnsserver.Server) {
			d.SetTXT("_acme-challenge.www.example.fi", "stale-value", good, "another")
		}, "www.example.fi", "", nil},
		{"a wildcard is proven at its base name", func(d *dnsserver.Server) {
			d.SetTXT("_acme-challenge.example.fi", good)
		}, "*.example.fi", "", nil},
		{"the name is matched without regard to case", func(d *dnsserver.Server) {
			d.SetTXT("_acme-challenge.www.example.fi", good)
		}, "WWW.Example.FI.", "", nil},
		{"a CNAME delegated to a vendor's zone is followed", func(d *dnsserver.Server) {
			d.SetCNAME("_acme-challenge.www.example.fi", "www-example-fi.acme.vendor.example")
			d.SetTXT("www-example-fi.acme.vendor.example", good)
		}, "www.example.fi", "", nil},
		{"a chain of CNAMEs is followed", func(d *dnsserver.Server) {
			d.SetCNAME("_acme-challenge.www.example.fi", "a.vendor.example")
			d.SetCNAME("a.vendor.example", "b.vendor.example")
			d.SetCNAME("b.vendor.example", "c.vendor.example")
			d.SetTXT("c.vendor.example", good)
		}, "www.example.fi", "", nil},
		{"a wrong value is an incorrect response that quotes it", func(d *dnsserver.Server) {
			d.SetTXT("_acme-challenge.www.example.fi", "not-the-digest")
		}, "www.example.fi", acme.IncorrectResponse, []string{`"not-the-digest"`, `"` + good + `"`, "_acme-challenge.www.example.fi"}},
		{"the key authorization itself is not the value", func(d *dnsserver.Server) {
			d.SetTXT("_acme-challenge.www.example.fi", keyAuth)
		}, "www.example.fi", acme.IncorrectResponse, nil},
		{"a wrong value behind a CNAME names the alias", func(d *dnsserver.Server) {
			d.SetCNAME("_acme-challenge.www.example.fi", "x.vendor.example")
			d.SetTXT("x.vendor.example", "wrong")
		}, "www.example.fi", acme.IncorrectResponse, []string{"following CNAME to x.vendor.example", `"wrong"`}},
		{"many wrong values are quoted only in part", func(d *dnsserver.Server) {
			d.SetTXT("_acme-challenge.www.example.fi", "v1", "v2", "v3", "v4", "v5")
		}, "www.example.fi", acme.IncorrectResponse, []string{"and 2 more"}},
		{"the value at the host's label does not prove the base name", func(d *dnsserver.Server) {
			d.SetTXT("_acme-challenge.www.example.fi", good)
			d.SetA("example.fi", "192.0.2.1")
		}, "example.fi", acme.DNS, []string{"no such name (NXDOMAIN) at _acme-challenge.example.fi"}},
		{"the value at the base does not prove a host", func(d *dnsserver.Server) {
			d.SetTXT("_acme-challenge.example.fi", good)
		}, "www.example.fi", acme.DNS, []string{"_acme-challenge.www.example.fi"}},
		{"a name with other records but no TXT is a dns problem", func(d *dnsserver.Server) {
			d.SetA("_acme-challenge.www.example.fi", "192.0.2.1")
		}, "www.example.fi", acme.DNS, []string{"no TXT record at _acme-challenge.www.example.fi", good}},
		{"a dangling CNAME is a dns problem naming the alias", func(d *dnsserver.Server) {
			d.SetCNAME("_acme-challenge.www.example.fi", "gone.vendor.example")
		}, "www.example.fi", acme.DNS, []string{"gone.vendor.example"}},
		{"SERVFAIL is a dns problem", func(d *dnsserver.Server) {
			d.SetServfail("_acme-challenge.www.example.fi")
		}, "www.example.fi", acme.DNS, []string{"SERVFAIL"}},
		{"SERVFAIL at the CNAME target is a dns problem", func(d *dnsserver.Server) {
			d.SetCNAME("_acme-challenge.www.example.fi", "broken.vendor.example")
			d.SetServfail("broken.vendor.example")
		}, "www.example.fi", acme.DNS, []string{"SERVFAIL"}},
		{"a CNAME loop is a dns problem", func(d *dnsserver.Server) {
			d.SetCNAME("_acme-challenge.www.example.fi", "loop.vendor.example")
			d.SetCNAME("loop.vendor.example", "_acme-challenge.www.example.fi")
		}, "www.example.fi", acme.DNS, nil},
		{"an IP address is malformed", nil, "192.0.2.1", acme.Malformed, nil},
		{"a double wildcard is malformed", nil, "*.*.example.fi", acme.Malformed, nil},
		{"a name with an underscore is malformed", nil, "a_b.example.fi", acme.Malformed, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dns := startDNS(t)
			if tt.setup != nil {
				tt.setup(dns)
			}
			v, dials := newValidator(t, dns, Config{AllowedNets: loopback})
			checkErr(t, v.DNS01(context.Background(), tt.ask, keyAuth), tt.kind, tt.details...)
			if got := dials.list(); len(got) != 0 {
				t.Errorf("dns-01 opened connections to %v", got)
			}
		})
	}
}

func TestDNS01LongValueIsOneRecord(t *testing.T) {
	// A value over 255 bytes travels as several strings of one TXT record; they are
	// joined before comparing, so a long wrong value is still one (cut) echo.
	dns := startDNS(t)
	long := strings.Repeat("x", 300)
	dns.SetTXT("_acme-challenge.www.example.fi", long)
	v, _ := newValidator(t, dns, Config{})
	err := v.DNS01(context.Background(), "www.example.fi", keyAuth)
	checkErr(t, err, acme.IncorrectResponse, strconv.Quote(strings.Repeat("x", maxEcho))+" (cut)")
}

func TestDNS01EchoIsEscaped(t *testing.T) {
	dns := startDNS(t)
	dns.SetTXT("_acme-challenge.www.example.fi", "\x1b[31m\u202eevil")
	v, _ := newValidator(t, dns, Config{})
	err := v.DNS01(context.Background(), "www.example.fi", keyAuth)
	checkErr(t, err, acme.IncorrectResponse, `\x1b[31m\u202eevil`)
	if d := err.(*acme.Error).Detail; strings.ContainsAny(d, "\x1b\u202e") {
		t.Errorf("detail %q carries control characters", d)
	}
}

// silentDNS is a UDP "DNS server" that reads questions and never answers.
func silentDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

func TestDNS01TimeoutIsADNSProblem(t *testing.T) {
	v, err := New(Config{Resolver: silentDNS(t), Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The test's own deadline is far longer: the validator must give up by itself.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	checkErr(t, v.DNS01(ctx, "www.example.fi", keyAuth), acme.DNS, "no answer within the validation deadline of 300ms")
	if ctx.Err() != nil {
		t.Fatal("the validator ran until the test's deadline")
	}
}

func TestDNS01FallsBackToTCPForLargeAnswers(t *testing.T) {
	// 40 values of 100 bytes do not fit the 1232-byte UDP answer offered; the
	// server truncates and the answer must be fetched over TCP.
	dns := startDNS(t)
	var values []string
	for i := range 40 {
		values = append(values, strings.Repeat(strconv.Itoa(i%10), 100))
	}
	values = append(values, DNS01Value(keyAuth))
	dns.SetTXT("_acme-challenge.www.example.fi", values...)
	v, _ := newValidator(t, dns, Config{})
	checkErr(t, v.DNS01(context.Background(), "www.example.fi", keyAuth), "")
}
