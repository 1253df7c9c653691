// Command suite is "make bench": on this machine, in one go, it measures the raw
// signing rate of the issuer keys, varmenne end to end on SQLite and PostgreSQL with
// each key at several concurrencies (driving the built server with the load
// generator varmenne-bench), the same workload against Pebble and step-ca built from their pinned
// modules under bench/peers, and CRL building next to crypto/x509. It prints one
// table and writes it, with the targets of issue 9, to bench/results/<date>.md.
//
//	go run ./bench/suite [-quick] [-out bench/results]
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/varmenne/varmenne/bench"
	"github.com/varmenne/varmenne/bench/heap"
	"github.com/varmenne/varmenne/crl"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/signer/pkcs11"
	"github.com/varmenne/varmenne/signer/pkcs11/softhsmtest"
	"github.com/varmenne/varmenne/store/pgtest"
)

// plan is what one invocation measures.
type plan struct {
	quick        bool
	concurrency  []int
	orders       map[int]int
	databases    []string
	keys         []issuerKey
	signSeconds  time.Duration
	crlSizes     []int
	peers        bool
	stepca       bool
	rawSigners   int // goroutines signing at once in the raw rate
	pkcsSessions int
}

// issuerKey is one kind of issuer key varmenne signs with.
type issuerKey struct {
	name    string // as the table shows it
	devType string // --dev-key-type for a file key; "" for SoftHSM
	hsm     bool
	peerKey string // the peers' matching key: "p256" or "rsa4096"
}

var (
	fileP256 = issuerKey{"file P-256", "ecdsa-p256", false, "p256"}
	fileRSA  = issuerKey{"file RSA-4096", "rsa-4096", false, "rsa4096"}
	hsmRSA   = issuerKey{"SoftHSM RSA-4096", "", true, "rsa4096"}
)

const benchOrg = "1.2.246.10.99999999.10.0"

func main() {
	quick := flag.Bool("quick", false, "a one-minute subset: SQLite, file P-256 and SoftHSM RSA-4096 at C = 8, Pebble, CRLs up to 100 000")
	out := flag.String("out", "bench/results", "directory of the results file (<date>.md); empty: none")
	suffix := flag.String("suffix", "", "appended to the results file's name: <date><suffix>.md")
	flag.Parse()
	p := plan{quick: *quick, concurrency: []int{1, 8, 32}, orders: map[int]int{1: 30, 8: 160, 32: 320},
		databases: []string{"sqlite", "postgres"}, keys: []issuerKey{fileP256, fileRSA, hsmRSA},
		signSeconds: 3 * time.Second, crlSizes: []int{10_000, 100_000, 1_000_000}, peers: true, stepca: true,
		rawSigners: 8, pkcsSessions: 8}
	if p.quick {
		p.concurrency, p.orders = []int{8}, map[int]int{8: 80}
		p.databases, p.keys = []string{"sqlite"}, []issuerKey{fileP256, hsmRSA}
		p.signSeconds, p.crlSizes, p.stepca = time.Second, []int{10_000, 100_000}, false
	}
	ctx := context.Background()
	s, err := newSuite(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: "+err.Error())
		os.Exit(1)
	}
	defer s.cleanup()
	s.run(ctx)
	text := s.render()
	fmt.Print(text)
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench: "+err.Error())
			os.Exit(1)
		}
		name := time.Now().UTC().Format("2006-01-02")
		if p.quick {
			name += "-quick"
		}
		name += *suffix
		file := filepath.Join(*out, name+".md")
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench: "+err.Error())
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "results written to "+file)
	}
}

// suite holds the tools and what was measured.
type suite struct {
	p       plan
	tmp     string
	bin     string // varmenne, built without the race detector
	loadBin string // varmenne-bench, the load generator
	pebble  string // "" when it could not be built (why in peerErr)
	stepca  string
	setup   string // step-ca's setup program (bench/peers/stepca/setup)
	peerErr map[string]string
	pg      *pgtest.Cluster
	pgErr   string
	began   time.Time

	raw  map[string]float64 // key name → signatures/s
	runs []run
	crls []crlRow
	logf func(format string, args ...any)
}

// run is one end-to-end measurement.
type run struct {
	target string // varmenne, Pebble, step-ca
	db     string // sqlite, postgres, memory, badger
	key    string // issuer key as the table shows it
	match  string // the peers' key kind it compares with: p256, rsa4096
	c      int
	rep    *bench.Report
	err    string
}

