// Package harness runs the built varmenne binary for tests that drive it from outside:
// one `varmenne serve` per test with its own data directory, its own loopback DNS
// server (test/dnsserver, given to --dns-resolver) and its own http-01 port. Both the
// end-to-end tests (test/e2e) and the client matrix (test/clients) use it. Every name
// the tests use is answered by the test's DNS server; the system resolver is never
// asked.
package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/test/dnsserver"
	"github.com/varmenne/varmenne/test/logbuf"
)

// Binary is the varmenne binary Build made; Start runs it.
var Binary string

// Build compiles cmd/varmenne with the race detector into a temporary directory, sets
// Binary and returns a function that removes the directory. Call it from TestMain.
func Build() (cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "varmenne-test-")
	if err != nil {
		return nil, err
	}
	Binary = filepath.Join(dir, "varmenne")
	// Every server a test starts listens for operators on a port of its own, not on
	// the default 127.0.0.1:14443 that tests running in parallel would share; a test
	// that drives the admin listener gives --admin-listen itself.
	os.Setenv("VARMENNE_ADMIN_LISTEN", "127.0.0.1:0")
	build := exec.Command("go", "build", "-race", "-o", Binary, "github.com/varmenne/varmenne/cmd/varmenne")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("building varmenne: %w", err)
	}
	return func() { os.RemoveAll(dir) }, nil
}

// Instance is one running `varmenne serve` with its own data directory, DNS server and
// http-01 port.
type Instance struct {
	T          *testing.T
	Data       string
	Directory  string // the ACME directory URL
	Roots      string // roots.pem the server wrote: what clients and production relying parties trust
	TestRoots  string // test-roots.pem: what a test environment trusts for test-profile certificates
	HTTP01Port int
	DNS        *dnsserver.Server
	Anchors    string // the --dnssec-anchors file: the keys of DNS's signed zones
	Cmd        *exec.Cmd
	Logs       *logbuf.Buffer // stderr: the server's log
	Stdout     *logbuf.Buffer // what the server told its operator at this start
	Done       chan error
	Extra      []string // further serve flags, from StartWith
	PublicAddr string   // the CRL/OCSP listener (--public-listen), kept across restarts
}

// FreePort finds a loopback TCP port nobody listens on, for a listener that starts
// later (a client's http-01 responder, often many seconds later). It is drawn below
// the kernel's ephemeral range: a port the kernel hands out for ":0" may meanwhile
// become the local port of another test's outgoing connection, and the client then
// cannot bind it ("already in use": TestHSMCertbot failed so once).
func FreePort(t testing.TB) int {
	t.Helper()
	lo := ephemeralLow()
	for range 100 {
		port := portFloor + rand.IntN(lo-portFloor)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			ln.Close()
			return port
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// portFloor is the lowest port FreePort draws: above the well-known and most
// registered services' ports.
const portFloor = 20000

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// ip_local_port_range; 32768, its default, where it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= portFloor+1000 {
		return 32768
	}
	return lo
}

// Start runs the server on a fresh data directory (or data, when given) and waits for
// it to print its directory URL.
func Start(t *testing.T, data string) *Instance {
	t.Helper()
	return StartWith(t, data)
}

// StartWith is Start with further `varmenne serve` flags, e.g. "--allow-wildcards".
func StartWith(t *testing.T, data string, extraArgs ...string) *Instance {
	t.Helper()
	if Binary == "" {
		t.Fatal("harness.Build was not called from TestMain")
	}
	dns, err := dnsserver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	anchors := SignDNS(t, dns)
	if data == "" {
		data = t.TempDir()
	}
	in := &Instance{T: t, Data: data, DNS: dns, Anchors: anchors, HTTP01Port: FreePort(t), Logs: &logbuf.Buffer{}, Done: make(chan error, 1), Extra: extraArgs}
	in.PublicAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	in.Launch()
	return in
}

// SignedTLDs are the top-level zones the test DNS server signs (SignDNS): every
// name the tests use is under one of them, so every validation in the end-to-end
// tests passes DNSSEC, through NSEC and NSEC3 proofs alike.
var SignedTLDs = map[string]dnsserver.Denial{"example": dnsserver.NSEC3, "test": dnsserver.NSEC, "fi": dnsserver.NSEC3}

