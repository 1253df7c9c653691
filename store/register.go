package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// registerColumns are the organisation's register data (migration 0006), in the
// order scanRegister reads them.
const registerColumns = `abbreviation, business_id, sector, intermediary, register_status, register_begin,
	register_end, parent_oid, register_synced_at, register_left_at`

// registerRow scans the register columns.
type registerRow struct {
	r                                    OrganisationRegister
	intermediary, begin, end, sync, left int64
}

func (x *registerRow) dest(head ...any) []any {
	return append(head, &x.r.Abbreviation, &x.r.BusinessID, &x.r.Sector, &x.intermediary, &x.r.Status, &x.begin,
		&x.end, &x.r.Parent, &x.sync, &x.left)
}

func (x *registerRow) value(oid string) OrganisationRegister {
	r := x.r
	r.OrgOID = oid
	r.Intermediary = x.intermediary != 0
	r.BeginDate, r.ExpirationDate = fromMicros(x.begin), fromMicros(x.end)
	r.SyncedAt, r.LeftAt = fromMicros(x.sync), fromMicros(x.left)
	return r
}

func registerArgs(r OrganisationRegister) []any {
	return []any{r.Abbreviation, r.BusinessID, r.Sector, boolInt(r.Intermediary), r.Status, micros(r.BeginDate),
		micros(r.ExpirationDate), r.Parent, micros(r.SyncedAt), micros(r.LeftAt)}
}

// sameRegister reports whether two register records say the same, leaving aside
// when they were synced; times compare at the microseconds the store keeps.
func sameRegister(a, b OrganisationRegister) bool {
	return a.Abbreviation == b.Abbreviation && a.BusinessID == b.BusinessID && a.Sector == b.Sector &&
		a.Intermediary == b.Intermediary && a.Status == b.Status && micros(a.BeginDate) == micros(b.BeginDate) &&
		micros(a.ExpirationDate) == micros(b.ExpirationDate) && a.Parent == b.Parent
}

// GetOrganisationRegister returns the register data of the organisation (SyncedAt
// zero when no import ever listed it), or ErrNotFound when the organisation is unknown.
func (s *SQL) GetOrganisationRegister(ctx context.Context, oid string) (*OrganisationRegister, error) {
	var x registerRow
	err := s.q().QueryRowContext(ctx, s.d.rebind(`SELECT `+registerColumns+` FROM organisations WHERE oid = ?`), oid).Scan(x.dest()...)
	if err != nil {
		return nil, s.fail("get register data of organisation "+oid, err)
	}
	r := x.value(oid)
	return &r, nil
}

// ListOrganisations returns every organisation with its register data, by OID.
func (s *SQL) ListOrganisations(ctx context.Context) ([]RegisteredOrganisation, error) {
	rows, err := s.q().QueryContext(ctx,
		`SELECT oid, name, long_name, domains, created_at, test_only, suspended_at, suspended_by, suspend_reason, `+registerColumns+` FROM organisations ORDER BY oid`)
	if err != nil {
		return nil, s.fail("list organisations", err)
	}
	defer rows.Close()
	var out []RegisteredOrganisation
	for rows.Next() {
		var o RegisteredOrganisation
		var x registerRow
		var domains string
		var created, testOnly, suspended int64
		if err := rows.Scan(x.dest(&o.OID, &o.Name, &o.LongName, &domains, &created, &testOnly, &suspended, &o.SuspendedBy, &o.SuspendReason)...); err != nil {
			return nil, s.fail("list organisations", err)
		}
		o.Register = x.value(o.OID)
		if o.Domains, err = fromList(domains); err != nil {
			return nil, err
		}
		o.CreatedAt, o.TestOnly = fromMicros(created), testOnly != 0
		o.SuspendedAt = fromMicros(suspended)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list organisations", err)
	}
	return out, nil
}

// RegisterImport is one organisation as a register import lists it.
type RegisterImport struct {
	OID string
	// Name is the certificate O of an organisation the import adds; an existing
	// organisation keeps the name it has.
	Name string
	// LongName is the register's long name, the certificate OU: it replaces the
	// stored one.
	LongName string
	// Register is the register data; its OrgOID, SyncedAt and LeftAt are set by the
	// import.
	Register OrganisationRegister
}

