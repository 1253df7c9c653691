package main

import (
	"context"
	"fmt"
	"io"

	"github.com/varmenne/varmenne/audit"
)

// auditVerify checks the hash chain of the audit log.
func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit verify", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	st, err := db.open(ctx, *data, existing)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	defer st.Close()
	n, err := audit.New(st, nil).Verify(ctx)
	if err != nil {
		return fmt.Errorf("%w (events 1 to %d are intact)", err, n)
	}
	fmt.Fprintf(stdout, "audit log intact: %d events\n", n)
	return nil
}
