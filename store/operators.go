package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Operator roles (the practice statement's): a registrar is never an administrator.
const (
	RoleAdministrator = "administrator"
	RoleRegistrar     = "registrar"
	RoleAuditor       = "auditor"
)

// Operator is a person or API client (the e-service) of the operator side.
type Operator struct {
	Name            string
	Role            string
	TokenHash       string // hex SHA-256 of the bearer token's secret; "" without a token
	CertFingerprint string // hex SHA-256 of the client certificate's DER; "" without one
	CreatedBy       string
	CreatedAt       time.Time
	TokenExpiresAt  time.Time // zero: the token does not expire
	DisabledAt      time.Time // zero: enabled
	DisabledBy      string
}

// EAB request states.
const (
	EABRequestRequested = "requested"
	EABRequestApproved  = "approved"
	EABRequestRejected  = "rejected"
	EABRequestExpired   = "expired"
)

// EABRequest is a registrar's (or the e-service's) request for an EAB key for an
// organisation, decided by an administrator.
type EABRequest struct {
	ID               string
	OrgOID           string
	RequestedBy      string // the operator who asked
	Person           string // the person who registered in the e-service
	IdentifiedBy     string // how the person was identified (strong identification)
	TechnicalContact string // e.g. the organisation's IT vendor
	Domains          []string
	Networks         []netip.Prefix
	Profiles         []string
	Status           string
	CreatedAt        time.Time
	ExpiresAt        time.Time // an undecided request expires then
	DecidedBy        string
	DecidedAt        time.Time
	Reason           string // why it was rejected
	KID              string // the key made at approval
}

// AddOperator records an operator; ErrDuplicate if the name is taken.
func (s *SQL) AddOperator(ctx context.Context, o Operator) error {
	_, err := s.exec(ctx, s.db,
		`INSERT INTO operators (name, role, token_hash, cert_fingerprint, created_by, created_at, token_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		o.Name, o.Role, o.TokenHash, o.CertFingerprint, o.CreatedBy, micros(o.CreatedAt), micros(o.TokenExpiresAt))
	if err != nil {
		return s.fail("add operator "+o.Name, err)
	}
	return nil
}

const operatorColumns = `name, role, token_hash, cert_fingerprint, created_by, created_at, token_expires_at, disabled_at, disabled_by`

func scanOperator(row scanner) (*Operator, error) {
	var o Operator
	var created, expires, disabled int64
	if err := row.Scan(&o.Name, &o.Role, &o.TokenHash, &o.CertFingerprint, &o.CreatedBy, &created, &expires, &disabled, &o.DisabledBy); err != nil {
		return nil, err
	}
	o.CreatedAt, o.TokenExpiresAt, o.DisabledAt = fromMicros(created), fromMicros(expires), fromMicros(disabled)
	return &o, nil
}

// DisableOperator disables an enabled operator (else ErrConflict): every
// credential of theirs is refused from now on. It also ends their console
// sessions.
func (s *SQL) DisableOperator(ctx context.Context, name, by string, now time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		err := s.transition(ctx, tx, "operators", "name", name,
			`UPDATE operators SET disabled_at = ?, disabled_by = ? WHERE name = ? AND disabled_at = 0`, micros(now), by, name)
		if err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, `DELETE FROM console_sessions WHERE operator = ?`, name)
		return err
	})
	if err != nil {
		return s.fail("disable operator "+name, err)
	}
	return nil
}

// RemoveOperator deletes an operator and their console sessions; ErrNotFound if
// there is none. The audit log keeps the name.
func (s *SQL) RemoveOperator(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, `DELETE FROM console_sessions WHERE operator = ?`, name); err != nil {
			return err
		}
		n, err := s.exec(ctx, tx, `DELETE FROM operators WHERE name = ?`, name)
		if err == nil && n == 0 {
			return fmt.Errorf("operator %s: %w", name, ErrNotFound)
		}
		return err
	})
	if err != nil {
		return s.fail("remove operator "+name, err)
	}
	return nil
}

// SetOperatorCredential replaces an enabled operator's credential (o.TokenHash,
// o.TokenExpiresAt and o.CertFingerprint; the other fields are ignored) and ends
// their console sessions; ErrConflict when the operator is disabled, ErrDuplicate
// when the certificate is another operator's.
func (s *SQL) SetOperatorCredential(ctx context.Context, o Operator) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		err := s.transition(ctx, tx, "operators", "name", o.Name,
			`UPDATE operators SET token_hash = ?, token_expires_at = ?, cert_fingerprint = ? WHERE name = ? AND disabled_at = 0`,
			o.TokenHash, micros(o.TokenExpiresAt), o.CertFingerprint, o.Name)
		if err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, `DELETE FROM console_sessions WHERE operator = ?`, o.Name)
		return err
	})
	if err != nil {
		return s.fail("set the credential of operator "+o.Name, err)
	}
	return nil
}

// MarkProduction records, once, that the CA runs with its issuer keys in an HSM.
func (s *SQL) MarkProduction(ctx context.Context, now time.Time) error {
	_, err := s.exec(ctx, s.db, `INSERT INTO settings (name, value, set_at) VALUES ('production', 'hsm', ?) ON CONFLICT (name) DO NOTHING`, micros(now))
	if err != nil {
		return s.fail("mark the CA as production", err)
	}
	return nil
}

// Production reports whether a server ever started with its issuer keys in an HSM.
func (s *SQL) Production(ctx context.Context) (bool, error) {
	var n int
	if err := s.q().QueryRowContext(ctx, `SELECT COUNT(*) FROM settings WHERE name = 'production'`).Scan(&n); err != nil {
		return false, s.fail("read the CA's mode", err)
	}
	return n > 0, nil
}

// GetOperator returns the operator of that name, or ErrNotFound.
func (s *SQL) GetOperator(ctx context.Context, name string) (*Operator, error) {
	o, err := scanOperator(s.q().QueryRowContext(ctx, s.d.rebind(`SELECT `+operatorColumns+` FROM operators WHERE name = ?`), name))
	if err != nil {
		return nil, s.fail("get operator "+name, err)
	}
	return o, nil
}

// GetOperatorByCert returns the operator whose client certificate has that
// fingerprint, or ErrNotFound.
func (s *SQL) GetOperatorByCert(ctx context.Context, fingerprint string) (*Operator, error) {
	if fingerprint == "" {
		return nil, fmt.Errorf("get operator by certificate: %w", ErrNotFound)
	}
	o, err := scanOperator(s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT `+operatorColumns+` FROM operators WHERE cert_fingerprint = ?`), normalHex(fingerprint)))
	if err != nil {
		return nil, s.fail("get operator by certificate", err)
	}
	return o, nil
}