// RegisterChange is what an import did to one organisation.
type RegisterChange struct {
	OID string
	// Added: the import created the organisation (no domains yet).
	Added bool
	// Updated: the organisation existed and its long name or register data changed.
	Updated bool
	// Left: an earlier import listed the organisation and this one does not.
	Left bool
	// Before is the register data before the import (SyncedAt zero: never imported
	// or added by the import), BeforeLongName the long name; After is the data now.
	Before         OrganisationRegister
	BeforeLongName string
	After          OrganisationRegister
}

// ImportRegister records a whole register import at time at, in one transaction:
// it adds the organisations the store lacks, updates the long name and register data
// of those it has, and marks as left (LeftAt = at) those an earlier import listed and
// this one does not. It returns one change per organisation listed or newly left, by
// OID. An import listing nobody, or an OID twice, is refused: a partial register
// would make organisations look as if they had left.
func (s *SQL) ImportRegister(ctx context.Context, orgs []RegisterImport, at time.Time) ([]RegisterChange, error) {
	if len(orgs) == 0 {
		return nil, errors.New("store: import register: the import lists no organisations")
	}
	listed := make(map[string]bool, len(orgs))
	for _, o := range orgs {
		if o.OID == "" {
			return nil, errors.New("store: import register: an organisation without an OID")
		}
		if listed[o.OID] {
			return nil, fmt.Errorf("store: import register: %s is listed twice", o.OID)
		}
		listed[o.OID] = true
	}
	var changes []RegisterChange
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		changes = changes[:0]
		type current struct {
			longName string
			reg      OrganisationRegister
		}
		existing := map[string]current{}
		rows, err := tx.QueryContext(ctx, `SELECT oid, long_name, `+registerColumns+` FROM organisations`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var oid string
			var c current
			var x registerRow
			if err := rows.Scan(x.dest(&oid, &c.longName)...); err != nil {
				rows.Close()
				return err
			}
			c.reg = x.value(oid)
			existing[oid] = c
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()

		progress := progressOf(ctx)
		progress.Begin(len(orgs))
		for _, o := range orgs {
			after := o.Register
			after.OrgOID, after.SyncedAt, after.LeftAt = o.OID, at, time.Time{}
			cur, ok := existing[o.OID]
			if !ok {
				args := append([]any{o.OID, o.Name, o.LongName, list(nil), micros(at)}, registerArgs(after)...)
				if _, err := s.exec(ctx, tx, `INSERT INTO organisations (oid, name, long_name, domains, created_at, `+
					registerColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...); err != nil {
					return err
				}
				changes = append(changes, RegisterChange{OID: o.OID, Added: true, After: after})
				progress.Add(1)
				continue
			}
			args := append([]any{o.LongName}, registerArgs(after)...)
			if _, err := s.exec(ctx, tx, `UPDATE organisations SET long_name = ?, abbreviation = ?, business_id = ?,
				sector = ?, intermediary = ?, register_status = ?, register_begin = ?, register_end = ?, parent_oid = ?,
				register_synced_at = ?, register_left_at = ? WHERE oid = ?`, append(args, o.OID)...); err != nil {
				return err
			}
			changes = append(changes, RegisterChange{OID: o.OID, Before: cur.reg, BeforeLongName: cur.longName, After: after,
				Updated: cur.longName != o.LongName || cur.reg.SyncedAt.IsZero() || !cur.reg.LeftAt.IsZero() || !sameRegister(cur.reg, after)})
			progress.Add(1)
		}
		for oid, cur := range existing {
			if listed[oid] || cur.reg.SyncedAt.IsZero() || !cur.reg.LeftAt.IsZero() {
				continue
			}
			if _, err := s.exec(ctx, tx, `UPDATE organisations SET register_left_at = ? WHERE oid = ?`, micros(at), oid); err != nil {
				return err
			}
			after := cur.reg
			after.LeftAt = at
			changes = append(changes, RegisterChange{OID: oid, Left: true, Before: cur.reg, BeforeLongName: cur.longName, After: after})
		}
		return nil
	})
	if err != nil {
		return nil, s.fail("import register", err)
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].OID < changes[j].OID })
	return changes, nil
}

