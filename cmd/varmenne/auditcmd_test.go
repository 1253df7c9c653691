package main

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/audit"
)

// rewriteAuditEvent is the attack the audit key is there for: someone who can
// write the database changes event seq's object and recomputes its hash and
// every later one (audit.Hash is public), leaving the MACs as they were.
func rewriteAuditEvent(t *testing.T, data string, seq int64, object string) {
	t.Helper()
	st := openData(t, data)
	events, err := st.AuditEvents(context.Background(), 0, 1000)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dbPath(data))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	events[seq-1].Object = object
	for i := seq - 1; i < int64(len(events)); i++ {
		if i > 0 {
			events[i].PrevHash = events[i-1].Hash
		}
		events[i].Hash = audit.Hash(events[i])
		e := events[i]
		if _, err := db.Exec(`UPDATE audit_log SET object = ?, prev_hash = ?, hash = ? WHERE seq = ?`, e.Object, e.PrevHash, e.Hash, e.Seq); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAuditVerify(t *testing.T) {
	isolate(t)
	data := newData(t)
	for _, name := range []string{"a1", "a2", "a3"} {
		if err, _, _ := runCmd(t, "operator", "add", name, "--role", "auditor", "--token", "--data", data); err != nil {
			t.Fatal(err)
		}
	}
	st := openData(t, data)
	head, ok, err := audit.Head(context.Background(), st, time.Now())
	st.Close()
	if err != nil || !ok || head.MAC == "" {
		t.Fatalf("head %+v %v %v: want a keyed head", head, ok, err)
	}
	if err := audit.AppendAnchor(filepath.Join(data, auditAnchorsFile), head); err != nil {
		t.Fatal(err)
	}

	t.Run("intact", func(t *testing.T) {
		err, stdout, _ := runCmd(t, "audit", "verify", "--data", data)
		if err != nil || !strings.Contains(stdout, "intact: 4 events; every event's MAC checked; 1 anchors of") {
			t.Fatalf("audit verify: %v %q", err, stdout)
		}
	})
	t.Run("no key file", func(t *testing.T) {
		err, _, _ := runCmd(t, "audit", "verify", "--data", data, "--audit-key-file", filepath.Join(data, "elsewhere"))
		wantOneLineError(t, err, "no audit key", "--audit-key-file", "elsewhere")
	})
	t.Run("another key", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other-key")
		if _, err := audit.CreateKeyFile(other); err != nil {
			t.Fatal(err)
		}
		err, _, _ := runCmd(t, "audit", "verify", "--data", data, "--audit-key-file", other)
		wantOneLineError(t, err, "broken at event 1", "MAC does not match")
		// An operator command with that key would write events nothing could check.
		err, _, _ = runCmd(t, "operator", "list", "--data", data, "--audit-key-file", other)
		wantOneLineError(t, err, "does not check the audit log's last keyed event", "--audit-key-file")
	})

	rewriteAuditEvent(t, data, 2, "operator=a1 role=administrator credential=token")
	t.Run("rewritten with the chain recomputed", func(t *testing.T) {
		err, _, _ := runCmd(t, "audit", "verify", "--data", data)
		wantOneLineError(t, err, "broken at event 2", "MAC does not match", "events 1 to 1 are intact")
	})
	t.Run("chain only finds the rewrite before an anchor", func(t *testing.T) {
		err, _, _ := runCmd(t, "audit", "verify", "--data", data, "--chain-only")
		wantOneLineError(t, err, "broken at event 4", "differs from the anchor")
	})
	t.Run("chain only without anchors does not say intact with a zero exit", func(t *testing.T) {
		err, stdout, _ := runCmd(t, "audit", "verify", "--data", data, "--chain-only", "--anchors", filepath.Join(t.TempDir(), "none"))
		if !strings.Contains(stdout, "MACs NOT checked") {
			t.Errorf("stdout %q does not say the MACs were not checked", stdout)
		}
		wantOneLineError(t, err, "MACs were not checked", "--audit-key-file")
	})
	t.Run("a lost key file is not replaced by a new one", func(t *testing.T) {
		keyFile := filepath.Join(data, auditKeyFile)
		saved, err := os.ReadFile(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(keyFile)
		defer os.WriteFile(keyFile, saved, 0o600)
		err, _, _ = runCmd(t, "operator", "bootstrap", "--data", data)
		wantOneLineError(t, err, "audit-key was missing", "keyed with another audit key", "restore that key file")
		if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
			t.Fatalf("the key file the refused start made is still there: %v", err)
		}
	})
}
