package audit

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/store"
	"github.com/varmenne/varmenne/store/pgtest"

	_ "github.com/lib/pq"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { pgtest.Main(m, &cluster, "fsync=off") }

func newKey(t *testing.T) *Key {
	t.Helper()
	k, _ := GenerateKey()
	return k
}

// rechain recomputes the hash of every event from index i on, as someone who can
// write the database (and knows audit.Hash) would after changing event i.
func rechain(events []store.AuditEvent, i int) {
	for ; i < len(events); i++ {
		if i > 0 {
			events[i].PrevHash = events[i-1].Hash
		}
		events[i].Hash = Hash(events[i])
	}
}

// keyedLog is a memStore of four events; the first unkeyed ones were written
// before the log had key.
func keyedLog(t *testing.T, key *Key, unkeyed int) *memStore {
	t.Helper()
	m := &memStore{}
	l := New(m, nil)
	for i, e := range []Event{ServeStarted{Version: "1"}, OperatorAdded{Operator: "anna"}, OperatorAdded{Operator: "bert"}, ServeStopped{Version: "1"}} {
		if i == unkeyed {
			m.mac = key.MAC
		}
		if _, err := l.Append(context.Background(), Done("system", e)); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func TestCheckWithTheKey(t *testing.T) {
	key := newKey(t)
	anchorOf := func(e store.AuditEvent) Anchor {
		return Anchor{At: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC), Seq: e.Seq, Hash: e.Hash, MAC: e.MAC}
	}
	tests := []struct {
		name      string
		unkeyed   int // events written before the key
		key       *Key
		tamper    func(m *memStore) []Anchor
		wantSeq   int64 // 0: intact
		wantWhy   string
		keyedFrom int64
	}{
		{"a keyed log is intact", 0, key, func(*memStore) []Anchor { return nil }, 0, "", 1},
		{"a log keyed from its third event", 2, key, func(*memStore) []Anchor { return nil }, 0, "", 3},
		{"an object rewritten with every later hash recomputed", 0, key, func(m *memStore) []Anchor {
			m.events[1].Object = "operator=mallory"
			rechain(m.events, 1)
			return nil
		}, 2, "MAC does not match", 0},
		{"the same rewrite with the MACs from it on removed", 0, key, func(m *memStore) []Anchor {
			m.events[1].Object = "operator=mallory"
			for i := 1; i < len(m.events); i++ {
				m.events[i].MAC = ""
			}
			rechain(m.events, 1)
			return nil
		}, 2, "carries no MAC", 0},
		{"a keyed event given a forged MAC", 0, key, func(m *memStore) []Anchor {
			m.events[2].MAC = strings.Repeat("ab", 32)
			return nil
		}, 3, "MAC does not match", 0},
		{"another key", 0, newKey(t), func(*memStore) []Anchor { return nil }, 1, "MAC does not match", 0},
		{"cut short before an anchored event", 0, key, func(m *memStore) []Anchor {
			a := anchorOf(m.events[3])
			m.events = m.events[:2]
			return []Anchor{a}
		}, 3, "the log was cut short", 0},
		{"rewritten by a holder of the key before an anchored event", 0, key, func(m *memStore) []Anchor {
			a := anchorOf(m.events[2])
			m.events[1].Object = "operator=mallory"
			rechain(m.events, 1)
			for i := 1; i < len(m.events); i++ {
				m.events[i].MAC = key.MAC(m.events[i])
			}
			return []Anchor{a}
		}, 3, "differs from the anchor", 0},
		{"anchors of the untouched log match", 0, key, func(m *memStore) []Anchor {
			return []Anchor{anchorOf(m.events[1]), anchorOf(m.events[3])}
		}, 0, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := keyedLog(t, key, tt.unkeyed)
			anchors := tt.tamper(m)
			p, err := New(m, nil).Check(context.Background(), tt.key, anchors)
			if tt.wantSeq == 0 {
				if err != nil || p.Events != int64(len(m.events)) || p.KeyedFrom != tt.keyedFrom || !p.MACs || p.Anchors != len(anchors) {
					t.Fatalf("Check = %+v, %v; want %d events keyed from %d, %d anchors", p, err, len(m.events), tt.keyedFrom, len(anchors))
				}
				return
			}
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Seq != tt.wantSeq || !strings.Contains(ce.Reason, tt.wantWhy) {
				t.Fatalf("Check error = %v, want event %d named: %q", err, tt.wantSeq, tt.wantWhy)
			}
		})
	}
}

