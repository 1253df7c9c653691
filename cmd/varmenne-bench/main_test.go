package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/bench"
	"github.com/varmenne/varmenne/store"
	"github.com/varmenne/varmenne/test/harness"
)

const testOID = "1.2.246.10.12345678.10.0"

// TestMain builds the varmenne server binary the end-to-end test runs: the load
// generator is a command of its own and cannot start serve in this process.
func TestMain(m *testing.M) {
	cleanup, err := harness.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// isolate removes every VARMENNE_ variable for the test, so the caller's environment
// cannot change what the command does. Tests using it cannot run in parallel.
func isolate(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "VARMENNE_") {
			t.Setenv(k, "") // restores the value after the test
			os.Unsetenv(k)
		}
	}
}

// runCmd runs varmenne-bench with args and returns its error and outputs.
func runCmd(t *testing.T, args ...string) (err error, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, &out, &errOut)
	return err, out.String(), errOut.String()
}

// wantOneLineError fails unless err is one line holding every one of wants.
func wantOneLineError(t *testing.T, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", wants)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not mention %q", msg, w)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
}

// benchServer is a built `varmenne serve` pointed at the load generator's responder
// ports: its validation resolves through the generator's DNS server and connects to
// the generator's http-01 responder.
type benchServer struct {
	*harness.Instance
	http01, dnsAdr string
}

func startBenchServer(t *testing.T) *benchServer {
	t.Helper()
	s := &benchServer{http01: freeAddr(t), dnsAdr: freeAddr(t)}
	_, httpPort, _ := net.SplitHostPort(s.http01)
	// Later flags win: these replace the harness's own DNS server and http-01 port.
	s.Instance = harness.StartWith(t, "", "--http01-port", httpPort, "--dns-resolver", s.dnsAdr, "--dnssec-insecure", "example", "--dev-key-type", "ecdsa-p256",
		"--limit-new-orders-per-account", "0", "--limit-certificates-per-organisation", "0", "--limit-pending-authorizations", "0")
	return s
}

// loud is args without --quiet: the progress (here, not a terminal: the summary
// line) goes to stderr.
func (s *benchServer) loud(extra ...string) []string {
	return slices.DeleteFunc(s.args(extra...), func(a string) bool { return a == "--quiet" })
}

func (s *benchServer) args(extra ...string) []string {
	return append([]string{"--directory", s.Directory, "--data", s.Data, "--local-org", testOID, "--domain", "bench.example",
		"--http01-listen", s.http01, "--dns-listen", s.dnsAdr, "--quiet"}, extra...)
}

// TestBenchIssuesAgainstALocalServer runs varmenne-bench against a local server: it
// makes the EAB keys in the server's database, every order gets a certificate that
// the server stored, and the report says so in text and in JSON.
func TestBenchIssuesAgainstALocalServer(t *testing.T) {
	isolate(t)
	s := startBenchServer(t)
	for _, mode := range []string{"tight", "stock"} {
		t.Run(mode, func(t *testing.T) {
			before := countCertificates(t, s.Data)
			err, stdout, stderr := runCmd(t, s.args("--accounts", "2", "--orders", "6", "--concurrency", "3", "--mode", mode, "--json")...)
			if err != nil {
				t.Fatalf("varmenne-bench: %v; stderr: %s", err, stderr)
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
			if got := countCertificates(t, s.Data) - before; got != 6 {
				t.Errorf("the server stored %d certificates, want 6", got)
			}
		})
	}
	t.Run("text report with server CPU", func(t *testing.T) {
		err, stdout, stderr := runCmd(t, s.loud("--orders", "2", "--concurrency", "1", "--server-pid", fmt.Sprint(s.Cmd.Process.Pid))...)
		if err != nil {
			t.Fatalf("varmenne-bench: %v; stderr: %s", err, stderr)
		}
		for _, want := range []string{"issued 2 of 2", "certificates/s", "server CPU", "newOrder", "challenge", "finalize", "download", "order"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("report lacks %q:\n%s", want, stdout)
			}
		} // Not on a terminal: no progress line, one summary line on stderr.
		if !regexp.MustCompile(`^issuing certificates: 2 of 2 in [0-9.]+m?s \([0-9.]+/s\)\n$`).MatchString(stderr) {
			t.Errorf("stderr %q; want one summary line of the 2 orders", stderr)
		}
	})
	t.Run("the summary line counts the failed orders", func(t *testing.T) {
		err, _, stderr := runCmd(t, s.loud("--orders", "1", "--concurrency", "1", "--profile", "no-such-profile")...)
		if err != nil {
			t.Fatalf("varmenne-bench: %v; stderr: %s", err, stderr)
		}
		if !regexp.MustCompile(`^issuing certificates: 1 of 1 in [0-9.]+m?s \([0-9.]+/s\), 1 failed\n$`).MatchString(stderr) {
			t.Errorf("stderr %q; want one summary line with the failed order", stderr)
		}
	})
	t.Run("an order the server refuses is counted by its problem type", func(t *testing.T) {
		err, stdout, stderr := runCmd(t, s.args("--orders", "2", "--concurrency", "1", "--profile", "no-such-profile", "--json")...)
		if err != nil {
			t.Fatalf("varmenne-bench: %v; stderr: %s", err, stderr)
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
			t.Fatalf("varmenne-bench: %v; stderr: %s", err, stderr)
		}
		var rep bench.Report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.Issued != 1 {
			t.Fatalf("report %s: %v", stdout, err)
		}
	})
}

func TestBenchRefusesBadFlags(t *testing.T) {
	isolate(t)
	data := t.TempDir()
	secret, _ := store.GenerateEABSecret()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(data, "varmenne.db"), secret)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
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
		{"a database that is no PostgreSQL URL, not echoed", []string{"--local-org", testOID, "--db", "mysql://u:secret@h/db"}, []string{"--db", "postgres://"}},
		{"a positional argument", []string{"bench", "--eab", "k:AAAA"}, []string{`unexpected argument "bench"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err, stdout, _ := runCmd(t, append([]string{"--directory", "https://127.0.0.1:1/acme/directory"}, tt.args...)...)
			wantOneLineError(t, err, tt.wants...)
			if strings.Contains(fmt.Sprint(err), "not base64") || strings.Contains(fmt.Sprint(err), "secret") {
				t.Errorf("a secret is echoed: %v", err)
			}
			if stdout != "" {
				t.Errorf("stdout %q", stdout)
			}
		})
	}
}

// TestBenchFlagsFromEnvironment: every flag may come from VARMENNE_<FLAG>, as for
// varmenne's own commands.
func TestBenchFlagsFromEnvironment(t *testing.T) {
	isolate(t)
	t.Setenv("VARMENNE_MODE", "sprint")
	err, _, _ := runCmd(t, "--eab", "k:AAAA")
	wantOneLineError(t, err, "--mode", "sprint")
}

func countCertificates(t *testing.T, data string) int {
	t.Helper()
	secret, err := store.ReadEABSecretFile(filepath.Join(data, "eab-secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(context.Background(), filepath.Join(data, "varmenne.db"), secret)
	if err != nil {
		t.Fatal(err)
	}
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
