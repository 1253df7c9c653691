package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme/authority"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

func TestRevokeWritesAuditEvent(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := audit.New(st, nil)
	r, _, err := revocationRecord(time.Now(), "superseded", "Maija Meikäläinen, Apteekki Oy", "strong electronic identification", "operaattori", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	const serial = "0100000168f0a805c366b43b5de968c691fb"
	fake := serialsStore{known: map[string]bool{serial: true}}
	if err := revokeOne(ctx, fake, audit.Recorder{Log: log, Actor: r.PerformedBy}, serial, "hex", r, false, io.Discard); err != nil {
		t.Fatal(err)
	}
	events, err := st.AuditEvents(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 {
		t.Fatalf("%d audit events, want 1", len(events))
	}
	e := events[0]
	if e.Action != authority.AuditRevoke || e.Actor != "operaattori" || e.Outcome != audit.OK {
		t.Errorf("event = %+v", e)
	}
	for _, want := range []string{"serial=" + serial, "reason=superseded", "Maija Meikäläinen", "strong electronic identification", "performed_by=\"operaattori\""} {
		if !strings.Contains(e.Object, want) {
			t.Errorf("event object %q lacks %q", e.Object, want)
		}
	}
	if n, err := log.Verify(ctx); err != nil || n != 1 {
		t.Errorf("Verify = %d, %v; want 1, nil", n, err)
	}
}
