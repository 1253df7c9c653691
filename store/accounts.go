package store

import (
	"context"
	"database/sql"
)

// scanner is what *sql.Row and *sql.Rows share.
type scanner interface{ Scan(dest ...any) error }

// AddOrganisation records an organisation; ErrDuplicate if its OID is taken.
func (s *SQL) AddOrganisation(ctx context.Context, o Organisation) error {
	_, err := s.exec(ctx, s.db,
		`INSERT INTO organisations (oid, name, long_name, domains, created_at, test_only, networks) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		o.OID, o.Name, o.LongName, list(o.Domains), micros(o.CreatedAt), flag(o.TestOnly), prefixList(o.Networks))
	if err != nil {
		return s.fail("add organisation "+o.OID, err)
	}
	return nil
}

// GetOrganisation returns the organisation with that OID, or ErrNotFound.
func (s *SQL) GetOrganisation(ctx context.Context, oid string) (*Organisation, error) {
	var o Organisation
	var domains, networks string
	var created, testOnly, suspended int64
	err := s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT oid, name, long_name, domains, created_at, test_only, networks, suspended_at, suspended_by, suspend_reason
		 FROM organisations WHERE oid = ?`), oid).
		Scan(&o.OID, &o.Name, &o.LongName, &domains, &created, &testOnly, &networks, &suspended, &o.SuspendedBy, &o.SuspendReason)
	if err != nil {
		return nil, s.fail("get organisation "+oid, err)
	}
	if o.Domains, err = fromList(domains); err != nil {
		return nil, err
	}
	if o.Networks, err = fromPrefixList(networks); err != nil {
		return nil, err
	}
	o.CreatedAt = fromMicros(created)
	o.TestOnly = testOnly != 0
	o.SuspendedAt = fromMicros(suspended)
	return &o, nil
}

// CreateEAB records an EAB key; ErrDuplicate if the kid is taken, ErrNotFound if
// its organisation is unknown.
func (s *SQL) CreateEAB(ctx context.Context, k EABKey) error {
	_, err := s.exec(ctx, s.db,
		`INSERT INTO eab_keys (`+eabColumns+`) VALUES (`+eabPlaceholders+`)`,
		s.eabArgs(k)...)
	if err != nil {
		return s.fail("create EAB key "+k.KID, err)
	}
	return nil
}

// GetEAB returns the EAB key with that kid, or ErrNotFound.
func (s *SQL) GetEAB(ctx context.Context, kid string) (*EABKey, error) {
	k, err := s.scanEAB(s.q().QueryRowContext(ctx, s.d.rebind(`SELECT `+eabColumns+` FROM eab_keys WHERE kid = ?`), kid))
	if err != nil {
		return nil, s.fail("get EAB key "+kid, err)
	}
	return k, nil
}

// CreateAccount binds the approved EAB key eabKID to a new account and inserts the
// account, in one transaction. The key must be approved, unexpired at the account's
// CreatedAt and belong to the account's organisation, else ErrConflict; a taken thumbprint is ErrDuplicate and leaves the
// key approved. The account is stored with EABKID = eabKID and the key's BoundAt is
// the account's CreatedAt.
func (s *SQL) CreateAccount(ctx context.Context, a Account, eabKID string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// The conditional UPDATE is the binding: of concurrent callers only one
		// finds the key still approved.
		n, err := s.exec(ctx, tx,
			`UPDATE eab_keys SET status = 'bound', account_id = ?, bound_at = ?
			 WHERE kid = ? AND status = 'approved' AND org_oid = ? AND (expires_at = 0 OR expires_at > ?)`,
			a.ID, micros(a.CreatedAt), eabKID, a.OrgOID, micros(a.CreatedAt))
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrConflict
		}
		_, err = s.exec(ctx, tx,
			`INSERT INTO accounts (id, thumbprint, jwk, org_oid, eab_kid, contacts, status, created_at)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			a.ID, a.Thumbprint, a.JWK, a.OrgOID, eabKID, list(a.Contacts), a.Status, micros(a.CreatedAt))
		return err
	})
	if err != nil {
		return s.fail("create account "+a.ID+" with EAB key "+eabKID, err)
	}
	return nil
}

const accountColumns = `id, thumbprint, jwk, org_oid, eab_kid, contacts, status, created_at`

func scanAccount(row scanner) (*Account, error) {
	var a Account
	var contacts string
	var created int64
	if err := row.Scan(&a.ID, &a.Thumbprint, &a.JWK, &a.OrgOID, &a.EABKID, &contacts, &a.Status, &created); err != nil {
		return nil, err
	}
	var err error
	if a.Contacts, err = fromList(contacts); err != nil {
		return nil, err
	}
	a.CreatedAt = fromMicros(created)
	return &a, nil
}

// GetAccount returns the account with that id, or ErrNotFound.
func (s *SQL) GetAccount(ctx context.Context, id string) (*Account, error) {
	a, err := scanAccount(s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT `+accountColumns+` FROM accounts WHERE id = ?`), id))
	if err != nil {
		return nil, s.fail("get account "+id, err)
	}
	return a, nil
}

// GetAccountByThumbprint returns the account whose key has that thumbprint, or
// ErrNotFound.
func (s *SQL) GetAccountByThumbprint(ctx context.Context, thumbprint string) (*Account, error) {
	a, err := scanAccount(s.q().QueryRowContext(ctx, s.d.rebind(
		`SELECT `+accountColumns+` FROM accounts WHERE thumbprint = ?`), thumbprint))
	if err != nil {
		return nil, s.fail("get account by thumbprint "+thumbprint, err)
	}
	return a, nil
}

// UpdateAccountContacts replaces the account's contacts; ErrNotFound if it is unknown.
func (s *SQL) UpdateAccountContacts(ctx context.Context, id string, contacts []string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "accounts", "id", id,
			`UPDATE accounts SET contacts = ? WHERE id = ?`, list(contacts), id)
	})
	if err != nil {
		return s.fail("update contacts of account "+id, err)
	}
	return nil
}

// DeactivateAccount moves the account from valid to deactivated; ErrConflict if it
// is not valid.
func (s *SQL) DeactivateAccount(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "accounts", "id", id,
			`UPDATE accounts SET status = 'deactivated' WHERE status = 'valid' AND id = ?`, id)
	})
	if err != nil {
		return s.fail("deactivate account "+id, err)
	}
	return nil
}

// ChangeAccountKey replaces the account key if its thumbprint is still
// oldThumbprint (else ErrConflict); ErrDuplicate if another account has the new key.
func (s *SQL) ChangeAccountKey(ctx context.Context, id, oldThumbprint, newThumbprint string, newJWK []byte) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "accounts", "id", id,
			`UPDATE accounts SET thumbprint = ?, jwk = ? WHERE thumbprint = ? AND id = ?`,
			newThumbprint, newJWK, oldThumbprint, id)
	})
	if err != nil {
		return s.fail("change key of account "+id, err)
	}
	return nil
}

// flag stores a bool as 0 or 1, which every dialect's INTEGER holds.
func flag(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
