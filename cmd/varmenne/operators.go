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
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/admin/api"
	"github.com/varmenne/varmenne/admin/console"
	"github.com/varmenne/varmenne/admin/operatorca"
	"github.com/varmenne/varmenne/admin/web"
	"github.com/varmenne/varmenne/audit"
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
}

// addAdminFlags adds --admin-listen, --eab-key-lifetime, --eab-request-lifetime
// --dual-control, --console-session-idle and --console-session-lifetime.
func addAdminFlags(fs *flag.FlagSet) *adminConfig {
	c := &adminConfig{}
	fs.StringVar(&c.listen, "admin-listen", "127.0.0.1:14443", "address of the admin HTTPS listener: the operators' API (/admin/v1/) and web console (/console/); empty: none")
	fs.DurationVar(&c.keyLifetime, "eab-key-lifetime", admin.DefaultLifetime, "an approved EAB key not bound to an account within this time expires")
	fs.DurationVar(&c.requestLifetime, "eab-request-lifetime", admin.DefaultLifetime, "an EAB request not approved or rejected within this time expires")
	fs.BoolVar(&c.dualControl, "dual-control", true, "an EAB request must be approved by an administrator other than its requester")
	fs.DurationVar(&c.sessionIdle, "console-session-idle", admin.SessionIdle, "a console token login ends after this long without a request")
	fs.DurationVar(&c.sessionLifetime, "console-session-lifetime", admin.SessionLifetime, "a console token login ends this long after it began, however busy")
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
	return nil
}

// auditObject is the configuration as the serve.start audit event records it.
func (c *adminConfig) auditObject() string {
	return fmt.Sprintf("admin_listen=%q dual_control=%t eab_key_lifetime=%s eab_request_lifetime=%s console_session_idle=%s console_session_lifetime=%s",
		c.listen, c.dualControl, c.keyLifetime, c.requestLifetime, c.sessionIdle, c.sessionLifetime)
}

// ensureOperatorCA makes the operator CA in the data directory on first use and
// records that in the audit log.
func ensureOperatorCA(ctx context.Context, data string, aud *audit.Log, actor string) (*operatorca.CA, error) {
	ca, created, err := operatorca.Ensure(filepath.Join(data, "pki"))
	if err != nil {
		return nil, err
	}
	if created {
		if _, err := aud.Append(ctx, actor, "operator-ca.create", fmt.Sprintf("subject=%q sha256=%s", ca.Cert.Subject, admin.CertFingerprint(ca.Cert)), audit.OK); err != nil {
			return nil, fmt.Errorf("the operator CA was made, but the audit log could not be written: %w", err)
		}
	}
	return ca, nil
}

// startAdmin serves the admin API and console on c.listen over TLS with the
// listener certificate, asking for operator client certificates of the operator
// CA. It returns the address and a stop function; "" listens nowhere.
func startAdmin(ctx context.Context, c *adminConfig, data string, st *store.SQL, aud *audit.Log, cert tls.Certificate, profiles []string, log *slog.Logger) (string, func(), error) {
	if c.listen == "" {
		return "", func() {}, nil
	}
	ca, err := ensureOperatorCA(ctx, data, aud, "varmenne serve")
	if err != nil {
		return "", nil, err
	}
	svc := admin.New(admin.Config{SingleControl: !c.dualControl, KeyLifetime: c.keyLifetime, RequestLifetime: c.requestLifetime, Profiles: profiles,
		SessionIdle: c.sessionIdle, SessionLifetime: c.sessionLifetime},
		st, aud, log)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	ln, err := net.Listen("tcp", c.listen)
	if err != nil && !c.explicit && errors.Is(err, syscall.EADDRINUSE) {
		c.busy = fmt.Sprintf("the default address %s is in use; give --admin-listen HOST:PORT", c.listen)
		log.Warn("no admin listener: "+c.busy, "err", err)
		return "", func() {}, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("cannot listen on --admin-listen %s: %w", c.listen, err)
	}
	srv := httpsServer(web.Handler(api.New(svc, log).Handler(), console.New(svc, log).Handler(), log), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}, log) // serve.go
	expiryCtx, stopExpiry := context.WithCancel(ctx)
	go svc.RunExpiry(expiryCtx, time.Minute)
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener failed", "err", err)
		}
	}()
	return ln.Addr().String(), func() { stopExpiry(); srv.Close() }, nil
}

