package main

// org add, org suspend, org resume and the eab commands: front ends of the
// operator service (operate.go).

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/signer"
)

func orgAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("org add", stderr)
	op := addOperatorFlags(fs)
	oid := fs.String("oid", "", "the organisation's code in THL's SOTE register, e.g. 1.2.246.10.12345678.10.0")
	name := fs.String("name", "", "the organisation's name (certificate O)")
	longName := fs.String("long-name", "", "the long name from the code service (certificate OU); default: --name")
	var domainFlags, networkFlags stringList
	fs.Var(&domainFlags, "domain", "a domain the organisation administers (repeatable)")
	fs.Var(&networkFlags, "network", "a network (CIDR, e.g. 192.0.2.0/24) whose addresses may be certified beside a DNS name (repeatable; default: none)")
	testOnly := fs.Bool("test-only", false, "the organisation may order test profiles only (sote-server-test, sote-system-signature-test)")
	shared := fs.Bool("shared", false, "approve domains and networks another organisation has too (administrators only; recorded)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *oid == "":
		return errors.New("org add: --oid is required: the organisation's THL register code, e.g. 1.2.246.10.12345678.10.0")
	case strings.TrimSpace(*name) == "":
		return errors.New("org add: --name is required: the organisation's name as it goes into certificates")
	case len(domainFlags) == 0:
		return errors.New("org add: give at least one --domain the organisation administers")
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	o, err := s.svc.AddOrganisation(ctx, s.who, admin.OrganisationInput{OID: *oid, Name: *name, LongName: *longName,
		Domains: domainFlags, Networks: networkFlags, TestOnly: *testOnly, Shared: *shared})
	if err != nil {
		return s.fail(err)
	}
	only := ""
	if o.TestOnly {
		only = " (test profiles only)"
	}
	nets := ""
	if len(o.Networks) > 0 {
		nets = " and networks " + networkText(o.Networks)
	}
	fmt.Fprintf(stdout, "organisation %s (%s) added with domains %s%s%s\n", o.OID, o.Name, strings.Join(o.Domains, ", "), nets, only)
	return nil
}

// orgSuspend is "varmenne org suspend OID --reason TEXT".
func orgSuspend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("org suspend", stderr)
	op := addOperatorFlags(fs)
	reason := fs.String("reason", "", "why the organisation may not order for now; kept in the audit log")
	oid, err := onePositional(fs, args, "the organisation's OID, e.g. \"varmenne org suspend 1.2.246.10.12345678.10.0 --reason …\"")
	if err != nil {
		return err
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.svc.Suspend(ctx, s.who, oid, *reason); err != nil {
		return s.fail(err)
	}
	fmt.Fprintf(stdout, "organisation %s is suspended: its accounts can neither register, order, validate nor finalize until \"varmenne org resume %s\"; they can still revoke and download their certificates\n", oid, oid)
	return nil
}

