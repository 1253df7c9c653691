package store

import (
	"context"
	"database/sql"
	"time"
)

// Operator change kinds and states.
const (
	OperatorChangeAdd     = "add"
	OperatorChangeDisable = "disable"
	OperatorChangeRemove  = "remove"
	OperatorChangeRotate  = "rotate"

	OperatorChangeRequested = "requested"
	OperatorChangeApplied   = "applied"
	OperatorChangeRejected  = "rejected"
)

// OperatorChange is a change to an operator that waits for a second
// administrator.
type OperatorChange struct {
	ID          string
	Kind        string // OperatorChangeAdd, …
	Operator    string
	Role        string // add: the new operator's role
	Token       bool   // add, rotate: a bearer token, else a client certificate
	Reason      string
	RequestedBy string
	RequestedAt time.Time
	Status      string
	DecidedBy   string
	DecidedAt   time.Time
}

const operatorChangeColumns = `id, kind, operator, role, token, reason, requested_by, requested_at, status, decided_by, decided_at`

func scanOperatorChange(row scanner) (*OperatorChange, error) {
	var c OperatorChange
	var token, requested, decided int64
	if err := row.Scan(&c.ID, &c.Kind, &c.Operator, &c.Role, &token, &c.Reason, &c.RequestedBy, &requested, &c.Status, &c.DecidedBy, &decided); err != nil {
		return nil, err
	}
	c.Token, c.RequestedAt, c.DecidedAt = token != 0, fromMicros(requested), fromMicros(decided)
	return &c, nil
}

// CreateOperatorChange records a requested change; ErrDuplicate if the id is taken.
func (s *SQL) CreateOperatorChange(ctx context.Context, c OperatorChange) error {
	_, err := s.exec(ctx, s.db, `INSERT INTO operator_changes (`+operatorChangeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Kind, c.Operator, c.Role, flag(c.Token), c.Reason, c.RequestedBy, micros(c.RequestedAt), OperatorChangeRequested, "", 0)
	if err != nil {
		return s.fail("create operator change "+c.ID, err)
	}
	return nil
}

// GetOperatorChange returns the change with that id, or ErrNotFound.
func (s *SQL) GetOperatorChange(ctx context.Context, id string) (*OperatorChange, error) {
	c, err := scanOperatorChange(s.q().QueryRowContext(ctx, s.d.rebind(`SELECT `+operatorChangeColumns+` FROM operator_changes WHERE id = ?`), id))
	if err != nil {
		return nil, s.fail("get operator change "+id, err)
	}
	return c, nil
}

// ListOperatorChanges returns the changes in that status ("": every status),
// oldest first.
func (s *SQL) ListOperatorChanges(ctx context.Context, status string) ([]OperatorChange, error) {
	rows, err := s.q().QueryContext(ctx, s.d.rebind(`SELECT `+operatorChangeColumns+` FROM operator_changes
		WHERE (? = '' OR status = ?) ORDER BY requested_at, id`), status, status)
	if err != nil {
		return nil, s.fail("list operator changes", err)
	}
	return collect(s, "list operator changes", rows, scanOperatorChange)
}

// DecideOperatorChange moves a requested change to status (applied or rejected)
// by decider, who must not be its requester; else ErrConflict and nothing
// changes.
func (s *SQL) DecideOperatorChange(ctx context.Context, id, status, decider string, now time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "operator_changes", "id", id,
			`UPDATE operator_changes SET status = ?, decided_by = ?, decided_at = ? WHERE id = ? AND status = 'requested' AND requested_by <> ?`,
			status, decider, micros(now), id, decider)
	})
	if err != nil {
		return s.fail("decide operator change "+id, err)
	}
	return nil
}
