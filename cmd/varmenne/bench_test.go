package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/bench"
	"github.com/varmenne/varmenne/store"
)

// benchServer is "varmenne serve" run in this process on the embedded default,
// pointed at a load generator's responder ports.
type benchServer struct {
	data, dir      string
	http01, dnsAdr string
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startBenchServer(tb testing.TB, keyType string) *benchServer {
	tb.Helper()
	s := &benchServer{data: filepath.Join(tb.TempDir(), "data"), http01: freeAddr(tb), dnsAdr: freeAddr(tb)}
	_, httpPort, _ := net.SplitHostPort(s.http01)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--data", s.data, "--listen", "127.0.0.1:0", "--ops-listen", "", "--public-listen", "127.0.0.1:0",
			"--dev-key-type", keyType, "--log-format", "json", "--http01-port", httpPort, "--dns-resolver", s.dnsAdr,
			"--validation-allow", "127.0.0.0/8", "--limit-new-orders-per-account", "0", "--limit-certificates-per-organisation", "0",
			"--limit-pending-authorizations", "0"}, pw, &stderr)
		pw.Close()
	}()
	tb.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			tb.Error("serve did not stop")
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if _, url, ok := strings.Cut(sc.Text(), "ACME directory: "); ok {
				found <- strings.TrimSpace(url)
			}
		}
	}()
	select {
	case s.dir = <-found:
	case err := <-done:
		tb.Fatalf("serve returned %v; stderr: %s", err, stderr.String())
	case <-time.After(30 * time.Second):
		tb.Fatalf("serve did not start; stderr: %s", stderr.String())
	}
	return s
}

func (s *benchServer) args(extra ...string) []string {
	return append([]string{"bench", "--directory", s.dir, "--data", s.data, "--local-org", testOID, "--domain", "bench.example",
		"--http01-listen", s.http01, "--dns-listen", s.dnsAdr, "--quiet"}, extra...)
}

// TestBenchIssuesAgainstALocalServer runs "varmenne bench" against a local server:
// it makes the EAB keys in the server's database, every order gets a certificate
// that the server stored, and the report says so in text and in JSON.
func TestBenchIssuesAgainstALocalServer(t *testing.T) {
	isolate(t)
	s := startBenchServer(t, "ecdsa-p256")
	for _, mode := range []string{"tight", "stock"} {
		t.Run(mode, func(t *testing.T) {
			before := countCertificates(t, s.data)
			err, stdout, stderr := runCmd(t, s.args("--accounts", "2", "--orders", "6", "--concurrency", "3", "--mode", mode, "--json")...)
			if err != nil {
				t.Fatalf("bench: %v; stderr: %s", err, stderr)
			}
			var rep bench.Report
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("--json printed %q: %v", stdout, err)
			}
			if rep.Issued != 6 || rep.Failed != 0 || rep.Accounts != 2 || rep.Mode != mode || rep.CertsPerSec <= 0 {
				t.Fatalf("report %+v, want 6 issued by 2 accounts in %s mode, none failed", rep, mode)
			}
			for _, st := range rep.Steps {
				if st.P50 <= 0 || st.P99 < st.P50 || st.Max < st.P99 {
					t.Errorf("step %s: p50 %v p99 %v max %v", st.Step, st.P50, st.P99, st.Max)
				}
			}
			if o := rep.Step(bench.StepOrder); o.P50 < rep.Step(bench.StepFinalize).P50 {
				t.Errorf("a whole order (p50 %v ms) took less than its finalize (p50 %v ms)", o.P50, rep.Step(bench.StepFinalize).P50)
			}
			if got := countCertificates(t, s.data) - before; got != 6 {
				t.Errorf("the server stored %d certificates, want 6", got)
			}
		})
	}
	t.Run("text report with server CPU", func(t *testing.T) {
		err, stdout, stderr := runCmd(t, s.args("--orders", "2", "--concurrency", "1", "--server-pid", fmt.Sprint(os.Getpid()))...)
		if err != nil {
			t.Fatalf("bench: %v; stderr: %s", err, stderr)
		}
		for _, want := range []string{"issued 2 of 2", "certificates/s", "server CPU", "newOrder", "challenge", "finalize", "download", "order"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("report lacks %q:\n%s", want, stdout)
			}
		}
	})
	t.Run("an order the server refuses is counted by its problem type", func(t *testing.T) {
		err, stdout, stderr := runCmd(t, s.args("--orders", "2", "--concurrency", "1", "--profile", "no-such-profile", "--json")...)
		if err != nil {
			t.Fatalf("bench: %v; stderr: %s", err, stderr)
		}
		var rep bench.Report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Failed != 2 || rep.Errors["urn:ietf:params:acme:error:invalidProfile"] != 2 {
			t.Errorf("failed %d, errors %v; want 2 invalidProfile", rep.Failed, rep.Errors)
		}
	})
	t.Run("a named profile is asked for", func(t *testing.T) {
		err, stdout, stderr := runCmd(t, s.args("--orders", "1", "--concurrency", "1", "--profile", "sote-server-test", "--json")...)
		if err != nil {
			t.Fatalf("bench: %v; stderr: %s", err, stderr)
		}
		var rep bench.Report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.Issued != 1 {
			t.Fatalf("report %s: %v", stdout, err)
		}
	})
}

