// Package clients is the client compatibility matrix (issue 10): every ACME client an
// organisation is likely to point at varmenne registers with EAB, obtains a
// certificate over http-01 (and dns-01 where it has a hook), renews it and revokes it,
// against the built binary. The matrix runs twice: plainly, and with the server
// refusing 10 % of valid nonces (--chaos-reject-nonces 0.1) to prove every client
// retries badNonce. The CLI clients and python3-acme (driven by testdata/pyacme) come
// from Debian packages and the Node.js client from npm; ./scripts/install-test-deps
// (make test runs it) installs them, and a missing one fails, it never skips.
package clients

import (
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	legolog "github.com/go-acme/lego/v4/log"
	"golang.org/x/crypto/ocsp"

	"github.com/varmenne/varmenne/profile"
	"github.com/varmenne/varmenne/test/harness"
)

func TestMain(m *testing.M) {
	legolog.Logger = log.New(io.Discard, "", 0) // the lego library logs every step to stderr
	cleanup, err := harness.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// env is one client's world: its own server (with or without chaos), an organisation
// with one approved domain, and an EAB key for it.
type env struct {
	t      *testing.T
	in     *harness.Instance
	chaos  bool
	oid    string
	domain string
	kid    string
	mac    string
	dir    string // the client's scratch directory
	// tlsALPNPort is the port the server's tls-alpn-01 validation connects to
	// (--tlsalpn01-port), the env's own as the http-01 port is.
	tlsALPNPort int
	// noRetry: the client is known not to retry badNonce (see the matrix); under
	// chaos, run stops the flow at the client's first failure, which must be the
	// refused nonce.
	noRetry bool
	resp    *harness.Responder // see responder
}

// responder is the env's one http-01 responder on the instance's port, started on
// first use.
func (e *env) responder() *harness.Responder {
	if e.resp == nil {
		e.resp = e.in.Responder()
	}
	return e.resp
}

// abortedOnBadNonce is what run panics with when a client known not to retry gave up
// on a refused nonce; the matrix recovers it.
type abortedOnBadNonce struct{ output string }

var orgSeq atomic.Int32

// newEnv starts a server for one client. chaos makes it refuse 10 % of valid nonces.
func newEnv(t *testing.T, client string, chaos bool, extra ...string) *env {
	t.Helper()
	if chaos {
		extra = append(extra, "--chaos-reject-nonces", "0.1")
	}
	tlsALPNPort := harness.FreePort(t)
	extra = append([]string{"--tlsalpn01-port", strconv.Itoa(tlsALPNPort)}, extra...)
	in := harness.StartWith(t, "", extra...)
	n := orgSeq.Add(1)
	e := &env{t: t, in: in, chaos: chaos,
		oid:         fmt.Sprintf("1.2.246.10.%08d.10.0", 44000000+n),
		domain:      client + ".example",
		dir:         t.TempDir(),
		tlsALPNPort: tlsALPNPort,
	}
	e.kid, e.mac = in.Org(e.oid, "Asiakasohjelma "+client, e.domain)
	return e
}

// name is a fresh name under the organisation's domain that resolves to loopback.
func (e *env) name(label string) string {
	n := label + "." + e.domain
	e.in.PointAt(n)
	return n
}

// run runs a client command, failing the test with its output and the server log.
func (e *env) run(cmd *exec.Cmd) string {
	e.t.Helper()
	began := time.Now()
	out, err := cmd.CombinedOutput()
	e.t.Logf("%s %s: %s", filepath.Base(cmd.Path), e.redact(strings.Join(cmd.Args[max(1, len(cmd.Args)-3):], " ")), time.Since(began).Round(time.Millisecond))
	if err != nil && e.chaos && e.noRetry {
		panic(abortedOnBadNonce{string(out)})
	}
	if err != nil {
		e.t.Fatalf("%s: %v\n%s\n--- server log ---\n%s", e.redact(strings.Join(cmd.Args, " ")), err, harness.Tail(out, 6000), harness.Tail([]byte(e.in.Logs.String()), 3000))
	}
	return string(out)
}

// redact hides the EAB HMAC key in a command line shown in a failure.
func (e *env) redact(s string) string { return strings.ReplaceAll(s, e.mac, "<eab-hmac>") }

// runStdout is run for a client that prints its result on stdout: its stderr goes
// only into the failure message.
func (e *env) runStdout(cmd *exec.Cmd) string {
	e.t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	began := time.Now()
	out, err := cmd.Output()
	e.t.Logf("%s: %s", filepath.Base(cmd.Path), time.Since(began).Round(time.Millisecond))
	if err != nil {
		e.t.Fatalf("%s: %v\n%s\n--- server log ---\n%s", e.redact(strings.Join(cmd.Args, " ")), err, harness.Tail([]byte(stderr.String()), 6000), harness.Tail([]byte(e.in.Logs.String()), 3000))
	}
	return string(out)
}

// cert reads a client's PEM file (leaf first, perhaps with the chain), checks that it
// verifies against roots.pem for name, carries the SOTE policy, and returns the leaf
// and its issuer. chainFile, when not empty, holds the intermediates separately.
func (e *env) cert(file, chainFile, name string) (leaf, issuer *x509.Certificate) {
	e.t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		e.t.Fatal(err)
	}
	certs := harness.ParseChain(e.t, b)
	if chainFile != "" {
		cb, err := os.ReadFile(chainFile)
		if err != nil {
			e.t.Fatal(err)
		}
		certs = append(certs[:1], harness.ParseChain(e.t, cb)...)
	}
	if len(certs) < 2 {
		e.t.Fatalf("%s holds no chain after the leaf", file)
	}
	return e.check(certs, name)
}

