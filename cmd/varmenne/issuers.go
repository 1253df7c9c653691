package main

// The issuer lifecycle's doors (practice statement 6.6, 6.8.1): serve registers
// the generations it loaded and follows the database's word on which one issues;
// "varmenne issuer new" is the key ceremony of a new generation, "issuer
// activate" makes it the one that issues, "issuer retire" is asked for by one
// administrator and carried out by another. The rules are the operator
// service's (admin/issuers.go) and the store's.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/signer/ceremony"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/store"
)

// rollover is one profile's CA across its hierarchy's issuer generations.
type rollover struct {
	profile, hierarchy string
	*signer.Rollover
}

// generationRecord is what the database keeps of a loaded generation.
func generationRecord(g filekey.Generation) store.IssuerGeneration {
	c := g.Issuer.Cert
	return store.IssuerGeneration{Name: g.Issuer.Name, Hierarchy: g.Hierarchy, Generation: g.Number, Subject: c.Subject.String(),
		CertSHA256: filekey.Fingerprint(c), NotBefore: c.NotBefore, NotAfter: c.NotAfter}
}

// registerGenerations registers every generation serve loaded and returns the
// active generation of each hierarchy, which must be among them.
func registerGenerations(ctx context.Context, svc *admin.Service, st *store.SQL, pki *filekey.DevPKI) (map[string]string, error) {
	for _, g := range pki.Generations {
		if _, err := svc.RegisterIssuer(ctx, generationRecord(g), admin.SystemActor); err != nil {
			return nil, fmt.Errorf("issuer %s: %s", g.Issuer.Name, refusalText(err))
		}
	}
	active, err := st.ActiveIssuers(ctx)
	if err != nil {
		return nil, err
	}
	for _, h := range filekey.Hierarchies {
		if pki.Generation(active[h]) == nil {
			return nil, fmt.Errorf("the database names issuer %q the active %s issuer, but it is not in %s: copy its certificate (and key file, or give the HSM holding its key) there",
				active[h], h, "DATA/pki")
		}
	}
	return active, nil
}

// issuersEvery is how often serve asks the database which generations issue.
const issuersEvery = 5 * time.Second

// watchIssuers moves each profile to the generation the database names active
// (issuer activate) within issuersEvery; a generation a profile's certificates
// would outlast, or one this replica did not load, is refused with an alert and
// the generation that issued goes on. It returns when ctx ends.
func watchIssuers(ctx context.Context, st *store.SQL, rollovers []*rollover, log *slog.Logger) {
	t := time.NewTicker(issuersEvery)
	defer t.Stop()
	refused := map[string]string{} // profile → the generation refused last, said once
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		active, err := st.ActiveIssuers(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("cannot read the active issuers; issuing on with the current ones", "error", err)
			}
			continue
		}
		for _, r := range rollovers {
			want, now := active[r.hierarchy], r.Issuer().Name
			if want == "" || want == now {
				continue
			}
			if err := r.Activate(want, time.Now()); err != nil {
				if refused[r.profile] != want {
					log.Error("the generation made active cannot sign this profile; it goes on with the previous one", "profile", r.profile,
						"issuer", now, "active_in_database", want, "error", err, "alert", true)
					refused[r.profile] = want
				}
				continue
			}
			delete(refused, r.profile)
			log.Info("issuer generation took over", "profile", r.profile, "issuer", want, "previous", now)
		}
	}
}

