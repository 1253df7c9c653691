// Command varmenne is the SOTE ACME server and its operator tool. It is the only
// place that wires concrete types (store, keys, validator) to the interfaces the
// other packages declare.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/varmenne/varmenne/cmd/internal/flagenv"
)

// command is one entry of the command table: its words ("org domains add"), what
// it does for the usage text, and the function that runs it. An operator command
// acts through the operator service as an authenticated operator (operate.go);
// local marks the commands that work on the data directory alone, offline.
type command struct {
	words string
	args  string
	what  string
	local bool
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is every command of the binary.
var commands = []command{
	{"serve", "[flags]", "run the ACME server (embedded default: SQLite, development PKI)", true, serve},
	{"org add", "--oid OID --name NAME [--long-name NAME] --domain NAME... [--network CIDR...] [--test-only]", "add an organisation by hand", false, orgAdd},
	{"org import", "FILE|URL [--format json|xml]", "THL SOTE register export: add and update organisations", false, orgImport},
	{"org show", "OID", "register data, domains, EAB keys, certificates, certificates of conformity", true, orgShow},
	{"org conformity add", "OID --system NAME --expires YYYY-MM-DD", "put a certificate of conformity on file", false, orgConformityAdd},
	{"org domains add", "OID [--domain NAME...] [--network CIDR...]", "approve more domains and IP networks", false,
		func(ctx context.Context, a []string, o, e io.Writer) error { return orgDomains(ctx, "add", a, o, e) }},
	{"org domains remove", "OID [--domain NAME...] [--network CIDR...]", "withdraw domains and IP networks", false,
		func(ctx context.Context, a []string, o, e io.Writer) error { return orgDomains(ctx, "remove", a, o, e) }},
	{"org suspend", "OID --reason TEXT", "its accounts take no step towards a certificate until resumed", false, orgSuspend},
	{"org resume", "OID", "lift a suspension", false, orgResume},
	{"eab create", "--org OID [--domain NAME...] [--network CIDR...] [--profile P...] [--json]", "an EAB key at once in development; with HSM keys a request another administrator approves", false, eabCreate},
	{"eab approve", "REQUEST", "approve an EAB request (an administrator other than its requester)", false, eabApprove},
	{"eab reject", "REQUEST --reason TEXT", "reject an EAB request", false, eabReject},
	{"eab key", "REQUEST [--json]", "the requester receives the approved key, once", false, eabKey},
	{"eab revoke", "KID --reason TEXT [--deactivate-accounts]", "the key binds no account, and its account gets no more certificates", false, eabRevoke},
	{"key block", "--key-hash HEX | --key FILE --reason TEXT", "a key is certified no more (e.g. reported compromised)", false, keyBlock},
	{"revoke", "--serial S | --org OID --reason R --requested-by NAME --identified-by METHOD [--note TEXT] [--invalidity-date T] [--requested-at T]", "revoke, finally", false, revoke},
	{"renew-early", "--serial S | --org OID | --issuer NAME --reason TEXT", "move the ARI renewal window into the past: ARI clients renew at their next check", false, renewEarly},
	{"operator bootstrap", "", "the first administrator of a database without operators, its token in DATA/operator.token", true, operatorBootstrap},
	{"operator add", "NAME --role administrator|registrar|auditor [--token] [--out DIR]", "an operator: a client certificate of the operator CA, or a bearer token", false, operatorAdd},
	{"operator list", "", "every operator and their credential", false, operatorList},
	{"operator disable", "NAME --reason TEXT", "every credential of the operator stops working at once", false, operatorDisable},
	{"operator remove", "NAME", "delete an operator", false, operatorRemove},
	{"operator approve", "CHANGE [--out DIR]", "a second administrator approves a change to an operator (production)", false, operatorApprove},
	{"operator reject", "CHANGE --reason TEXT", "reject or withdraw a change to an operator", false, operatorReject},
	{"operator changes", "[--status requested|applied|rejected]", "the changes to operators", false, operatorChanges},
	{"operator rotate", "NAME [--token] [--out DIR]", "a new credential; the old one stops working", false, operatorRotate},
	{"audit export", "[--since T] [--until T]", "the audit log as JSON lines", false, auditExport},
	{"audit verify", "[--anchors FILE] [--chain-only]", "check the audit log: its hash chain, every MAC under the audit key, the anchors", true, auditVerify},
	{"issuer list", "", "the issuer generations: which one issues, retirements, CRLs", false, issuerList},
	{"issuer new", "--hierarchy production|test [HSM flags --operator A --operator B]", "key ceremony of the hierarchy's next issuer generation (standby)", true, issuerNew},
	{"issuer activate", "NAME", "the generation signs the hierarchy's new certificates; the previous one keeps its CRLs and OCSP", false, issuerActivate},
	{"issuer retire", "NAME --reason TEXT | --approve | --withdraw --reason TEXT", "retire a standby generation: one administrator asks, another carries it out (revokes all, final CRL)", false, issuerRetire},
	{"crl show", "[--issuer production|test] [--out FILE]", "the issuer's current CRL", true, crlShow},
	{"intents list", "[--json]", "issuance intents without a certificate, and how far the issuer key got", true, intentsList},
	{"init", "--pkcs11-module PATH --pkcs11-token LABEL [--pkcs11-pin-file F | --pkcs11-pin-share F ×2] --operator A --operator B --share-out FA --share-out FB [--key-type rsa-4096] [--tls-name NAME...] [--tls-only | --reshare]", "key ceremony: keys inside the HSM, the token's PIN split into two holders' activation shares", true, initCmd},
}

// usage is the command table as text.
func usage() string {
	var b strings.Builder
	b.WriteString("varmenne — ACME server for SOTE service certificates\n\nUsage:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  varmenne %s %s\n      %s", c.words, c.args, c.what)
		if c.local {
			b.WriteString(" (local: works on the data directory alone)")
		}
		b.WriteString("\n")
	}
	b.WriteString(`
Every command takes --data DIR (default ./varmenne-data, or $VARMENNE_DATA); the operator
commands act as the operator whose token --operator-token-file names (default: the first
administrator's, DATA/operator.token, written by the first start).
Every flag can also be set as VARMENNE_<FLAG>, e.g. VARMENNE_LISTEN=127.0.0.1:14000.
Run "varmenne COMMAND -h" for a command's flags. The ACME load generator is a command
of its own: varmenne-bench.
`)
	return b.String()
}