// ListOperators returns every operator by name.
func (s *SQL) ListOperators(ctx context.Context) ([]Operator, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT `+operatorColumns+` FROM operators ORDER BY name`)
	if err != nil {
		return nil, s.fail("list operators", err)
	}
	return collect(s, "list operators", rows, scanOperator)
}

// collect scans every row with scan; op names the read in errors.
func collect[T any](s *SQL, op string, rows *sql.Rows, scan func(scanner) (*T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.fail(op, err)
		}
		out = append(out, *v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}

const eabRequestColumns = `id, org_oid, requested_by, person, identified_by, technical_contact, domains, profiles,
	status, created_at, expires_at, decided_by, decided_at, reason, kid, networks`

func scanEABRequest(row scanner) (*EABRequest, error) {
	var r EABRequest
	var domains, profiles, networks string
	var created, expires, decided int64
	if err := row.Scan(&r.ID, &r.OrgOID, &r.RequestedBy, &r.Person, &r.IdentifiedBy, &r.TechnicalContact, &domains, &profiles,
		&r.Status, &created, &expires, &r.DecidedBy, &decided, &r.Reason, &r.KID, &networks); err != nil {
		return nil, err
	}
	var err error
	if r.Networks, err = fromPrefixList(networks); err != nil {
		return nil, err
	}
	if r.Domains, err = fromList(domains); err != nil {
		return nil, err
	}
	if r.Profiles, err = fromList(profiles); err != nil {
		return nil, err
	}
	r.CreatedAt, r.ExpiresAt, r.DecidedAt = fromMicros(created), fromMicros(expires), fromMicros(decided)
	return &r, nil
}

// CreateEABRequest records a request in state requested; ErrDuplicate if its id is
// taken, ErrNotFound if its organisation is unknown.
func (s *SQL) CreateEABRequest(ctx context.Context, r EABRequest) error {
	_, err := s.exec(ctx, s.db,
		`INSERT INTO eab_requests (id, org_oid, requested_by, person, identified_by, technical_contact, domains, profiles,
		 status, created_at, expires_at, networks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.OrgOID, r.RequestedBy, r.Person, r.IdentifiedBy, r.TechnicalContact, list(r.Domains), list(r.Profiles),
		EABRequestRequested, micros(r.CreatedAt), micros(r.ExpiresAt), prefixList(r.Networks))
	if err != nil {
		return s.fail("create EAB request "+r.ID, err)
	}
	return nil
}

