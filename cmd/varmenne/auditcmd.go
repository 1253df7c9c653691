package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/varmenne/varmenne/audit"
)

// auditAnchorsFile is the default anchor file, in the data directory: serve
// appends the audit log's head to it at intervals and when it stops.
const auditAnchorsFile = "audit-anchors"

// auditVerify checks the audit log: its hash chain, every event's MAC under the
// audit key, and the anchors of the anchor file. Only a log whose MACs were
// checked is reported intact: the chain alone anyone who can write the database
// can recompute, so --chain-only reports what it checked and still exits non-zero.
func auditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit verify", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	anchorsFile := fs.String("anchors", "", "anchor file to compare the log with (default: DATA/"+auditAnchorsFile+", which serve writes); give a copy kept off the host to find a log cut short by someone who holds the key too")
	chainOnly := fs.Bool("chain-only", false, "check the hash chain and the anchors without the audit key; the MACs are not checked, so the exit status is non-zero even when the chain is intact")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	db.unkeyed = *chainOnly
	st, err := db.openForVerify(ctx, *data)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	defer st.Close()
	path := *anchorsFile
	if path == "" {
		path = filepath.Join(*data, auditAnchorsFile)
	}
	anchors, err := audit.ReadAnchors(path)
	if err != nil {
		return fmt.Errorf("audit verify: the anchors: %w", err)
	}
	p, err := audit.New(st, nil).Check(ctx, db.auditKey, anchors)
	if err != nil {
		if errors.Is(err, audit.ErrNeverKeyed) {
			return fmt.Errorf("audit verify: %w", err)
		}
		return fmt.Errorf("%w (events 1 to %d are intact)", err, p.Events)
	}
	fmt.Fprintf(stdout, "audit log intact: %d events", p.Events)
	switch {
	case p.Events == 0:
	case !p.MACs:
		fmt.Fprint(stdout, "; hash chain only, MACs NOT checked")
	case p.KeyedFrom == 1:
		fmt.Fprint(stdout, "; every event's MAC checked")
	default:
		fmt.Fprintf(stdout, "; MACs checked from event %d on (events 1 to %d were written before the log had its key: hash chain only)", p.KeyedFrom, p.KeyedFrom-1)
	}
	fmt.Fprintf(stdout, "; %d anchors of %s match\n", p.Anchors, path)
	if !p.MACs {
		return errors.New("audit verify: the MACs were not checked (--chain-only): a rewrite by someone who can write the database would not be found; give the audit key (--audit-key-file) to check them")
	}
	return nil
}