func TestBenchRefusesBadFlags(t *testing.T) {
	isolate(t)
	data := newData(t)
	tests := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"unknown mode", []string{"--mode", "fast", "--eab", "k:AAAA"}, []string{"--mode", "fast", "tight", "stock"}},
		{"EAB without a colon", []string{"--eab", "kidonly"}, []string{"--eab", "KID:HMAC"}},
		{"EAB HMAC not base64url, not echoed", []string{"--eab", "kid:not base64!"}, []string{"--eab", "kid:…"}},
		{"EAB and local org", []string{"--eab", "k:AAAA", "--local-org", testOID, "--data", data}, []string{"either --eab", "--local-org"}},
		{"local org that is no OID", []string{"--local-org", "apteekki", "--data", data}, []string{"--local-org", "apteekki", "OID"}},
		{"server PID that is no number", []string{"--server-pid", "abc", "--eab", "k:AAAA"}, []string{"--server-pid", "abc"}},
		{"no orders", []string{"--orders", "0", "--eab", "k:AAAA"}, []string{"orders 0"}},
		{"unknown key type", []string{"--key", "dsa", "--eab", "k:AAAA"}, []string{"dsa", "p256"}},
		{"local org without a database", []string{"--local-org", testOID, "--data", filepath.Join(t.TempDir(), "none")}, []string{"no database"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err, stdout, _ := runCmd(t, append([]string{"bench", "--directory", "https://127.0.0.1:1/acme/directory"}, tt.args...)...)
			wantOneLineError(t, err, tt.wants...)
			if strings.Contains(fmt.Sprint(err), "not base64") {
				t.Errorf("the HMAC key is echoed: %v", err)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
		})
	}
}

func countCertificates(t *testing.T, data string) int {
	t.Helper()
	st := openData(t, data)
	defer st.Close()
	c, err := st.CountOrganisation(context.Background(), testOID)
	if errors.Is(err, store.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return c.Certificates
}

// BenchmarkIssuance issues b.N certificates with 8 orders in flight from the
// load generator against a server in this process (SQLite, file P-256 issuer), so
// that go test -cpuprofile shows the server's issuance path:
//
//	go test -run '^$' -bench Issuance -benchtime 300x -cpuprofile cpu.out ./cmd/varmenne/
func BenchmarkIssuance(b *testing.B) {
	s := startBenchServer(b, "ecdsa-p256")
	cfg := func(n int) bench.Config {
		keys, err := benchLocalEAB(context.Background(), "", s.data, testOID, "bench.example", 1)
		if err != nil {
			b.Fatal(err)
		}
		pool, err := benchRoots("", s.data)
		if err != nil {
			b.Fatal(err)
		}
		return bench.Config{Directory: s.dir, Roots: pool, EAB: keys, Orders: n, Concurrency: 8, Domain: "bench.example",
			HTTP01: s.http01, DNS: s.dnsAdr}
	}
	if _, err := bench.Run(context.Background(), cfg(16)); err != nil { // warm-up
		b.Fatal(err)
	}
	c := cfg(b.N)
	b.ResetTimer()
	rep, err := bench.Run(context.Background(), c)
	if err != nil {
		b.Fatal(err)
	}
	if rep.Failed > 0 {
		b.Fatalf("%d orders failed: %v", rep.Failed, rep.FirstErrors)
	}
	b.ReportMetric(rep.CertsPerSec, "certs/s")
	b.ReportMetric(rep.Step(bench.StepOrder).P50, "p50-ms")
	b.ReportMetric(rep.Step(bench.StepOrder).P99, "p99-ms")
}
