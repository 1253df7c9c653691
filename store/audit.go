package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AuditEvent is one entry of the append-only audit log. Seq, PrevHash and Hash are
// set by AppendAudit; the audit package decides how the hash is computed.
type AuditEvent struct {
	Seq      int64
	Time     time.Time
	Actor    string
	Action   string
	Object   string
	Outcome  string
	PrevHash string
	Hash     string
	// MAC is the event's seal under the audit key (audit.Key), set by the append
	// when the store has the key (KeyAudit); "" for an event written without one.
	MAC string
}

// ErrAuditKeyed refuses an append without the audit key to a log whose last event
// carries a MAC: an unkeyed event after a keyed one is what a rewrite would leave,
// and "audit verify" would report the log broken there.
var ErrAuditKeyed = errors.New("the audit log is keyed (its last event carries a MAC) and this process has no audit key: give it the audit key file (--audit-key-file)")

// KeyAudit makes every later append seal its event with mac as well (audit.Key.MAC),
// in the append's transaction. Call it once, right after opening, before the store
// is used.
func (s *SQL) KeyAudit(mac func(AuditEvent) string) { s.auditMAC = mac }

// maxAuditAppendTries bounds the retries when two writers (replicas) take the same
// sequence number at once; the loser reads the new last event and tries again.
const maxAuditAppendTries = 5

// AppendAudit appends e after the last event in one transaction: it reads the last
// event, sets e.Seq and e.PrevHash, asks seal for e.Hash, and inserts. It returns
// the event as stored. seal must have no effects outside its result.
func (s *SQL) AppendAudit(ctx context.Context, e AuditEvent, seal func(AuditEvent) (string, error)) (AuditEvent, error) {
	for try := 1; ; try++ {
		var out AuditEvent
		// The lock orders the appends; each statement then sees the last committed
		// event (READ COMMITTED), and the unique seq settles writers without it.
		err := s.retryTx(ctx, s.d.lockingIsolation, func(tx *sql.Tx) error {
			if s.d.auditLock != "" {
				if _, err := tx.ExecContext(ctx, s.d.auditLock); err != nil {
					return err
				}
			}
			var err error
			out, err = s.appendAudit(ctx, tx, e, seal)
			return err
		})
		if err == nil {
			return out, nil
		}
		err = s.fail(fmt.Sprintf("append audit event %q", e.Action), err)
		if !errors.Is(err, ErrDuplicate) || try == maxAuditAppendTries {
			return AuditEvent{}, err
		}
	}
}

// appendAudit appends e after the last event in tx: it reads the last event, sets
// e.Seq and e.PrevHash, asks seal for e.Hash, and inserts. The caller holds the
// audit lock (s.d.auditLock) where the dialect has one.
func (s *SQL) appendAudit(ctx context.Context, tx *sql.Tx, e AuditEvent, seal func(AuditEvent) (string, error)) (AuditEvent, error) {
	var last int64
	var prev, lastMAC string
	err := tx.QueryRowContext(ctx, `SELECT seq, hash, mac FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&last, &prev, &lastMAC)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return AuditEvent{}, err
	}
	if lastMAC != "" && s.auditMAC == nil {
		return AuditEvent{}, ErrAuditKeyed
	}
	out := e
	out.Seq, out.PrevHash, out.MAC = last+1, prev, ""
	out.Time = fromMicros(micros(e.Time)) // the precision the log keeps
	if out.Hash, err = seal(out); err != nil {
		return AuditEvent{}, err
	}
	if s.auditMAC != nil {
		out.MAC = s.auditMAC(out)
	}
	_, err = s.exec(ctx, tx,
		`INSERT INTO audit_log (seq, at, actor, action, object, outcome, prev_hash, hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		out.Seq, micros(out.Time), out.Actor, out.Action, out.Object, out.Outcome, out.PrevHash, out.Hash, out.MAC)
	return out, err
}

// AuditEvents returns up to limit events with seq > after, in sequence order.
func (s *SQL) AuditEvents(ctx context.Context, after int64, limit int) ([]AuditEvent, error) {
	rows, err := s.q().QueryContext(ctx, s.d.rebind(
		`SELECT `+auditColumns+` FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?`), after, limit)
	if err != nil {
		return nil, s.fail("read audit log", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		e, err := scanAuditEvent(rows)
		if err != nil {
			return nil, s.fail("read audit log", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("read audit log", err)
	}
	return out, nil
}

const auditColumns = `seq, at, actor, action, object, outcome, prev_hash, hash, mac`

func scanAuditEvent(r interface{ Scan(...any) error }) (AuditEvent, error) {
	var e AuditEvent
	var at int64
	err := r.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Object, &e.Outcome, &e.PrevHash, &e.Hash, &e.MAC)
	e.Time = fromMicros(at)
	return e, err
}

// LastAuditEvent returns the last event of the log, or with keyed the last one
// that carries a MAC; ErrNotFound when there is none.
func (s *SQL) LastAuditEvent(ctx context.Context, keyed bool) (AuditEvent, error) {
	where := ""
	if keyed {
		where = `WHERE mac <> '' `
	}
	e, err := scanAuditEvent(s.q().QueryRowContext(ctx, `SELECT `+auditColumns+` FROM audit_log `+where+`ORDER BY seq DESC LIMIT 1`))
	if errors.Is(err, sql.ErrNoRows) {
		return AuditEvent{}, ErrNotFound
	}
	if err != nil {
		return AuditEvent{}, s.fail("read audit log", err)
	}
	return e, nil
}