type crlRow struct {
	n                          int
	bareSec, buildSec, repSec  float64
	bareMB, buildMB, repMB     float64 // allocated during the step
	barePeak, buildPk, repPeak float64 // peak live heap above the entries
	err                        string
}

func newSuite(p plan) (*suite, error) {
	tmp, err := os.MkdirTemp("", "varmenne-bench-")
	if err != nil {
		return nil, err
	}
	s := &suite{p: p, tmp: tmp, peerErr: map[string]string{}, raw: map[string]float64{}, began: time.Now(),
		logf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "bench: "+f+"\n", a...) }}
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	s.bin = filepath.Join(tmp, "varmenne")
	s.loadBin = filepath.Join(tmp, "varmenne-bench")
	s.logf("building varmenne and varmenne-bench")
	if out, err := exec.Command("go", "build", "-o", s.bin, "./cmd/varmenne").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building varmenne: %v\n%s", err, out)
	}
	if out, err := exec.Command("go", "build", "-o", s.loadBin, "./cmd/varmenne-bench").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building varmenne-bench: %v\n%s", err, out)
	}
	if p.peers {
		s.pebble = s.buildPeer(root, "Pebble", "bench/peers/pebble", "github.com/letsencrypt/pebble/v2/cmd/pebble", "")
	}
	if p.stepca {
		// CGO off: step-ca's YubiKey support needs libpcsclite's headers, which the
		// benchmark does not use.
		s.stepca = s.buildPeer(root, "step-ca", "bench/peers/stepca", "github.com/smallstep/certificates/cmd/step-ca", "CGO_ENABLED=0")
		if s.stepca != "" {
			s.setup = s.buildPeer(root, "step-ca setup", "bench/peers/stepca", "./setup", "CGO_ENABLED=0")
			if s.setup == "" {
				s.stepca = ""
			}
		}
	}
	return s, nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "go.mod") {
		return "", errors.New("run from the varmenne module (make bench)")
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// buildPeer builds pkg in the nested module dir; on failure it records why.
func (s *suite) buildPeer(root, name, dir, pkg, env string) string {
	s.logf("building %s (%s)", name, dir)
	bin := filepath.Join(s.tmp, strings.ReplaceAll(name, " ", "-"))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = filepath.Join(root, dir)
	cmd.Env = os.Environ()
	if env != "" {
		cmd.Env = append(cmd.Env, env)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		s.peerErr[name] = fmt.Sprintf("go build %s in %s failed: %v: %s", pkg, dir, err, lastLines(string(out), 3))
		s.logf("%s", s.peerErr[name])
		return ""
	}
	return bin
}

func (s *suite) cleanup() {
	if s.pg != nil {
		s.pg.Stop()
	}
	os.RemoveAll(s.tmp)
}

func (s *suite) run(ctx context.Context) {
	s.rawRates(ctx)
	for _, db := range s.p.databases {
		for _, k := range s.p.keys {
			s.varmenne(ctx, db, k)
		}
	}
	if s.pebble != "" {
		for _, k := range []string{"p256", "rsa4096"} {
			s.pebbleRuns(ctx, k)
		}
	}
	if s.stepca != "" {
		for _, k := range []string{"p256", "rsa4096"} {
			s.stepcaRuns(ctx, k)
		}
	}
	s.crlRuns()
}

// rawRates measures how many signatures per second each issuer key makes with
// rawSigners goroutines signing at once: the physical limit of issuance.
func (s *suite) rawRates(ctx context.Context) {
	for _, k := range s.p.keys {
		key, closeKey, err := s.rawKey(ctx, k)
		if err != nil {
			s.logf("raw signing with %s: %v", k.name, err)
			continue
		}
		hash := crypto.SHA256
		digest := sha256.Sum256([]byte("varmenne"))
		msg := digest[:]
		if k.peerKey == "rsa4096" {
			hash = crypto.SHA512
			d := sha512.Sum512([]byte("varmenne"))
			msg = d[:]
		}
		var n atomic.Int64
		var failed atomic.Value
		deadline := time.Now().Add(s.p.signSeconds)
		var wg sync.WaitGroup
		start := time.Now()
		for range s.p.rawSigners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					if _, err := key.Sign(rand.Reader, msg, hash); err != nil {
						failed.Store(err)
						return
					}
					n.Add(1)
				}
			}()
		}
		wg.Wait()
		rate := float64(n.Load()) / time.Since(start).Seconds()
		closeKey()
		if err, _ := failed.Load().(error); err != nil {
			s.logf("raw signing with %s: %v", k.name, err)
			continue
		}
		s.raw[k.name] = rate
		s.logf("raw signing, %s: %.0f signatures/s", k.name, rate)
	}
}

