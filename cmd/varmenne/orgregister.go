package main

// THL's SOTE organisation register on the operator's side: "org import", "org show"
// and "org conformity add", and the serve flags that keep the register the "thl" and
// "sote" plugins read fresh.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/alert"
	"github.com/varmenne/varmenne/internal/progress"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/policy/sote"
	"github.com/varmenne/varmenne/policy/thl"
	"github.com/varmenne/varmenne/profile"
	"github.com/varmenne/varmenne/store"
)

// splitArgs separates the positional arguments from the flags of fs, so that
// "org show OID --data D" and "org show --data D OID" both work.
func splitArgs(fs *flag.FlagSet, args []string) (pos, flags []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(pos, args[i+1:]...), flags
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // parseFlags reports it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return pos, flags
}

// onePositional parses args and returns its one positional argument.
func onePositional(fs *flag.FlagSet, args []string, what string) (string, error) {
	pos, flags := splitArgs(fs, args)
	if err := parseFlags(fs, flags); err != nil {
		return "", err
	}
	switch len(pos) {
	case 0:
		return "", fmt.Errorf("%s: give %s", fs.Name(), what)
	case 1:
		return pos[0], nil
	}
	return "", fmt.Errorf("%s: unexpected argument %q", fs.Name(), pos[1])
}

func orgImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("org import", stderr)
	op := addOperatorFlags(fs)
	format := fs.String("format", "", "json or xml (default: told apart by the export's first character)")
	timeout := fs.Duration("timeout", thl.DefaultTimeout, "deadline of each HTTP request when the source is a URL")
	allowHTTP := fs.Bool("allow-http", false, "accept a plain http:// source (the register decides who may get certificates: use https or a file)")
	location, err := onePositional(fs, args, "the register export: a file or the code service's URL, e.g. \"varmenne org import register.json\"")
	if err != nil {
		return err
	}
	f, err := thl.ParseFormat(*format)
	if err != nil {
		return fmt.Errorf("org import: --format %q: use json or xml", *format)
	}
	src := thl.Source{Location: location, Format: f, Client: &http.Client{Timeout: *timeout}, AllowHTTP: *allowHTTP}
	if err := src.Validate(); err != nil {
		return fmt.Errorf("org import: %v", err)
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	entries, err := src.Load(ctx)
	if err != nil {
		return fmt.Errorf("org import: %s; nothing was imported", strings.TrimPrefix(err.Error(), "thl: "))
	}
	// A progress line on a terminal, else one summary line, on stderr.
	meter := progress.New(stderr, "importing organisations")
	rep, err := s.svc.ImportRegister(store.WithProgress(ctx, meter), s.who, src.String(), entries)
	if err != nil {
		meter.Abandon()
		return s.fail(err)
	}
	meter.Finish()
	fmt.Fprintf(stdout, "THL register from %s: %d records\n", src, rep.Records)
	fmt.Fprintf(stdout, "organisations: %d added, %d updated, %d unchanged, %d left the register or are no longer active; %d inactive records of unknown organisations skipped\n",
		rep.Added, rep.Updated, rep.Unchanged, len(rep.Gone), rep.Skipped)
	today := time.Now().UTC().Format(time.DateOnly)
	for _, g := range rep.Gone {
		fmt.Fprintf(stdout, "organisation %s (%s) %s in the register; valid certificates: %d\n", g.OID, g.Name, g.Why, len(g.Certificates))
		for _, cert := range g.Certificates {
			fmt.Fprintf(stdout, "  %s  %s  until %s  %s\n", cert.Serial, cert.Profile, cert.NotAfter.UTC().Format(time.DateOnly), strings.Join(cert.Names, ","))
		}
		if len(g.Certificates) > 0 {
			fmt.Fprintf(stdout, "  revoke them with: varmenne revoke --org %s --reason cessationOfOperation --requested-by \"THL SOTE register\" --identified-by \"register import of %s\"\n",
				g.OID, today)
		}
	}
	for _, r := range rep.Refused {
		fmt.Fprintf(stdout, "organisation %s refused: %s\n", r.OID, r.Why)
	}
	for _, o := range rep.Unlisted {
		fmt.Fprintf(stdout, "organisation %s (%s) was added by hand and is not in the register: a server with --register-source refuses its accounts every step towards a certificate\n", o.OID, o.Name)
	}
	return nil
}

