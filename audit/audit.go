// Package audit keeps the append-only, hash-chained audit log: every event's hash
// covers its fields and the hash of the event before it, so Verify finds an event
// that was changed, removed, inserted or reordered after it was written. With the
// audit key (Key), kept outside the database, every event also carries a MAC,
// which someone who can only write the database cannot recompute; anchors (the
// chain's head written outside the database at intervals) find a log cut short.
//
// It decides what an event's hash is; the store keeps the events and appends each
// one in a single transaction. It must never update or delete an event.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/varmenne/varmenne/store"
)

// Store is what the log needs from the database.
type Store interface {
	AppendAudit(ctx context.Context, e store.AuditEvent, seal func(store.AuditEvent) (string, error)) (store.AuditEvent, error)
	Audited(ctx context.Context, seal store.Seal, change func(tx *store.Tx) ([]store.AuditEvent, error)) ([]store.AuditEvent, error)
	AuditedRows(ctx context.Context, seal store.Seal, change func(tx *store.Tx) ([]store.AuditEvent, error)) ([]store.AuditEvent, error)
	AuditEvents(ctx context.Context, after int64, limit int) ([]store.AuditEvent, error)
}

// Outcomes of an event.
const (
	OK     = "ok"
	Failed = "failed"
)

// Log appends to and verifies the audit log.
type Log struct {
	st    Store
	now   func() time.Time
	watch func(store.AuditEvent)
	// appended and failed count the events committed and those that could not be
	// (Count); nil: not counted.
	appended, failed func(n int)
}

// Count makes the log tell appended how many events each append committed, and
// failed how many it could not write (their change did not happen either). Both
// must not block. Call it before the log is used.
func (l *Log) Count(appended, failed func(n int)) { l.appended, l.failed = appended, failed }

func (l *Log) counted(n int, err error) {
	switch {
	case err == nil && l.appended != nil:
		l.appended(n)
	case err != nil && l.failed != nil:
		l.failed(n)
	}
}

// Watch makes the log hand every event it appended, once committed, to f (the
// alert hook). f must not block. Call it before the log is used.
func (l *Log) Watch(f func(store.AuditEvent)) { l.watch = f }

func (l *Log) watched(events ...store.AuditEvent) {
	if l.watch != nil {
		for _, e := range events {
			l.watch(e)
		}
	}
}

// New returns a log on st; now nil means time.Now.
func New(st Store, now func() time.Time) *Log {
	if now == nil {
		now = time.Now
	}
	return &Log{st: st, now: now}
}

// Record is one event as a caller hands it over: who (an operator name, "a+b"
// for two people acting together, "system"), the typed event, and how it ended
// (OK, Failed or a short reason, see Refused).
type Record struct {
	Actor   string
	Event   Event
	Outcome string
}

// Done is the record of an event that happened.
func Done(actor string, e Event) Record { return Record{Actor: actor, Event: e, Outcome: OK} }

// Refused is the record of an attempt refused for why.
func Refused(actor string, e Event, why string) Record {
	return Record{Actor: actor, Event: e, Outcome: "refused: " + why}
}

// entry is r as the store keeps it, at time at.
func entry(r Record, at time.Time) (store.AuditEvent, error) {
	if r.Actor == "" || r.Event == nil || r.Outcome == "" {
		return store.AuditEvent{}, errors.New("audit: an event needs an actor, an event and an outcome")
	}
	return store.AuditEvent{Time: at, Actor: r.Actor, Action: string(r.Event.Action()), Object: Object(r.Event), Outcome: r.Outcome}, nil
}

// Append records one event now, in a transaction of its own, and returns it as
// stored. A state change and its record belong in one transaction: use Do.
func (l *Log) Append(ctx context.Context, r Record) (store.AuditEvent, error) {
	e, err := entry(r, l.now())
	if err != nil {
		return store.AuditEvent{}, err
	}
	out, err := l.st.AppendAudit(ctx, e, seal)
	l.counted(1, err)
	if err != nil {
		return store.AuditEvent{}, fmt.Errorf("audit: %w", err)
	}
	l.watched(out)
	return out, nil
}

