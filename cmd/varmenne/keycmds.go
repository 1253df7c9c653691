package main

import (
	"context"
	"errors"
	"io"
)

// keyCommands dispatches init, intents list and audit verify.
func keyCommands(ctx context.Context, cmd string, rest []string, stdout, stderr io.Writer) error {
	switch cmd {
	case "init":
		return initCmd(ctx, rest, stdout, stderr)
	case "intents":
		if len(rest) > 0 && rest[0] == "list" {
			return intentsList(ctx, rest[1:], stdout, stderr)
		}
		return errors.New(`"varmenne intents" needs a subcommand: list`)
	default:
		if len(rest) > 0 && rest[0] == "verify" {
			return auditVerify(ctx, rest[1:], stdout, stderr)
		}
		if len(rest) > 0 && rest[0] == "export" {
			return auditExport(ctx, rest[1:], stdout, stderr) // operators.go
		}
		return errors.New(`"varmenne audit" needs a subcommand: verify, export`)
	}
}
