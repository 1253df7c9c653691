package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/varmenne/varmenne/store"
)

// Anchor is the chain's head as it was at a time, kept outside the database: a
// log later rewritten or cut short before the anchored event no longer matches
// it. An anchor held where the database's writers cannot reach (another host, a
// syslog server) protects against someone who holds the audit key too.
type Anchor struct {
	At   time.Time `json:"at"`
	Seq  int64     `json:"seq"`
	Hash string    `json:"hash"`
	MAC  string    `json:"mac,omitempty"`
}

// HeadStore reads the log's last event; *store.SQL is one.
type HeadStore interface {
	LastAuditEvent(ctx context.Context, keyed bool) (store.AuditEvent, error)
}

// Head is the anchor of the log's last event at time at; ok false for an empty log.
func Head(ctx context.Context, st HeadStore, at time.Time) (a Anchor, ok bool, err error) {
	e, err := st.LastAuditEvent(ctx, false)
	if errors.Is(err, store.ErrNotFound) {
		return Anchor{}, false, nil
	}
	if err != nil {
		return Anchor{}, false, fmt.Errorf("audit: %w", err)
	}
	return Anchor{At: at.UTC(), Seq: e.Seq, Hash: e.Hash, MAC: e.MAC}, true, nil
}

// AppendAnchor appends a to the anchor file at path, one JSON object a line,
// making the file (0600) if it is missing, and waits until it is on disk.
func AppendAnchor(path string, a Anchor) error {
	line, err := json.Marshal(a)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadAnchors reads an anchor file; a missing file holds none.
func ReadAnchors(path string) ([]Anchor, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Anchor
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var a Anchor
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil || a.Seq < 1 || a.Hash == "" {
			return nil, fmt.Errorf("%s line %d: not an anchor (a JSON object with at, seq and hash)", path, n)
		}
		out = append(out, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