// Do runs change in one transaction and records the events it returns in the
// same transaction: the change and its records commit together, or nothing does
// (a failed audit write fails the change). change may run more than once.
func (l *Log) Do(ctx context.Context, change func(tx *store.Tx) ([]Record, error)) error {
	return l.do(ctx, l.st.Audited, change)
}

// DoRows is Do for a change that is correct without serializable isolation
// (store.SQL.AuditedRows): conditional updates and inserts held by constraints.
func (l *Log) DoRows(ctx context.Context, change func(tx *store.Tx) ([]Record, error)) error {
	return l.do(ctx, l.st.AuditedRows, change)
}

type auditedFunc func(ctx context.Context, seal store.Seal, change func(tx *store.Tx) ([]store.AuditEvent, error)) ([]store.AuditEvent, error)

func (l *Log) do(ctx context.Context, audited auditedFunc, change func(tx *store.Tx) ([]Record, error)) error {
	at := l.now()
	// pending is the number of events the last run of change handed over: when
	// the transaction then fails, they were not written (a change that refuses
	// writes none, and is no audit failure).
	pending := 0
	stored, err := audited(ctx, seal, func(tx *store.Tx) ([]store.AuditEvent, error) {
		pending = 0
		records, err := change(tx)
		if err != nil {
			return nil, err
		}
		pending = len(records)
		events := make([]store.AuditEvent, len(records))
		for i, r := range records {
			if events[i], err = entry(r, at); err != nil {
				return nil, err
			}
		}
		return events, nil
	})
	if err == nil {
		l.watched(stored...)
		l.counted(len(stored), nil)
	} else if pending > 0 {
		l.counted(pending, err)
	}
	return err
}

func seal(e store.AuditEvent) (string, error) { return Hash(e), nil }