// GetEABRequest returns the request with that id, or ErrNotFound.
func (s *SQL) GetEABRequest(ctx context.Context, id string) (*EABRequest, error) {
	r, err := scanEABRequest(s.q().QueryRowContext(ctx, s.d.rebind(`SELECT `+eabRequestColumns+` FROM eab_requests WHERE id = ?`), id))
	if err != nil {
		return nil, s.fail("get EAB request "+id, err)
	}
	return r, nil
}

// ListEABRequests returns the requests in that status ("" : every status) and of that
// organisation ("": every organisation), oldest first.
func (s *SQL) ListEABRequests(ctx context.Context, status, orgOID string) ([]EABRequest, error) {
	rows, err := s.q().QueryContext(ctx, s.d.rebind(`SELECT `+eabRequestColumns+` FROM eab_requests
		WHERE (? = '' OR status = ?) AND (? = '' OR org_oid = ?) ORDER BY created_at, id`), status, status, orgOID, orgOID)
	if err != nil {
		return nil, s.fail("list EAB requests", err)
	}
	return collect(s, "list EAB requests", rows, scanEABRequest)
}

// ApproveEABRequest approves the request and stores its key in one transaction. The
// request must still be requested and unexpired at now, and, when dualControl is
// set, approver must not be its requester; else ErrConflict and nothing changes.
// key gets its RequestID, RequestedBy, ApprovedBy, OrgOID, Domains, Profiles and
// Status (approved) from the request; its KID, HMACKey, CreatedAt and ExpiresAt
// are the caller's.
func (s *SQL) ApproveEABRequest(ctx context.Context, id, approver string, dualControl bool, now time.Time, key EABKey) (*EABKey, error) {
	var out EABKey
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		err := s.transition(ctx, tx, "eab_requests", "id", id,
			`UPDATE eab_requests SET status = 'approved', decided_by = ?, decided_at = ?, kid = ?
			 WHERE id = ? AND status = 'requested' AND expires_at > ? AND (? = 0 OR requested_by <> ?)`,
			approver, micros(now), key.KID, id, micros(now), flag(dualControl), approver)
		if err != nil {
			return err
		}
		r, err := scanEABRequest(tx.QueryRowContext(ctx, s.d.rebind(`SELECT `+eabRequestColumns+` FROM eab_requests WHERE id = ?`), id))
		if err != nil {
			return err
		}
		out = key
		out.OrgOID, out.Domains, out.Profiles, out.Networks = r.OrgOID, r.Domains, r.Profiles, r.Networks
		out.Status, out.RequestID, out.RequestedBy, out.ApprovedBy = EABApproved, r.ID, r.RequestedBy, approver
		_, err = s.exec(ctx, tx,
			`INSERT INTO eab_keys (`+eabColumns+`) VALUES (`+eabPlaceholders+`)`, s.eabArgs(out)...)
		return err
	})
	if err != nil {
		return nil, s.fail("approve EAB request "+id, err)
	}
	return &out, nil
}

// RejectEABRequest rejects a request that is still requested (else ErrConflict).
// The dual-control rule of ApproveEABRequest does not apply: a requester may
// withdraw a request.
func (s *SQL) RejectEABRequest(ctx context.Context, id, by, reason string, now time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "eab_requests", "id", id,
			`UPDATE eab_requests SET status = 'rejected', decided_by = ?, decided_at = ?, reason = ?
			 WHERE id = ? AND status = 'requested'`, by, micros(now), reason, id)
	})
	if err != nil {
		return s.fail("reject EAB request "+id, err)
	}
	return nil
}

// RevealEABKey hands the HMAC key of an approved key over once: it marks the key
// revealed at now and returns it, in one transaction, only if it was never revealed
// and requester is the operator who asked for it; else ErrConflict (or ErrNotFound).
func (s *SQL) RevealEABKey(ctx context.Context, kid, requester string, now time.Time) (*EABKey, error) {
	var out *EABKey
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		err := s.transition(ctx, tx, "eab_keys", "kid", kid,
			`UPDATE eab_keys SET revealed_at = ? WHERE kid = ? AND revealed_at = 0 AND requested_by = ? AND status = 'approved'`,
			micros(now), kid, requester)
		if err != nil {
			return err
		}
		out, err = s.scanEAB(tx.QueryRowContext(ctx, s.d.rebind(`SELECT `+eabColumns+` FROM eab_keys WHERE kid = ?`), kid))
		return err
	})
	if err != nil {
		return nil, s.fail("reveal EAB key "+kid, err)
	}
	return out, nil
}