func (s *suite) rawKey(ctx context.Context, k issuerKey) (crypto.Signer, func(), error) {
	if !k.hsm {
		key, err := filekey.Generate(k.devType)
		return key, func() {}, err
	}
	if err := softhsmtest.Check(); err != nil {
		return nil, nil, err
	}
	conf, err := softhsmtest.Config(filepath.Join(s.tmp, "raw-hsm"))
	if err != nil {
		return nil, nil, err
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	tok, err := softhsmtest.NewToken(conf, "bench-raw")
	if err != nil {
		return nil, nil, err
	}
	pool, err := pkcs11.Open(pkcs11.Config{Module: softhsmtest.Module, TokenLabel: tok.Label, PIN: tok.PIN, Sessions: s.p.pkcsSessions})
	if err != nil {
		return nil, nil, err
	}
	key, err := pool.Generate(ctx, "bench-raw", "rsa-4096")
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return key, func() { pool.Close() }, nil
}

// failAll records err as the outcome of r's target at every concurrency: the
// server could not be set up or warmed up.
func (s *suite) failAll(r run, err error) {
	for _, c := range s.p.concurrency {
		r.c, r.err = c, err.Error()
		s.runs = append(s.runs, r)
	}
	s.logf("%s %s %s: %v", r.target, r.db, r.key, err)
}

// ports are the listeners of one server under test and its load generator.
type ports struct{ acme, public, http01, dns int }

func freePorts() (ports, error) {
	var ps [4]int
	for i := range ps {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports{}, err
		}
		ps[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	return ports{ps[0], ps[1], ps[2], ps[3]}, nil
}

// varmenne starts one server on db with key k and measures it at every concurrency.
func (s *suite) varmenne(ctx context.Context, db string, k issuerKey) {
	record := func(err error) { s.failAll(run{target: "varmenne", db: db, key: k.name, match: k.peerKey}, err) }
	data := filepath.Join(s.tmp, "varmenne-"+db+"-"+strings.ReplaceAll(k.name, " ", "-"))
	var dsn string
	if db == "postgres" {
		var err error
		if dsn, err = s.newPostgres(ctx); err != nil {
			record(err)
			return
		}
	}
	pt, err := freePorts()
	if err != nil {
		record(err)
		return
	}
	env := os.Environ()
	args := []string{"--data", data}
	if dsn != "" {
		args = append(args, "--db", dsn)
	}
	if k.hsm {
		hsmArgs, hsmEnv, err := s.hsmInit(data, args)
		if err != nil {
			record(fmt.Errorf("SoftHSM key ceremony: %w", err))
			return
		}
		args, env = append(args, hsmArgs...), append(env, hsmEnv...)
	} else {
		args = append(args, "--dev-key-type", k.devType)
	}
	serveArgs := append([]string{"serve"}, args...)
	serveArgs = append(serveArgs,
		"--listen", fmt.Sprintf("127.0.0.1:%d", pt.acme), "--ops-listen", "",
		"--public-listen", fmt.Sprintf("127.0.0.1:%d", pt.public), "--public-url", fmt.Sprintf("http://127.0.0.1:%d", pt.public),
		"--http01-port", fmt.Sprint(pt.http01), "--dns-resolver", fmt.Sprintf("127.0.0.1:%d", pt.dns),
		"--validation-allow", "127.0.0.0/8", "--log-format", "json",
		// The load generator's DNS server answers example. unsigned, as an
		// internal zone (validate.Config.InsecureZones): Pebble and step-ca check no
		// DNSSEC either.
		"--dnssec-insecure", "example",
		// The benchmark issues thousands of certificates to one organisation: limits
		// high enough never to refuse, still counted on every order and finalize.
		"--limit-new-orders-per-account", "1000000", "--limit-certificates-per-organisation", "1000000",
		"--limit-new-accounts-per-organisation", "1000000", "--limit-pending-authorizations", "1000000")
	srv, err := startProcess(s.bin, serveArgs, env, "ACME directory: ", filepath.Join(s.tmp, "serve.log"))
	if err != nil {
		record(err)
		return
	}
	defer srv.stop()
	if k.hsm {
		// The register made the organisation at the start; an operator approves its domain.
		cmd := exec.Command(s.bin, append(append([]string{"org", "domains", "add"}, args[:2]...), benchOrg, "--domain", "bench.example")...)
		if dsn != "" {
			cmd.Args = append(cmd.Args, "--db", dsn)
		}
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			record(fmt.Errorf("org domains add: %v: %s", err, lastLines(string(out), 2)))
			return
		}
	}
	dir := fmt.Sprintf("https://127.0.0.1:%d/acme/directory", pt.acme)
	common := append([]string{"--directory", dir, "--local-org", benchOrg, "--accounts", "1",
		"--http01-listen", fmt.Sprintf("127.0.0.1:%d", pt.http01), "--dns-listen", fmt.Sprintf("127.0.0.1:%d", pt.dns),
		"--server-pid", fmt.Sprint(srv.cmd.Process.Pid)}, args[:2]...)
	if dsn != "" {
		common = append(common, "--db", dsn, "--server-pid", fmt.Sprint(s.pg.Pid()))
	}
	// Warm up: connections, caches, the first CRL.
	if _, err := s.loadgen(common, 4, 12); err != nil {
		record(fmt.Errorf("warm-up: %w", err))
		return
	}
	for _, c := range s.p.concurrency {
		r := run{target: "varmenne", db: db, key: k.name, match: k.peerKey, c: c}
		if r.rep, err = s.loadgen(common, c, s.p.orders[c]); err != nil {
			r.err = err.Error()
		}
		s.logRun(r)
		s.runs = append(s.runs, r)
	}
}

// hsmInit makes a SoftHSM token and runs varmenne's key ceremony in it.
func (s *suite) hsmInit(data string, dbArgs []string) (args, env []string, err error) {
	if err := softhsmtest.Check(); err != nil {
		return nil, nil, err
	}
	conf, err := softhsmtest.Config(data + "-hsm")
	if err != nil {
		return nil, nil, err
	}
	tok, err := softhsmtest.NewToken(conf, "varmenne-bench")
	if err != nil {
		return nil, nil, err
	}
	// The ceremony splits the token's PIN into two activation shares; serve starts
	// with both.
	shares := []string{filepath.Join(data+"-hsm", "one.share"), filepath.Join(data+"-hsm", "two.share")}
	env = []string{tok.Env()}
	// Issuer keys in an HSM mean production: only organisations THL's register lists
	// get certificates, so the bench organisation is given one.
	register, err := writeRegister(data+"-hsm", benchOrg, "Bench Oy")
	if err != nil {
		return nil, nil, err
	}
	args = []string{"--pkcs11-module", softhsmtest.Module, "--pkcs11-token", tok.Label, "--pkcs11-sessions", fmt.Sprint(s.p.pkcsSessions),
		"--pkcs11-pin-share", shares[0], "--pkcs11-pin-share", shares[1], "--register-source", register}
	initArgs := append(append([]string{"init"}, dbArgs...), "--pkcs11-module", softhsmtest.Module, "--pkcs11-token", tok.Label,
		"--operator", "Bench One", "--operator", "Bench Two", "--key-type", "rsa-4096", "--share-out", shares[0], "--share-out", shares[1])
	cmd := exec.Command(s.bin, initArgs...)
	cmd.Env = append(os.Environ(), tok.Env(), "VARMENNE_PKCS11_PIN="+tok.PIN)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("varmenne init: %v: %s", err, lastLines(string(out), 2))
	}
	return args, env, nil
}

