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
	"strings"
	"syscall"
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
  varmenne bench       --directory URL (--eab KID:HMAC... | --local-org OID) [--orders M] [--concurrency C]
                       [--key p256|rsa2048|rsa4096] [--mode tight|stock] [--server-pid PID] [--json]   ACME load generator

Every command takes --data DIR (default ./varmenne-data, or $VARMENNE_DATA).
Every flag can also be set as VARMENNE_<FLAG>, e.g. VARMENNE_LISTEN=127.0.0.1:14000.
Run "varmenne COMMAND -h" for a command's flags.
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
	case "bench":
		return benchCmd(ctx, rest, stdout, stderr) // bench.go
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q; the commands are serve, org add, eab create, revoke, renew-early, crl show, init, intents list, audit verify, audit export, operator add, operator list", cmd)
	}
}

// newFlags makes a flag set that reports errors as one line and exits non-zero.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args and then fills every flag not given on the command line from
// VARMENNE_<NAME> in the environment.
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()       // where -h prints the flags: the command's stderr
	fs.SetOutput(io.Discard) // errors are reported once, by main
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(out)
			fs.PrintDefaults()
			return err
		}
		return fmt.Errorf("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := "VARMENNE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %v", env, v, e)
			}
		}
	})
	return err
}

// stringList is a repeatable flag; a value may also hold several comma-separated items.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func dataFlag(fs *flag.FlagSet) *string {
	return fs.String("data", "varmenne-data", "data directory: database, development keys, roots.pem")
}

func dbPath(dataDir string) string { return filepath.Join(dataDir, "varmenne.db") }
