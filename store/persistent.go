package store

import (
	"context"
	"time"
)

// PersistentAuthorization is a valid authorization of one of an organisation's
// accounts that a persistent DNS record proved (dns-persist-01): the name it
// authorises, the record, and until when the account may order for it without
// another validation.
type PersistentAuthorization struct {
	AuthzID   string
	AccountID string
	Name      string
	Wildcard  bool
	Evidence  string // the record, as the challenge keeps it (its owner name and value)
	Validated time.Time
	Expires   time.Time // the authorization's end: no later than the record's persistUntil
}

// PersistentAuthorizations lists the organisation's valid, unexpired
// authorizations that a persistent record proved, by name and end.
func (s *SQL) PersistentAuthorizations(ctx context.Context, orgOID string, now time.Time) ([]PersistentAuthorization, error) {
	rows, err := s.q().QueryContext(ctx, s.d.rebind(
		`SELECT a.id, a.account_id, a.name, a.wildcard, c.evidence, c.validated, a.expires
		 FROM authorizations a JOIN accounts ac ON ac.id = a.account_id JOIN challenges c ON c.authz_id = a.id
		 WHERE ac.org_oid = ? AND a.status = 'valid' AND a.expires > ? AND c.type = 'dns-persist-01' AND c.status = 'valid'
		 ORDER BY a.name, a.expires, a.id`), orgOID, micros(now))
	if err != nil {
		return nil, s.fail("list the persistent authorizations of "+orgOID, err)
	}
	defer rows.Close()
	var out []PersistentAuthorization
	for rows.Next() {
		var p PersistentAuthorization
		var wildcard, validated, expires int64
		if err := rows.Scan(&p.AuthzID, &p.AccountID, &p.Name, &wildcard, &p.Evidence, &validated, &expires); err != nil {
			return nil, s.fail("list the persistent authorizations of "+orgOID, err)
		}
		p.Wildcard, p.Validated, p.Expires = wildcard != 0, fromMicros(validated), fromMicros(expires)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list the persistent authorizations of "+orgOID, err)
	}
	return out, nil
}