// writeRegister writes a THL SOTE register export (the code service's JSON form)
// listing one active organisation into dir, and returns its path.
func writeRegister(dir, oid, name string) (string, error) {
	type attr struct {
		Name  string   `json:"attributeName"`
		Value []string `json:"attributeValue"`
	}
	export := map[string]any{"conceptCodes": []map[string]any{{
		"conceptCodeId": oid, "conceptCodeName": name, "status": "ACTIVE", "beginDate": "2000-01-01T00:00:00",
		"attributes": []attr{{"LongName", []string{name}}, {"Sektori", []string{"2 Yksityinen"}}},
	}}}
	b, err := json.Marshal(export)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "register.json")
	return path, os.WriteFile(path, b, 0o600)
}

func (s *suite) newPostgres(ctx context.Context) (string, error) {
	if s.pgErr != "" {
		return "", errors.New(s.pgErr)
	}
	if s.pg == nil {
		s.logf("starting PostgreSQL (store/pgtest)")
		pg, err := pgtest.Start()
		if err != nil {
			s.pgErr = err.Error()
			return "", err
		}
		s.pg = pg
	}
	name := fmt.Sprintf("bench_%d", time.Now().UnixNano())
	if err := s.pg.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return s.pg.DSN(name), nil
}

// loadgen runs varmenne-bench with the common flags at concurrency c.
func (s *suite) loadgen(common []string, c, orders int, extra ...string) (*bench.Report, error) {
	args := append(append(append([]string{}, common...), "--concurrency", fmt.Sprint(c), "--orders", fmt.Sprint(orders),
		"--order-timeout", "30s", "--json"), extra...)
	cmd := exec.Command(s.loadBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("varmenne-bench: %v: %s", err, lastLines(stderr.String(), 2))
	}
	var rep bench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("varmenne-bench --json printed %q: %v", lastLines(stdout.String(), 2), err)
	}
	return &rep, nil
}

