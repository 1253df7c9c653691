package admin

import (
	"context"
	"strings"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// EventView is one audit log event.
type EventView struct {
	Seq      int64  `json:"seq"`
	Time     string `json:"time"`
	Actor    string `json:"actor"`
	Action   string `json:"action"`
	Object   string `json:"object"`
	Outcome  string `json:"outcome"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// EventViewOf is the JSON form of an event, shared by the API and audit export.
func EventViewOf(e store.AuditEvent) EventView {
	return EventView{Seq: e.Seq, Time: e.Time.UTC().Format(time.RFC3339Nano), Actor: e.Actor, Action: e.Action, Object: e.Object,
		Outcome: e.Outcome, PrevHash: e.PrevHash, Hash: e.Hash}
}

// MaxAuditPage bounds one read of the audit log.
const MaxAuditPage = 1000

// Audit reads up to limit events after seq after; auditors only.
func (s *Service) Audit(ctx context.Context, who *store.Operator, after int64, limit int) ([]EventView, error) {
	if err := s.allow(ctx, who, "read the audit log", store.RoleAuditor); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxAuditPage {
		limit = MaxAuditPage
	}
	events, err := s.st.AuditEvents(ctx, after, limit)
	if err != nil {
		return nil, s.internal(ctx, "read the audit log", err)
	}
	out := []EventView{}
	for _, e := range events {
		out = append(out, EventViewOf(e))
	}
	return out, nil
}

// ExportAudit writes every event from since to until (zero: unbounded) to each,
// in sequence order, and records the export; auditors and administrators.
func (s *Service) ExportAudit(ctx context.Context, who *store.Operator, since, until time.Time, each func(EventView) error) (int, error) {
	if err := s.allow(ctx, who, "export the audit log", store.RoleAuditor, store.RoleAdministrator); err != nil {
		return 0, err
	}
	n := 0
	for after := int64(0); ; {
		page, err := s.st.AuditEvents(ctx, after, MaxAuditPage)
		if err != nil {
			return n, s.internal(ctx, "read the audit log", err)
		}
		for _, e := range page {
			after = e.Seq
			if (!since.IsZero() && e.Time.Before(since)) || (!until.IsZero() && !e.Time.Before(until)) {
				continue
			}
			if err := each(EventViewOf(e)); err != nil {
				return n, err
			}
			n++
		}
		if len(page) < MaxAuditPage {
			break
		}
	}
	if _, err := s.aud.Append(ctx, audit.Done(who.Name, audit.AuditExported{Since: since, Until: until, Events: n})); err != nil {
		return n, s.internal(ctx, "record the export in the audit log", err)
	}
	return n, nil
}

// AuditQuery selects audit events for an operator: every field narrows, zero
// fields select everything. Pages follow the sequence number (keyset): After is
// the last event of the previous page.
type AuditQuery struct {
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Org    string    `json:"organisation"` // events naming the organisation (org=OID)
	Since  time.Time `json:"since"`        // at or after
	Until  time.Time `json:"until"`        // before
	After  int64     `json:"after"`
	Limit  int       `json:"limit"` // 1 to MaxAuditPage; 0: MaxAuditPage
}

// SearchAudit reads one page of the events q selects, in sequence order; the
// store applies every filter in its query. Auditors only, as Audit.
func (s *Service) SearchAudit(ctx context.Context, who *store.Operator, q AuditQuery) ([]EventView, error) {
	if err := s.allow(ctx, who, "read the audit log", store.RoleAuditor); err != nil {
		return nil, err
	}
	f := store.AuditFilter{Since: q.Since, Until: q.Until, After: q.After, Limit: q.Limit}
	var err error
	if f.Actor, err = text("actor", q.Actor, false); err != nil {
		return nil, err
	}
	if f.Action, err = text("action", q.Action, false); err != nil {
		return nil, err
	}
	if f.Org = strings.TrimSpace(q.Org); f.Org != "" {
		if err := checkOID(f.Org); err != nil {
			return nil, err
		}
	}
	switch {
	case q.After < 0:
		return nil, errorf(Malformed, "after %d: give the sequence number of the last event read, e.g. 0", q.After)
	case q.Limit < 0 || q.Limit > MaxAuditPage:
		return nil, errorf(Malformed, "limit %d: give 1 to %d", q.Limit, MaxAuditPage)
	case !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until):
		return nil, errorf(Malformed, "the time range from %s to %s is empty: the start must be before the end", stamp(q.Since), stamp(q.Until))
	}
	if f.Limit == 0 {
		f.Limit = MaxAuditPage
	}
	events, err := s.st.FindAuditEvents(ctx, f)
	if err != nil {
		return nil, s.internal(ctx, "search the audit log", err)
	}
	out := []EventView{}
	for _, e := range events {
		out = append(out, EventViewOf(e))
	}
	return out, nil
}
