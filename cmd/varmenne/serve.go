package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/varmenne/varmenne/acme/authority"
	"github.com/varmenne/varmenne/acme/server"
	"github.com/varmenne/varmenne/acme/validate"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/signer/filekey"
)

type serveConfig struct {
	data          string
	listen        string
	baseURL       string
	publicURL     string
	http01Port    int
	dnsResolver   string
	allowNets     stringList
	devKeyType    string
	tos           string
	website       string
	logFormat     string
	validationTTL time.Duration
	// Domain control (issue 8).
	tlsALPNPort    int
	caaIdentities  stringList
	caaRecheck     time.Duration
	authzReuse     time.Duration
	allowWildcards bool
	chaosNonces    float64 // tests only (issue 10)
	altChains      stringList
}

// defaultCAAIdentity is the CAA issuer domain name used when --caa-identity is not
// given; production sets the CA's real domain.
const defaultCAAIdentity = "varmenne.example"

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c serveConfig
	fs := newFlags("serve", stderr)
	fs.StringVar(&c.data, "data", "varmenne-data", "data directory: database, development keys, roots.pem")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:14000", "address of the ACME HTTPS listener")
	fs.StringVar(&c.baseURL, "base-url", "", "URL clients reach the ACME listener at (default https://<listen>)")
	fs.StringVar(&c.publicURL, "public-url", "http://127.0.0.1:14080", "base of the plain-HTTP URLs put in certificates (CRL distribution point, OCSP, issuer AIA)")
	fs.IntVar(&c.http01Port, "http01-port", 80, "port http-01 validation connects to (tests use a high port)")
	fs.StringVar(&c.dnsResolver, "dns-resolver", "", "IP:PORT of the DNS server validation asks, an address rather than a name (default: the system resolver)")
	fs.Var(&c.allowNets, "validation-allow", "non-public CIDR validation may connect to, e.g. 10.20.0.0/16 for an internal network (repeatable)")
	fs.StringVar(&c.devKeyType, "dev-key-type", "ecdsa-p384", "key type of the development root and issuers made on first start: ecdsa-p256, ecdsa-p384, rsa-4096")
	fs.StringVar(&c.tos, "terms-of-service", "https://varmenne.example/terms", "terms-of-service URL in the directory")
	fs.StringVar(&c.website, "website", "https://varmenne.example/", "website URL in the directory")
	fs.StringVar(&c.logFormat, "log-format", "", "json or text (default: text on a terminal, json otherwise)")
	fs.DurationVar(&c.validationTTL, "validation-timeout", 15*time.Second, "deadline of one validation attempt")
	db := dbFlag(fs)
	opsListen := fs.String("ops-listen", "127.0.0.1:14090", "address of the plain-HTTP operator listener: /healthz, /readyz (empty: none)")
	fs.IntVar(&c.tlsALPNPort, "tlsalpn01-port", 443, "port tls-alpn-01 validation connects to (tests use a high port)")
	fs.Var(&c.caaIdentities, "caa-identity", "domain name CAA issue/issuewild records name this CA by (repeatable; default "+defaultCAAIdentity+")")
	fs.DurationVar(&c.caaRecheck, "caa-recheck-after", authority.MaxCAARecheckAfter, "at finalize, check CAA again for names validated longer ago than this (at most 8h)")
	fs.DurationVar(&c.authzReuse, "authz-reuse", 7*24*time.Hour, "reuse an account's valid authorization validated within this window (at most 720h; 0: never)")
	fs.BoolVar(&c.allowWildcards, "allow-wildcards", false, "allow wildcard names (*.example.fi) in every server profile, proven with dns-01 only")
	fs.Float64Var(&c.chaosNonces, "chaos-reject-nonces", 0, "tests only: share 0..1 of valid nonces refused with badNonce, evenly spread (0.1: every tenth), to exercise clients' retries (never in production)")
	fs.Var(&c.altChains, "alternate-chain", "ISSUER=FILE: PEM chain served as an alternate (Link rel=\"alternate\") after the leaf of ISSUER's (production, test) certificates, beginning with the issuer's subject and key, e.g. cross-signed (repeatable)")
	configFile := fs.String("config", "", "JSON file of certificate profiles and their policy plugins (default: the four built-in SOTE profiles)")
	// Issuer keys in an HSM (keys.go).
	hsm := hsmFlags(fs, "production", "test")
	revFlags := addRevocationFlags(fs) // --public-listen, --crl-validity (crl.go)
	regFlags := addRegisterFlags(fs)   // --register-source, --register-refresh, --register-max-stale (orgregister.go)
	// Rate limits shared by the replicas, --limit-* (ratelimits.go).
	rateLimits := addRateLimitFlags(fs)
	adminCfg := addAdminFlags(fs) // --admin-listen, --eab-*-lifetime, --dual-control (operators.go)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	adminCfg.noteExplicit(fs)
	if err := adminCfg.validate(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	log, err := newLogger(c.logFormat, stderr)
	if err != nil {
		return err
	}
	if !(c.chaosNonces >= 0 && c.chaosNonces <= 1) {
		return fmt.Errorf("serve: --chaos-reject-nonces %v must be between 0 and 1, e.g. 0.1 to refuse 10%% of nonces (tests only)", c.chaosNonces)
	}
	var nets []netip.Prefix
	for _, s := range c.allowNets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("serve: --validation-allow %q is not a CIDR such as 10.20.0.0/16", s)
		}
		nets = append(nets, p.Masked())
	}
	if c.dnsResolver != "" {
		// An address, not a name: the validator would need a resolver to find it.
		if _, err := netip.ParseAddrPort(c.dnsResolver); err != nil {
			return fmt.Errorf("serve: --dns-resolver %q must be IP:PORT, e.g. 127.0.0.1:53", c.dnsResolver)
		}
	}
	altChains, err := readAlternateChains(c.altChains) // altchains.go
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if c.devKeyType != "" && !slices.Contains(filekey.KeyTypes, c.devKeyType) {
		return fmt.Errorf("serve: --dev-key-type %q: use one of %s", c.devKeyType, strings.Join(filekey.KeyTypes, ", "))
	}
	if len(c.caaIdentities) == 0 {
		c.caaIdentities = stringList{defaultCAAIdentity}
	}
	// Built before anything starts, so a bad flag stops the start with nothing made.
	val, err := validate.New(validate.Config{
		Resolver:      c.dnsResolver,
		HTTPPort:      c.http01Port,
		AllowedNets:   nets,
		Timeout:       c.validationTTL,
		TLSALPNPort:   c.tlsALPNPort,
		CAAIdentities: c.caaIdentities,
	})
	if err != nil {
		return fmt.Errorf("serve: validator: %w", err)
	}
	profiles, err := loadProfiles(*configFile, c.allowWildcards) // profiles.go
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	authCfg := authority.Config{ValidationTimeout: c.validationTTL, AuthzReuse: c.authzReuse,
		CAARecheckAfter: c.caaRecheck, DefaultProfile: profiles.Default}
	authCfg.RateLimits = *rateLimits
	if c.authzReuse == 0 {
		authCfg.AuthzReuse = -1 // the flag's 0 means never; the Config's 0 means the default
	}
	if c.caaRecheck == 0 {
		authCfg.CAARecheckAfter = time.Nanosecond // always recheck
	}
	if err := authCfg.Validate(); err != nil {
		return fmt.Errorf("serve: --authz-reuse / --caa-recheck-after: %w", err)
	}

	if err := os.MkdirAll(c.data, 0o700); err != nil {
		return fmt.Errorf("serve: cannot create the data directory: %w", err)
	}
	st, err := openStore(ctx, *db, c.data)
	if err != nil {
		return fmt.Errorf("serve: opening the database %s: %w", describeDB(*db, c.data), err)
	}
	defer st.Close()
	opsAddr, stopOps, err := startOps(*opsListen, st, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer stopOps()

	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("serve: cannot listen on %s: %w", c.listen, err)
	}
	defer ln.Close()
	if c.baseURL == "" {
		c.baseURL = "https://" + ln.Addr().String()
	}

	// The development PKI of file keys, or the HSM keys varmenne init made (keys.go).
	pki, closeKeys, err := issuerKeys(ctx, hsm(), c.data, c.devKeyType, tlsNames(c.baseURL), log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer closeKeys()
	if err := addAlternateChains(pki, altChains); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	rootsPath := filepath.Join(c.data, "roots.pem")
	if err := os.WriteFile(rootsPath, pki.RootsPEM, 0o644); err != nil {
		return fmt.Errorf("serve: writing %s: %w", rootsPath, err)
	}

	public := strings.TrimSuffix(c.publicURL, "/")
	// THL's register for the thl and sote plugins, put into the default chains (orgregister.go).
	if err := startRegister(ctx, regFlags, profiles, log); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// One signer.CA per profile, on its issuer, and its policy chain (profiles.go).
	// Every signature and revocation, and this start and stop, go to the audit log.
	aud := audit.Recorder{Log: audit.New(st, nil), Actor: "varmenne serve"}
	authCfg.Audit = aud
	authProfiles, err := buildProfiles(profiles, pki, public, st, aud, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}

	publicAddr, stopRevocation, err := startRevocationStatus(ctx, revFlags, st, pki, public, log) // CRLs, OCSP (crl.go)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer stopRevocation()

	// acme/server serves accounts at <base>/acme/account/<id>; CAA accounturi names them.
	authCfg.AccountURIPrefix = strings.TrimSuffix(c.baseURL, "/") + "/acme/account/"
	auth, err := authority.NewWithProfiles(authCfg, st, val, authProfiles, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer auth.Close()
	sweepCtx, stopSweep := context.WithCancel(ctx)
	defer stopSweep()                         // before the store closes: deferred calls run last-in first
	go auth.RunSweeper(sweepCtx, time.Minute) // fails what a dead replica left processing (ROBUSTNESS 76)
	if c.chaosNonces > 0 {
		log.Warn("test-only chaos: refusing a share of valid nonces with badNonce; never use this in production", "chaos_reject_nonces", c.chaosNonces)
	}
	acmeSrv := server.New(server.Config{BaseURL: c.baseURL, TermsOfService: c.tos, Website: c.website, CAAIdentities: val.CAAIdentities(),
		ChaosRejectNonces: c.chaosNonces},
		auth, newNonces(ctx, st, *db, log), log)

	httpSrv := httpsServer(acmeSrv.Handler(), &tls.Config{Certificates: []tls.Certificate{pki.TLS}, MinVersion: tls.VersionTLS12}, log)
	storage, keys := "SQLite", "development PKI of file keys"
	if isPostgres(*db) {
		storage = "PostgreSQL"
	}
	if hsm().Enabled() {
		keys = "issuer keys in the HSM"
	}
	auditObject := fmt.Sprintf("listen=%s keys=%q", ln.Addr(), keys)
	// The operator side's configuration is recorded with every start (operators.go).
	auditObject += " " + adminCfg.auditObject()
	if err := aud.Audit(ctx, "serve.start", auditObject, audit.OK); err != nil {
		return fmt.Errorf("serve: cannot write the audit log: %w", err)
	}
	stopOutcome := audit.OK
	defer func() {
		if err := aud.Audit(context.WithoutCancel(ctx), "serve.stop", auditObject, stopOutcome); err != nil {
			log.Error("serve stop not written to the audit log", "err", err)
		}
	}()
	// The operators' API and console (operators.go).
	adminAddr, stopAdmin, err := startAdmin(ctx, adminCfg, c.data, st, aud.Log, pki.TLS, profiles.Names(), log)
	if err != nil {
		stopOutcome = audit.Failed + ": the admin listener did not start"
		return fmt.Errorf("serve: %w", err)
	}
	defer stopAdmin()
	errc := make(chan error, 1)
	go func() { errc <- httpSrv.ServeTLS(ln, "", "") }()

	fmt.Fprintf(stdout, "varmenne is running (%s, %s).\n", storage, keys)
	fmt.Fprintf(stdout, `  ACME directory: %s
  Trust roots:    %s
Add an organisation and create an EAB key for its ACME client:
  %[3]s org add --data %[4]s --oid 1.2.246.10.12345678.10.0 --name "Apteekki Oy" --domain apteekki.example
  %[3]s eab create --data %[4]s --org 1.2.246.10.12345678.10.0
`, acmeSrv.DirectoryURL(), rootsPath, os.Args[0], c.data)
	if isPostgres(*db) {
		fmt.Fprintf(stdout, "  Database:       PostgreSQL %s (give org add and eab create the same --db)\n", redact(*db))
	}
	if opsAddr != "" {
		fmt.Fprintf(stdout, "  Health:         http://%s/healthz, http://%[1]s/readyz\n", opsAddr)
	}
	fmt.Fprintf(stdout, "  CRLs and OCSP:  %s (listening on %s)\n", crlURL(public, pki.Production.Name), publicAddr)
	if adminCfg.busy != "" {
		fmt.Fprintf(stdout, "  Operators:      not listening: %s\n", adminCfg.busy)
	}
	if adminAddr != "" {
		fmt.Fprintf(stdout, "  Operators:      https://%s/console/ and https://%[1]s/admin/v1/ (add one: %s operator add NAME --role administrator --data %s)\n", adminAddr, os.Args[0], c.data)
	}

	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			stopOutcome = audit.Failed + ": the listener stopped with an error"
			return fmt.Errorf("serve: %w", err)
		}
	case <-ctx.Done():
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(sctx)
	}
	return nil
}

// httpsServer is an HTTPS server of h with the timeouts and header limit of every
// varmenne listener that clients reach.
func httpsServer(h http.Handler, tlsConfig *tls.Config, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// tlsNames are the names the ACME listener's certificate must carry.
func tlsNames(baseURL string) []string {
	host := strings.TrimPrefix(strings.TrimPrefix(baseURL, "https://"), "http://")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return nil
	}
	return []string{host}
}

func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	default:
		return nil, fmt.Errorf("serve: --log-format %q: use json or text", format)
	}
}