// orgResume is "varmenne org resume OID".
func orgResume(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("org resume", stderr)
	op := addOperatorFlags(fs)
	oid, err := onePositional(fs, args, "the organisation's OID, e.g. \"varmenne org resume 1.2.246.10.12345678.10.0\"")
	if err != nil {
		return err
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.svc.Resume(ctx, s.who, oid); err != nil {
		return s.fail(err)
	}
	fmt.Fprintf(stdout, "organisation %s is no longer suspended\n", oid)
	return nil
}

// eabCreate is "varmenne eab create": in development the key at once (single
// control, which the audit log says); in production a request that another
// administrator approves with "varmenne eab approve".
func eabCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eab create", stderr)
	op := addOperatorFlags(fs)
	org := fs.String("org", "", "OID of the organisation the key binds accounts to")
	asJSON := fs.Bool("json", false, `print one JSON object {"kid":…,"hmac_key":…} (or {"request":…,"status":"requested"} when the request waits for approval)`)
	var domainFlags, networkFlags, profiles stringList
	fs.Var(&domainFlags, "domain", "limit the account to these of the organisation's domains (repeatable; default: all)")
	fs.Var(&networkFlags, "network", "limit the account to these of the organisation's networks (CIDR, repeatable; default: all)")
	fs.Var(&profiles, "profile", "limit the account to this certificate profile (repeatable; default: every profile the organisation may use)")
	configFile := fs.String("config", "", "the server's profile configuration file, to check --profile against (default: the built-in profiles)")
	person := fs.String("person", "", "who asked for the key (default: the operator running this command)")
	identifiedBy := fs.String("identified-by", "operator of the CA", "how that person was identified")
	contact := fs.String("technical-contact", "", "the technical contact who installs the key, e.g. the IT vendor (default: --person)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *org == "" {
		return errors.New("eab create: --org is required: the OID of an organisation added with \"varmenne org add\"")
	}
	seen := map[string]bool{}
	for _, p := range profiles {
		if seen[p] {
			return fmt.Errorf("eab create: --profile %s is given twice", p)
		}
		seen[p] = true
	}
	s, err := op.open(ctx, *configFile)
	if err != nil {
		return err
	}
	defer s.Close()
	in := admin.EABRequestInput{Organisation: *org, Person: firstNonEmpty(*person, s.who.Name), IdentifiedBy: *identifiedBy,
		TechnicalContact: firstNonEmpty(*contact, *person, s.who.Name), Domains: domainFlags, Networks: networkFlags, Profiles: profiles}
	k, err := s.svc.CreateKey(ctx, s.who, in)
	if err != nil {
		return s.fail(err)
	}
	if k.Key == nil {
		if *asJSON {
			return json.NewEncoder(stdout).Encode(map[string]string{"request": k.Request.ID, "status": k.Request.Status})
		}
		fmt.Fprintf(stdout, "EAB request %s for organisation %s waits for approval: this CA runs with HSM keys, so an administrator other than %s approves it:\n  varmenne eab approve %s\nthen %s receives the key, once, with:\n  varmenne eab key %s\n",
			k.Request.ID, *org, s.who.Name, k.Request.ID, s.who.Name, k.Request.ID)
		return nil
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]string{"kid": k.Key.KID, "hmac_key": k.Key.HMACKey})
	}
	fmt.Fprintf(stdout, "EAB key for organisation %s; it creates one ACME account.\n  kid:      %s\n  hmac key: %s\n", *org, k.Key.KID, k.Key.HMACKey)
	if len(k.Request.Profiles) > 0 {
		fmt.Fprintf(stdout, "  profiles: %s\n", strings.Join(k.Request.Profiles, ", "))
	}
	fmt.Fprintf(stdout, "Development mode: %s requested and approved it alone (single control), as the audit log records.\n", s.who.Name)
	return nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}

// eabApprove is "varmenne eab approve REQUEST": an administrator other than the
// requester approves (dual control).
func eabApprove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eab approve", stderr)
	op := addOperatorFlags(fs)
	id, err := onePositional(fs, args, "the EAB request's id, e.g. \"varmenne eab approve REQUEST --operator-token-file anna.token\"")
	if err != nil {
		return err
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	k, err := s.svc.Approve(ctx, s.who, id)
	if err != nil {
		return s.fail(err)
	}
	fmt.Fprintf(stdout, "EAB request %s approved by %s: key %s of organisation %s, fingerprint %s; %s receives it once with \"varmenne eab key %s\"\n",
		id, s.who.Name, k.KID, k.Organisation, k.Fingerprint, k.RequestedBy, id)
	return nil
}

