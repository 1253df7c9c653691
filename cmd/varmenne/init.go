package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/signer/ceremony"
	"github.com/varmenne/varmenne/signer/pkcs11"
)

// initCmd is "varmenne init", the key ceremony (signer/ceremony): the production and
// test roots and the two issuer keys inside the HSM, their certificates and the ACME listener's, recorded in the audit
// log; with --tls-only, a new listener certificate from the existing root.
func initCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("init", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	hsm := hsmFlags(fs, ceremony.CeremonyRoles...)
	var operators, tlsExtra stringList
	fs.Var(&operators, "operator", "name of an operator present at the ceremony; at least two different people (repeatable)")
	keyType := fs.String("key-type", "rsa-4096", "type of the root and issuer keys: "+strings.Join(pkcs11.KeyTypes, ", "))
	org := fs.String("organisation", "varmenne", "organisation (O) in the root and issuer names")
	fs.Var(&tlsExtra, "tls-name", "DNS name or IP address of the ACME listener, besides localhost, 127.0.0.1 and ::1 (repeatable)")
	tlsOnly := fs.Bool("tls-only", false, "only make a new listener certificate, signed by the existing HSM root")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	h := hsm()
	if !h.Enabled() {
		return errors.New("init makes keys inside an HSM: give --pkcs11-module PATH and --pkcs11-token LABEL (the development PKI of file keys is made by serve on first start)")
	}
	actor, err := ceremony.Actor(operators)
	if err != nil {
		return err
	}
	if !slices.Contains(pkcs11.KeyTypes, *keyType) {
		return fmt.Errorf("--key-type %q: use one of %s", *keyType, strings.Join(pkcs11.KeyTypes, ", "))
	}
	dir := filepath.Join(*data, "pki")
	if !*tlsOnly {
		for _, f := range []string{"root.pem", "test-root.pem", "production.pem", "test.pem"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				return fmt.Errorf("%s already exists: this data directory has a PKI; use another --data, or --tls-only for a new listener certificate", filepath.Join(dir, f))
			}
		}
	}
	// The record is opened before any key exists, so no key is made unrecorded; the
	// first opener makes the data directory (db.go).
	st, err := db.open(ctx, *data, creating)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	defer st.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	// Keys in an HSM: no door of this database offers the development shortcuts.
	if err := st.MarkProduction(ctx, time.Now()); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	log := audit.New(st, nil)
	pool, err := h.Open()
	if err != nil {
		_, _ = log.Append(ctx, audit.Record{Actor: actor, Event: audit.HSMLogin{Token: h.Token}, Outcome: audit.Failed + ": " + err.Error()})
		return fmt.Errorf("init: HSM: %w", err)
	}
	defer pool.Close()
	if _, err := log.Append(ctx, audit.Done(actor, audit.HSMLogin{Token: h.Token})); err != nil {
		return fmt.Errorf("init: writing the ceremony record: %w", err)
	}

	c := &ceremony.Ceremony{Log: log, Actor: actor, Pool: pool, Dir: dir, Now: time.Now(), Out: stdout,
		// The operator CA of the admin listener's client certificates (operators.go).
		OperatorCA: func(ctx context.Context) error {
			_, err := ensureOperatorCA(ctx, *data, log, actor)
			return err
		}}
	if *tlsOnly {
		return c.ListenerOnly(ctx, h.Labels[ceremony.RoleRoot], tlsExtra)
	}
	if err := c.Run(ctx, h, *keyType, *org, tlsExtra); err != nil {
		return err
	}
	// The first administrator, so the operator commands work before serve ran.
	set, err := loadProfiles("", false)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	tokenFile, err := bootstrap(ctx, *data, admin.New(adminServiceConfig(set, false), st, log, nil))
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if tokenFile != "" {
		fmt.Fprintf(stdout, "First administrator \"bootstrap\": token in %s (readable by you only).\n", tokenFile)
	}
	return nil
}
