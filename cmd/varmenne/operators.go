package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/api"
	"github.com/varmenne/varmenne/admin/console"
	"github.com/varmenne/varmenne/admin/operatorca"
	"github.com/varmenne/varmenne/admin/web"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/profile"
	"github.com/varmenne/varmenne/store"
)

// adminConfig is the admin listener's configuration (issue 6).
type adminConfig struct {
	listen string
	// explicit: --admin-listen or VARMENNE_ADMIN_LISTEN was given. Only the
	// default address may be busy (a second server on the machine, parallel
	// tests): then serve runs without the admin listener and says so.
	explicit        bool
	busy            string // why the default address was not used
	keyLifetime     time.Duration
	requestLifetime time.Duration
	dualControl     bool
	sessionIdle     time.Duration
	sessionLifetime time.Duration
	logins          admin.LoginLimits
	ca              admin.CA // what the console's health page shows of the keys (consoleca.go)
}

// addAdminFlags adds --admin-listen, --eab-key-lifetime, --eab-request-lifetime
// --dual-control, --console-session-idle, --console-session-lifetime and the
// limits of refused logins (--admin-login-*).
func addAdminFlags(fs *flag.FlagSet) *adminConfig {
	c := &adminConfig{}
	fs.StringVar(&c.listen, "admin-listen", "127.0.0.1:14443", "address of the admin HTTPS listener: the operators' API (/admin/v1/) and web console (/console/); empty: none")
	fs.DurationVar(&c.keyLifetime, "eab-key-lifetime", admin.DefaultLifetime, "an approved EAB key not bound to an account within this time expires")
	fs.DurationVar(&c.requestLifetime, "eab-request-lifetime", admin.DefaultLifetime, "an EAB request not approved or rejected within this time expires")
	fs.BoolVar(&c.dualControl, "dual-control", true, "an EAB request must be approved by an administrator other than its requester")
	fs.DurationVar(&c.sessionIdle, "console-session-idle", admin.SessionIdle, "a console token login ends after this long without a request")
	fs.DurationVar(&c.sessionLifetime, "console-session-lifetime", admin.SessionLifetime, "a console token login ends this long after it began, however busy")
	d := admin.DefaultLoginLimits
	fs.IntVar(&c.logins.PerSource, "admin-login-failures-per-source", d.PerSource, "refused token logins from one client address (an IPv6 /64) per --admin-login-window before further attempts from it are refused unchecked (429)")
	fs.IntVar(&c.logins.PerCredential, "admin-login-failures-per-credential", d.PerCredential, "refused logins of one credential (an operator name's tokens, a client certificate) per --admin-login-window before further attempts with it are refused unchecked (429)")
	fs.DurationVar(&c.logins.Window, "admin-login-window", d.Window, "the fixed window in which refused logins are counted")
	return c
}

// noteExplicit records whether --admin-listen was given, on the command line or
// in the environment; call it after parseFlags.
func (c *adminConfig) noteExplicit(fs *flag.FlagSet) {
	fs.Visit(func(f *flag.Flag) { c.explicit = c.explicit || f.Name == "admin-listen" })
	if _, ok := os.LookupEnv("VARMENNE_ADMIN_LISTEN"); ok {
		c.explicit = true
	}
}

func (c *adminConfig) validate() error {
	if c.keyLifetime <= 0 || c.requestLifetime <= 0 {
		return errors.New("--eab-key-lifetime and --eab-request-lifetime must be positive, e.g. 4392h (183 days)")
	}
	if c.sessionIdle <= 0 || c.sessionLifetime <= 0 {
		return errors.New("--console-session-idle and --console-session-lifetime must be positive, e.g. 30m and 12h")
	}
	if c.sessionIdle > c.sessionLifetime {
		return fmt.Errorf("--console-session-idle %s is longer than --console-session-lifetime %s; make it shorter", c.sessionIdle, c.sessionLifetime)
	}
	if c.logins.PerSource < 1 || c.logins.PerCredential < 1 {
		return errors.New("--admin-login-failures-per-source and --admin-login-failures-per-credential must be 1 or more, e.g. 10")
	}
	if c.logins.Window < time.Minute || c.logins.Window > 24*time.Hour {
		return fmt.Errorf("--admin-login-window %s is outside 1m to 24h; e.g. 15m", c.logins.Window)
	}
	return nil
}