// ValidCertificates returns the organisation's certificates that are neither expired
// at now nor revoked, by notAfter: what an operator revokes when the organisation
// leaves the register.
func (s *SQL) ValidCertificates(ctx context.Context, orgOID string, now time.Time) ([]Certificate, error) {
	rows, err := s.q().QueryContext(ctx, s.d.rebind(
		`SELECT c.serial, c.issuer, c.der, c.names, c.key_hash, c.not_before, c.not_after, c.org_oid, c.account_id,
		 c.order_id, c.profile, c.created_at FROM certificates c
		 WHERE c.org_oid = ? AND c.not_after > ? AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial)
		 ORDER BY c.not_after, c.serial`), orgOID, micros(now))
	if err != nil {
		return nil, s.fail("list valid certificates of "+orgOID, err)
	}
	defer rows.Close()
	var out []Certificate
	for rows.Next() {
		var c Certificate
		var names string
		var notBefore, notAfter, created int64
		if err := rows.Scan(&c.Serial, &c.Issuer, &c.DER, &names, &c.KeyHash, &notBefore, &notAfter, &c.OrgOID,
			&c.AccountID, &c.OrderID, &c.Profile, &created); err != nil {
			return nil, s.fail("list valid certificates of "+orgOID, err)
		}
		if c.Names, err = fromList(names); err != nil {
			return nil, err
		}
		c.NotBefore, c.NotAfter, c.CreatedAt = fromMicros(notBefore), fromMicros(notAfter), fromMicros(created)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list valid certificates of "+orgOID, err)
	}
	return out, nil
}

// OrganisationCounts are the numbers an operator sees for an organisation.
type OrganisationCounts struct {
	EABKeys      int // every EAB key, whatever its state
	Accounts     int
	Certificates int // every certificate ever issued to it
}

// CountOrganisation counts the organisation's EAB keys, accounts and certificates;
// ErrNotFound when the organisation is unknown.
func (s *SQL) CountOrganisation(ctx context.Context, oid string) (OrganisationCounts, error) {
	var c OrganisationCounts
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM organisations WHERE oid = ?`), oid).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		for _, q := range []struct {
			table string
			dest  *int
		}{{"eab_keys", &c.EABKeys}, {"accounts", &c.Accounts}, {"certificates", &c.Certificates}} {
			if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM `+q.table+` WHERE org_oid = ?`), oid).Scan(q.dest); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return OrganisationCounts{}, s.fail("count organisation "+oid, err)
	}
	return c, nil
}

// AddConformityCertificate records a certificate of conformity; ErrNotFound if the
// organisation is unknown, ErrDuplicate if the same system's certificate with the
// same expiry is on file. The system name may not be blank.
func (s *SQL) AddConformityCertificate(ctx context.Context, c ConformityCertificate) error {
	if strings.TrimSpace(c.System) == "" || c.Expires.IsZero() {
		return errors.New("store: a certificate of conformity needs a system name and an expiry")
	}
	_, err := s.exec(ctx, s.db,
		`INSERT INTO conformity_certificates (org_oid, system, expires, added_by, created_at) VALUES (?, ?, ?, ?, ?)`,
		c.OrgOID, c.System, micros(c.Expires), c.AddedBy, micros(c.CreatedAt))
	if err != nil {
		return s.fail("add certificate of conformity of "+c.OrgOID, err)
	}
	return nil
}

// ListConformityCertificates returns the organisation's certificates of conformity,
// expired ones too, the latest expiry first.
func (s *SQL) ListConformityCertificates(ctx context.Context, orgOID string) ([]ConformityCertificate, error) {
	rows, err := s.q().QueryContext(ctx, s.d.rebind(
		`SELECT org_oid, system, expires, added_by, created_at FROM conformity_certificates
		 WHERE org_oid = ? ORDER BY expires DESC, system`), orgOID)
	if err != nil {
		return nil, s.fail("list certificates of conformity of "+orgOID, err)
	}
	defer rows.Close()
	var out []ConformityCertificate
	for rows.Next() {
		var c ConformityCertificate
		var expires, created int64
		if err := rows.Scan(&c.OrgOID, &c.System, &expires, &c.AddedBy, &created); err != nil {
			return nil, s.fail("list certificates of conformity of "+orgOID, err)
		}
		c.Expires, c.CreatedAt = fromMicros(expires), fromMicros(created)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list certificates of conformity of "+orgOID, err)
	}
	return out, nil
}

// RegisterLoad is the last load of THL's register into the store.
type RegisterLoad struct {
	Source   string
	LoadedAt time.Time // zero: never loaded
	Records  int
}

// RecordRegisterLoad records that the register from source, with records records,
// was written into the store at at (in the transaction that wrote it).
func (s *SQL) RecordRegisterLoad(ctx context.Context, l RegisterLoad) error {
	_, err := s.exec(ctx, s.db, `INSERT INTO register_load (id, source, loaded_at, records) VALUES (1, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET source = excluded.source, loaded_at = excluded.loaded_at, records = excluded.records`,
		l.Source, micros(l.LoadedAt), l.Records)
	if err != nil {
		return s.fail("record the register load", err)
	}
	return nil
}

