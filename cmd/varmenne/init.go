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
	var shareOut stringList
	fs.Var(&shareOut, "share-out", "new file for an activation share of the token's new PIN, once per holder: the first for the first --operator, the second for the second, each on a medium its holder keeps (give two)")
	reshare := fs.Bool("reshare", false, "only give the token a new PIN, split for the two --operator (a holder leaves); log in with the current holders' --pkcs11-pin-share files")
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
	if err := checkShareOut(*tlsOnly, *reshare, shareOut); err != nil {
		return err
	}
	dir := filepath.Join(*data, "pki")
	if !*tlsOnly && !*reshare {
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
	h.ActivationRecord = filepath.Join(dir, ceremony.ActivationRecordFile)
	pool, err := ceremonyLogin(ctx, h, log, actor, "init")
	if err != nil {
		return err
	}
	defer pool.Close()

	c := &ceremony.Ceremony{Log: log, Actor: actor, Pool: pool, Dir: dir, Now: time.Now(), Out: stdout,
		// The operator CA of the admin listener's client certificates (operators.go).
		OperatorCA: func(ctx context.Context) error {
			_, err := ensureOperatorCA(ctx, *data, log, actor)
			return err
		}}
	// The token's activation: a new PIN nobody saw, in two holders' shares
	// (signer/ceremony, shares.go).
	holders := trimmed(operators)
	if *tlsOnly {
		return c.ListenerOnly(ctx, h.Labels[ceremony.RoleRoot], tlsExtra)
	}
	if *reshare {
		return c.SplitPIN(ctx, h.Token, holders, shareOut, true)
	}
	if err := c.Run(ctx, h, *keyType, *org, tlsExtra); err != nil {
		return err
	}
	if err := c.SplitPIN(ctx, h.Token, holders, shareOut, false); err != nil {
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

// checkShareOut refuses, before anything is made, --share-out files that do not
// fit the step: two new files for a ceremony or a reshare, none for --tls-only.
func checkShareOut(tlsOnly, reshare bool, outs []string) error {
	switch {
	case tlsOnly && reshare:
		return errors.New("--tls-only and --reshare are separate steps: give one")
	case tlsOnly && len(outs) > 0:
		return errors.New("--tls-only leaves the token's activation as it is: give no --share-out")
	case tlsOnly:
		return nil
	case len(outs) != 2:
		return fmt.Errorf("init splits the token's new PIN into two activation shares: give --share-out FILE twice, the first for the first --operator and the second for the second (got %d)", len(outs))
	}
	for _, f := range outs {
		if _, err := os.Stat(f); err == nil {
			return fmt.Errorf("--share-out %s already exists: a share is never overwritten; give a new file", f)
		}
		if fi, err := os.Stat(filepath.Dir(f)); err != nil || !fi.IsDir() {
			return fmt.Errorf("--share-out %s: its directory %s does not exist; mount the holder's medium or make the directory first", f, filepath.Dir(f))
		}
	}
	return nil
}

func trimmed(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.TrimSpace(n)
	}
	return out
}

// ceremonyLogin activates the token for a key ceremony (cmd names it in errors)
// and records the login — refused or done — by the operators present, before any
// key is made.
func ceremonyLogin(ctx context.Context, h ceremony.HSM, log *audit.Log, actor, cmd string) (*pkcs11.Pool, error) {
	pool, act, err := h.Activate()
	login := audit.HSMLogin{Token: h.Token, Serial: act.Serial, Holders: act.Holders}
	if err != nil {
		_, _ = log.Append(ctx, audit.Record{Actor: actor, Event: login, Outcome: audit.Failed + ": " + err.Error()})
		return nil, fmt.Errorf("%s: HSM: %w", cmd, err)
	}
	if _, err := log.Append(ctx, audit.Done(actor, login)); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s: writing the ceremony record: %w", cmd, err)
	}
	return pool, nil
}
