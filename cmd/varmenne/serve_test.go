package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/test/logbuf"
)

func TestServeRefusesBadFlagsBeforeStarting(t *testing.T) {
	isolate(t)
	tests := []struct {
		name  string
		flags []string
		wants []string
	}{
		{"--validation-allow without a prefix length", []string{"--validation-allow", "10.20.0.0"}, []string{"--validation-allow", `"10.20.0.0"`, "CIDR"}},
		{"--validation-allow with a prefix too long", []string{"--validation-allow", "10.20.0.0/33"}, []string{"--validation-allow", "10.20.0.0/33"}},
		{"--validation-allow with a name", []string{"--validation-allow", "10.0.0.0/8,intranet"}, []string{"--validation-allow", `"intranet"`}},
		{"--dns-resolver without a port", []string{"--dns-resolver", "127.0.0.1"}, []string{"--dns-resolver", `"127.0.0.1"`}},
		{"--dns-resolver with a host name", []string{"--dns-resolver", "dns.example:53"}, []string{"--dns-resolver", `"dns.example:53"`}},
		{"--dns-resolver with a named port", []string{"--dns-resolver", "127.0.0.1:domain"}, []string{"--dns-resolver", `"127.0.0.1:domain"`}},
		{"--log-format that is neither json nor text", []string{"--log-format", "yaml"}, []string{"--log-format", `"yaml"`, "json", "text"}},
		{"--http01-port out of range", []string{"--http01-port", "70000"}, []string{"70000"}},
		{"--validation-timeout negative", []string{"--validation-timeout", "-5s"}, []string{"-5s"}},
		{"--dev-key-type unknown", []string{"--dev-key-type", "rsa-1024"}, []string{"--dev-key-type", "rsa-1024"}},
		{"a negative rate limit", []string{"--limit-new-orders-per-account", "-1"}, []string{"limit-new-orders-per-account", `"-1"`, "0 for no limit"}},
		{"--chaos-reject-nonces above 1", []string{"--chaos-reject-nonces", "1.5"}, []string{"--chaos-reject-nonces", "1.5", "between 0 and 1"}},
		{"--chaos-reject-nonces negative", []string{"--chaos-reject-nonces", "-0.1"}, []string{"--chaos-reject-nonces", "-0.1", "between 0 and 1"}},
		{"--chaos-reject-nonces NaN", []string{"--chaos-reject-nonces", "NaN"}, []string{"--chaos-reject-nonces", "NaN", "between 0 and 1"}},
		{"--alternate-chain without a file", []string{"--alternate-chain", "production"}, []string{"--alternate-chain", `"production"`, "ISSUER=FILE"}},
		{"--alternate-chain of an unknown issuer", []string{"--alternate-chain", "staging=/dev/null"}, []string{"--alternate-chain", `"staging"`, "production or test"}},
		{"--alternate-chain of a missing file", []string{"--alternate-chain", "test=/nonexistent/chain.pem"}, []string{"--alternate-chain", "/nonexistent/chain.pem"}},
		{"--console-session-idle zero", []string{"--console-session-idle", "0s"}, []string{"--console-session-idle", "positive"}},
		{"--console-session-idle over the lifetime", []string{"--console-session-idle", "13h"}, []string{"--console-session-idle", "13h0m0s", "--console-session-lifetime", "12h0m0s"}},
		{"--admin-login-failures-per-source zero", []string{"--admin-login-failures-per-source", "0"}, []string{"--admin-login-failures-per-source", "1 or more"}},
		{"--admin-login-window too short", []string{"--admin-login-window", "30s"}, []string{"--admin-login-window", "30s", "1m to 24h"}},
		{"--listen unknown flag spelling", []string{"--listen-addr", "127.0.0.1:0"}, []string{"listen-addr"}},
		{"--tlsalpn01-port zero", []string{"--tlsalpn01-port", "0"}, []string{"--tlsalpn01-port", "0", "not a TCP port"}},
		{"--caa-identity that is no domain name", []string{"--caa-identity", "ca example"}, []string{"--caa-identity", "ca example"}},
		{"--authz-reuse over 720h", []string{"--authz-reuse", "721h"}, []string{"--authz-reuse", "721h0m0s", "720h0m0s"}},
		{"--authz-reuse negative", []string{"--authz-reuse", "-1h"}, []string{"--authz-reuse", "-1h0m0s"}},
		{"--caa-recheck-after over 8h", []string{"--caa-recheck-after", "9h"}, []string{"--caa-recheck-after", "9h0m0s", "8h0m0s"}},
		{"--pkcs11-module without a token", []string{"--pkcs11-module", "/nonexistent/libpkcs11.so"}, []string{"--pkcs11-module", "--pkcs11-token"}},
		{"--pkcs11-sessions zero", []string{"--pkcs11-module", "/nonexistent/libpkcs11.so", "--pkcs11-token", "t", "--pkcs11-sessions", "0"}, []string{"--pkcs11-sessions", "0"}},
		{"HSM keys without a register", []string{"--pkcs11-module", "/nonexistent/libpkcs11.so", "--pkcs11-token", "t"},
			[]string{"production (issuer keys in an HSM)", "--register-source is required"}},
		{"--production without a register", []string{"--production"}, []string{"production (--production)", "--register-source is required"}},
		{"--production with --dual-control=false", []string{"--production", "--dual-control=false", "--register-source", registerJSON},
			[]string{"production (--production)", "--dual-control=false"}},
		{"--production with a system signature chain without sote", []string{"--production", "--register-source", registerJSON, "--config",
			writeTemp(t, `{"profiles": {"sote-system-signature": {"description": "no conformity check", "kind": "system-signature", "plugins": [{"name": "names"}, {"name": "keys"}, {"name": "validity"}, {"name": "thl"}]}}}`)},
			[]string{"production (--production)", `profile "sote-system-signature"`, `{"name": "sote"}`}},
		{"--dnssec-anchors of a missing file", []string{"--dnssec-anchors", "/nonexistent/root.ds"}, []string{"--dnssec-anchors", "/nonexistent/root.ds"}},
		{"--dnssec-anchors with another record", []string{"--dnssec-anchors", writeTemp(t, "test. IN A 192.0.2.1\n")}, []string{"--dnssec-anchors", "A records are not trust anchors", "DS or DNSKEY"}},
		{"--dnssec-anchors with a zone-signing key", []string{"--dnssec-anchors", writeTemp(t, "test. IN DNSKEY 256 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n")}, []string{"--dnssec-anchors", "flags 256", "257"}},
		{"--dnssec-insecure that is no zone name", []string{"--dnssec-insecure", "a..b"}, []string{"--dnssec-insecure", `"a..b"`}},
		{"--config of a missing file", []string{"--config", "/nonexistent/profiles.json"}, []string{"/nonexistent/profiles.json"}},
		{"--config with an unknown key", []string{"--config", writeTemp(t, `{"profiles": {}, "default": "x"}`)}, []string{"unknown key", `"default"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { serveRefuses(t, tt.flags, tt.wants...) })
	}
}

// serveRefuses runs serve with flags and fails unless it stops before making
// anything, with one line that says each of wants, and prints nothing on stdout.
func serveRefuses(t *testing.T, flags []string, wants ...string) {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	args := append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0"}, flags...)
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- run(context.Background(), args, &stdout, &stderr) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("serve started instead of refusing")
	}
	wantOneLineError(t, err, wants...)
	if _, serr := os.Stat(data); !os.IsNotExist(serr) {
		t.Errorf("the data directory was made before the refusal (stat: %v)", serr)
	}
	if stdout.String() != "" {
		t.Errorf("stdout %q before the refusal", stdout.String())
	}
}

func TestServeStartsAndStops(t *testing.T) {
	isolate(t)
	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--ops-listen", "127.0.0.1:0", "--public-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--dev-key-type", "ecdsa-p256", "--log-format", "text"}, pw, &stderr)
		pw.Close()
	}()

	// Read stdout until the directory line; keep draining after it.
	lineRE := regexp.MustCompile(`ACME directory: (https://127\.0\.0\.1:(\d+)/acme/directory)$`)
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if m := lineRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m
				sent = true
			}
		}
		if !sent {
			close(found)
		}
	}()
	var m []string
	select {
	case m = <-found:
	case err := <-done:
		t.Fatalf("serve returned %v before printing the directory; stderr: %s", err, stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("no directory line within 15s; stderr: %s", stderr.String())
	}
	if m == nil {
		t.Fatalf("stdout ended without the directory line; stderr: %s", stderr.String())
	}
	if port, _ := strconv.Atoi(m[2]); port == 0 {
		t.Errorf("directory URL %s has port 0, not the port listened on", m[1])
	}

	roots, err := os.ReadFile(filepath.Join(data, "roots.pem"))
	if err != nil {
		t.Fatalf("roots.pem: %v", err)
	}
	pool := x509.NewCertPool()
	if block, _ := pem.Decode(roots); block == nil || block.Type != "CERTIFICATE" || !pool.AppendCertsFromPEM(roots) {
		t.Fatalf("roots.pem holds no certificate: %q", roots)
	}

	// The listener is up and trusted through roots.pem.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(m[1])
	if err != nil {
		t.Fatalf("GET %s: %v", m[1], err)
	}
	var dir acme.Directory
	err = json.NewDecoder(resp.Body).Decode(&dir)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || dir.NewAccount == "" {
		t.Errorf("directory: status %d %+v, %v", resp.StatusCode, dir, err)
	}
	client.CloseIdleConnections()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v after its context was cancelled, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop within 15s of its context being cancelled")
	}
	if _, err := os.Stat(dbPath(data)); err != nil {
		t.Errorf("no database after serve: %v", err)
	}
	// The database serve made is the one org add needs.
	if err, _, _ := runCmd(t, "org", "add", "--data", data, "--oid", testOID, "--name", "Apteekki Oy", "--domain", "apteekki.example"); err != nil {
		t.Errorf("org add after serve: %v", err)
	}
}

// syncBuffer is safe for the server's goroutines and the test.
type syncBuffer = logbuf.Buffer

// writeTemp writes content to a new file and returns its path.
func writeTemp(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestServeGCPercent: the server collects at serveGCPercent unless GOGC is set,
// and then leaves the runtime's setting (read from GOGC at start) alone.
func TestServeGCPercent(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	t.Setenv("GOGC", "")
	setGCPercent()
	if got := debug.SetGCPercent(100); got != serveGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, serveGCPercent)
	}

	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150) // what the runtime read from GOGC at start
	setGCPercent()
	if got := debug.SetGCPercent(100); got != 150 {
		t.Errorf("GOGC=150: GC percent %d, want 150 left as it was", got)
	}
}