func main() {
	// Before anything else: the HSM PIN leaves the environment (pin_linux.go).
	if err := dropPINFromEnviron(); err != nil {
		fmt.Fprintln(os.Stderr, "varmenne: "+err.Error())
		os.Exit(2)
	}
	pin, err := inheritedPIN()
	if err != nil {
		fmt.Fprintln(os.Stderr, "varmenne: "+err.Error())
		os.Exit(2)
	}
	heldPIN = pin
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "varmenne: "+err.Error())
		}
		os.Exit(2)
	}
}

// run finds the longest command whose words begin args and runs it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return errors.New(`no command given; try "varmenne serve"`)
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage())
		return nil
	}
	var best *command
	for i := range commands {
		words := strings.Fields(commands[i].words)
		if len(words) <= len(args) && slices.Equal(words, args[:len(words)]) && (best == nil || len(words) > len(strings.Fields(best.words))) {
			best = &commands[i]
		}
	}
	if best != nil {
		return best.run(ctx, args[len(strings.Fields(best.words)):], stdout, stderr)
	}
	var subs []string
	for _, c := range commands {
		if rest, ok := strings.CutPrefix(c.words, args[0]+" "); ok {
			subs = append(subs, rest)
		}
	}
	if len(subs) > 0 {
		return fmt.Errorf("%q needs a subcommand: %s", "varmenne "+args[0], strings.Join(subs, ", "))
	}
	var all []string
	for _, c := range commands {
		all = append(all, c.words)
	}
	return fmt.Errorf("unknown command %q; the commands are %s", args[0], strings.Join(all, ", "))
}

// The flag conventions every varmenne command shares (cmd/internal/flagenv): errors
// as one line, and every flag also settable as VARMENNE_<FLAG>.
var (
	newFlags   = flagenv.NewFlagSet
	parseFlags = flagenv.Parse
)

// stringList is a repeatable flag; a value may also hold several comma-separated items.
type stringList = flagenv.List

func dataFlag(fs *flag.FlagSet) *string {
	return fs.String("data", "varmenne-data", "data directory: database, development keys, roots.pem")
}

func dbPath(dataDir string) string { return filepath.Join(dataDir, "varmenne.db") }