// TestCheckOfALogStrippedOfEveryMAC: the one rewrite the MACs alone cannot name
// an event of, every MAC removed and the whole chain recomputed, is still refused
// with the key; the chain alone passes it, which is why verify without the key
// does not say "intact".
func TestCheckOfALogStrippedOfEveryMAC(t *testing.T) {
	key := newKey(t)
	m := keyedLog(t, key, 0)
	m.events[1].Object = "operator=mallory"
	for i := range m.events {
		m.events[i].MAC = ""
	}
	rechain(m.events, 0)
	if _, err := New(m, nil).Check(context.Background(), key, nil); !errors.Is(err, ErrNeverKeyed) {
		t.Fatalf("Check with the key = %v, want ErrNeverKeyed", err)
	}
	if p, err := New(m, nil).Check(context.Background(), nil, nil); err != nil || p.MACs {
		t.Fatalf("Check without the key = %+v, %v; want the chain intact and MACs unchecked", p, err)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit-key")
	k, err := CreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if _, err := CreateKeyFile(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("a second CreateKeyFile: %v, want ErrExist (a key is never replaced)", err)
	}
	read, err := ReadKeyFile(path)
	if err != nil || read.ID() != k.ID() {
		t.Fatalf("ReadKeyFile: %v; id %v, want %s", err, read, k.ID())
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("not hex\n"), 0o600)
	if _, err := ReadKeyFile(bad); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Fatalf("ReadKeyFile of a bad file: %v", err)
	}
}

func TestAnchorFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit-anchors")
	if got, err := ReadAnchors(path); err != nil || got != nil {
		t.Fatalf("a missing anchor file: %v, %v; want none", got, err)
	}
	want := []Anchor{{At: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC), Seq: 4, Hash: "aa", MAC: "bb"},
		{At: time.Date(2026, 3, 1, 8, 10, 0, 0, time.UTC), Seq: 9, Hash: "cc"}}
	for _, a := range want {
		if err := AppendAnchor(path, a); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("anchor file mode: %v %v", fi.Mode().Perm(), err)
	}
	got, err := ReadAnchors(path)
	if err != nil || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("ReadAnchors = %+v, %v; want %+v", got, err, want)
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("{\"seq\":\n")
	f.Close()
	if _, err := ReadAnchors(path); err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Fatalf("a broken line: %v, want it named", err)
	}
}