// RevokeEABKey revokes an approved or bound key (else ErrConflict) so it can no
// longer bind, and with deactivateAccounts also deactivates the valid accounts it
// bound, in one transaction. It returns the ids of the accounts deactivated.
func (s *SQL) RevokeEABKey(ctx context.Context, kid, by, reason string, deactivateAccounts bool) ([]string, error) {
	var ids []string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ids = nil
		err := s.transition(ctx, tx, "eab_keys", "kid", kid,
			`UPDATE eab_keys SET status = 'revoked', revoked_by = ?, revoke_reason = ? WHERE kid = ? AND status IN ('approved', 'bound')`,
			by, reason, kid)
		if err != nil || !deactivateAccounts {
			return err
		}
		if ids, err = s.column(ctx, tx, `SELECT id FROM accounts WHERE eab_kid = ? AND status = 'valid' ORDER BY id`, kid); err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, `UPDATE accounts SET status = 'deactivated' WHERE eab_kid = ? AND status = 'valid'`, kid)
		return err
	})
	if err != nil {
		return nil, s.fail("revoke EAB key "+kid, err)
	}
	return ids, nil
}

// ExpireEAB moves requests still undecided and keys still unbound whose expiry is
// at or before now to expired, in one transaction, and returns the ids of the
// requests and the kids of the keys it expired.
func (s *SQL) ExpireEAB(ctx context.Context, now time.Time) (requests, keys []string, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		at := micros(now)
		var err error
		if requests, err = s.column(ctx, tx, `SELECT id FROM eab_requests WHERE status = 'requested' AND expires_at <= ? ORDER BY id`, at); err != nil {
			return err
		}
		if keys, err = s.column(ctx, tx, `SELECT kid FROM eab_keys WHERE status = 'approved' AND expires_at <> 0 AND expires_at <= ? ORDER BY kid`, at); err != nil {
			return err
		}
		if _, err = s.exec(ctx, tx, `UPDATE eab_requests SET status = 'expired', decided_at = ? WHERE status = 'requested' AND expires_at <= ?`, at, at); err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, `UPDATE eab_keys SET status = 'expired' WHERE status = 'approved' AND expires_at <> 0 AND expires_at <= ?`, at)
		return err
	})
	if err != nil {
		return nil, nil, s.fail("expire EAB requests and keys", err)
	}
	return requests, keys, nil
}

// ListEABKeys returns the organisation's EAB keys, oldest first.
func (s *SQL) ListEABKeys(ctx context.Context, orgOID string) ([]EABKey, error) {
	rows, err := s.q().QueryContext(ctx, s.d.rebind(`SELECT `+eabColumns+` FROM eab_keys WHERE org_oid = ? ORDER BY created_at, kid`), orgOID)
	if err != nil {
		return nil, s.fail("list EAB keys of "+orgOID, err)
	}
	return collect(s, "list EAB keys of "+orgOID, rows, s.scanEAB)
}

// ListAccounts returns the organisation's accounts, oldest first.
func (s *SQL) ListAccounts(ctx context.Context, orgOID string) ([]Account, error) {
	rows, err := s.q().QueryContext(ctx, s.d.rebind(`SELECT `+accountColumns+` FROM accounts WHERE org_oid = ? ORDER BY created_at, id`), orgOID)
	if err != nil {
		return nil, s.fail("list accounts of "+orgOID, err)
	}
	return collect(s, "list accounts of "+orgOID, rows, scanAccount)
}

// CertificateFilter selects certificates; empty fields match everything.
type CertificateFilter struct {
	Serial string // lower-case hex, exact
	Name   string // a dNSName the certificate holds, exact (lower-case)
	OrgOID string
	Limit  int // at most this many, newest first; 0: 100
}