// LastRegisterLoad returns the last load of the register (LoadedAt zero: never).
func (s *SQL) LastRegisterLoad(ctx context.Context) (RegisterLoad, error) {
	var l RegisterLoad
	var at int64
	err := s.q().QueryRowContext(ctx, `SELECT source, loaded_at, records FROM register_load WHERE id = 1`).Scan(&l.Source, &at, &l.Records)
	if errors.Is(err, sql.ErrNoRows) {
		return RegisterLoad{}, nil
	}
	if err != nil {
		return RegisterLoad{}, s.fail("read the register load", err)
	}
	l.LoadedAt = fromMicros(at)
	return l, nil
}

// RegisterRecord is what the stored register says of one organisation, and how old
// the copy is: one read for each question the standing check asks.
type RegisterRecord struct {
	Load     RegisterLoad
	Known    bool // the organisation is in the store
	LongName string
	Register OrganisationRegister
}

// GetOrganisationRecord reads the organisation (as GetOrganisation) with its
// register record (as GetRegisterRecord) in one statement, the standing check's
// one read of them; ErrNotFound when the organisation is unknown.
func (s *SQL) GetOrganisationRecord(ctx context.Context, oid string) (*Organisation, RegisterRecord, error) {
	var o Organisation
	var rec RegisterRecord
	var x registerRow
	var domains, networks string
	var created, testOnly, suspended int64
	var at, records sql.NullInt64
	var source sql.NullString
	err := s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT o.oid, o.name, o.long_name, o.domains, o.created_at, o.test_only, o.networks, o.suspended_at,
		 o.suspended_by, o.suspend_reason, l.source, l.loaded_at, l.records, `+registerColumns+`
		 FROM organisations o LEFT JOIN register_load l ON l.id = 1 WHERE o.oid = ?`), oid).
		Scan(x.dest(&o.OID, &o.Name, &o.LongName, &domains, &created, &testOnly, &networks, &suspended,
			&o.SuspendedBy, &o.SuspendReason, &source, &at, &records)...)
	if err == nil {
		o.Domains, err = fromList(domains)
	}
	if err == nil {
		o.Networks, err = fromPrefixList(networks)
	}
	if err != nil {
		return nil, rec, s.fail("get organisation "+oid, err)
	}
	o.CreatedAt, o.TestOnly, o.SuspendedAt = fromMicros(created), testOnly != 0, fromMicros(suspended)
	if at.Valid {
		rec.Load = RegisterLoad{Source: source.String, LoadedAt: fromMicros(at.Int64), Records: int(records.Int64)}
	}
	rec.Known, rec.LongName, rec.Register = true, o.LongName, x.value(oid)
	return &o, rec, nil
}

// GetRegisterRecord reads the last register load and the organisation's register
// data together.
func (s *SQL) GetRegisterRecord(ctx context.Context, oid string) (RegisterRecord, error) {
	var rec RegisterRecord
	var x registerRow
	var at sql.NullInt64
	var source, long sql.NullString
	var records sql.NullInt64
	var known int
	// One row whatever is there: the load (if any) beside the organisation (if any).
	err := s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT l.source, l.loaded_at, l.records, CASE WHEN o.oid IS NULL THEN 0 ELSE 1 END, o.long_name,
		 COALESCE(o.abbreviation, ''), COALESCE(o.business_id, ''), COALESCE(o.sector, ''), COALESCE(o.intermediary, 0),
		 COALESCE(o.register_status, ''), COALESCE(o.register_begin, 0), COALESCE(o.register_end, 0), COALESCE(o.parent_oid, ''),
		 COALESCE(o.register_synced_at, 0), COALESCE(o.register_left_at, 0)
		 FROM (SELECT 1 AS one) AS x
		 LEFT JOIN register_load l ON l.id = 1
		 LEFT JOIN organisations o ON o.oid = ?`), oid).Scan(x.dest(&source, &at, &records, &known, &long)...)
	if err != nil {
		return rec, s.fail("read the register record of organisation "+oid, err)
	}
	if at.Valid {
		rec.Load = RegisterLoad{Source: source.String, LoadedAt: fromMicros(at.Int64), Records: int(records.Int64)}
	}
	rec.Known, rec.LongName = known == 1, long.String
	if rec.Known {
		rec.Register = x.value(oid)
	}
	return rec, nil
}
