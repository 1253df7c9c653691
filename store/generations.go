package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"
)

// The states of an issuer generation (migration 0030).
const (
	GenerationStandby = "standby" // signs its CRLs and OCSP answers, no new certificates
	GenerationActive  = "active"  // signs the hierarchy's new certificates
	GenerationRetired = "retired" // every certificate revoked; its last CRL is final
)

// ErrIssuerRetired: the issuer generation is retired, so its key signs no
// certificate again.
var ErrIssuerRetired = errors.New("store: the issuer generation is retired")

// IssuerGeneration is one generation of a hierarchy's issuer as the database
// knows it.
type IssuerGeneration struct {
	Name       string // "production", "production-2", …; certificates and CRLs name it
	Hierarchy  string // "production" or "test"
	Generation int    // 1 for the hierarchy's first issuer
	Subject    string
	CertSHA256 string // of the issuer certificate's DER, lower-case hex
	NotBefore  time.Time
	NotAfter   time.Time
	Registered time.Time
	State      string    // GenerationStandby, GenerationActive or GenerationRetired
	StateSince time.Time // when it entered State
	StateBy    string    // who moved it there (an operator, or "varmenne serve" for a first generation)
	// A retirement asked for (RetireRequestedBy set) or carried out (RetiredBy set).
	RetireReason      string
	RetireRequestedBy string
	RetireRequestedAt time.Time
	RetiredBy         string
	RetiredAt         time.Time
}

const generationColumns = `name, hierarchy, generation, subject, cert_sha256, not_before, not_after, registered_at,
	state, state_since, state_by, retire_reason, retire_requested_by, retire_requested_at, retired_by, retired_at`

func scanGeneration(row scanner) (*IssuerGeneration, error) {
	var g IssuerGeneration
	var nb, na, reg, since, reqAt, retAt int64
	if err := row.Scan(&g.Name, &g.Hierarchy, &g.Generation, &g.Subject, &g.CertSHA256, &nb, &na, &reg,
		&g.State, &since, &g.StateBy, &g.RetireReason, &g.RetireRequestedBy, &reqAt, &g.RetiredBy, &retAt); err != nil {
		return nil, err
	}
	g.NotBefore, g.NotAfter, g.Registered = fromMicros(nb), fromMicros(na), fromMicros(reg)
	g.StateSince, g.RetireRequestedAt, g.RetiredAt = fromMicros(since), fromMicros(reqAt), fromMicros(retAt)
	return &g, nil
}

// RegisterGeneration records an issuer generation a server loaded or a ceremony
// made, unless it is known. A hierarchy's first registered generation becomes its
// active one (by), any later one waits as standby for an operator's word. A
// known name with another certificate — its key certified anew, or a development
// PKI made again as serve's warning advises — takes the new certificate and keeps
// its state; replaced is then the previous certificate's SHA-256 (otherwise "").
// It returns the generation as stored; registered reports whether anything was
// written.
func (s *SQL) RegisterGeneration(ctx context.Context, g IssuerGeneration, by string, now time.Time) (out *IssuerGeneration, replaced string, err error) {
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		out, replaced = nil, ""
		known, err := scanGeneration(tx.QueryRowContext(ctx, s.d.rebind(`SELECT `+generationColumns+` FROM issuer_generations WHERE name = ?`), g.Name))
		switch {
		case err == nil && known.CertSHA256 == g.CertSHA256:
			out = known
			return nil
		case err == nil:
			if _, err := s.exec(ctx, tx, `UPDATE issuer_generations SET subject = ?, cert_sha256 = ?, not_before = ?, not_after = ?
				WHERE name = ?`, g.Subject, g.CertSHA256, micros(g.NotBefore), micros(g.NotAfter), g.Name); err != nil {
				return err
			}
			replaced = known.CertSHA256
			known.Subject, known.CertSHA256, known.NotBefore, known.NotAfter = g.Subject, g.CertSHA256, g.NotBefore, g.NotAfter
			out = known
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		var active int
		if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT COUNT(*) FROM issuer_generations WHERE hierarchy = ? AND state = 'active'`),
			g.Hierarchy).Scan(&active); err != nil {
			return err
		}
		g.State, g.StateSince, g.StateBy, g.Registered = GenerationStandby, now, by, now
		if active == 0 && g.Generation == 1 {
			g.State = GenerationActive
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO issuer_generations (`+generationColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', 0, '', 0)`,
			g.Name, g.Hierarchy, g.Generation, g.Subject, g.CertSHA256, micros(g.NotBefore), micros(g.NotAfter), micros(now),
			g.State, micros(now), by); err != nil {
			return err
		}
		out = &g
		return nil
	})
	if err != nil {
		return nil, "", s.fail("register issuer "+g.Name, err)
	}
	return out, replaced, nil
}