// Hash is the lower-case hex SHA-256 of the event's fields and PrevHash, each
// length-prefixed so no two different events encode alike. Hash itself is not
// covered.
func Hash(e store.AuditEvent) string {
	h := sha256.New()
	h.Write([]byte("varmenne-audit-v1"))
	for _, f := range []string{
		strconv.FormatInt(e.Seq, 10),
		strconv.FormatInt(e.Time.UnixMicro(), 10),
		e.Actor, e.Action, e.Object, e.Outcome, e.PrevHash,
	} {
		h.Write([]byte(strconv.Itoa(len(f)) + ":"))
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ChainError says where the chain breaks.
type ChainError struct {
	Seq    int64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit log broken at event %d: %s", e.Seq, e.Reason)
}

// verifyPage is how many events Verify reads at a time.
const verifyPage = 1000

// Verify walks the whole log and checks the chain: sequence numbers run 1, 2, 3…
// without gaps, each event's PrevHash is the hash of the event before it, each
// event's hash is what Hash computes, and no event after one with a MAC lacks one.
// It checks no MAC (see Check). It returns the number of events checked; a broken
// chain is a *ChainError.
func (l *Log) Verify(ctx context.Context) (int64, error) {
	p, err := l.Check(ctx, nil, nil)
	return p.Events, err
}

// Proof is what Check found intact.
type Proof struct {
	Events    int64
	KeyedFrom int64 // the first event that carries a MAC; 0: none does
	MACs      bool  // every MAC from KeyedFrom on was checked with the key
	Anchors   int   // anchors the log matched
}

// ErrNeverKeyed is Check's answer, given the key, for a log of which no event
// carries a MAC: written without the key, or its MACs removed in the database.
// Every start of serve with the key writes a keyed event, so a log that a keyed
// server ever wrote to cannot legitimately be in this state.
var ErrNeverKeyed = errors.New("no event of the audit log carries a MAC: it was written without the audit key, or the MACs were removed in the database (every start of serve with the key writes a keyed event)")

// Check walks the whole log as Verify does and, with key, checks every event's
// MAC from the first keyed event on; each anchor must name an event of the log
// with the anchor's hash and MAC. The first event that fails is a *ChainError
// naming it; a log cut short before an anchor fails at the anchored event.
func (l *Log) Check(ctx context.Context, key *Key, anchors []Anchor) (Proof, error) {
	p := Proof{MACs: key != nil}
	at := map[int64][]Anchor{}
	for _, a := range anchors {
		at[a.Seq] = append(at[a.Seq], a)
	}
	prev := ""
	for {
		page, err := l.st.AuditEvents(ctx, p.Events, verifyPage)
		if err != nil {
			return p, fmt.Errorf("audit: %w", err)
		}
		for _, e := range page {
			if err := p.check(e, prev, key, at[e.Seq]); err != nil {
				return p, err
			}
			p.Anchors += len(at[e.Seq])
			p.Events, prev = e.Seq, e.Hash
		}
		if len(page) < verifyPage {
			break
		}
	}
	for _, a := range anchors {
		if a.Seq > p.Events {
			return p, &ChainError{Seq: p.Events + 1, Reason: fmt.Sprintf("missing: the log ends at event %d, but the anchor written at %s names event %d: the log was cut short",
				p.Events, a.At.UTC().Format(time.RFC3339), a.Seq)}
		}
	}
	if key != nil && p.Events > 0 && p.KeyedFrom == 0 {
		return p, ErrNeverKeyed
	}
	return p, nil
}

// check checks one event e after the event whose hash is prev.
func (p *Proof) check(e store.AuditEvent, prev string, key *Key, anchors []Anchor) error {
	switch {
	case e.Seq != p.Events+1:
		return &ChainError{Seq: p.Events + 1, Reason: fmt.Sprintf("missing; the next event is %d", e.Seq)}
	case e.PrevHash != prev:
		return &ChainError{Seq: e.Seq, Reason: "its previous-hash is not the hash of the event before it"}
	case Hash(e) != e.Hash:
		return &ChainError{Seq: e.Seq, Reason: "its contents do not match its hash"}
	case e.MAC == "" && p.KeyedFrom != 0:
		return &ChainError{Seq: e.Seq, Reason: fmt.Sprintf("it carries no MAC, though the log is keyed from event %d on: rewritten in the database", p.KeyedFrom)}
	case e.MAC != "" && key != nil && !key.Check(e):
		return &ChainError{Seq: e.Seq, Reason: "its MAC does not match under the audit key: rewritten in the database with its hashes recomputed (or written under another key)"}
	}
	if e.MAC != "" && p.KeyedFrom == 0 {
		p.KeyedFrom = e.Seq
	}
	for _, a := range anchors {
		if a.Hash != e.Hash || (a.MAC != "" && a.MAC != e.MAC) {
			return &ChainError{Seq: e.Seq, Reason: fmt.Sprintf("it differs from the anchor written at %s: the log was rewritten at or before this event",
				a.At.UTC().Format(time.RFC3339))}
		}
	}
	return nil
}

// Recorder appends events of one actor to a log; it is a signer.Auditor and an
// authority.Auditor.
type Recorder struct {
	Log   *Log
	Actor string
}

// Audit appends one event of r.Actor with its outcome, for an event that records no
// change of the store. A change and its record belong together: use Change.
func (r Recorder) Audit(ctx context.Context, e Event, outcome string) error {
	_, err := r.Log.Append(ctx, Record{Actor: r.Actor, Event: e, Outcome: outcome})
	return err
}

// Change runs change and records e of r.Actor with outcome in the same transaction
// (Log.DoRows): the change does not happen without its event, nor the event
// without the change. change may run more than once, and must be correct without
// serializable isolation (conditional updates, inserts held by constraints): the
// ACME side's account, order and signing steps are.
func (r Recorder) Change(ctx context.Context, e Event, outcome string, change func(tx *store.Tx) error) error {
	return r.Log.DoRows(ctx, func(tx *store.Tx) ([]Record, error) {
		if err := change(tx); err != nil {
			return nil, err
		}
		return []Record{{Actor: r.Actor, Event: e, Outcome: outcome}}, nil
	})
}
