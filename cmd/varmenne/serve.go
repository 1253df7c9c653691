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
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/varmenne/varmenne/acme/authority"
	"github.com/varmenne/varmenne/acme/server"
	"github.com/varmenne/varmenne/acme/validate"
	"github.com/varmenne/varmenne/alert"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/internal/metrics"
	"github.com/varmenne/varmenne/revocation"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/store"
)

// serve is "varmenne serve": a validated configuration (serveconfig.go), then the
// wiring of the store, the keys, the listeners and the ACME service, each started
// by a function below and stopped in the reverse order.
// serveGCPercent is the garbage collector's target the server runs with unless
// GOGC says otherwise: collect when the heap has grown by 4 × what is live, not
// Go's 1 ×. The server's live heap is about 10 MB and it allocates on every
// request; at Go's default the collector took 6 % of issuance CPU, at 400 it takes
// 2 %, for a heap of about 50 MB instead of 20 (docs/performance.md). GOMEMLIMIT
// still makes it collect sooner near a memory limit.
const serveGCPercent = 400

// setGCPercent applies serveGCPercent when GOGC is not set.
func setGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serveGCPercent)
	}
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseServeConfig(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.logFormat, stderr)
	if err != nil {
		return err
	}
	logWeakKeys(log, cfg.authority.WeakKeys) // weakkeys.go
	setGCPercent()
	anchors := "the root zone's (built in)"
	if cfg.dnssecAnchors != "" {
		anchors = cfg.dnssecAnchors
	}
	log.Info("DNSSEC: every validation and CAA answer is checked", "trust_anchors", anchors, "insecure_zones", []string(cfg.dnssecInsecure))
	// The data directory (0700), the database and the EAB secret (db.go).
	st, err := cfg.db.open(ctx, cfg.data, creating)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer st.Close()
	// Production or development (production.go): a database that served in
	// production holds this start to production's rules too.
	if err := cfg.enterMode(ctx, st); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	m := newMetrics(st)                                                                        // metrics.go
	opsAddr, stopOps, err := startOps(cfg.opsListen, st, m.Handler(metricsErrorLog{log}), log) // db.go
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer stopOps()

	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return fmt.Errorf("serve: cannot listen on %s: %w", cfg.listen, err)
	}
	defer ln.Close()
	if cfg.baseURL == "" {
		cfg.baseURL = "https://" + ln.Addr().String()
	}
	// Every signature and revocation, every key event, and this start and stop go
	// to the audit log.
	aud := audit.Recorder{Log: audit.New(st, nil), Actor: "varmenne serve"}
	aud.Log.Count(m.AuditAppended, m.AuditFailed)
	// The alert hook watches the audit log; the anchors write its head outside the
	// database (alerts.go). Both stop after the stop's audit event, in this order.
	alerts, watcher, err := cfg.alerts.start(log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), alertsClose)
		defer cancel()
		alerts.Close(ctx)
	}()
	if watcher != nil {
		aud.Log.Watch(watcher.AuditEvent)
		cfg.register.alert = watcher
	}
	defer anchoring(ctx, st, cfg.alerts.anchorsPath(cfg.data), cfg.alerts.anchorEvery, alerts, log)()
	// The HSM login, naming the two holders whose shares activated it, each issuer
	// key's self-test and every re-login, as they happen and whatever their outcome.
	cfg.keys.OnEvent = func(e audit.Event, err error) error {
		outcome := audit.OK
		if err != nil {
			outcome = audit.Failed + ": " + err.Error()
		}
		return aud.Audit(context.WithoutCancel(ctx), e, outcome)
	}
	cfg.keys.OnRelogin = func(err error) {
		if aerr := cfg.keys.OnEvent(audit.HSMRelogin{Token: cfg.keys.Token}, err); aerr != nil {
			log.Error("HSM re-login not written to the audit log", "err", aerr)
		}
	}
	pki, roots, closeKeys, err := loadKeys(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer closeKeys()
	watchKeys(m, st, pki) // metrics.go
	if err := recordKeys(ctx, aud, cfg, pki); err != nil {
		return fmt.Errorf("serve: cannot write the audit log: %w", err)
	}

	public := strings.TrimSuffix(cfg.publicURL, "/")
	// The operator service (operate.go); the register refresh writes through it.
	development := !cfg.authority.Production
	adminSvc := newAdminService(cfg.admin, cfg.profiles, development, st, aud.Log, log)
	// THL's register, in the store, for the standing check and the sote plugin
	// (orgregister.go).
	register, err := startRegister(ctx, cfg.register, registerStore{st: st, sync: adminSvc.SyncRegister, last: st.LastRegisterLoad}, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if register != nil {
		cfg.authority.Register = register
		m.RegisterMaxStale(cfg.register.maxStale)
	}
	// Every issuer generation loaded is registered; the database says which one of
	// each hierarchy issues (issuers.go).
	active, err := registerGenerations(ctx, adminSvc, st, pki)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// One signer.CA per profile and generation, issuing with the active one, and
	// the profile's policy chain (profiles.go).
	profiles, rollovers, err := buildProfiles(cfg.profiles, pki, active, public, st, aud, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	watchProfiles(m, profiles) // metrics.go
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go watchIssuers(watchCtx, st, rollovers, log)
	publicAddr, stopRevocation, err := startRevocationStatus(ctx, cfg.revocation, st, pki, public, log) // CRLs, OCSP (crl.go)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer stopRevocation()
	auth, stopAuthority, err := startAuthority(ctx, cfg, st, profiles, aud, m, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer stopAuthority()
	acmeSrv := newACMEServer(ctx, cfg, st, auth, m, log, watcher)

	// The software version and the configuration are recorded with every start
	// (the operator side's in operators.go).
	started := audit.ServeStarted{Version: version(), Listen: ln.Addr().String(), Keys: cfg.keysName(), Config: cfg.admin.auditObject()}
	if err := aud.Audit(ctx, started, audit.OK); err != nil {
		return fmt.Errorf("serve: cannot write the audit log: %w", err)
	}
	stopOutcome := audit.OK
	defer func() {
		if err := aud.Audit(context.WithoutCancel(ctx), audit.ServeStopped{Version: started.Version}, stopOutcome); err != nil {
			log.Error("serve stop not written to the audit log", "err", err)
		}
	}()
	startNotices(ctx, cfg.notice, st, log) // revocation notices by e-mail (notice.go)
	// On a new database the operator service makes the first administrator, whose
	// token the operator commands use (operate.go).
	tokenFile, err := bootstrap(ctx, cfg.data, adminSvc)
	if err != nil {
		stopOutcome = audit.Failed + ": the first administrator could not be made"
		return fmt.Errorf("serve: %w", err)
	}
	if !development {
		log.Info("production mode: THL's register, the SOTE plugins and dual control are required", "because", cfg.productionReason())
	} else {
		log.Warn("development mode (file keys): \"varmenne eab create\" requests, approves and hands over a key by one operator (single control, recorded as such); with HSM keys a second administrator approves")
	}
	// The operators' API and console (operators.go).
	cfg.admin.ca = consoleCA(cfg, pki)
	adminAddr, stopAdmin, err := startAdmin(ctx, cfg.admin, cfg.data, adminSvc, aud.Log, pki.TLS, log)
	if err != nil {
		stopOutcome = audit.Failed + ": the admin listener did not start"
		return fmt.Errorf("serve: %w", err)
	}
	defer stopAdmin()

	httpSrv := httpsServer(acmeSrv.Handler(), &tls.Config{Certificates: []tls.Certificate{pki.TLS}, MinVersion: tls.VersionTLS12}, log)
	errc := make(chan error, 1)
	go func() { errc <- httpSrv.ServeTLS(ln, "", "") }()
	printStarted(stdout, cfg, startedAt{directory: acmeSrv.DirectoryURL(), roots: roots.production, testRoots: roots.test, ops: opsAddr,
		crl: crlURL(public, pki.Production.Name), public: publicAddr, admin: adminAddr, tokenFile: tokenFile, development: development})

	if err := waitForStop(ctx, httpSrv, errc, log); err != nil {
		stopOutcome = audit.Failed + ": the listener stopped with an error"
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// waitForStop waits until ctx ends, then shuts srv down gracefully, or until srv's
// listener fails (errc), which it returns.
func waitForStop(ctx context.Context, srv *http.Server, errc <-chan error, log *slog.Logger) error {
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return nil
}

// loadKeys is the development PKI of file keys, or the HSM keys varmenne init made
// (keys.go), with the alternate chains, and the roots written for relying parties
// and clients to trust: roots.pem (the production root) and test-roots.pem.
func loadKeys(ctx context.Context, cfg *serveConfig, log *slog.Logger) (pki *filekey.DevPKI, roots rootFiles, closeKeys func(), err error) {
	pki, closeKeys, err = issuerKeys(ctx, cfg.keys, cfg.data, cfg.devKeyType, tlsNames(cfg.baseURL), log)
	if err != nil {
		return nil, roots, nil, err
	}
	if err := addAlternateChains(pki, cfg.chains); err != nil { // altchains.go
		closeKeys()
		return nil, roots, nil, err
	}
	if roots.production, roots.test, err = filekey.WriteRoots(cfg.data, pki.Root, pki.TestRoot); err != nil {
		closeKeys()
		return nil, roots, nil, fmt.Errorf("writing the roots files: %w", err)
	}
	return pki, roots, closeKeys, nil
}

// rootFiles are the paths of roots.pem and test-roots.pem.
type rootFiles struct{ production, test string }

// recordKeys records every OCSP responder certificate an issuer key signed at
// start (the HSM login and the self-tests are recorded as they happen, through
// cfg.keys.OnEvent).
func recordKeys(ctx context.Context, aud audit.Recorder, cfg *serveConfig, pki *filekey.DevPKI) error {
	var events []audit.Event
	for _, g := range pki.Generations {
		if r := g.OCSP; r != nil && r.Issued {
			events = append(events, audit.OCSPResponderIssued{Issuer: g.Issuer.Name, Serial: r.Cert.SerialNumber.Text(16), NotAfter: r.Cert.NotAfter})
		}
	}
	for _, e := range events {
		if err := aud.Audit(ctx, e, audit.OK); err != nil {
			return err
		}
	}
	return nil
}

// startAuthority is the ACME rules over the store, the validator and the profiles,
// with the sweeper that fails what a dead replica left processing (ROBUSTNESS 76).
// This process is an instance of the store (store/liveness.go): what it puts into
// processing names it, and the sweepers of its successors or of the other replicas
// fail that work as soon as the process is gone. The sweeper runs at start and
// every sweepEvery. stop ends the sweeper, waits for background validations and
// gives the instance up; call it before the store closes.
func startAuthority(ctx context.Context, cfg *serveConfig, st *store.SQL, profiles []authority.Profile, aud audit.Recorder, m *metrics.Metrics, log *slog.Logger) (*authority.Authority, func(), error) {
	val, err := validate.New(cfg.validation) // checked by Validate
	if err != nil {
		return nil, nil, fmt.Errorf("validator: %w", err)
	}
	ac := cfg.authority
	ac.Audit = aud
	ac.Metrics = m
	// revokeCert goes to the one revocation component, as every door's revocation.
	ac.Revoker = revocation.New(st, aud.Log, nil)
	// acme/server serves accounts at <base>/acme/account/<id>; CAA accounturi names them.
	ac.AccountURIPrefix = strings.TrimSuffix(cfg.baseURL, "/") + "/acme/account/"
	auth, err := authority.NewWithProfiles(ac, st, m.Validations(val), profiles, log)
	if err != nil {
		return nil, nil, err
	}
	inst, err := st.StartInstance(ctx)
	if err != nil {
		return nil, nil, err
	}
	sweepCtx, stopSweep := context.WithCancel(ctx)
	go keepInstance(sweepCtx, inst, log)
	go auth.RunSweeper(sweepCtx, sweepEvery)
	return auth, func() {
		stopSweep()
		auth.Close()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := inst.Close(cctx); err != nil {
			log.Warn("the instance's liveness lock not released; it goes with the process", "err", err)
		}
	}, nil
}

// sweepEvery is how often the sweeper looks for work a gone process left; the time
// it costs a crash's orders on top of the restart (issue 17).
const sweepEvery = 5 * time.Second

// keepInstance checks the instance's liveness lock every second and takes it again
// when its database session ended (PostgreSQL), before the other replicas take the
// instance for dead.
func keepInstance(ctx context.Context, inst *store.Instance, log *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := inst.Renew(ctx); err != nil && ctx.Err() == nil {
			log.Error("instance liveness lock", "instance", inst.ID, "err", err, "alert", true)
		}
	}
}

// newACMEServer is the ACME front end of auth, with the nonces of one process or of
// the replicas sharing PostgreSQL (db.go).
func newACMEServer(ctx context.Context, cfg *serveConfig, st *store.SQL, auth *authority.Authority, m *metrics.Metrics, log *slog.Logger, w *alert.Watcher) *server.Server {
	if cfg.chaosNonces > 0 {
		log.Warn("test-only chaos: refusing a share of valid nonces with badNonce; never use this in production", "chaos_reject_nonces", cfg.chaosNonces)
	}
	return server.New(server.Config{BaseURL: cfg.baseURL, TermsOfService: cfg.tos, Website: cfg.website,
		CAAIdentities: cfg.validation.CAAIdentities, ChaosRejectNonces: cfg.chaosNonces, OnProblem: w.ACMEProblem, Metrics: m},
		auth, newNonces(ctx, st, cfg.db.url, log), log)
}

// started is what a running server tells its operator.
type startedAt struct {
	directory, roots string
	testRoots        string // test-roots.pem
	ops              string // "": no operator listener
	crl, public      string
	admin            string // "": no admin listener
	tokenFile        string // the first administrator's token, written by this start; "" none
	development      bool
}

// printStarted prints the lines an operator (and the tests) read once serve runs:
// the ACME directory, the roots to trust and the first commands to give.
func printStarted(w io.Writer, cfg *serveConfig, s startedAt) {
	fmt.Fprintf(w, "varmenne is running (%s, %s).\n", cfg.storageName(), cfg.keysName())
	if s.development {
		fmt.Fprintln(w, "  Development mode: eab create approves its own request (single control, so recorded); HSM keys need a second administrator.")
	}
	if s.tokenFile != "" {
		fmt.Fprintf(w, "  First administrator: \"bootstrap\", token in %s (readable by you only); the operator commands act as it.\n", s.tokenFile)
	}
	fmt.Fprintf(w, "  ACME directory: %s\n", s.directory)
	fmt.Fprintf(w, "  Trust roots:    %s (production relying parties and ACME clients: this file only)\n", s.roots)
	fmt.Fprintf(w, "  Test roots:     %s (test environments only: the test profiles' certificates chain here)\n", s.testRoots)
	if s.development {
		fmt.Fprintf(w, `Add an organisation and create an EAB key for its ACME client:
  %[1]s org add --data %[2]s --oid 1.2.246.10.12345678.10.0 --name "Apteekki Oy" --domain apteekki.example
  %[1]s eab create --data %[2]s --org 1.2.246.10.12345678.10.0
`, os.Args[0], cfg.data)
	} else {
		fmt.Fprintf(w, `Approve the domains of an organisation THL's register lists, and request an EAB key for its ACME client (another administrator approves it):
  %[1]s org domains add 1.2.246.10.12345678.10.0 --data %[2]s --domain apteekki.example
  %[1]s eab create --data %[2]s --org 1.2.246.10.12345678.10.0
`, os.Args[0], cfg.data)
	}
	if isPostgres(cfg.db.url) {
		fmt.Fprintf(w, "  Database:       PostgreSQL %s (give org add and eab create the same --db and --eab-secret-file)\n", redact(cfg.db.url))
	}
	if s.ops != "" {
		fmt.Fprintf(w, "  Health:         http://%s/healthz, http://%[1]s/readyz\n", s.ops)
		fmt.Fprintf(w, "  Metrics:        http://%s/metrics (Prometheus)\n", s.ops)
	}
	fmt.Fprintf(w, "  CRLs and OCSP:  %s (listening on %s)\n", s.crl, s.public)
	if cfg.admin.busy != "" {
		fmt.Fprintf(w, "  Operators:      not listening: %s\n", cfg.admin.busy)
	}
	if s.admin != "" {
		fmt.Fprintf(w, "  Operators:      https://%s/console/ and https://%[1]s/admin/v1/ (add one: %s operator add NAME --role administrator --data %s)\n", s.admin, os.Args[0], cfg.data)
	}
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