func (s *suite) logRun(r run) {
	if r.err != "" {
		s.logf("%s %s %s C=%d: %s", r.target, r.db, r.key, r.c, r.err)
		return
	}
	s.logf("%s %s %s C=%d: %.1f certificates/s, p50 %.0f ms, p99 %.0f ms, %d failed", r.target, r.db, r.key, r.c,
		r.rep.CertsPerSec, r.rep.Step(bench.StepOrder).P50, r.rep.Step(bench.StepOrder).P99, r.rep.Failed)
}

// pebbleRuns measures Pebble with an issuer of kind key (Pebble makes RSA-2048 or
// P-256 issuers only: "rsa4096" runs its RSA-2048 one).
func (s *suite) pebbleRuns(ctx context.Context, key string) {
	keyName, alg := "P-256", "ecdsa"
	if key == "rsa4096" {
		keyName, alg = "RSA-2048 (Pebble's only RSA)", "rsa"
	}
	record := func(err error) { s.failAll(run{target: "Pebble", db: "memory", key: keyName, match: key}, err) }
	pt, err := freePorts()
	if err != nil {
		record(err)
		return
	}
	dir := filepath.Join(s.tmp, "pebble-"+key)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		record(err)
		return
	}
	certFile, keyFile, roots, err := listenerCert(dir)
	if err != nil {
		record(err)
		return
	}
	kids := map[string]string{}
	var eabFlags []string
	for i := range s.p.concurrency {
		kid := fmt.Sprintf("bench-%d", i)
		mac := make([]byte, 32)
		rand.Read(mac)
		kids[kid] = base64.RawURLEncoding.EncodeToString(mac)
		eabFlags = append(eabFlags, kid+":"+kids[kid])
	}
	kidW := fmt.Sprintf("bench-%d", len(s.p.concurrency))
	macW := make([]byte, 32)
	rand.Read(macW)
	kids[kidW] = base64.RawURLEncoding.EncodeToString(macW)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": fmt.Sprintf("127.0.0.1:%d", pt.acme), "managementListenAddress": fmt.Sprintf("127.0.0.1:%d", pt.public),
		"certificate": certFile, "privateKey": keyFile, "httpPort": pt.http01, "tlsPort": 5001, "ocspResponderURL": "",
		"externalAccountBindingRequired": true, "externalAccountMACKeys": kids, "keyAlgorithm": alg,
		"retryAfter": map[string]int{"authz": 1, "order": 1}, "certificateValidityPeriod": 7776000,
	}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		record(err)
		return
	}
	env := append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	srv, err := startProcess(s.pebble, []string{"-config", cfgFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", pt.dns)}, env,
		"ACME directory available at", filepath.Join(s.tmp, "pebble.log"))
	if err != nil {
		record(err)
		return
	}
	defer srv.stop()
	s.peerLoad(ctx, "Pebble", "memory", keyName, key, fmt.Sprintf("https://127.0.0.1:%d/dir", pt.acme), roots, pt, srv, eabFlags, kidW+":"+kids[kidW])
}

