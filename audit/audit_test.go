package audit

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/varmenne/varmenne/store"
)

// memStore is an in-memory store whose events a test can tamper with.
type memStore struct{ events []store.AuditEvent }

func (m *memStore) AppendAudit(_ context.Context, e store.AuditEvent, seal func(store.AuditEvent) (string, error)) (store.AuditEvent, error) {
	e.Seq = int64(len(m.events)) + 1
	if len(m.events) > 0 {
		e.PrevHash = m.events[len(m.events)-1].Hash
	}
	e.Time = e.Time.Truncate(time.Microsecond)
	h, err := seal(e)
	if err != nil {
		return store.AuditEvent{}, err
	}
	e.Hash = h
	m.events = append(m.events, e)
	return e, nil
}

func (m *memStore) AuditEvents(_ context.Context, after int64, limit int) ([]store.AuditEvent, error) {
	var out []store.AuditEvent
	for _, e := range m.events {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func filled(t *testing.T) (*memStore, *Log) {
	t.Helper()
	m := &memStore{}
	l := New(m, nil)
	for _, a := range []string{"key.generate", "certificate.create", "ceremony.init"} {
		if _, err := l.Append(context.Background(), "alice+bob", a, "varmenne-root", OK); err != nil {
			t.Fatal(err)
		}
	}
	return m, l
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(m *memStore)
		wantSeq int64 // 0: the chain is intact
	}{
		{"untouched log verifies", func(*memStore) {}, 0},
		{"changed actor", func(m *memStore) { m.events[1].Actor = "mallory" }, 2},
		{"changed outcome with its hash recomputed", func(m *memStore) {
			m.events[1].Outcome = Failed
			m.events[1].Hash = Hash(m.events[1])
		}, 3},
		{"removed event", func(m *memStore) { m.events = append(m.events[:1], m.events[2:]...) }, 2},
		{"reordered events", func(m *memStore) {
			m.events[1], m.events[2] = m.events[2], m.events[1]
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, l := filled(t)
			tt.tamper(m)
			n, err := l.Verify(context.Background())
			if tt.wantSeq == 0 {
				if err != nil || n != 3 {
					t.Fatalf("Verify = %d, %v; want 3 events, no error", n, err)
				}
				return
			}
			var ce *ChainError
			if !errors.As(err, &ce) || ce.Seq != tt.wantSeq {
				t.Fatalf("Verify error = %v, want a break at event %d", err, tt.wantSeq)
			}
		})
	}
}

func TestAppendRefusesIncompleteEvents(t *testing.T) {
	l := New(&memStore{}, nil)
	if _, err := l.Append(context.Background(), "", "key.generate", "x", OK); err == nil {
		t.Error("an event without an actor was appended")
	}
}

func TestLogOnSQLite(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "varmenne.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l := New(st, nil)
	for i := range 3 {
		if _, err := l.Append(ctx, "alice+bob", "key.generate", "key "+string(rune('a'+i)), OK); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.Verify(ctx); err != nil || n != 3 {
		t.Fatalf("Verify = %d, %v; want 3, nil", n, err)
	}
}
