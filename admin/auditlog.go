package admin

import (
	"context"
	"time"

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
