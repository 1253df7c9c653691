package signer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// memAudit is an in-memory audit store.
type memAudit struct {
	mu     sync.Mutex
	events []store.AuditEvent
}

func (m *memAudit) AppendAudit(_ context.Context, e store.AuditEvent, seal func(store.AuditEvent) (string, error)) (store.AuditEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.Seq = int64(len(m.events)) + 1
	if len(m.events) > 0 {
		e.PrevHash = m.events[len(m.events)-1].Hash
	}
	h, err := seal(e)
	if err != nil {
		return store.AuditEvent{}, err
	}
	e.Hash = h
	m.events = append(m.events, e)
	return e, nil
}

// Audited is unused: the signer appends its events one by one.
func (m *memAudit) Audited(context.Context, store.Seal, func(*store.Tx) ([]store.AuditEvent, error)) ([]store.AuditEvent, error) {
	return nil, errors.New("memAudit: no transactions")
}

func (m *memAudit) AuditEvents(_ context.Context, after int64, limit int) ([]store.AuditEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if after >= int64(len(m.events)) {
		return nil, nil
	}
	return slices.Clone(m.events[after:min(int(after)+limit, len(m.events))]), nil
}

// eventAuditor notes each event in the harness's event order, then passes it on.
type eventAuditor struct {
	ev   *events
	next Auditor
	err  error
}

func (a *eventAuditor) Audit(ctx context.Context, e audit.Event, outcome string) error {
	a.ev.add(string(e.Action()))
	if a.err != nil {
		return a.err
	}
	return a.next.Audit(ctx, e, outcome)
}

func TestIssueAuditsSignature(t *testing.T) {
	t.Run("begin before the signature, end after", func(t *testing.T) {
		h := newHarness(t, "p256", testProfile())
		mem := &memAudit{}
		log := audit.New(mem, nil)
		h.ca.WithAuditor(&eventAuditor{ev: h.ev, next: audit.Recorder{Log: log, Actor: "varmenne serve"}})
		issued, err := h.ca.Issue(context.Background(), testRequest(t, "p256"))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"intent", string(audit.ActSignBegin), "sign", string(audit.ActSignEnd)}; !slices.Equal(h.ev.log, want) {
			t.Errorf("events = %v, want %v", h.ev.log, want)
		}
		if len(mem.events) != 2 {
			t.Fatalf("%d audit events, want 2", len(mem.events))
		}
		begin, end := mem.events[0], mem.events[1]
		for _, want := range []string{"serial=" + issued.Serial, "order=order-1", "profile=" + testProfile().Name, "names=www.example.fi,example.fi", "issuer="} {
			if !strings.Contains(begin.Object, want) {
				t.Errorf("begin object %q lacks %q", begin.Object, want)
			}
		}
		sum := sha256.Sum256(issued.DER)
		if end.Outcome != audit.OK || !strings.Contains(end.Object, "sha256="+hex.EncodeToString(sum[:])) || !strings.Contains(end.Object, issued.Serial) {
			t.Errorf("end event = %+v, want ok with the serial and the certificate's SHA-256", end)
		}
		if n, err := log.Verify(context.Background()); err != nil || n != 2 {
			t.Errorf("Verify = %d, %v; want 2, nil", n, err)
		}
	})
	t.Run("a failing auditor means no signature", func(t *testing.T) {
		h := newHarness(t, "p256", testProfile())
		down := errors.New("audit log unavailable")
		h.ca.WithAuditor(&eventAuditor{ev: h.ev, err: down})
		got, err := h.ca.Issue(context.Background(), testRequest(t, "p256"))
		if !errors.Is(err, down) || !errors.Is(err, ErrUnsigned) || got != nil {
			t.Fatalf("Issue = %v, %v; want nil and the auditor's error", got, err)
		}
		if n := h.key.ev.count("sign"); n != 0 {
			t.Errorf("issuer key signed %d times, want 0", n)
		}
		if n := h.ev.count(string(audit.ActSignEnd)); n != 0 {
			t.Errorf("%d end events, want 0", n)
		}
		if len(h.rec.failedReasons()) != 1 {
			t.Errorf("intent not closed: %v", h.rec.failedReasons())
		}
	})
	t.Run("a failed signature is audited as failed", func(t *testing.T) {
		h := newHarness(t, "p256", testProfile())
		h.key.corrupt = func(sig []byte) []byte { return append([]byte(nil), sig[:len(sig)-1]...) }
		mem := &memAudit{}
		h.ca.WithAuditor(audit.Recorder{Log: audit.New(mem, nil), Actor: "varmenne serve"})
		if _, err := h.ca.Issue(context.Background(), testRequest(t, "p256")); err == nil {
			t.Fatal("Issue succeeded with a corrupt signature")
		}
		if len(mem.events) != 2 || mem.events[1].Action != string(audit.ActSignEnd) || !strings.HasPrefix(mem.events[1].Outcome, audit.Failed) {
			t.Errorf("events = %+v, want begin and a failed end", mem.events)
		}
	})
}
