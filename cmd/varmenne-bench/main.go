// Command varmenne-bench is the ACME load generator of package bench as a command: it
// drives any ACME directory (varmenne, Pebble, step-ca) with concurrent orders and
// prints certificates per second, step latencies and errors by problem type. It is a
// tool beside the CA, not part of it: the varmenne binary does not link it.
//
// EAB keys come from --eab, or are made in a local varmenne server's database
// (--local-org with --data or --db).
package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/varmenne/varmenne/bench"
	"github.com/varmenne/varmenne/cmd/internal/flagenv"
)

const usage = `varmenne-bench — ACME load generator

Usage:
  varmenne-bench --directory URL (--eab KID:HMAC... | --local-org OID [--data DIR | --db URL]) [--orders M] [--concurrency C]
                 [--key p256|rsa2048|rsa4096] [--mode tight|stock] [--server-pid PID] [--json]

Every flag can also be set as VARMENNE_<FLAG>, e.g. VARMENNE_DIRECTORY=https://127.0.0.1:14000/acme/directory.
Run "varmenne-bench -h" for the flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "varmenne-bench: "+err.Error())
		}
		os.Exit(2)
	}
}

// run is one load run against the directory the flags name.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "help" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprint(stdout, usage)
		return nil
	}
	fs := flagenv.NewFlagSet("varmenne-bench", stderr)
	directory := fs.String("directory", "https://127.0.0.1:14000/acme/directory", "ACME directory URL of the server under test")
	roots := fs.String("ca-roots", "", "PEM file of the roots the server's TLS certificate chains to (default: <data>/roots.pem when it exists, else the system's)")
	var eabs, pids flagenv.List
	fs.Var(&eabs, "eab", "KID:HMAC (HMAC base64url) of an EAB key; one account per key (repeatable)")
	localOrg := fs.String("local-org", "", "create the accounts' EAB keys for this organisation OID in the local server's database (--data/--db); the organisation is added with --domain when missing")
	data := fs.String("data", "varmenne-data", "data directory of the local varmenne server: its database, roots.pem")
	db := fs.String("db", "", "database of the local varmenne server: empty for SQLite in the data directory; a postgres://USER@HOST:PORT/DB URL for PostgreSQL")
	secretFile := fs.String("eab-secret-file", "", "the local varmenne server's EAB secret, which seals the EAB keys --local-org writes (default: DATA/eab-secret.key)")
	accounts := fs.Int("accounts", 1, "accounts (EAB keys made with --local-org; without EAB: accounts without a binding)")
	orders := fs.Int("orders", 100, "orders in all")
	concurrency := fs.Int("concurrency", 8, "orders in flight at once")
	keyType := fs.String("key", "p256", "certificate key type: p256, rsa2048, rsa4096 (made before the clock starts)")
	profile := fs.String("profile", "", "ACME profile asked for in newOrder (default: the server's)")
	mode := fs.String("mode", "tight", "tight: poll every --poll, measures the server; stock: honour Retry-After like an unmodified client, measures what users see")
	poll := fs.Duration("poll", 5*time.Millisecond, "tight mode: wait between polls of a pending authorization or processing order")
	domain := fs.String("domain", "bench.example", "domain the order names are made under (the account must be allowed it)")
	http01 := fs.String("http01-listen", "127.0.0.1:5002", "listen address of the http-01 responder (the server's --http01-port must reach it)")
	dnsListen := fs.String("dns-listen", "127.0.0.1:5053", "listen address of the DNS server answering every order name with 127.0.0.1 (the server's --dns-resolver); empty: none")
	fs.Var(&pids, "server-pid", "PID of a server process whose CPU time (with its children's) is reported per certificate (repeatable)")
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	quiet := fs.Bool("quiet", false, "no progress line (on a terminal) or summary line (otherwise) on stderr")
	timeout := fs.Duration("order-timeout", 2*time.Minute, "deadline of one order")
	if err := flagenv.Parse(fs, args); err != nil {
		return err
	}
	cfg := bench.Config{Directory: *directory, Accounts: *accounts, Orders: *orders, Concurrency: *concurrency,
		KeyType: *keyType, Profile: *profile, Poll: *poll, Domain: *domain, HTTP01: *http01, DNS: *dnsListen, Timeout: *timeout}
	switch *mode {
	case "tight":
	case "stock":
		cfg.Stock = true
	default:
		return fmt.Errorf("--mode %q: use tight or stock", *mode)
	}
	for _, p := range pids {
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return fmt.Errorf("--server-pid %q is not a process ID", p)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
			return fmt.Errorf("--server-pid %d: no such process", pid)
		}
		cfg.ServerPIDs = append(cfg.ServerPIDs, pid)
	}
	for _, e := range eabs {
		kid, mac, ok := strings.Cut(e, ":")
		key, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(mac, "="))
		if !ok || kid == "" || err != nil || len(key) == 0 {
			return fmt.Errorf("--eab %q: give KID:HMAC with the HMAC key in base64url", redactEAB(e))
		}
		cfg.EAB = append(cfg.EAB, bench.EAB{KID: kid, HMAC: key})
	}
	if *localOrg != "" {
		if len(eabs) > 0 {
			return errors.New("give either --eab keys or --local-org, not both")
		}
		keys, err := localEAB(ctx, *db, *data, *secretFile, *localOrg, *domain, *accounts) // localeab.go
		if err != nil {
			return err
		}
		cfg.EAB = keys
	}
	pool, err := readRoots(*roots, *data)
	if err != nil {
		return err
	}
	cfg.Roots = pool
	if !*quiet && !*asJSON {
		cfg.Progress = stderr
	}
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.WriteText(stdout)
	return nil
}

// redactEAB keeps an HMAC key out of error messages.
func redactEAB(e string) string {
	if kid, _, ok := strings.Cut(e, ":"); ok {
		return kid + ":…"
	}
	return "…"
}

// readRoots is the pool of --ca-roots, else of <data>/roots.pem when the local
// server wrote one; nil (the system's roots) when neither is there.
func readRoots(file, data string) (*x509.CertPool, error) {
	if file == "" {
		def := data + "/roots.pem"
		if _, err := os.Stat(def); err != nil {
			return nil, nil // the system's roots
		}
		file = def
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("--ca-roots: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--ca-roots %s holds no PEM certificate", file)
	}
	return pool, nil
}
