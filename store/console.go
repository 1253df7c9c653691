package store

// Reads of the operators' console: the audit log filtered in the query, and the
// certificate counts per day of its health page.

import (
	"context"
	"strings"
	"time"
)

// MaxAuditFind bounds one FindAuditEvents.
const MaxAuditFind = 1000

// AuditFilter selects audit events. Zero fields select everything.
type AuditFilter struct {
	Actor  string // exact
	Action string // exact, e.g. certificate.revoke
	// Org selects the events that name the organisation, those whose object
	// carries the field org=Org (audit.Object writes an OID unquoted), and the
	// events of its certificates, whose object starts with serial=SERIAL (the
	// first field of every certificate event of the catalogue).
	Org   string
	Since time.Time // at or after
	Until time.Time // before
	// Keyset paging on the sequence number: events after After in ascending order
	// or, with Newest, events before Before (0: from the end) newest first.
	After  int64
	Before int64
	Newest bool
	Limit  int // 1 to MaxAuditFind; others mean MaxAuditFind
}

// likeEscape escapes LIKE's wildcards in v (with ESCAPE '\').
func likeEscape(v string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(v)
}

// FindAuditEvents returns the events f selects, one page of them; every filter
// is in the query.
func (s *SQL) FindAuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	var where []string
	var args []any
	add := func(cond string, a ...any) { where = append(where, cond); args = append(args, a...) }
	if f.Actor != "" {
		add(`actor = ?`, f.Actor)
	}
	if f.Action != "" {
		add(`action = ?`, f.Action)
	}
	if f.Org != "" {
		add(`((' ' || object || ' ') LIKE ? ESCAPE '\' OR (object LIKE 'serial=%' AND EXISTS (SELECT 1 FROM certificates c
			WHERE c.serial = substr(object, 8, `+s.d.strpos+`(object || ' ', ' ') - 8) AND c.org_oid = ?)))`, "% org="+likeEscape(f.Org)+" %", f.Org)
	}
	if !f.Since.IsZero() {
		add(`at >= ?`, micros(f.Since))
	}
	if !f.Until.IsZero() {
		add(`at < ?`, micros(f.Until))
	}
	order := `seq`
	switch {
	case f.Newest && f.Before > 0:
		add(`seq < ?`, f.Before)
		order = `seq DESC`
	case f.Newest:
		order = `seq DESC`
	default:
		add(`seq > ?`, f.After)
	}
	if f.Limit <= 0 || f.Limit > MaxAuditFind {
		f.Limit = MaxAuditFind
	}
	q := `SELECT ` + auditColumns + ` FROM audit_log`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY ` + order + ` LIMIT ?`
	rows, err := s.q().QueryContext(ctx, s.d.rebind(q), append(args, f.Limit)...)
	if err != nil {
		return nil, s.fail("search the audit log", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		e, err := scanAuditEvent(rows)
		if err != nil {
			return nil, s.fail("search the audit log", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("search the audit log", err)
	}
	return out, nil
}

// DayCount is a number of certificates on one UTC day.
type DayCount struct {
	Day   time.Time // midnight UTC
	Count int
}

// microsPerDay is the day of the queries' 86400000000.
const microsPerDay = int64(24 * time.Hour / time.Microsecond)

// IssuedPerDay counts the certificates stored from from to to (exclusive) per
// UTC day; days without any are left out.
func (s *SQL) IssuedPerDay(ctx context.Context, from, to time.Time) ([]DayCount, error) {
	return s.perDay(ctx, "count certificates issued per day", `SELECT created_at / 86400000000, COUNT(*) FROM certificates
		WHERE created_at >= ? AND created_at < ? GROUP BY 1 ORDER BY 1`, from, to)
}

// ExpiringPerDay counts the unrevoked certificates whose notAfter falls from from
// to to (exclusive) per UTC day; days without any are left out.
func (s *SQL) ExpiringPerDay(ctx context.Context, from, to time.Time) ([]DayCount, error) {
	return s.perDay(ctx, "count certificates expiring per day", `SELECT c.not_after / 86400000000, COUNT(*) FROM certificates c
		WHERE c.not_after >= ? AND c.not_after < ? AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial)
		GROUP BY 1 ORDER BY 1`, from, to)
}

func (s *SQL) perDay(ctx context.Context, what, query string, from, to time.Time) ([]DayCount, error) {
	rows, err := s.q().QueryContext(ctx, s.d.rebind(query), micros(from), micros(to))
	if err != nil {
		return nil, s.fail(what, err)
	}
	defer rows.Close()
	var out []DayCount
	for rows.Next() {
		var day int64
		var n int
		if err := rows.Scan(&day, &n); err != nil {
			return nil, s.fail(what, err)
		}
		out = append(out, DayCount{Day: fromMicros(day * microsPerDay), Count: n})
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(what, err)
	}
	return out, nil
}

// Kind is the database the store runs on: "sqlite" or "postgres".
func (s *SQL) Kind() string { return s.d.name }
