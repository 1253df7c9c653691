// Package e2e drives the built varmenne binary with real ACME clients: the
// golang.org/x/crypto/acme library and certbot. Every name the tests use is answered by
// the test's own DNS server on loopback; the system resolver is never asked.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/test/dnsserver"
	"github.com/varmenne/varmenne/test/logbuf"
)

// binary is the varmenne binary built once for the package.
var binary string

func TestMain(m *testing.M) {
	// Every server a test starts listens for operators on a port of its own, not
	// on the default 127.0.0.1:14443 that parallel tests would share; a test that
	// drives the admin listener gives --admin-listen itself.
	os.Setenv("VARMENNE_ADMIN_LISTEN", "127.0.0.1:0")
	dir, err := os.MkdirTemp("", "varmenne-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "varmenne")
	build := exec.Command("go", "build", "-race", "-o", binary, "github.com/varmenne/varmenne/cmd/varmenne")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building varmenne:", err)
		os.Exit(1)
	}
	code := m.Run()
	stopPostgres()
	os.RemoveAll(dir)
	os.Exit(code)
}

// instance is one running `varmenne serve` with its own data directory, DNS server and
// http-01 port.
type instance struct {
	t          *testing.T
	data       string
	directory  string
	roots      string
	http01Port int
	dns        *dnsserver.Server
	cmd        *exec.Cmd
	logs       *syncBuffer
	done       chan error
	extra      []string // further serve flags, from startWith
	publicAddr string   // the CRL/OCSP listener (--public-listen), kept across restarts
}

// freePort finds a loopback TCP port nobody listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// start runs the server on a fresh data directory (or data, when given) and waits for
// it to print its directory URL.
func start(t *testing.T, data string) *instance {
	t.Helper()
	return startWith(t, data)
}

// startWith is start with further `varmenne serve` flags, e.g. "--allow-wildcards".
func startWith(t *testing.T, data string, extraArgs ...string) *instance {
	t.Helper()
	dns, err := dnsserver.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Close() })
	if data == "" {
		data = t.TempDir()
	}
	in := &instance{t: t, data: data, dns: dns, http01Port: freePort(t), logs: &syncBuffer{}, done: make(chan error, 1), extra: extraArgs}
	in.publicAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in.launch()
	return in
}

func (in *instance) launch() {
	t := in.t
	t.Helper()
	in.cmd = exec.Command(binary, "serve",
		"--data", in.data,
		"--listen", "127.0.0.1:0",
		"--http01-port", fmt.Sprint(in.http01Port),
		"--dns-resolver", in.dns.Addr(),
		"--validation-allow", "127.0.0.0/8",
		"--validation-timeout", "10s",
		"--log-format", "json",
		"--ops-listen", "127.0.0.1:0",
		"--public-listen", in.publicAddr, "--public-url", "http://"+in.publicAddr,
	)
	in.cmd.Args = append(in.cmd.Args, in.extra...)
	stdout, err := in.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in.cmd.Stderr = in.logs
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.done = make(chan error, 1)
	go func() { in.done <- in.cmd.Wait() }()
	t.Cleanup(in.stop)

	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if u, ok := strings.CutPrefix(strings.TrimSpace(line), "ACME directory: "); ok {
				found <- u
			}
		}
	}()
	select {
	case in.directory = <-found:
	case err := <-in.done:
		t.Fatalf("varmenne serve exited: %v\n%s", err, in.logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("varmenne serve did not start in 60 s\n%s", in.logs.String())
	}
	in.roots = filepath.Join(in.data, "roots.pem")
}

// stop ends the server with SIGINT and waits for it.
func (in *instance) stop() {
	if in.cmd == nil || in.cmd.ProcessState != nil {
		return
	}
	_ = in.cmd.Process.Signal(os.Interrupt)
	select {
	case <-in.done:
	case <-time.After(20 * time.Second):
		_ = in.cmd.Process.Kill()
		<-in.done
	}
}

// restart stops the server and starts it again on the same data directory.
func (in *instance) restart() {
	in.stop()
	in.launch()
}

// cli runs a varmenne subcommand on the instance's data directory.
func (in *instance) cli(args ...string) (string, error) {
	cmd := exec.Command(binary, append(args, "--data", in.data)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

// org adds an organisation with the given domains and returns an EAB key for it.
func (in *instance) org(oid, name string, domains ...string) (kid, hmacKey string) {
	t := in.t
	t.Helper()
	args := []string{"org", "add", "--oid", oid, "--name", name, "--long-name", name + " (long)"}
	for _, d := range domains {
		args = append(args, "--domain", d)
	}
	if out, err := in.cli(args...); err != nil {
		t.Fatalf("org add: %v: %s", err, out)
	}
	return in.eab(oid)
}

func (in *instance) eab(oid string) (kid, hmacKey string) {
	t := in.t
	t.Helper()
	out, err := in.cli("eab", "create", "--org", oid, "--json")
	if err != nil {
		t.Fatalf("eab create: %v: %s", err, out)
	}
	var k struct {
		KID     string `json:"kid"`
		HMACKey string `json:"hmac_key"`
	}
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.KID == "" || k.HMACKey == "" {
		t.Fatalf("eab create --json printed %q: %v", out, err)
	}
	return k.KID, k.HMACKey
}

// rootPool is the trust the server told clients to use.
func (in *instance) rootPool() *x509.CertPool {
	pemBytes, err := os.ReadFile(in.roots)
	if err != nil {
		in.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		in.t.Fatalf("%s holds no certificate", in.roots)
	}
	return pool
}

func (in *instance) httpClient() *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: in.rootPool()}},
	}
}

// pointAt makes the test DNS server answer name with loopback.
func (in *instance) pointAt(name string) { in.dns.SetA(name, "127.0.0.1") }

// responder serves http-01 key authorisations on the instance's http-01 port.
type responder struct {
	mu   sync.Mutex
	keys map[string]string
	srv  *http.Server
	hits int
}

func (in *instance) responder() *responder {
	t := in.t
	r := &responder{keys: map[string]string{}}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", in.http01Port))
	if err != nil {
		t.Fatal(err)
	}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.hits++
		token := strings.TrimPrefix(req.URL.Path, "/.well-known/acme-challenge/")
		if ka, ok := r.keys[token]; ok {
			io.WriteString(w, ka)
			return
		}
		http.NotFound(w, req)
	}), ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln)
	t.Cleanup(r.close)
	return r
}

func (r *responder) set(token, keyAuth string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys[token] = keyAuth
}

func (r *responder) close() { _ = r.srv.Close() }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// syncBuffer collects the server's log.
type syncBuffer = logbuf.Buffer