// peerLoad runs the warm-up and the measured runs against a peer, one EAB key
// (account) per run.
func (s *suite) peerLoad(ctx context.Context, target, db, keyName, match, dir, roots string, pt ports, srv *process, eab []string, warm string) {
	common := []string{"--directory", dir, "--ca-roots", roots,
		"--http01-listen", fmt.Sprintf("127.0.0.1:%d", pt.http01), "--dns-listen", fmt.Sprintf("127.0.0.1:%d", pt.dns),
		"--server-pid", fmt.Sprint(srv.cmd.Process.Pid)}
	if _, err := s.loadgen(append(common, "--eab", warm), 4, 12); err != nil {
		s.failAll(run{target: target, db: db, key: keyName, match: match}, fmt.Errorf("warm-up: %w", err))
		return
	}
	for i, c := range s.p.concurrency {
		r := run{target: target, db: db, key: keyName, match: match, c: c}
		var err error
		if r.rep, err = s.loadgen(append(common, "--eab", eab[i]), c, s.p.orders[c]); err != nil {
			r.err = err.Error()
		}
		s.logRun(r)
		s.runs = append(s.runs, r)
	}
}

// stepcaRuns measures step-ca with a root and intermediate of kind key.
func (s *suite) stepcaRuns(ctx context.Context, key string) {
	keyName := map[string]string{"p256": "P-256", "rsa4096": "RSA-4096"}[key]
	record := func(err error) { s.failAll(run{target: "step-ca", db: "badger", key: keyName, match: key}, err) }
	pt, err := freePorts()
	if err != nil {
		record(err)
		return
	}
	dir := filepath.Join(s.tmp, "stepca-"+key)
	out, err := exec.Command(s.setup, "--dir", dir, "--listen", fmt.Sprintf("127.0.0.1:%d", pt.acme), "--key-type", key,
		"--eab", fmt.Sprint(len(s.p.concurrency)+1)).Output()
	if err != nil {
		record(fmt.Errorf("step-ca setup: %w", err))
		return
	}
	var eab []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if kid, mac, ok := strings.Cut(line, " "); ok {
			eab = append(eab, kid+":"+mac)
		}
	}
	if len(eab) != len(s.p.concurrency)+1 {
		record(fmt.Errorf("step-ca setup printed %q", out))
		return
	}
	srv, err := startProcess(s.stepca, []string{filepath.Join(dir, "ca.json"), "--resolver", fmt.Sprintf("127.0.0.1:%d", pt.dns),
		"--insecure", "--acme-http-port", fmt.Sprint(pt.http01)}, os.Environ(), "Serving HTTPS on", filepath.Join(s.tmp, "step-ca.log"))
	if err != nil {
		record(err)
		return
	}
	defer srv.stop()
	s.peerLoad(ctx, "step-ca", "badger", keyName, key, fmt.Sprintf("https://127.0.0.1:%d/acme/acme/directory", pt.acme),
		filepath.Join(dir, "root.crt"), pt, srv, eab[1:], eab[0])
}

