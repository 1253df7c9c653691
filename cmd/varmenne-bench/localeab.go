package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/varmenne/varmenne/bench"
	"github.com/varmenne/varmenne/internal/owneronly"
	"github.com/varmenne/varmenne/policy/thl"
	"github.com/varmenne/varmenne/store"
)

// localEAB creates n approved EAB keys for organisation oid in the local varmenne
// database, adding the organisation (administering domain) when it is missing. It
// writes the records directly, as a test fixture would: the keys are for load runs
// on a server of one's own, not for organisations.
func localEAB(ctx context.Context, db, data, secretFile, oid, domain string, n int) ([]bench.EAB, error) {
	if !thl.IsOID(oid) {
		return nil, fmt.Errorf("--local-org %q is not an OID; it looks like 1.2.246.10.12345678.10.0", oid)
	}
	if n < 1 {
		return nil, fmt.Errorf("--accounts %d: give at least 1", n)
	}
	st, err := openDatabase(ctx, db, data, secretFile)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if _, err := st.GetOrganisation(ctx, oid); errors.Is(err, store.ErrNotFound) {
		err = st.AddOrganisation(ctx, store.Organisation{OID: oid, Name: "Bench Oy " + oid, LongName: "Bench Oy " + oid,
			Domains: []string{domain}, CreatedAt: time.Now()})
		if err != nil && !errors.Is(err, store.ErrDuplicate) {
			return nil, fmt.Errorf("adding organisation %s: %w", oid, err)
		}
	} else if err != nil {
		return nil, err
	}
	keys := make([]bench.EAB, n)
	for i := range keys {
		kid, mac := make([]byte, 16), make([]byte, 32)
		if _, err := rand.Read(kid); err != nil {
			return nil, err
		}
		if _, err := rand.Read(mac); err != nil {
			return nil, err
		}
		k := store.EABKey{KID: base64.RawURLEncoding.EncodeToString(kid), OrgOID: oid, HMACKey: mac,
			Status: store.EABApproved, CreatedAt: time.Now()}
		if err := st.CreateEAB(ctx, k); err != nil {
			return nil, fmt.Errorf("creating an EAB key: %w", err)
		}
		keys[i] = bench.EAB{KID: k.KID, HMAC: k.HMACKey}
	}
	return keys, nil
}

// openDatabase opens the local server's records: PostgreSQL when db is a postgres://
// URL, else the SQLite file varmenne serve made in data, which must exist (a wrong
// --data would otherwise make a new, empty database); with the EAB secret the
// server made (secretFile, default DATA/eab-secret.key), which must be its
// owner's only.
func openDatabase(ctx context.Context, db, data, secretFile string) (*store.SQL, error) {
	if secretFile == "" {
		secretFile = filepath.Join(data, "eab-secret.key")
	}
	secret := func() (*store.EABSecret, error) {
		if err := owneronly.Check(secretFile); err != nil {
			return nil, err
		}
		s, err := store.ReadEABSecretFile(secretFile)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no EAB secret: %s is missing; give --eab-secret-file, the key file of the server", secretFile)
		}
		return s, err
	}
	switch {
	case db == "":
		path := filepath.Join(data, "varmenne.db")
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("no database in %s: start \"varmenne serve --data %s\" once, or pass the right --data (or --db)", data, data)
		}
		s, err := secret()
		if err != nil {
			return nil, err
		}
		return store.OpenSQLite(ctx, path, s)
	case strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://"):
		s, err := secret()
		if err != nil {
			return nil, err
		}
		return store.OpenPostgres(ctx, db, s)
	default:
		// Not echoed: the value may hold a password.
		what := "a value without a URL scheme"
		if u, err := url.Parse(db); err == nil && u.Scheme != "" {
			what = "a " + u.Scheme + ":// URL"
		}
		return nil, fmt.Errorf("--db must be a postgres:// URL, or empty for SQLite in the data directory; it is %s", what)
	}
}