// issuerNew is "varmenne issuer new": the key ceremony of a hierarchy's next
// issuer generation — in the HSM by two people with their activation shares, or a
// file key in the development PKI — registered in the database as standby.
func issuerNew(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("issuer new", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	hierarchy := fs.String("hierarchy", "", "the hierarchy whose next issuer generation to make: production or test")
	hsm := hsmFlags(fs, ceremony.CeremonyRoles...)
	var operators stringList
	fs.Var(&operators, "operator", "name of an operator present at the ceremony; two different people with HSM keys (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *hierarchy != "production" && *hierarchy != "test" {
		return errors.New("issuer new: give --hierarchy production or --hierarchy test")
	}
	dir := filepath.Join(*data, "pki")
	st, err := db.open(ctx, *data, existing)
	if err != nil {
		return fmt.Errorf("issuer new: %w", err)
	}
	defer st.Close()
	log := audit.New(st, nil)
	h := hsm()
	var name string
	actor := "varmenne issuer new (development PKI)"
	if h.Enabled() {
		if actor, err = ceremony.Actor(operators); err != nil {
			return fmt.Errorf("issuer new: %w", err)
		}
		h.ActivationRecord = filepath.Join(dir, ceremony.ActivationRecordFile)
		pool, err := ceremonyLogin(ctx, h, log, actor, "issuer new")
		if err != nil {
			return err
		}
		defer pool.Close()
		c := &ceremony.Ceremony{Log: log, Actor: actor, Pool: pool, Dir: dir, Now: time.Now(), Out: stdout}
		if name, err = c.NewGeneration(ctx, h, *hierarchy); err != nil {
			return err
		}
	} else {
		if production, err := st.Production(ctx); err != nil || production {
			return errors.New("issuer new: this database's issuer keys are in an HSM: give --pkcs11-module, --pkcs11-token and the two holders' --pkcs11-pin-share")
		}
		n, c, err := filekey.NewGeneration(dir, *hierarchy, time.Now())
		if err != nil {
			return fmt.Errorf("issuer new: %w", err)
		}
		name = n
		if _, err := log.Append(ctx, audit.Done(actor, audit.CertificateMade{Role: name, Key: filepath.Join(dir, name+".key"),
			SHA256: filekey.Fingerprint(c), Subject: c.Subject.String()})); err != nil {
			return fmt.Errorf("issuer new: writing the audit log: %w", err)
		}
		fmt.Fprintf(stdout, "%-10s %s  SHA-256 %s  (development file key %s)\n", name, filepath.Join(dir, name+".pem"), filekey.Fingerprint(c), filepath.Join(dir, name+".key"))
	}
	cert, err := filekey.LoadCertificate(filepath.Join(dir, name+".pem"))
	if err != nil {
		return fmt.Errorf("issuer new: %w", err)
	}
	_, n, _ := filekey.ParseGenerationName(name)
	svc := admin.New(admin.Config{}, st, log, nil)
	rec := generationRecord(filekey.Generation{Hierarchy: *hierarchy, Number: n, Issuer: &signer.Issuer{Name: name, Cert: cert}})
	if _, err := svc.RegisterIssuer(ctx, rec, actor); err != nil {
		return fmt.Errorf("issuer new: %s", refusalText(err))
	}
	fmt.Fprintf(stdout, "issuer %s made (standby, valid until %s). Restart every server so it loads it, then make it the one that issues: varmenne issuer activate %s\n",
		name, cert.NotAfter.UTC().Format(time.DateOnly), name)
	return nil
}

// issuerList is "varmenne issuer list": every generation, its state and its CRL.
func issuerList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("issuer list", stderr)
	op := addOperatorFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	list, err := s.svc.Issuers(ctx, s.who)
	if err != nil {
		return s.fail(err)
	}
	if len(list) == 0 {
		fmt.Fprintln(stdout, "no issuer is registered yet: start \"varmenne serve\" once")
		return nil
	}
	for _, g := range list {
		state := g.State
		if g.State == store.GenerationRetired {
			state += fmt.Sprintf(" (%s by %s+%s)", g.RetiredAt.UTC().Format(time.RFC3339), g.RetireRequestedBy, g.RetiredBy)
		} else if g.RetireRequestedBy != "" {
			state += fmt.Sprintf(" (retirement asked for by %s: %s)", g.RetireRequestedBy, g.RetireReason)
		}
		crl := "no CRL yet"
		if g.CRLNumber > 0 {
			crl = fmt.Sprintf("CRL %d next update %s", g.CRLNumber, g.CRLNextUpdate.UTC().Format(time.RFC3339))
		}
		switch {
		case g.FinalCRL:
			crl += " (final)"
		case !g.FinalUntil.IsZero():
			crl += fmt.Sprintf(" (final CRL until %s due)", g.FinalUntil.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(stdout, "%-14s %-10s gen %d  %-8s until %s  %s\n  %s  SHA-256 %s\n", g.Name, g.Hierarchy, g.Generation, state,
			g.NotAfter.UTC().Format(time.DateOnly), crl, g.Subject, g.CertSHA256)
	}
	return nil
}

// issuerActivate is "varmenne issuer activate NAME".
func issuerActivate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("issuer activate", stderr)
	op := addOperatorFlags(fs)
	name, err := onePositional(fs, args, "the generation to activate, e.g. varmenne issuer activate production-2")
	if err != nil {
		return err
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	previous, err := s.svc.ActivateIssuer(ctx, s.who, name)
	if err != nil {
		return s.fail(err)
	}
	fmt.Fprintf(stdout, "issuer %s signs the new certificates from now on (running servers switch within %s); %s goes on signing its CRLs and OCSP answers until its certificates expire\n",
		name, issuersEvery, previous)
	return nil
}

// issuerRetire is "varmenne issuer retire NAME": --reason asks for it, --approve
// (another administrator) carries it out, --withdraw drops the request.
func issuerRetire(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("issuer retire", stderr)
	op := addOperatorFlags(fs)
	reason := fs.String("reason", "", "why the generation is retired (asks for the retirement; with --withdraw, why it is dropped)")
	approve := fs.Bool("approve", false, "carry out the retirement another administrator asked for: revoke every valid certificate of the generation and publish its final CRL")
	withdraw := fs.Bool("withdraw", false, "drop a retirement asked for and not carried out")
	name, err := onePositional(fs, args, "the generation to retire, e.g. varmenne issuer retire production --reason TEXT")
	if err != nil {
		return err
	}
	if *approve && *withdraw {
		return errors.New("issuer retire: give --approve or --withdraw, not both")
	}
	if !*approve && strings.TrimSpace(*reason) == "" {
		return errors.New("issuer retire: give --reason TEXT (why it is retired, or why the request is withdrawn), or --approve to carry out another administrator's request")
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	switch {
	case *withdraw:
		if err := s.svc.WithdrawIssuerRetirement(ctx, s.who, name, *reason); err != nil {
			return s.fail(err)
		}
		fmt.Fprintf(stdout, "the retirement of issuer %s is withdrawn\n", name)
	case *approve:
		done, err := s.svc.RetireIssuer(ctx, s.who, name, admin.DoorCLI)
		if err != nil {
			return s.fail(err)
		}
		last := "none"
		if !done.LastExpiry.IsZero() {
			last = done.LastExpiry.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "issuer %s is retired: %d certificates revoked (cessationOfOperation), last expiry %s; its final CRL, valid until %s, is published by a running server within seconds (varmenne crl show --issuer %s)\n",
			name, len(done.Revoked), last, done.FinalUntil.Format(time.RFC3339), name)
		for _, serial := range done.Revoked {
			fmt.Fprintln(stdout, serial)
		}
	default:
		if err := s.svc.RequestIssuerRetirement(ctx, s.who, name, *reason); err != nil {
			return s.fail(err)
		}
		fmt.Fprintf(stdout, "the retirement of issuer %s is asked for; another administrator carries it out: varmenne issuer retire %s --approve\n", name, name)
	}
	return nil
}