// nameOr picks the long name for a message: the one stored before, else the other.
func nameOr(longName, other string) string {
	if longName != "" {
		return longName
	}
	return other
}

func orgShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("org show", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	oid, err := onePositional(fs, args, "the organisation's OID, e.g. \"varmenne org show 1.2.246.10.12345678.10.0\"")
	if err != nil {
		return err
	}
	st, o, err := openOrganisation(ctx, db, *data, "org show", oid)
	if err != nil {
		return err
	}
	defer st.Close()
	reg, err := st.GetOrganisationRegister(ctx, oid)
	if err != nil {
		return fmt.Errorf("org show: %w", err)
	}
	counts, err := st.CountOrganisation(ctx, oid)
	if err != nil {
		return fmt.Errorf("org show: %w", err)
	}
	now := time.Now()
	valid, err := st.ValidCertificates(ctx, oid, now)
	if err != nil {
		return fmt.Errorf("org show: %w", err)
	}
	conf, err := st.ListConformityCertificates(ctx, oid)
	if err != nil {
		return fmt.Errorf("org show: %w", err)
	}
	persistent, err := st.PersistentAuthorizations(ctx, oid, now)
	if err != nil {
		return fmt.Errorf("org show: %w", err)
	}

	w := func(label, format string, args ...any) {
		fmt.Fprintf(stdout, "  %-20s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(stdout, "organisation %s\n", o.OID)
	w("name", "%s (certificate O)", o.Name)
	w("long name", "%s (certificate OU)", nameOr(o.LongName, "—"))
	w("domains", "%s", nameOr(strings.Join(o.Domains, ", "), "none: add them with \"varmenne org domains add "+o.OID+" --domain …\" before an EAB key is of use"))
	if len(o.Networks) > 0 {
		w("networks", "%s (IP addresses beside a DNS name)", networkText(o.Networks))
	}
	if o.TestOnly {
		w("profiles", "test profiles only")
	}
	switch {
	case reg.SyncedAt.IsZero():
		w("register", "never imported (added by hand): run \"varmenne org import\"")
	default:
		state := reg.Status
		if reason := thl.RecordEntry(*reg).InactiveReason(now); reason == "" {
			state = "active"
		} else if reason != "is "+reg.Status {
			state += ", " + reason
		}
		if !reg.LeftAt.IsZero() {
			state = fmt.Sprintf("no longer listed since the import of %s (last listed as %s)", reg.LeftAt.Format(time.RFC3339), state)
		}
		w("register", "%s", state)
		w("register sync", "%s", reg.SyncedAt.Format(time.RFC3339))
		w("business id", "%s", nameOr(reg.BusinessID, "—"))
		w("abbreviation", "%s", nameOr(reg.Abbreviation, "—"))
		w("sector", "%s", nameOr(reg.Sector, "unknown (treated as private)"))
		w("Kanta intermediary", "%s", yesNo(reg.Intermediary))
		w("in force", "%s to %s", dayOr(reg.BeginDate, "always"), dayOr(reg.ExpirationDate, "open"))
		w("parent", "%s", nameOr(reg.Parent, "— (top of its hierarchy)"))
	}
	w("EAB keys", "%d", counts.EABKeys)
	w("accounts", "%d", counts.Accounts)
	w("certificates", "%d issued, %d valid", counts.Certificates, len(valid))
	if len(conf) == 0 {
		w("conformity", "none on file")
	}
	for i, c := range conf {
		label := ""
		if i == 0 {
			label = "conformity"
		}
		state := "valid"
		if !c.Expires.After(now) {
			state = "expired"
		}
		w(label, "%s, until %s (%s)", c.System, c.Expires.UTC().Format(time.DateOnly), state)
	}
	// Names a persistent DNS record authorises an account for (dns-persist-01).
	for i, p := range persistent {
		label := ""
		if i == 0 {
			label = "persistent record"
		}
		name := p.Name
		if p.Wildcard {
			name = "*." + name
		}
		w(label, "%s for account %s until %s (%s)", name, p.AccountID, p.Expires.UTC().Format(time.RFC3339), p.Evidence)
	}
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func dayOr(t time.Time, none string) string {
	if t.IsZero() {
		return none
	}
	return t.UTC().Format(time.DateOnly)
}

// parseExpiry reads --expires: a date is valid through its last second (UTC), an
// RFC 3339 time until that instant.
func parseExpiry(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.Add(24*time.Hour - time.Second), nil
	}
	return time.Parse(time.RFC3339, s)
}

func orgConformityAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("org conformity add", stderr)
	op := addOperatorFlags(fs)
	system := fs.String("system", "", "the information system the certificate of conformity is for")
	expires := fs.String("expires", "", "the certificate's last day, YYYY-MM-DD (or an RFC 3339 time)")
	oid, err := onePositional(fs, args, "the organisation's OID, e.g. \"varmenne org conformity add 1.2.246.10.12345678.10.0 --system NAME --expires 2027-12-31\"")
	if err != nil {
		return err
	}
	switch {
	case strings.TrimSpace(*system) == "":
		return errors.New("org conformity add: --system is required: the information system the certificate of conformity is for")
	case *expires == "":
		return errors.New("org conformity add: --expires is required: the certificate's last day, e.g. 2027-12-31")
	}
	exp, err := parseExpiry(*expires)
	if err != nil {
		return fmt.Errorf("org conformity add: --expires %q is not a date such as 2027-12-31", *expires)
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	c, err := s.svc.AddConformity(ctx, s.who, oid, admin.ConformityInput{System: *system, Expires: exp})
	if err != nil {
		return s.fail(err)
	}
	fmt.Fprintf(stdout, "certificate of conformity for %s of organisation %s on file until %s\n", c.System, oid, c.Expires.UTC().Format(time.RFC3339))
	return nil
}

// registerConfig is serve's THL register flags.
type registerConfig struct {
	source    string
	format    string
	refresh   time.Duration
	maxStale  time.Duration
	allowHTTP bool

	alert *alert.Watcher // told of failed loads and a stale copy (alerts.go); nil: none
}

// addRegisterFlags adds --register-source, --register-format, --register-refresh
// and --register-max-stale to serve.
func addRegisterFlags(fs *flag.FlagSet) *registerConfig {
	var c registerConfig
	fs.StringVar(&c.source, "register-source", "", "THL SOTE organisation register export: a file, or the code service's URL; issuance then requires an organisation active in it (empty: the register is not checked, for development)")
	fs.StringVar(&c.format, "register-format", "", "json or xml (default: told apart by the export's first character)")
	fs.DurationVar(&c.refresh, "register-refresh", thl.DefaultRefresh, "how often the register is loaded again")
	fs.BoolVar(&c.allowHTTP, "register-allow-http", false, "accept a plain http:// --register-source (use https or a file in production)")
	fs.DurationVar(&c.maxStale, "register-max-stale", thl.DefaultMaxStale, "how old the last good copy of the register may be before issuance pauses")
	return &c
}

// withRegisterPlugins puts the sote plugin after the other plugins of each system
// signature profile that uses the default chain, when the server has a register:
// whether the organisation is active in the register is the standing check's (every
// profile, every step); what the register adds for system signature certificates
// (the provider, the intermediary mark, conformity) is the sote plugin's. A profile
// whose chain the configuration wrote keeps it as written (production refuses one
// that leaves sote out: production.go).
func withRegisterPlugins(set *profile.Set) {
	for name, p := range set.Profiles {
		if p.Kind != policy.KindSystemSignature ||
			!slices.EqualFunc(p.Plugins, profile.DefaultPlugins, func(a, b policy.Spec) bool { return a.Name == b.Name && len(a.Config) == 0 }) {
			continue
		}
		p.Plugins = append(p.Plugins, policy.Spec{Name: sote.PluginName})
		set.Profiles[name] = p
	}
}

// registerStore is what the register needs of the store and the operator service:
// the store's copy to read (every replica reads the same) and a way to write a load.
type registerStore struct {
	st   thl.RecordReader
	sync func(ctx context.Context, source string, entries []thl.Entry) (*admin.ImportReport, error) // admin.Service.SyncRegister
	last func(ctx context.Context) (store.RegisterLoad, error)                                      // store.SQL.LastRegisterLoad, for alerts
}

// startRegister, when --register-source is given, loads the register into the
// store now and then every --register-refresh until ctx ends, and returns the
// store's copy (thl.Stored) for the standing check of acme/authority, which asks it
// at every step towards a certificate (nil without a source). It also makes it the
// one the thl and sote plugins read. A configuration error stops the start; a
// register that cannot be loaded now does not: the copy a previous load wrote
// serves until it is older than --register-max-stale (without one, issuance waits,
// refused, until a load succeeds).
func startRegister(ctx context.Context, c *registerConfig, rs registerStore, log *slog.Logger) (thl.Lookuper, error) {
	if c.source == "" {
		thl.UseRegister(nil)
		log.Warn("no THL register (--register-source): organisations are not checked against THL's SOTE organisation register; development only")
		return nil, nil
	}
	f, err := thl.ParseFormat(c.format)
	if err != nil {
		return nil, fmt.Errorf("--register-format %q: use json or xml", c.format)
	}
	src := thl.Source{Location: c.source, Format: f, AllowHTTP: c.allowHTTP}
	if err := src.Validate(); err != nil {
		return nil, fmt.Errorf("--register-source: %v", err)
	}
	rlog := log.With("component", "thl-register")
	write := func(ctx context.Context, entries []thl.Entry) error {
		rep, err := rs.sync(ctx, src.String(), entries)
		if err != nil {
			return err
		}
		for _, g := range rep.Gone {
			rlog.Warn("an organisation left THL's register or is no longer active there: it takes no step towards a certificate, and its valid certificates stay valid until revoked",
				"org", g.OID, "name", g.Name, "why", g.Why, "valid_certificates", len(g.Certificates),
				"revoke_with", "varmenne revoke --org "+g.OID+" --reason cessationOfOperation --requested-by … --identified-by …")
		}
		for _, r := range rep.Refused {
			rlog.Warn("a register record was not imported: no certificate subject can carry its name", "org", r.OID, "why", r.Why)
		}
		return nil
	}
	stored := thl.NewStored(rs.st, c.maxStale, nil)
	var onFailure func(error)
	if c.alert != nil && rs.last != nil {
		onFailure = registerAlert(ctx, rs.last, stored.Stale, c.alert) // alerts.go
	}
	reg, err := thl.NewRegister(thl.Config{Source: src, Store: write, Refresh: c.refresh, MaxStale: c.maxStale, Log: rlog, OnFailure: onFailure})
	if err != nil {
		return nil, fmt.Errorf("--register-refresh / --register-max-stale: %s", strings.TrimPrefix(err.Error(), "thl: "))
	}
	if err := reg.Refresh(ctx); err != nil {
		log.Error("the THL register could not be loaded at start; the copy in the database serves until it is older than --register-max-stale, and without one orders are refused until a load succeeds",
			"source", src.String(), "err", err)
	}
	go reg.Run(ctx)
	thl.UseRegister(stored)
	st := reg.State()
	log.Info("THL register", "source", src.String(), "organisations", st.Organisations, "refresh", c.refresh.String(), "max_stale", c.maxStale.String())
	return stored, nil
}