// eabReject is "varmenne eab reject REQUEST --reason TEXT".
func eabReject(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eab reject", stderr)
	op := addOperatorFlags(fs)
	reason := fs.String("reason", "", "why the request is rejected")
	id, err := onePositional(fs, args, "the EAB request's id")
	if err != nil {
		return err
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.svc.Reject(ctx, s.who, id, *reason); err != nil {
		return s.fail(err)
	}
	fmt.Fprintf(stdout, "EAB request %s rejected\n", id)
	return nil
}

// eabKey is "varmenne eab key REQUEST": the requester receives the approved key,
// once.
func eabKey(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eab key", stderr)
	op := addOperatorFlags(fs)
	asJSON := fs.Bool("json", false, `print one JSON object {"kid":…,"hmac_key":…}`)
	id, err := onePositional(fs, args, "the EAB request's id")
	if err != nil {
		return err
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	h, err := s.svc.Handover(ctx, s.who, id)
	if err != nil {
		return s.fail(err)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]string{"kid": h.KID, "hmac_key": h.HMACKey})
	}
	fmt.Fprintf(stdout, "EAB key of request %s (shown only now; it creates one ACME account until %s):\n  kid:      %s\n  hmac key: %s\n", id, h.Expires, h.KID, h.HMACKey)
	return nil
}

// eabRevoke is "varmenne eab revoke KID --reason TEXT [--deactivate-accounts]".
func eabRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eab revoke", stderr)
	op := addOperatorFlags(fs)
	reason := fs.String("reason", "", "why the key may bind no account")
	deactivate := fs.Bool("deactivate-accounts", false, "also deactivate the account the key bound (without it the account stays, but the standing check refuses its every step towards a certificate)")
	kid, err := onePositional(fs, args, "the EAB key's kid")
	if err != nil {
		return err
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	ids, err := s.svc.RevokeKey(ctx, s.who, kid, *reason, *deactivate)
	if err != nil {
		return s.fail(err)
	}
	fmt.Fprintf(stdout, "EAB key %s revoked: it binds no account, and the account it bound takes no step towards a certificate (revoking and downloading its certificates stay possible)", kid)
	if len(ids) > 0 {
		fmt.Fprintf(stdout, "; accounts deactivated: %s", strings.Join(ids, ", "))
	}
	fmt.Fprintln(stdout)
	return nil
}

// keyBlock is "varmenne key block (--key-hash HEX | --key FILE) --reason TEXT": no
// CSR with the key is certified, and no account uses it, from now on.
func keyBlock(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("key block", stderr)
	op := addOperatorFlags(fs)
	keyHash := fs.String("key-hash", "", "the hex SHA-256 of the key's SubjectPublicKeyInfo")
	keyFile := fs.String("key", "", "a PEM file holding the key: a certificate, a CSR or a public key")
	reason := fs.String("reason", "", "why; kept with the block and in the audit log")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*keyHash == "") == (*keyFile == "") {
		return errors.New("key block: give either --key-hash HEX or --key FILE")
	}
	if *keyFile != "" {
		h, err := pemKeyHash(*keyFile)
		if err != nil {
			return fmt.Errorf("key block: --key %s: %w", *keyFile, err)
		}
		*keyHash = h
	}
	s, err := op.open(ctx, "")
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.svc.BlockKey(ctx, s.who, *keyHash, *reason); err != nil {
		return s.fail(err)
	}
	fmt.Fprintf(stdout, "key %s is blocked: it is certified no more, on every replica\n", *keyHash)
	return nil
}

// pemKeyHash is the key hash (signer.KeyHash) of the key in a PEM certificate,
// CSR or public key.
func pemKeyHash(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return "", errors.New("holds no PEM block")
	}
	var pub any
	switch block.Type {
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return "", err
		}
		pub = c.PublicKey
	case "CERTIFICATE REQUEST":
		c, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			return "", err
		}
		pub = c.PublicKey
	case "PUBLIC KEY":
		if pub, err = x509.ParsePKIXPublicKey(block.Bytes); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("holds a %s; give a certificate, a CSR or a public key", block.Type)
	}
	return signer.KeyHash(pub)
}