// IssuerGenerations lists the registered generations by hierarchy and number.
func (s *SQL) IssuerGenerations(ctx context.Context) ([]IssuerGeneration, error) {
	rows, err := s.q().QueryContext(ctx, s.d.rebind(`SELECT `+generationColumns+` FROM issuer_generations ORDER BY hierarchy, generation`))
	if err != nil {
		return nil, s.fail("list issuer generations", err)
	}
	return collect(s, "list issuer generations", rows, scanGeneration)
}

// GetIssuerGeneration returns the generation named so, or ErrNotFound.
func (s *SQL) GetIssuerGeneration(ctx context.Context, name string) (*IssuerGeneration, error) {
	g, err := scanGeneration(s.q().QueryRowContext(ctx, s.d.rebind(`SELECT `+generationColumns+` FROM issuer_generations WHERE name = ?`), name))
	if err != nil {
		return nil, s.fail("issuer generation "+name, err)
	}
	return g, nil
}

// ActiveIssuers maps each hierarchy to the name of its active generation.
func (s *SQL) ActiveIssuers(ctx context.Context) (map[string]string, error) {
	rows, err := s.q().QueryContext(ctx, `SELECT hierarchy, name FROM issuer_generations WHERE state = 'active'`)
	if err != nil {
		return nil, s.fail("active issuers", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var h, n string
		if err := rows.Scan(&h, &n); err != nil {
			return nil, s.fail("active issuers", err)
		}
		out[h] = n
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("active issuers", err)
	}
	return out, nil
}

// ActivateGeneration makes the standby generation name its hierarchy's active
// one and the active one standby, in the caller's transaction (an audited Tx).
// ErrNotFound if there is no such generation, ErrConflict unless it is standby.
func (s *SQL) ActivateGeneration(ctx context.Context, name, by string, now time.Time) (previous string, err error) {
	g, err := s.GetIssuerGeneration(ctx, name)
	if err != nil {
		return "", err
	}
	if g.State != GenerationStandby {
		return "", fmt.Errorf("issuer %s is %s: %w", name, g.State, ErrConflict)
	}
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT name FROM issuer_generations WHERE hierarchy = ? AND state = 'active'`),
			g.Hierarchy).Scan(&previous); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if _, err := s.exec(ctx, tx, `UPDATE issuer_generations SET state = 'standby', state_since = ?, state_by = ?
			WHERE hierarchy = ? AND state = 'active'`, micros(now), by, g.Hierarchy); err != nil {
			return err
		}
		return s.transition(ctx, tx, "issuer_generations", "name", name,
			`UPDATE issuer_generations SET state = 'active', state_since = ?, state_by = ? WHERE name = ? AND state = 'standby'`,
			micros(now), by, name)
	})
	if err != nil {
		return "", s.fail("activate issuer "+name, err)
	}
	return previous, nil
}

// RequestRetirement records that by asks for the retirement of the standby
// generation name (another administrator carries it out, RetireGeneration).
// ErrConflict unless it is standby without a retirement asked for.
func (s *SQL) RequestRetirement(ctx context.Context, name, reason, by string, now time.Time) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "issuer_generations", "name", name,
			`UPDATE issuer_generations SET retire_reason = ?, retire_requested_by = ?, retire_requested_at = ?
			 WHERE name = ? AND state = 'standby' AND retire_requested_by = ''`, reason, by, micros(now), name)
	})
	if err != nil {
		return s.fail("ask for the retirement of issuer "+name, err)
	}
	return nil
}

// WithdrawRetirement drops a retirement asked for and not carried out.
func (s *SQL) WithdrawRetirement(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		return s.transition(ctx, tx, "issuer_generations", "name", name,
			`UPDATE issuer_generations SET retire_reason = '', retire_requested_by = '', retire_requested_at = 0
			 WHERE name = ? AND state = 'standby' AND retire_requested_by <> ''`, name)
	})
	if err != nil {
		return s.fail("withdraw the retirement of issuer "+name, err)
	}
	return nil
}

// Retirement is what RetireGeneration did.
type Retirement struct {
	Revoked    []string  // the serials revoked now, sorted
	LastExpiry time.Time // the latest notAfter of the generation's certificates; zero: none
	FinalUntil time.Time // the final CRL's nextUpdate
}

// FinalCRLMargin is how long the final CRL of a retired generation stays valid
// after the generation's last certificate expired.
const FinalCRLMargin = 7 * 24 * time.Hour

// RetireGeneration carries out the retirement of name that another operator asked
// for, in the caller's transaction (an audited Tx at the locking isolation, so
// that it sees every intent whose signing began before it): every unexpired certificate
// of the generation and every issuance of it still pending is revoked with r
// (its revocation records and holder notices written), the generation becomes
// retired by by, and its CRL state's final_until is set to FinalCRLMargin after
// the last certificate's expiry (or after now, if later), which the publisher
// then signs as its final CRL. ErrConflict unless a retirement was asked for by
// someone other than by and the generation is standby; the database's CHECK holds
// the second person too.
func (s *SQL) RetireGeneration(ctx context.Context, name, by string, r Revocation, now time.Time) (*Retirement, error) {
	var out Retirement
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		out = Retirement{}
		if err := s.transition(ctx, tx, "issuer_generations", "name", name,
			`UPDATE issuer_generations SET state = 'retired', state_since = ?, state_by = ?, retired_by = ?, retired_at = ?
			 WHERE name = ? AND state = 'standby' AND retire_requested_by <> '' AND retire_requested_by <> ?`,
			micros(now), by, by, micros(now), name, by); err != nil {
			return err
		}
		targets, err := s.issuerTargets(ctx, tx, name, now)
		if err != nil {
			return err
		}
		for _, t := range targets {
			one := r
			one.Serial = t.serial
			if err := s.revoke(ctx, tx, t.serial, one); err != nil {
				return err
			}
			out.Revoked = append(out.Revoked, t.serial)
		}
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT MAX(not_after) FROM certificates WHERE issuer = ?`), name).Scan(&last); err != nil {
			return err
		}
		out.FinalUntil = now
		if last.Valid && last.Int64 > 0 {
			out.LastExpiry = fromMicros(last.Int64)
			if out.LastExpiry.After(now) {
				out.FinalUntil = out.LastExpiry
			}
		}
		out.FinalUntil = out.FinalUntil.Add(FinalCRLMargin).UTC().Truncate(time.Second)
		if err := s.ensureCRLState(ctx, tx, name); err != nil {
			return err
		}
		_, err = s.exec(ctx, tx, `UPDATE crl_state SET final_until = ? WHERE issuer = ?`, micros(out.FinalUntil), name)
		return err
	})
	if err != nil {
		return nil, s.fail("retire issuer "+name, err)
	}
	sort.Strings(out.Revoked)
	return &out, nil
}

// issuerTargets lists what RetireGeneration revokes: the issuer's unexpired,
// unrevoked certificates and its pending issuances without a certificate (read in
// full before any insert).
func (s *SQL) issuerTargets(ctx context.Context, tx *sql.Tx, issuer string, now time.Time) ([]revocationTarget, error) {
	var out []revocationTarget
	rows, err := tx.QueryContext(ctx, s.d.rebind(
		`SELECT c.serial FROM certificates c WHERE c.issuer = ? AND c.not_after > ?
		 AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial)
		 UNION
		 SELECT i.serial FROM issuance_intents i WHERE i.issuer = ? AND i.status = 'pending'
		 AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = i.serial)
		 AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = i.serial)`), issuer, micros(now), issuer)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var t revocationTarget
		if err := rows.Scan(&t.serial); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