// auditObject is the configuration as the serve.start audit event records it.
func (c *adminConfig) auditObject() string {
	return fmt.Sprintf("admin_listen=%q dual_control=%t eab_key_lifetime=%s eab_request_lifetime=%s console_session_idle=%s console_session_lifetime=%s"+
		" admin_login_failures_per_source=%d admin_login_failures_per_credential=%d admin_login_window=%s",
		c.listen, c.dualControl, c.keyLifetime, c.requestLifetime, c.sessionIdle, c.sessionLifetime,
		c.logins.PerSource, c.logins.PerCredential, c.logins.Window)
}

// ensureOperatorCA makes the operator CA in the data directory on first use and
// records that in the audit log.
func ensureOperatorCA(ctx context.Context, data string, aud *audit.Log, actor string) (*operatorca.CA, error) {
	ca, created, err := operatorca.Ensure(filepath.Join(data, "pki"))
	if err != nil {
		return nil, err
	}
	if created {
		if _, err := aud.Append(ctx, audit.Done(actor, audit.OperatorCACreated{Subject: ca.Cert.Subject.String(), SHA256: admin.CertFingerprint(ca.Cert)})); err != nil {
			return nil, fmt.Errorf("the operator CA was made, but the audit log could not be written: %w", err)
		}
	}
	return ca, nil
}

// startAdmin serves the admin API and console on c.listen over TLS with the
// listener certificate, asking for operator client certificates of the operator
// CA. It returns the address and a stop function; "" listens nowhere.
func startAdmin(ctx context.Context, c *adminConfig, data string, svc *admin.Service, aud *audit.Log, cert tls.Certificate, log *slog.Logger) (string, func(), error) {
	expiryCtx, stopExpiry := context.WithCancel(ctx)
	go svc.RunExpiry(expiryCtx, time.Minute)
	if c.listen == "" {
		return "", stopExpiry, nil
	}
	ca, err := ensureOperatorCA(ctx, data, aud, "varmenne serve")
	if err != nil {
		stopExpiry()
		return "", nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	ln, err := net.Listen("tcp", c.listen)
	if err != nil && !c.explicit && errors.Is(err, syscall.EADDRINUSE) {
		c.busy = fmt.Sprintf("the default address %s is in use; give --admin-listen HOST:PORT", c.listen)
		log.Warn("no admin listener: "+c.busy, "err", err)
		return "", stopExpiry, nil
	}
	if err != nil {
		stopExpiry()
		return "", nil, fmt.Errorf("cannot listen on --admin-listen %s: %w", c.listen, err)
	}
	con := console.New(svc, log)
	con.CA = c.ca
	srv := httpsServer(web.Handler(api.New(svc, log).Handler(), con.Handler(), log), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}, log) // serve.go
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener failed", "err", err)
		}
	}()
	return ln.Addr().String(), func() { stopExpiry(); srv.Close() }, nil
}

// newAdminService is the operator service serve runs: development with file
// keys, production with HSM keys.
func newAdminService(c *adminConfig, set *profile.Set, development bool, st *store.SQL, aud *audit.Log, log *slog.Logger) *admin.Service {
	cfg := adminServiceConfig(set, development)
	cfg.SingleControl, cfg.KeyLifetime, cfg.RequestLifetime = !c.dualControl, c.keyLifetime, c.requestLifetime
	cfg.SessionIdle, cfg.SessionLifetime = c.sessionIdle, c.sessionLifetime
	cfg.Logins = c.logins
	return admin.New(cfg, st, aud, log)
}

// operatorAdd is "varmenne operator add NAME --role ROLE [--token]".
func operatorAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("operator add", stderr)
	op := addOperatorFlags(fs)
	role := fs.String("role", "", "administrator, registrar or auditor (the e-service is a registrar)")
	token := fs.Bool("token", false, "give the operator a bearer token (API clients such as the e-service) instead of a client certificate")
	lifetime := fs.Duration("token-lifetime", admin.DefaultTokenLifetime, "how long the token works")
	out := fs.String("out", ".", "directory the client certificate and key are written to, as NAME.pem and NAME.key")
	name, err := onePositional(fs, args, "the operator's name, e.g. varmenne operator add maija --role registrar")
	if err != nil {
		return err
	}
	if *role == "" {
		return errors.New("operator add: --role is required: administrator, registrar or auditor")
	}
	return issueCredential(ctx, op, admin.OperatorInput{Name: name, Role: *role, Token: *token, TokenLifetime: *lifetime}, *out, false, stdout)
}

// operatorRotate is "varmenne operator rotate NAME [--token]": a new credential;
// the old one stops working at once.
func operatorRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("operator rotate", stderr)
	op := addOperatorFlags(fs)
	token := fs.Bool("token", false, "give the operator a new bearer token instead of a new client certificate")
	lifetime := fs.Duration("token-lifetime", admin.DefaultTokenLifetime, "how long the token works")
	out := fs.String("out", ".", "directory the client certificate and key are written to, as NAME.pem and NAME.key")
	name, err := onePositional(fs, args, "the operator's name, e.g. varmenne operator rotate maija --token")
	if err != nil {
		return err
	}
	return issueCredential(ctx, op, admin.OperatorInput{Name: name, Token: *token, TokenLifetime: *lifetime}, *out, true, stdout)
}