// check verifies a chain (leaf first) for name and a production SOTE profile: it
// chains to roots.pem only and carries the SOTE policy.
func (e *env) check(certs []*x509.Certificate, name string) (leaf, issuer *x509.Certificate) {
	e.t.Helper()
	e.in.Verify(certs[0], certs[1:], name)
	return e.checkProfile(certs, name, profile.DefaultPolicyOID)
}

// checkTest is check for a test profile: the chain goes to test-roots.pem only and
// the leaf carries the test policy, not the production one.
func (e *env) checkTest(certs []*x509.Certificate, name string) (leaf, issuer *x509.Certificate) {
	e.t.Helper()
	e.in.VerifyTest(certs[0], certs[1:], name)
	return e.checkProfile(certs, name, profile.DefaultTestPolicyOID)
}

func (e *env) checkProfile(certs []*x509.Certificate, name, policy string) (leaf, issuer *x509.Certificate) {
	e.t.Helper()
	leaf = certs[0]
	if s := leaf.SerialNumber.Bytes(); len(s) != 18 || s[0] != 0x01 {
		e.t.Errorf("serial %x: want the 18-byte SOTE serial starting 01", s)
	}
	var policies []string
	for _, p := range leaf.Policies {
		policies = append(policies, p.String())
	}
	if len(policies) != 1 || policies[0] != policy {
		e.t.Errorf("certificate for %s carries the policies %v, want %s only", name, policies, policy)
	}
	return leaf, certs[1]
}

// revoked asserts that OCSP reports the certificate revoked.
func (e *env) revoked(leaf, issuer *x509.Certificate) {
	e.t.Helper()
	if got := e.in.OCSPStatus(leaf, issuer); got != ocsp.Revoked {
		e.t.Fatalf("OCSP status of %x after the client revoked it: %d, want revoked (%d)", leaf.SerialNumber, got, ocsp.Revoked)
	}
}

// good asserts that OCSP reports the certificate good.
func (e *env) good(leaf, issuer *x509.Certificate) {
	e.t.Helper()
	if got := e.in.OCSPStatus(leaf, issuer); got != ocsp.Good {
		e.t.Fatalf("OCSP status of %x: %d, want good (%d)", leaf.SerialNumber, got, ocsp.Good)
	}
}

// renewed asserts that a renewal gave a new certificate.
func (e *env) renewed(old, cur *x509.Certificate) {
	e.t.Helper()
	if old.SerialNumber.Cmp(cur.SerialNumber) == 0 {
		e.t.Fatalf("renewal kept serial %x: the client did not get a new certificate", cur.SerialNumber)
	}
}

// script writes an executable shell script into the client's directory.
func (e *env) script(name, body string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\nset -eu\n"+body), 0o755); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// lookPath finds a client program; a missing one fails the test with what to run.
func lookPath(t *testing.T, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		t.Fatalf("%s is not installed: run ./scripts/install-test-deps (make test does)", prog)
	}
	return p
}