// operatorAdd is "varmenne operator add NAME --role ROLE [--token]".
func operatorAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("operator add", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	role := fs.String("role", "", "administrator, registrar or auditor (the e-service is a registrar)")
	token := fs.Bool("token", false, "give the operator a bearer token (API clients such as the e-service) instead of a client certificate")
	out := fs.String("out", ".", "directory the client certificate and key are written to, as NAME.pem and NAME.key")
	performedBy := fs.String("performed-by", "", "who adds the operator, for the audit log (default: the user running the command)")
	name, err := onePositional(fs, args, "the operator's name, e.g. varmenne operator add maija --role registrar")
	if err != nil {
		return err
	}
	if *role == "" {
		return errors.New("operator add: --role is required: administrator, registrar or auditor")
	}
	if err := admin.CheckOperatorName(name); err != nil {
		return fmt.Errorf("operator add: %w", err)
	}
	if err := admin.CheckRole(*role); err != nil {
		return fmt.Errorf("operator add: %w", err)
	}
	by, err := commandUser(*performedBy)
	if err != nil {
		return fmt.Errorf("operator add: %w", err)
	}
	certPath, keyPath := filepath.Join(*out, name+".pem"), filepath.Join(*out, name+".key")
	if !*token {
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Stat(p); err == nil {
				return fmt.Errorf("operator add: %s already exists; remove it or give another --out", p)
			}
		}
	}
	st, err := openExisting(ctx, *db, *data)
	if err != nil {
		return err
	}
	defer st.Close()
	aud := audit.New(st, nil)
	var ca *operatorca.CA
	if !*token {
		if ca, err = ensureOperatorCA(ctx, *data, aud, by); err != nil {
			return fmt.Errorf("operator add: %w", err)
		}
	}
	op, err := admin.AddOperator(ctx, st, aud, ca, by, name, *role, *token, time.Now())
	if err != nil {
		return fmt.Errorf("operator add: %w", err)
	}
	if *token {
		fmt.Fprintf(stdout, "operator %s (%s) added with a bearer token; it is shown only now:\n  token: %s\n", name, *role, op.Token)
		fmt.Fprintf(stdout, "Use it as \"Authorization: Bearer <token>\" on the admin API, or log in to the console with it.\n")
		return nil
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return fmt.Errorf("operator add: %w", err)
	}
	if err := os.WriteFile(keyPath, op.KeyPEM, 0o600); err != nil {
		return fmt.Errorf("operator add: %w", err)
	}
	if err := os.WriteFile(certPath, op.CertPEM, 0o644); err != nil {
		return fmt.Errorf("operator add: %w", err)
	}
	fmt.Fprintf(stdout, "operator %s (%s) added with a client certificate of the operator CA:\n  certificate: %s\n  key:         %s\n  SHA-256:     %s\n",
		name, *role, certPath, keyPath, op.Operator.CertFingerprint)
	return nil
}

// commandUser is who runs an operator command: given, else the login name.
func commandUser(given string) (string, error) {
	if given = strings.TrimSpace(given); given != "" {
		return given, nil
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username, nil
	}
	if name := os.Getenv("USER"); name != "" {
		return name, nil
	}
	return "", errors.New("cannot tell who runs this command; give --performed-by NAME")
}

// operatorList is "varmenne operator list".
func operatorList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("operator list", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	st, err := openExisting(ctx, *db, *data)
	if err != nil {
		return err
	}
	defer st.Close()
	ops, err := st.ListOperators(ctx)
	if err != nil {
		return fmt.Errorf("operator list: %w", err)
	}
	for _, o := range ops {
		cred := "token"
		if o.CertFingerprint != "" {
			cred = "certificate " + o.CertFingerprint
		}
		fmt.Fprintf(stdout, "%-20s %-14s %s (added by %s %s)\n", o.Name, o.Role, cred, o.CreatedBy, o.CreatedAt.Format(time.DateOnly))
	}
	if len(ops) == 0 {
		fmt.Fprintln(stdout, "no operators; add one with: varmenne operator add NAME --role administrator")
	}
	return nil
}

// auditExport is "varmenne audit export --since T": the events from T on, one
// JSON object a line.
func auditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit export", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
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
	st, err := openExisting(ctx, *db, *data)
	if err != nil {
		return err
	}
	defer st.Close()
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	var after int64
	for {
		page, err := st.AuditEvents(ctx, after, admin.MaxAuditPage)
		if err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		for _, e := range page {
			after = e.Seq
			if (!from.IsZero() && e.Time.Before(from)) || (!to.IsZero() && !e.Time.Before(to)) {
				continue
			}
			if err := enc.Encode(admin.EventViewOf(e)); err != nil {
				return fmt.Errorf("audit export: %w", err)
			}
		}
		if len(page) < admin.MaxAuditPage {
			return w.Flush()
		}
	}
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