// issueCredential adds an operator (or, rotate, gives one a new credential) and
// hands the credential out: a token on stdout, a certificate and key into out.
func issueCredential(ctx context.Context, op *operatorFlags, in admin.OperatorInput, out string, rotate bool, stdout io.Writer) error {
	certPath, keyPath := filepath.Join(out, in.Name+".pem"), filepath.Join(out, in.Name+".key")
	if !in.Token && !rotate {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("%s: %s already exists; remove it or give another --out", op.cmd, p)
			}
		}
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	var ca *operatorca.CA
	if !in.Token {
		if ca, err = ensureOperatorCA(ctx, s.data, audit.New(s.st, nil), s.who.Name); err != nil {
			return fmt.Errorf("%s: %w", op.cmd, err)
		}
	}
	var made *admin.NewOperator
	if rotate {
		made, err = s.svc.RotateOperator(ctx, s.who, ca, in)
	} else {
		made, err = s.svc.AddOperator(ctx, s.who, ca, in)
	}
	if err != nil {
		return s.fail(err)
	}
	if made.Pending != nil {
		printPending(stdout, made.Pending)
		return nil
	}
	return handOver(op.cmd, made, rotate, in.Token, out, stdout)
}

// What the CLI says when a disable or a removal is applied, at once or on approval.
const (
	disabledLine = "operator %s is disabled: every credential of theirs is refused from now on, on every replica\n"
	removedLine  = "operator %s is removed; the audit log keeps what they did\n"
)

// printPending says that a change to an operator waits for a second
// administrator, and how that administrator approves it.
func printPending(w io.Writer, c *admin.OperatorChangeView) {
	fmt.Fprintf(w, "operator change %s (%s %s) waits for another administrator, who approves it with:\n  varmenne operator approve %s\n",
		c.ID, c.Kind, c.Operator, c.ID)
}

