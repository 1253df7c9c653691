package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/varmenne/varmenne/bench"
	"github.com/varmenne/varmenne/store"
)

// benchCmd is "varmenne bench": the load generator of package bench, against any
// ACME directory. EAB keys come from --eab, or are created in a local server's
// database (--local-org with --data/--db).
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	directory := fs.String("directory", "https://127.0.0.1:14000/acme/directory", "ACME directory URL of the server under test")
	roots := fs.String("ca-roots", "", "PEM file of the roots the server's TLS certificate chains to (default: <data>/roots.pem when it exists, else the system's)")
	var eabs stringList
	fs.Var(&eabs, "eab", "KID:HMAC (HMAC base64url) of an EAB key; one account per key (repeatable)")
	localOrg := fs.String("local-org", "", "create the accounts' EAB keys for this organisation OID in the local server's database (--data/--db); the organisation is added with --domain when missing")
	data := dataFlag(fs)
	db := dbFlag(fs)
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
	var pids stringList
	fs.Var(&pids, "server-pid", "PID of a server process whose CPU time (with its children's) is reported per certificate (repeatable)")
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	quiet := fs.Bool("quiet", false, "no progress line")
	timeout := fs.Duration("order-timeout", 2*time.Minute, "deadline of one order")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg := bench.Config{Directory: *directory, Accounts: *accounts, Orders: *orders, Concurrency: *concurrency,
		KeyType: *keyType, Profile: *profile, Poll: *poll, Domain: *domain, HTTP01: *http01, DNS: *dnsListen, Timeout: *timeout}
	switch *mode {
	case "tight":
	case "stock":
		cfg.Stock = true
	default:
		return fmt.Errorf("bench: --mode %q: use tight or stock", *mode)
	}
	for _, p := range pids {
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return fmt.Errorf("bench: --server-pid %q is not a process ID", p)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
			return fmt.Errorf("bench: --server-pid %d: no such process", pid)
		}
		cfg.ServerPIDs = append(cfg.ServerPIDs, pid)
	}
	for _, e := range eabs {
		kid, mac, ok := strings.Cut(e, ":")
		key, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(mac, "="))
		if !ok || kid == "" || err != nil || len(key) == 0 {
			return fmt.Errorf("bench: --eab %q: give KID:HMAC with the HMAC key in base64url", redactEAB(e))
		}
		cfg.EAB = append(cfg.EAB, bench.EAB{KID: kid, HMAC: key})
	}
	if *localOrg != "" {
		if len(eabs) > 0 {
			return errors.New("bench: give either --eab keys or --local-org, not both")
		}
		keys, err := benchLocalEAB(ctx, *db, *data, *localOrg, *domain, *accounts)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		cfg.EAB = keys
	}
	pool, err := benchRoots(*roots, *data)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
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

func benchRoots(file, data string) (*x509.CertPool, error) {
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

// benchLocalEAB creates n approved EAB keys for organisation oid in the local
// database, adding the organisation (administering domain) when it is missing.
func benchLocalEAB(ctx context.Context, db, data, oid, domain string, n int) ([]bench.EAB, error) {
	if !oidPattern.MatchString(oid) {
		return nil, fmt.Errorf("--local-org %q is not an OID; it looks like 1.2.246.10.12345678.10.0", oid)
	}
	if n < 1 {
		return nil, fmt.Errorf("--accounts %d: give at least 1", n)
	}
	st, err := openExisting(ctx, db, data)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if _, err := st.GetOrganisation(ctx, oid); errors.Is(err, store.ErrNotFound) {
		err = st.AddOrganisation(ctx, store.Organisation{OID: oid, Name: "Bench Oy " + oid, LongName: "Bench Oy " + oid,
			Domains: []string{domain}, CreatedAt: time.Now()})
		if err != nil && !errors.Is(err, store.ErrDuplicate) {
			return nil, fmt.Errorf("adding organisation %s: %w", oid, err)
		}
	} else if err != nil {
		return nil, err
	}
	keys := make([]bench.EAB, n)
	for i := range keys {
		k := newEABKey(oid, nil, nil)
		if err := st.CreateEAB(ctx, k); err != nil {
			return nil, fmt.Errorf("creating an EAB key: %w", err)
		}
		keys[i] = bench.EAB{KID: k.KID, HMAC: k.HMACKey}
	}
	return keys, nil
}
