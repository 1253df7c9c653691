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
	"syscall"

	"github.com/varmenne/varmenne/cmd/internal/flagenv"
)

const usage = `varmenne — ACME server for SOTE service certificates

Usage:
  varmenne serve       [flags]   run the ACME server (embedded default: SQLite, development PKI)
  varmenne org add     --oid OID --name NAME [--long-name NAME] --domain NAME... [--network CIDR...]
  varmenne org import  FILE|URL [--format json|xml]   THL SOTE register export: add and update organisations
  varmenne org show    OID        register data, domains, EAB keys, certificates, certificates of conformity
  varmenne org conformity add OID --system NAME --expires YYYY-MM-DD
  varmenne org domains add OID [--domain NAME...] [--network CIDR...]   approve more domains and IP networks
  varmenne eab create  --org OID [--domain NAME...] [--network CIDR...] [--json]
  varmenne revoke      --serial S | --org OID  --reason R --requested-by NAME --identified-by METHOD
                       [--note TEXT] [--invalidity-date RFC3339] [--requested-at RFC3339] [--performed-by NAME]
  varmenne crl show    [--issuer production|test] [--out FILE]
  varmenne renew-early --serial S | --org OID | --issuer NAME --reason TEXT [--performed-by NAME]
                       move the ARI renewal window into the past: ARI clients renew at their next check
  varmenne init        --pkcs11-module PATH --pkcs11-token LABEL [--pkcs11-pin-file F] --operator A --operator B
                       [--key-type rsa-4096] [--tls-name NAME...] [--tls-only]   key ceremony: keys inside the HSM
  varmenne intents list [--json]   issuance intents without a certificate (pending or failed)
  varmenne audit verify            check the audit log's hash chain
  varmenne audit export [--since T] [--until T]   the audit log as JSON lines
  varmenne operator add NAME --role administrator|registrar|auditor [--token] [--out DIR]
                       an operator: a client certificate of the operator CA, or a bearer token (API clients)
  varmenne operator list

Every command takes --data DIR (default ./varmenne-data, or $VARMENNE_DATA).
Every flag can also be set as VARMENNE_<FLAG>, e.g. VARMENNE_LISTEN=127.0.0.1:14000.
Run "varmenne COMMAND -h" for a command's flags. The ACME load generator is a command
of its own: varmenne-bench.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "varmenne: "+err.Error())
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New(`no command given; try "varmenne serve"`)
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return serve(ctx, rest, stdout, stderr)
	case "org":
		sub := ""
		if len(rest) > 0 {
			sub = rest[0]
		}
		switch {
		case sub == "add":
			return orgAdd(ctx, rest[1:], stdout, stderr)
		case sub == "import":
			return orgImport(ctx, rest[1:], stdout, stderr) // orgregister.go
		case sub == "show":
			return orgShow(ctx, rest[1:], stdout, stderr)
		case sub == "conformity" && len(rest) > 1 && rest[1] == "add":
			return orgConformityAdd(ctx, rest[2:], stdout, stderr)
		case sub == "domains" && len(rest) > 1 && rest[1] == "add":
			return orgDomainsAdd(ctx, rest[2:], stdout, stderr) // orgdomains.go
		}
		return errors.New(`"varmenne org" needs a subcommand: add, import, show, conformity add, domains add`)
	case "eab":
		if len(rest) > 0 && rest[0] == "create" {
			return eabCreate(ctx, rest[1:], stdout, stderr)
		}
		return errors.New(`"varmenne eab" needs a subcommand: create`)
	case "revoke":
		return revoke(ctx, rest, stdout, stderr)
	case "renew-early":
		return renewEarly(ctx, rest, stdout, stderr) // renewearly.go
	case "crl":
		if len(rest) > 0 && rest[0] == "show" {
			return crlShow(ctx, rest[1:], stdout, stderr)
		}
		return errors.New(`"varmenne crl" needs a subcommand: show`)
	case "init", "intents", "audit":
		return keyCommands(ctx, cmd, rest, stdout, stderr) // init, intents list, audit verify (keycmds.go)
	case "operator":
		switch {
		case len(rest) > 0 && rest[0] == "add":
			return operatorAdd(ctx, rest[1:], stdout, stderr) // operators.go
		case len(rest) > 0 && rest[0] == "list":
			return operatorList(ctx, rest[1:], stdout, stderr)
		}
		return errors.New(`"varmenne operator" needs a subcommand: add, list`)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q; the commands are serve, org add, eab create, revoke, renew-early, crl show, init, intents list, audit verify, audit export, operator add, operator list", cmd)
	}
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