// crlRuns builds CRLs of each size three ways: Go's bare x509.CreateRevocationList,
// varmenne's full publication (Build and Check), and varmenne's republication after
// one more revocation (List.Set, Build, Check).
func (s *suite) crlRuns() {
	key, err := filekey.Generate("rsa-4096")
	if err != nil {
		s.crls = append(s.crls, crlRow{err: err.Error()})
		return
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "varmenne bench issuer"},
		NotBefore: time.Now().AddDate(-1, 0, 0), NotAfter: time.Now().AddDate(5, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		s.crls = append(s.crls, crlRow{err: err.Error()})
		return
	}
	issuer, _ := x509.ParseCertificate(der)
	now := time.Now().UTC().Truncate(time.Second)
	for _, n := range s.p.crlSizes {
		row := crlRow{n: n}
		entries := make([]crl.Entry, n+1)
		for i := range entries {
			at := now.Add(-time.Duration(n+1-i) * time.Second)
			serial, err := signer.NewSerial(at, rand.Reader)
			if err != nil {
				row.err = err.Error()
				break
			}
			entries[i] = crl.Entry{Serial: serial, RevokedAt: at, Reason: []int{0, 1, 3, 4, 5, 9}[i%6]}
			if i%10 == 0 {
				entries[i].InvalidityDate = at.Add(-48 * time.Hour)
			}
		}
		if row.err != "" {
			s.crls = append(s.crls, row)
			continue
		}
		xs := make([]x509.RevocationListEntry, n)
		for i, e := range entries[:n] {
			xs[i] = x509.RevocationListEntry{SerialNumber: new(big.Int).SetBytes(e.Serial), RevocationTime: e.RevokedAt, ReasonCode: e.Reason}
		}
		t := crl.Template{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(crl.MaxValidity), DistributionPoint: "http://127.0.0.1/crl/production.crl"}
		var bareErr error
		row.bareSec, row.bareMB, row.barePeak = measure(func() {
			_, bareErr = x509.CreateRevocationList(rand.Reader, &x509.RevocationList{RevokedCertificateEntries: xs, Number: t.Number,
				ThisUpdate: t.ThisUpdate, NextUpdate: t.NextUpdate}, issuer, key)
		})
		xs = nil
		var buildErr error
		row.buildSec, row.buildMB, row.buildPk = measure(func() {
			var d []byte
			if d, buildErr = crl.Build(issuer, key, t, entries[:n]); buildErr == nil {
				buildErr = crl.Check(d, issuer, t, entries[:n], now)
			}
		})
		var l crl.List
		if err := l.Set(entries[:n]); err != nil {
			row.err = err.Error()
		}
		t2 := t
		t2.Number = big.NewInt(2)
		var repErr error
		row.repSec, row.repMB, row.repPeak = measure(func() {
			if repErr = l.Set(entries); repErr != nil {
				return
			}
			var d []byte
			if d, repErr = l.Build(issuer, key, t2); repErr == nil {
				repErr = crl.Check(d, issuer, t2, entries, now)
			}
		})
		if err := errors.Join(bareErr, buildErr, repErr); err != nil {
			row.err = err.Error()
		}
		s.logf("CRL %d entries: x509 %.2f s %.0f MB; build %.2f s %.0f MB; republish %.2f s %.0f MB", n, row.bareSec, row.bareMB,
			row.buildSec, row.buildMB, row.repSec, row.repMB)
		s.crls = append(s.crls, row)
		runtime.GC()
	}
}

// measure runs f once and returns its seconds, the MiB it allocated and the peak
// live heap (MiB) above what was live before.
func measure(f func()) (sec, allocMB, peakMB float64) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := heap.Start(5 * time.Millisecond)
	start := time.Now()
	f()
	sec = time.Since(start).Seconds()
	top := peak.Stop()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	return sec, float64(after.TotalAlloc-before.TotalAlloc) / (1 << 20), float64(top-min(top, before.HeapAlloc)) / (1 << 20)
}

// process is a server under test.
type process struct {
	cmd  *exec.Cmd
	done chan error
	log  *os.File
}

// startProcess starts bin and waits until a line of its output contains ready.
func startProcess(bin string, args, env []string, ready, logFile string) (*process, error) {
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan error, 1), log: log}
	started := make(chan struct{})
	var tail bytes.Buffer
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(log, line)
			mu.Lock()
			if tail.Len() < 4096 {
				tail.WriteString(line + "\n")
			}
			mu.Unlock()
			if strings.Contains(line, ready) {
				once.Do(func() { close(started) })
			}
		}
		io.Copy(io.Discard, pr)
	}()
	go func() { p.done <- cmd.Wait(); pw.Close() }()
	select {
	case <-started:
		return p, nil
	case err := <-p.done:
		mu.Lock()
		defer mu.Unlock()
		log.Close()
		return nil, fmt.Errorf("%s exited at start: %v: %s", filepath.Base(bin), err, lastLines(tail.String(), 3))
	case <-time.After(90 * time.Second):
		p.stop()
		return nil, fmt.Errorf("%s did not start in 90 s", filepath.Base(bin))
	}
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.log.Close()
}

// listenerCert makes a self-signed TLS certificate for 127.0.0.1 (Pebble's listener).
func listenerCert(dir string) (certFile, keyFile, rootsFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames: []string{"localhost"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", "", "", err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", "", err
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		return "", "", "", err
	}
	return certFile, keyFile, certFile, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