// TestKeyedLogOnTheStores: on SQLite and PostgreSQL, a keyed store writes each
// event's MAC in its change's transaction, refuses an unkeyed append after a
// keyed event, and a row rewritten in the database with its hashes recomputed is
// named by Check.
func TestKeyedLogOnTheStores(t *testing.T) {
	for _, d := range []struct {
		name string
		open func(t *testing.T) (*store.SQL, *sql.DB)
	}{
		{"sqlite", func(t *testing.T) (*store.SQL, *sql.DB) {
			path := filepath.Join(t.TempDir(), "varmenne.db")
			st, err := store.OpenSQLite(context.Background(), path, eabSecret)
			if err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			return st, db
		}},
		{"postgres", func(t *testing.T) (*store.SQL, *sql.DB) {
			dsn := cluster.NewDatabase(t)
			st, err := store.OpenPostgres(context.Background(), dsn, eabSecret)
			if err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("postgres", dsn)
			if err != nil {
				t.Fatal(err)
			}
			return st, db
		}},
	} {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			st, db := d.open(t)
			defer st.Close()
			defer db.Close()
			rebind := func(q string) string {
				if d.name == "postgres" {
					return strings.NewReplacer("?1", "$1", "?2", "$2", "?3", "$3", "?4", "$4").Replace(q)
				}
				return q
			}
			// One event before the key: the log is keyed from event 2.
			if _, err := New(st, nil).Append(ctx, Done("system", ServeStarted{Version: "0"})); err != nil {
				t.Fatal(err)
			}
			key := newKey(t)
			st.KeyAudit(key.MAC)
			l := New(st, nil)
			const oid = "1.2.246.10.1"
			add := func() error {
				return l.Do(ctx, func(tx *store.Tx) ([]Record, error) {
					return []Record{Done("anna", OrganisationAdded{Org: oid, Name: "X"})}, tx.AddOrganisation(store.Organisation{OID: oid, Name: "X"})
				})
			}
			if err := add(); err != nil {
				t.Fatal(err)
			}
			if err := add(); !errors.Is(err, store.ErrDuplicate) { // the change fails: no event, no MAC
				t.Fatalf("second add: %v", err)
			}
			if _, err := l.Append(ctx, Done("anna", OperatorAdded{Operator: "bert"})); err != nil {
				t.Fatal(err)
			}
			events, err := st.AuditEvents(ctx, 0, 10)
			if err != nil || len(events) != 3 {
				t.Fatalf("events %+v, %v; want 3", events, err)
			}
			if events[0].MAC != "" || events[1].MAC != key.MAC(events[1]) || events[2].MAC != key.MAC(events[2]) {
				t.Fatalf("MACs %q %q %q: want none on the event before the key, the key's on the others", events[0].MAC, events[1].MAC, events[2].MAC)
			}
			if p, err := l.Check(ctx, key, nil); err != nil || p.Events != 3 || p.KeyedFrom != 2 {
				t.Fatalf("Check = %+v, %v; want 3 events keyed from 2", p, err)
			}

			// The attack: change an event's object in the database, recompute its
			// hash and every later one.
			events[1].Object = "org=1.2.246.10.666 name=Y"
			rechain(events, 1)
			for _, e := range events[1:] {
				if _, err := db.Exec(rebind(`UPDATE audit_log SET object = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4`), e.Object, e.PrevHash, e.Hash, e.Seq); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := l.Verify(ctx); err != nil {
				t.Fatalf("the chain alone: %v; the rewrite recomputed it, so it should pass", err)
			}
			var ce *ChainError
			if _, err := l.Check(ctx, key, nil); !errors.As(err, &ce) || ce.Seq != 2 || !strings.Contains(ce.Reason, "MAC does not match") {
				t.Fatalf("Check after the rewrite = %v, want event 2 named", err)
			}
		})
	}
}

// TestUnkeyedAppendAfterAKeyedEvent: a process without the key (a replica or a
// command given no --audit-key-file) cannot append after a keyed event.
func TestUnkeyedAppendAfterAKeyedEvent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "varmenne.db")
	keyed, err := store.OpenSQLite(ctx, path, eabSecret)
	if err != nil {
		t.Fatal(err)
	}
	defer keyed.Close()
	keyed.KeyAudit(newKey(t).MAC)
	if _, err := New(keyed, nil).Append(ctx, Done("system", ServeStarted{Version: "1"})); err != nil {
		t.Fatal(err)
	}
	unkeyed, err := store.OpenSQLite(ctx, path, eabSecret)
	if err != nil {
		t.Fatal(err)
	}
	defer unkeyed.Close()
	if _, err := New(unkeyed, nil).Append(ctx, Done("system", ServeStopped{Version: "1"})); !errors.Is(err, store.ErrAuditKeyed) {
		t.Fatalf("an unkeyed append after a keyed event: %v, want ErrAuditKeyed", err)
	}
}