// handOver prints a new token, or writes a new client certificate and key into
// out.
func handOver(cmd string, made *admin.NewOperator, rotate, token bool, out string, stdout io.Writer) error {
	certPath, keyPath := filepath.Join(out, made.Operator.Name+".pem"), filepath.Join(out, made.Operator.Name+".key")
	what := "added"
	if rotate {
		what = "has a new credential; the old one no longer works"
	}
	o := made.Operator
	if token {
		fmt.Fprintf(stdout, "operator %s (%s) %s with a bearer token until %s; it is shown only now:\n  token: %s\n", o.Name, o.Role, what,
			o.TokenExpiresAt.Format(time.DateOnly), made.Token)
		fmt.Fprintf(stdout, "Use it as \"Authorization: Bearer <token>\" on the admin API, log in to the console with it, or give the CLI --operator-token-file.\n")
		return nil
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if err := os.WriteFile(keyPath, made.KeyPEM, 0o600); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if err := os.WriteFile(certPath, made.CertPEM, 0o644); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	fmt.Fprintf(stdout, "operator %s (%s) %s with a client certificate of the operator CA:\n  certificate: %s\n  key:         %s\n  SHA-256:     %s\n",
		o.Name, o.Role, what, certPath, keyPath, o.CertFingerprint)
	return nil
}

// operatorApprove is "varmenne operator approve CHANGE [--out DIR]": a second
// administrator approves a change to an operator, which is applied at once; a
// new credential is handed to the approver.
func operatorApprove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("operator approve", stderr)
	op := addOperatorFlags(fs)
	out := fs.String("out", ".", "directory a new client certificate and key are written to")
	id, err := onePositional(fs, args, "the operator change's id, e.g. varmenne operator approve CHANGE")
	if err != nil {
		return err
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	change, err := s.st.GetOperatorChange(ctx, id)
	if err != nil {
		return fmt.Errorf("operator approve: there is no operator change %s", id)
	}
	var ca *operatorca.CA
	if (change.Kind == store.OperatorChangeAdd || change.Kind == store.OperatorChangeRotate) && !change.Token {
		if ca, err = ensureOperatorCA(ctx, s.data, audit.New(s.st, nil), s.who.Name); err != nil {
			return fmt.Errorf("operator approve: %w", err)
		}
	}
	made, err := s.svc.ApproveOperatorChange(ctx, s.who, ca, id)
	if err != nil {
		return s.fail(err)
	}
	switch change.Kind {
	case store.OperatorChangeDisable:
		fmt.Fprintf(stdout, disabledLine, change.Operator)
		return nil
	case store.OperatorChangeRemove:
		fmt.Fprintf(stdout, removedLine, change.Operator)
		return nil
	}
	return handOver("operator approve", made, change.Kind == store.OperatorChangeRotate, change.Token, *out, stdout)
}

// operatorReject is "varmenne operator reject CHANGE --reason TEXT".
func operatorReject(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("operator reject", stderr)
	op := addOperatorFlags(fs)
	reason := fs.String("reason", "", "why; kept in the audit log")
	id, err := onePositional(fs, args, "the operator change's id")
	if err != nil {
		return err
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.svc.RejectOperatorChange(ctx, s.who, id, *reason); err != nil {
		return s.fail(err)
	}
	fmt.Fprintf(stdout, "operator change %s rejected\n", id)
	return nil
}

// operatorChanges is "varmenne operator changes [--status requested]".
func operatorChanges(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("operator changes", stderr)
	op := addOperatorFlags(fs)
	status := fs.String("status", store.OperatorChangeRequested, "requested, applied or rejected; empty: every change")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	list, err := s.svc.OperatorChanges(ctx, s.who, *status)
	if err != nil {
		return s.fail(err)
	}
	for _, c := range list {
		fmt.Fprintf(stdout, "%s  %-8s %-20s %-10s requested by %s %s", c.ID, c.Kind, c.Operator, c.Status, c.RequestedBy, c.Requested)
		if c.DecidedBy != "" {
			fmt.Fprintf(stdout, ", decided by %s %s", c.DecidedBy, c.Decided)
		}
		fmt.Fprintln(stdout)
	}
	return nil
}

// operatorDisable is "varmenne operator disable NAME --reason TEXT".
func operatorDisable(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("operator disable", stderr)
	op := addOperatorFlags(fs)
	reason := fs.String("reason", "", "why, for the audit log")
	name, err := onePositional(fs, args, "the operator's name")
	if err != nil {
		return err
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	pending, err := s.svc.DisableOperator(ctx, s.who, name, *reason)
	if err != nil {
		return s.fail(err)
	}
	if pending != nil {
		printPending(stdout, pending)
		return nil
	}
	fmt.Fprintf(stdout, disabledLine, name)
	return nil
}

// operatorRemove is "varmenne operator remove NAME".
func operatorRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("operator remove", stderr)
	op := addOperatorFlags(fs)
	name, err := onePositional(fs, args, "the operator's name")
	if err != nil {
		return err
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	pending, err := s.svc.RemoveOperator(ctx, s.who, name)
	if err != nil {
		return s.fail(err)
	}
	if pending != nil {
		printPending(stdout, pending)
		return nil
	}
	fmt.Fprintf(stdout, removedLine, name)
	return nil
}

// operatorList is "varmenne operator list".
func operatorList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("operator list", stderr)
	op := addOperatorFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	ops, err := s.svc.Operators(ctx, s.who)
	if err != nil {
		return s.fail(err)
	}
	for _, o := range ops {
		cred := o.Credential
		switch {
		case o.CertFingerprint != "":
			cred = "certificate " + o.CertFingerprint
		case o.TokenExpires != "":
			cred += " until " + o.TokenExpires
		}
		state := ""
		if o.Disabled != "" {
			state = ", disabled by " + o.DisabledBy + " " + o.Disabled
		}
		fmt.Fprintf(stdout, "%-20s %-14s %s (added by %s %s%s)\n", o.Name, o.Role, cred, o.CreatedBy, o.Created, state)
	}
	return nil
}

// auditExport is "varmenne audit export --since T": the events from T on, one
// JSON object a line; the export itself is recorded.
func auditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit export", stderr)
	op := addOperatorFlags(fs)
	since := fs.String("since", "", "first time to export: RFC 3339 (2026-03-01T00:00:00Z) or a date (2026-03-01, UTC); empty: from the start")
	until := fs.String("until", "", "export events before this time (same forms); empty: to the end")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	from, err := parseWhen("--since", *since)
	if err != nil {
		return err
	}
	to, err := parseWhen("--until", *until)
	if err != nil {
		return err
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	if _, err := s.svc.ExportAudit(ctx, s.who, from, to, func(e admin.EventView) error { return enc.Encode(e) }); err != nil {
		return s.fail(err)
	}
	return w.Flush()
}

func parseWhen(flagName, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s %q: give an RFC 3339 time such as 2026-03-01T08:00:00Z or a date such as 2026-03-01", flagName, v)
}