// SignDNS makes the SignedTLDs signed zones of dns and writes their DS records into a
// trust-anchor file for `serve --dnssec-anchors`, whose path it returns. Names under
// other TLDs stay unsigned and uncovered by an anchor (insecure).
func SignDNS(t testing.TB, dns *dnsserver.Server) string {
	t.Helper()
	var anchors []string
	for _, tld := range slices.Sorted(maps.Keys(SignedTLDs)) {
		if err := dns.AddZone(tld, dnsserver.ZoneOptions{Signed: true, Denial: SignedTLDs[tld]}); err != nil {
			t.Fatal(err)
		}
		ds, err := dns.TrustAnchor(tld)
		if err != nil {
			t.Fatal(err)
		}
		anchors = append(anchors, ds)
	}
	file := filepath.Join(t.TempDir(), "trust-anchors")
	if err := os.WriteFile(file, []byte(strings.Join(anchors, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// Launch starts the server process and waits for its directory URL.
func (in *Instance) Launch() {
	t := in.T
	t.Helper()
	in.Cmd = exec.Command(Binary, "serve",
		"--data", in.Data,
		"--listen", "127.0.0.1:0",
		"--http01-port", fmt.Sprint(in.HTTP01Port),
		"--dns-resolver", in.DNS.Addr(),
		"--dnssec-anchors", in.Anchors,
		"--validation-allow", "127.0.0.0/8",
		"--validation-timeout", "10s",
		"--log-format", "json",
		"--ops-listen", "127.0.0.1:0",
		"--public-listen", in.PublicAddr, "--public-url", "http://"+in.PublicAddr,
	)
	in.Cmd.Args = append(in.Cmd.Args, in.Extra...)
	stdout, err := in.Cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in.Cmd.Stderr = in.Logs
	if err := in.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.Done = make(chan error, 1)
	go func() { in.Done <- in.Cmd.Wait() }()
	t.Cleanup(in.Stop)

	found := make(chan string, 1)
	in.Stdout = &logbuf.Buffer{}
	out := in.Stdout // this start's: a restart makes a new one
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(out, line)
			if u, ok := strings.CutPrefix(strings.TrimSpace(line), "ACME directory: "); ok {
				found <- u
			}
		}
	}()
	select {
	case in.Directory = <-found:
	case err := <-in.Done:
		t.Fatalf("varmenne serve exited: %v\n%s", err, in.Logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("varmenne serve did not start in 60 s\n%s", in.Logs.String())
	}
	in.Roots = filepath.Join(in.Data, "roots.pem")
	in.TestRoots = filepath.Join(in.Data, "test-roots.pem")
}

// Ops is the address of the running server's operator listener (/healthz,
// /readyz), from what serve printed.
func (in *Instance) Ops() string {
	in.T.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := opsLine.FindStringSubmatch(in.Stdout.String()); m != nil {
			return m[1]
		}
	}
	in.T.Fatalf("serve printed no Health line:\n%s", in.Stdout.String())
	return ""
}

var opsLine = regexp.MustCompile(`Health: +http://([^/]+)/healthz`)

// Stop ends the server with SIGINT and waits for it.
func (in *Instance) Stop() {
	if in.Cmd == nil || in.Cmd.ProcessState != nil {
		return
	}
	_ = in.Cmd.Process.Signal(os.Interrupt)
	select {
	case <-in.Done:
	case <-time.After(20 * time.Second):
		_ = in.Cmd.Process.Kill()
		<-in.Done
	}
}

// Restart stops the server and starts it again on the same data directory.
func (in *Instance) Restart() {
	in.Stop()
	in.Launch()
}

// CLI runs a varmenne subcommand on the instance's data directory.
func (in *Instance) CLI(args ...string) (string, error) {
	cmd := exec.Command(Binary, append(args, "--data", in.Data)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

// Org adds an organisation with the given domains and returns an EAB key for it.
func (in *Instance) Org(oid, name string, domains ...string) (kid, hmacKey string) {
	t := in.T
	t.Helper()
	args := []string{"org", "add", "--oid", oid, "--name", name, "--long-name", name + " (long)"}
	// In production THL's register is the only source of organisations: the
	// register the server was started with (WriteRegister) must list it; the
	// import adds it and its domains are approved.
	if prod, register := in.production(); prod {
		if out, err := in.CLI("org", "import", register); err != nil {
			t.Fatalf("org import %s: %v: %s", register, err, out)
		}
		args = []string{"org", "domains", "add", oid}
	}
	for _, d := range domains {
		args = append(args, "--domain", d)
	}
	if out, err := in.CLI(args...); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args[:2], " "), err, out)
	}
	return in.EAB(oid)
}

// EAB creates an EAB key for an organisation and returns its kid and base64url HMAC
// key. On a development server "eab create" hands the key over at once; on a
// server with HSM keys it is a request, which a second administrator approves
// before the requester receives the key (dual control).
func (in *Instance) EAB(oid string) (kid, hmacKey string) {
	t := in.T
	t.Helper()
	out, err := in.CLI("eab", "create", "--org", oid, "--json")
	if err != nil {
		t.Fatalf("eab create: %v: %s", err, out)
	}
	var k struct {
		KID     string `json:"kid"`
		HMACKey string `json:"hmac_key"`
		Request string `json:"request"`
	}
	if err := json.Unmarshal([]byte(out), &k); err != nil {
		t.Fatalf("eab create --json printed %q: %v", out, err)
	}
	if k.Request != "" {
		if out, err := in.CLI("eab", "approve", k.Request, "--operator-token-file", in.SecondAdmin()); err != nil {
			t.Fatalf("eab approve by a second administrator: %v: %s", err, out)
		}
		if out, err = in.CLI("eab", "key", k.Request, "--json"); err != nil {
			t.Fatalf("eab key: %v: %s", err, out)
		}
		if err := json.Unmarshal([]byte(out), &k); err != nil {
			t.Fatalf("eab key --json printed %q: %v", out, err)
		}
	}
	if k.KID == "" || k.HMACKey == "" {
		t.Fatalf("eab create printed %q: no key", out)
	}
	return k.KID, k.HMACKey
}

// SecondAdmin is the token file of an administrator other than the first one
// (made on first use), for the approvals dual control asks of another person.
func (in *Instance) SecondAdmin() string {
	t := in.T
	t.Helper()
	path := filepath.Join(in.Data, "second-admin.token")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	out, err := in.CLI("operator", "add", "second-admin", "--role", "administrator", "--token")
	if err != nil {
		t.Fatalf("operator add second-admin: %v: %s", err, out)
	}
	_, token, ok := strings.Cut(out, "token: ")
	if !ok {
		t.Fatalf("operator add printed no token: %s", out)
	}
	token, _, _ = strings.Cut(token, "\n")
	if err := os.WriteFile(path, []byte(strings.TrimSpace(token)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// RootPool is the trust the server told clients to use.
func (in *Instance) RootPool() *x509.CertPool { return in.pool(in.Roots) }

// TestRootPool is the trust the server told test environments to use.
func (in *Instance) TestRootPool() *x509.CertPool { return in.pool(in.TestRoots) }

func (in *Instance) pool(file string) *x509.CertPool {
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		in.T.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		in.T.Fatalf("%s holds no certificate", file)
	}
	return pool
}

// HTTPClient trusts RootPool.
func (in *Instance) HTTPClient() *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: in.RootPool()}},
	}
}

