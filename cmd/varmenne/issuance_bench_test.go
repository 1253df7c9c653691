package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
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

// BenchmarkIssuance issues b.N certificates with 8 orders in flight from the load
// generator (package bench, the library behind varmenne-bench) against "varmenne
// serve" run in this process (SQLite, file P-256 issuer), so that go test
// -cpuprofile shows the server's issuance path:
//
//	go test -run '^$' -bench Issuance -benchtime 300x -cpuprofile cpu.out ./cmd/varmenne/
func BenchmarkIssuance(b *testing.B) {
	s := startBenchServer(b)
	cfg := func(n int) bench.Config {
		return bench.Config{Directory: s.dir, Roots: s.roots(b), EAB: s.eabKeys(b, 1), Orders: n, Concurrency: 8,
			Domain: "bench.example", HTTP01: s.http01, DNS: s.dnsAdr}
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

func startBenchServer(tb testing.TB) *benchServer {
	tb.Helper()
	s := &benchServer{data: filepath.Join(tb.TempDir(), "data"), http01: freeAddr(tb), dnsAdr: freeAddr(tb)}
	_, httpPort, _ := net.SplitHostPort(s.http01)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--data", s.data, "--listen", "127.0.0.1:0", "--ops-listen", "", "--public-listen", "127.0.0.1:0",
			"--admin-listen", "", "--dev-key-type", "ecdsa-p256", "--log-format", "json", "--http01-port", httpPort, "--dns-resolver", s.dnsAdr,
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

// roots is the trust serve wrote for its clients.
func (s *benchServer) roots(tb testing.TB) *x509.CertPool {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(s.data, "roots.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		tb.Fatal("roots.pem holds no certificate")
	}
	return pool
}

// eabKeys adds the test organisation (bench.example) when it is missing and makes n
// approved EAB keys for it in the server's database.
func (s *benchServer) eabKeys(tb testing.TB, n int) []bench.EAB {
	tb.Helper()
	ctx := context.Background()
	st, err := new(dbFlags).open(ctx, s.data, existing)
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	err = st.AddOrganisation(ctx, store.Organisation{OID: testOID, Name: "Bench Oy", LongName: "Bench Oy", Domains: []string{"bench.example"}, CreatedAt: time.Now()})
	if err != nil && !errors.Is(err, store.ErrDuplicate) {
		tb.Fatal(err)
	}
	keys := make([]bench.EAB, n)
	for i := range keys {
		kid, mac := make([]byte, 16), make([]byte, 32)
		rand.Read(kid)
		rand.Read(mac)
		k := store.EABKey{KID: base64.RawURLEncoding.EncodeToString(kid), OrgOID: testOID, HMACKey: mac, Status: store.EABApproved, CreatedAt: time.Now()}
		if err := st.CreateEAB(ctx, k); err != nil {
			tb.Fatal(err)
		}
		keys[i] = bench.EAB{KID: k.KID, HMAC: k.HMACKey}
	}
	return keys
}