// FindCertificates returns the certificates the filter selects, newest first.
func (s *SQL) FindCertificates(ctx context.Context, f CertificateFilter) ([]Certificate, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Name = strings.ToLower(f.Name)
	pattern := ""
	if f.Name != "" {
		// names is a JSON array of strings: the quoted name finds it, and the exact
		// comparison below drops what a LIKE wildcard (_) matched besides.
		pattern = "%" + strings.TrimSuffix(strings.TrimPrefix(list([]string{f.Name}), "["), "]") + "%"
	}
	rows, err := s.q().QueryContext(ctx, s.d.rebind(
		`SELECT serial, issuer, der, names, key_hash, not_before, not_after, org_oid, account_id, order_id, profile, created_at
		 FROM certificates WHERE (? = '' OR serial = ?) AND (? = '' OR names LIKE ?) AND (? = '' OR org_oid = ?)
		 ORDER BY created_at DESC, serial LIMIT ?`),
		f.Serial, normalHex(f.Serial), pattern, pattern, f.OrgOID, f.OrgOID, f.Limit)
	if err != nil {
		return nil, s.fail("find certificates", err)
	}
	defer rows.Close()
	var out []Certificate
	for rows.Next() {
		var c Certificate
		var names string
		var nb, na, created int64
		if err := rows.Scan(&c.Serial, &c.Issuer, &c.DER, &names, &c.KeyHash, &nb, &na, &c.OrgOID, &c.AccountID, &c.OrderID, &c.Profile, &created); err != nil {
			return nil, s.fail("find certificates", err)
		}
		if c.Names, err = fromList(names); err != nil {
			return nil, err
		}
		c.NotBefore, c.NotAfter, c.CreatedAt = fromMicros(nb), fromMicros(na), fromMicros(created)
		if f.Name == "" || slices.Contains(c.Names, f.Name) {
			out = append(out, c)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("find certificates", err)
	}
	return out, nil
}

// SuspendOrganisation suspends an active organisation (else ErrConflict): its
// accounts take no step towards a certificate until ResumeOrganisation.
func (s *SQL) SuspendOrganisation(ctx context.Context, oid, by, reason string, now time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "organisations", "oid", oid,
			`UPDATE organisations SET suspended_at = ?, suspended_by = ?, suspend_reason = ? WHERE oid = ? AND suspended_at = 0`,
			micros(now), by, reason, oid)
	})
	if err != nil {
		return s.fail("suspend organisation "+oid, err)
	}
	return nil
}

// ResumeOrganisation lifts the suspension of a suspended organisation (else
// ErrConflict).
func (s *SQL) ResumeOrganisation(ctx context.Context, oid string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "organisations", "oid", oid,
			`UPDATE organisations SET suspended_at = 0, suspended_by = '', suspend_reason = '' WHERE oid = ? AND suspended_at <> 0`, oid)
	})
	if err != nil {
		return s.fail("resume organisation "+oid, err)
	}
	return nil
}

const eabColumns = `kid, org_oid, hmac_key, domains, status, account_id, created_at, bound_at, profiles,
	expires_at, request_id, requested_by, approved_by, revealed_at, revoked_by, revoke_reason, networks`

// eabPlaceholders has one placeholder for each of eabColumns.
var eabPlaceholders = strings.TrimSuffix(strings.Repeat("?, ", strings.Count(eabColumns, ",")+1), ", ")

// eabArgs are k's values for eabColumns, its HMAC key sealed (eabsecret.go).
func (s *SQL) eabArgs(k EABKey) []any {
	return []any{k.KID, k.OrgOID, s.secret.seal(k.KID, k.HMACKey), list(k.Domains), k.Status, k.AccountID, micros(k.CreatedAt), micros(k.BoundAt), list(k.Profiles),
		micros(k.ExpiresAt), k.RequestID, k.RequestedBy, k.ApprovedBy, micros(k.RevealedAt), k.RevokedBy, k.RevokeReason, prefixList(k.Networks)}
}

// scanEAB reads a row of eabColumns and opens its sealed HMAC key.
func (s *SQL) scanEAB(row scanner) (*EABKey, error) {
	var k EABKey
	var domains, profiles, networks string
	var created, bound, expires, revealed int64
	var sealed []byte
	if err := row.Scan(&k.KID, &k.OrgOID, &sealed, &domains, &k.Status, &k.AccountID, &created, &bound, &profiles,
		&expires, &k.RequestID, &k.RequestedBy, &k.ApprovedBy, &revealed, &k.RevokedBy, &k.RevokeReason, &networks); err != nil {
		return nil, err
	}
	var err error
	if k.HMACKey, err = s.secret.open(k.KID, sealed); err != nil {
		return nil, fmt.Errorf("EAB key %s: %w", k.KID, err)
	}
	if k.Domains, err = fromList(domains); err != nil {
		return nil, err
	}
	if k.Profiles, err = fromList(profiles); err != nil {
		return nil, err
	}
	if k.Networks, err = fromPrefixList(networks); err != nil {
		return nil, err
	}
	k.CreatedAt, k.BoundAt = fromMicros(created), fromMicros(bound)
	k.ExpiresAt, k.RevealedAt = fromMicros(expires), fromMicros(revealed)
	return &k, nil
}
