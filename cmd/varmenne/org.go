package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/varmenne/varmenne/policy/names"
	"github.com/varmenne/varmenne/store"
)

var oidPattern = regexp.MustCompile(`^[0-9]+(\.[0-9]+)+$`)

func orgAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("org add", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	oid := fs.String("oid", "", "the organisation's code in THL's SOTE register, e.g. 1.2.246.10.12345678.10.0")
	name := fs.String("name", "", "the organisation's name (certificate O)")
	longName := fs.String("long-name", "", "the long name from the code service (certificate OU); default: --name")
	var domainFlags, networkFlags stringList
	fs.Var(&domainFlags, "domain", "a domain the organisation administers (repeatable)")
	fs.Var(&networkFlags, "network", "a network (CIDR, e.g. 192.0.2.0/24) whose addresses may be certified beside a DNS name (repeatable; default: none)")
	testOnly := fs.Bool("test-only", false, "the organisation may order test profiles only (sote-server-test, sote-system-signature-test)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *oid == "":
		return errors.New("org add: --oid is required: the organisation's THL register code, e.g. 1.2.246.10.12345678.10.0")
	case !oidPattern.MatchString(*oid):
		return fmt.Errorf("org add: --oid %q is not an OID; it looks like 1.2.246.10.12345678.10.0", *oid)
	case strings.TrimSpace(*name) == "":
		return errors.New("org add: --name is required: the organisation's name as it goes into certificates")
	case len(domainFlags) == 0:
		return errors.New("org add: give at least one --domain the organisation administers")
	}
	domains, err := parseDomains("org add", domainFlags)
	if err != nil {
		return err
	}
	networks, err := parseNetworks("org add", networkFlags)
	if err != nil {
		return err
	}
	if *longName == "" {
		*longName = *name
	}
	st, err := openExisting(ctx, *db, *data)
	if err != nil {
		return err
	}
	defer st.Close()
	err = st.AddOrganisation(ctx, store.Organisation{OID: *oid, Name: *name, LongName: *longName, Domains: domains, Networks: networks, TestOnly: *testOnly, CreatedAt: time.Now()})
	if errors.Is(err, store.ErrDuplicate) {
		return fmt.Errorf("org add: organisation %s already exists", *oid)
	}
	if err != nil {
		return fmt.Errorf("org add: %w", err)
	}
	only := ""
	if *testOnly {
		only = " (test profiles only)"
	}
	nets := ""
	if len(networks) > 0 {
		nets = " and networks " + networkText(networks)
	}
	fmt.Fprintf(stdout, "organisation %s (%s) added with domains %s%s%s\n", *oid, *name, strings.Join(domains, ", "), nets, only)
	return nil
}

func eabCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eab create", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	org := fs.String("org", "", "OID of the organisation the key binds accounts to")
	asJSON := fs.Bool("json", false, `print one JSON object {"kid":…,"hmac_key":…}`)
	var domainFlags, networkFlags stringList
	fs.Var(&domainFlags, "domain", "limit the account to these of the organisation's domains (repeatable; default: all)")
	fs.Var(&networkFlags, "network", "limit the account to these of the organisation's networks (CIDR, repeatable; default: all)")
	var profiles stringList
	fs.Var(&profiles, "profile", "limit the account to this certificate profile (repeatable; default: every profile the organisation may use)")
	configFile := fs.String("config", "", "the server's profile configuration file, to check --profile against (default: the built-in profiles)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *org == "" {
		return errors.New("eab create: --org is required: the OID of an organisation added with \"varmenne org add\"")
	}
	st, o, err := openOrganisation(ctx, *db, *data, "eab create", *org)
	if err != nil {
		return err
	}
	defer st.Close()
	domains, err := parseDomains("eab create", domainFlags)
	if err != nil {
		return err
	}
	for _, d := range domains {
		if !names.Within(d, o.Domains) {
			return fmt.Errorf("eab create: --domain %s is not among organisation %s's domains (%s)", d, o.OID, strings.Join(o.Domains, ", "))
		}
	}
	networks, err := parseNetworks("eab create", networkFlags)
	if err != nil {
		return err
	}
	if err := withinNetworks("eab create", networks, o); err != nil {
		return err
	}
	if err := checkEABProfiles(profiles, o, *configFile); err != nil {
		return fmt.Errorf("eab create: %w", err)
	}
	key := newEABKey(o.OID, domains, profiles)
	key.Networks = networks
	if err := st.CreateEAB(ctx, key); err != nil {
		return fmt.Errorf("eab create: %w", err)
	}
	hmacKey := base64.RawURLEncoding.EncodeToString(key.HMACKey)
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]string{"kid": key.KID, "hmac_key": hmacKey})
	}
	fmt.Fprintf(stdout, "EAB key for organisation %s (%s); it creates one ACME account.\n  kid:      %s\n  hmac key: %s\n",
		o.OID, o.Name, key.KID, hmacKey)
	if len(profiles) > 0 {
		fmt.Fprintf(stdout, "  profiles: %s\n", strings.Join(profiles, ", "))
	}
	return nil
}

// newEABKey is a new approved EAB key for organisation oid: a random kid and a
// 256-bit HMAC key.
func newEABKey(oid string, domains, profiles []string) store.EABKey {
	return store.EABKey{
		KID:       randomB64(16),
		OrgOID:    oid,
		HMACKey:   randomBytes(32),
		Domains:   domains,
		Profiles:  profiles,
		Status:    store.EABApproved,
		CreatedAt: time.Now(),
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("no randomness: " + err.Error())
	}
	return b
}

func randomB64(n int) string { return base64.RawURLEncoding.EncodeToString(randomBytes(n)) }

// checkEABProfiles refuses profile names the server does not offer, names given
// twice, and production profiles for a test-only organisation.
func checkEABProfiles(names []string, o *store.Organisation, configFile string) error {
	if len(names) == 0 {
		return nil
	}
	set, err := loadProfiles(configFile, false)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, n := range names {
		p, ok := set.Profiles[n]
		switch {
		case !ok:
			return fmt.Errorf("--profile %q is not offered; use one of %s", n, strings.Join(set.Names(), ", "))
		case seen[n]:
			return fmt.Errorf("--profile %s is given twice", n)
		case o.TestOnly && !p.Test:
			return fmt.Errorf("--profile %s: organisation %s may use test profiles only", n, o.OID)
		}
		seen[n] = true
	}
	return nil
}

// findOrganisation looks up oid for the command cmd; an unknown one is told how to add it.
func findOrganisation(ctx context.Context, st *store.SQL, cmd, oid string) (*store.Organisation, error) {
	o, err := st.GetOrganisation(ctx, oid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%s: organisation %s is unknown; add it with \"varmenne org add --oid %s …\" or \"varmenne org import\"", cmd, oid, oid)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return o, nil
}