// LogHas waits up to 10 s for the server's log to contain s: the server writes a
// request's log line after it answered, so a client can be faster than the line.
func (in *Instance) LogHas(s string) bool {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(in.Logs.String(), s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// StdoutHas waits up to 10 s for the server's start output to contain s: the lines
// after the directory's may come after Launch returned.
func (in *Instance) StdoutHas(s string) bool {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(in.Stdout.String(), s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// PointAt makes the test DNS server answer name with loopback.
func (in *Instance) PointAt(name string) { in.DNS.SetA(name, "127.0.0.1") }

// Responder serves http-01 key authorisations on the instance's http-01 port.
type Responder struct {
	mu    sync.Mutex
	keys  map[string]string
	srv   *http.Server
	hits  int
	hosts map[string]string // token → the Host header it was asked for with
}

// Responder starts serving /.well-known/acme-challenge/ from tokens given to Set.
func (in *Instance) Responder() *Responder {
	t := in.T
	r := &Responder{keys: map[string]string{}, hosts: map[string]string{}}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", in.HTTP01Port))
	if err != nil {
		t.Fatal(err)
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.hits++
		token := strings.TrimPrefix(req.URL.Path, "/.well-known/acme-challenge/")
		r.hosts[token] = req.Host
		if ka, ok := r.keys[token]; ok {
			io.WriteString(w, ka)
			return
		}
		http.NotFound(w, req)
	}), ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln)
	t.Cleanup(r.Close)
	return r
}

// Set answers token with keyAuth.
func (r *Responder) Set(token, keyAuth string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys[token] = keyAuth
}

// Hits counts the requests the responder answered.
func (r *Responder) Hits() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits
}

// Close stops the responder.
// Host is the Host header the validator sent when it fetched token.
func (r *Responder) Host(token string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hosts[token]
}

func (r *Responder) Close() { _ = r.srv.Close() }

// Ctx is a context that ends after two minutes or with the test.
func Ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Tail is the last n bytes of b, for logs in failure messages.
func Tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
