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
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/bench"
	"github.com/varmenne/varmenne/store"
	"github.com/varmenne/varmenne/store/pgtest"
)

// BenchmarkIssuance issues b.N certificates with 8 orders in flight from the load
// generator (package bench, the library behind varmenne-bench) against "varmenne
// serve" run in this process (file P-256 issuer), on the embedded default (sqlite)
// and on a private PostgreSQL cluster with its durable defaults (postgres), so that
// go test -cpuprofile shows the server's issuance path:
//
//	go test -run '^$' -bench Issuance -benchtime 300x -cpuprofile cpu.out ./cmd/varmenne/
//	go tool pprof -tagfocus side=server -top cpu.out   # the server's share only
//
// cpu-ms/cert is the CPU time of this process (server and load generator) and of
// PostgreSQL per certificate; stmts/cert and commits/cert count the server's SQL
// statements committed read-write transactions, read-only
// transactions and connections opened (store.Counts).
func BenchmarkIssuance(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchIssuance(b, "", nil) })
	b.Run("postgres", func(b *testing.B) {
		c, err := pgtest.Start()
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.Stop)
		b.ResetTimer()
		benchIssuance(b, c.NewDatabase(b), []int{c.Pid()})
	})
}

func benchIssuance(b *testing.B, db string, pids []int) {
	s := startBenchServer(b, db)
	cfg := func(n int) bench.Config {
		return bench.Config{Directory: s.dir, Roots: s.roots(b), EAB: s.eabKeys(b, 1), Orders: n, Concurrency: 8,
			Domain: "bench.example", HTTP01: s.http01, DNS: s.dnsAdr}
	}
	if _, err := bench.Run(context.Background(), cfg(16)); err != nil { // warm-up
		b.Fatal(err)
	}
	c := cfg(b.N)
	c.ServerPIDs = append([]int{os.Getpid()}, pids...)
	before := store.Counts()

	b.ResetTimer()
	rep, err := bench.Run(context.Background(), c)
	if err != nil {
		b.Fatal(err)
	}
	if rep.Failed > 0 {
		b.Fatalf("%d orders failed: %v", rep.Failed, rep.FirstErrors)
	}
	after := store.Counts()
	b.ReportMetric(rep.CertsPerSec, "certs/s")
	b.ReportMetric(rep.ServerCPUPerCert*1000, "cpu-ms/cert")
	b.ReportMetric(float64(after.Statements-before.Statements)/float64(rep.Issued), "stmts/cert")
	b.ReportMetric(float64(after.Commits-before.Commits)/float64(rep.Issued), "commits/cert")
	b.ReportMetric(float64(after.ReadTxs-before.ReadTxs)/float64(rep.Issued), "readtx/cert")
	b.ReportMetric(float64(after.Connects-before.Connects)/float64(rep.Issued), "connects/cert")
	b.ReportMetric(rep.Step(bench.StepOrder).P50, "p50-ms")
	b.ReportMetric(rep.Step(bench.StepOrder).P99, "p99-ms")
}

// benchServer is "varmenne serve" run in this process on the embedded default,
// pointed at a load generator's responder ports.
type benchServer struct {
	data, dir, db  string
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

// db is serve's --db: "" for SQLite.
func startBenchServer(tb testing.TB, db string) *benchServer {
	tb.Helper()
	s := &benchServer{data: filepath.Join(tb.TempDir(), "data"), db: db, http01: freeAddr(tb), dnsAdr: freeAddr(tb)}
	_, httpPort, _ := net.SplitHostPort(s.http01)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr syncBuffer
	done := make(chan error, 1)
	// The server's goroutines carry the label side=server into CPU profiles.
	go pprof.Do(ctx, pprof.Labels("side", "server"), func(ctx context.Context) {
		done <- run(ctx, []string{"serve", "--data", s.data, "--db", s.db, "--listen", "127.0.0.1:0", "--ops-listen", "", "--public-listen", "127.0.0.1:0",
			"--admin-listen", "", "--dev-key-type", "ecdsa-p256", "--log-format", "json", "--http01-port", httpPort, "--dns-resolver", s.dnsAdr, "--dnssec-insecure", "example",
			"--validation-allow", "127.0.0.0/8", "--limit-new-orders-per-account", "0", "--limit-certificates-per-organisation", "0",
			"--limit-pending-authorizations", "0"}, pw, &stderr)
		pw.Close()
	})
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
	st, err := (&dbFlags{url: s.db}).open(ctx, s.data, existing)
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
