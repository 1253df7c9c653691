package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testSecret seals the EAB keys of every store the package's tests open: the
// contract runs on copies of one template database, whose keys one secret seals.
var testSecret, _ = GenerateEABSecret()

func TestEABSecretSealing(t *testing.T) {
	k := testSecret
	other, _ := GenerateEABSecret()
	sealed := k.seal("kid-1", []byte("hmac key"))
	t.Run("the sealed value has the version, a nonce, and neither the key nor the kid", func(t *testing.T) {
		if sealed[0] != sealedV1 || len(sealed) != 1+12+len("hmac key")+16 {
			t.Fatalf("sealed value % x: want 0x01, a 12-byte nonce, 8 bytes and a 16-byte tag", sealed)
		}
		if bytes.Contains(sealed, []byte("hmac key")) || bytes.Contains(sealed, []byte("kid-1")) {
			t.Fatal("the sealed value holds the key or the kid in clear")
		}
		if again := k.seal("kid-1", []byte("hmac key")); bytes.Equal(again, sealed) {
			t.Fatal("two seals of one key are equal: the nonce is not random")
		}
	})
	t.Run("it opens for its kid with its secret", func(t *testing.T) {
		got, err := k.open("kid-1", sealed)
		if err != nil || string(got) != "hmac key" {
			t.Fatalf("open = %q, %v", got, err)
		}
	})
	refusals := []struct {
		name   string
		secret *EABSecret
		kid    string
		sealed func() []byte
	}{
		{"another kid (a value moved to another row)", k, "kid-2", func() []byte { return sealed }},
		{"another secret", other, "kid-1", func() []byte { return sealed }},
		{"a flipped bit", k, "kid-1", func() []byte { b := bytes.Clone(sealed); b[len(b)-1] ^= 1; return b }},
		{"an unknown version", k, "kid-1", func() []byte { b := bytes.Clone(sealed); b[0] = 2; return b }},
		{"a key in clear", k, "kid-1", func() []byte { return bytes.Repeat([]byte("k"), 32) }},
		{"nothing", k, "kid-1", func() []byte { return nil }},
	}
	for _, tt := range refusals {
		t.Run("refused: "+tt.name, func(t *testing.T) {
			if got, err := tt.secret.open(tt.kid, tt.sealed()); !errors.Is(err, ErrEABSecret) {
				t.Fatalf("open = %q, %v; want ErrEABSecret", got, err)
			}
		})
	}
}

func TestEABSecretFile(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "eab-secret.key")
	made, err := CreateEABSecretFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("made 0600 under umask 022", func(t *testing.T) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %o, want 600", fi.Mode().Perm())
		}
	})
	t.Run("read back it is the same secret", func(t *testing.T) {
		read, err := ReadEABSecretFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if read.ID() != made.ID() {
			t.Fatalf("id %s, want %s", read.ID(), made.ID())
		}
		if got, err := read.open("k", made.seal("k", []byte("x"))); err != nil || string(got) != "x" {
			t.Fatalf("open = %q, %v", got, err)
		}
	})
	t.Run("an existing file is never overwritten", func(t *testing.T) {
		if _, err := CreateEABSecretFile(path); !errors.Is(err, os.ErrExist) {
			t.Fatalf("err %v, want ErrExist", err)
		}
	})
	for _, bad := range []string{"", "abc", strings.Repeat("zz", 32), strings.Repeat("ab", 31), strings.Repeat("ab", 33)} {
		t.Run("refused content "+bad, func(t *testing.T) {
			if _, err := ParseEABSecret([]byte(bad)); err == nil || strings.Contains(err.Error(), bad) && bad != "" {
				t.Fatalf("err %v: want a refusal that does not echo the content", err)
			}
		})
	}
}

// testEABSealed is part of the contract: what the database holds of an HMAC key
// is sealed, whichever door wrote it, and a sealed value moved to another row
// does not open.
func testEABSealed(t *testing.T, open func(t *testing.T) *SQL) {
	w := newWorld(t, open)
	s, ctx := w.s, w.ctx
	w.must(s.CreateEABRequest(ctx, eabRequest("r1", "registrar", t0.Add(time.Hour))))
	if _, err := s.ApproveEABRequest(ctx, "r1", "admin", true, t0, EABKey{KID: "k-approved", HMACKey: []byte("hmac-approved"), CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT kid, hmac_key FROM eab_keys ORDER BY kid`)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string][]byte{}
	for rows.Next() {
		var kid string
		var v []byte
		if err := rows.Scan(&kid, &v); err != nil {
			t.Fatal(err)
		}
		stored[kid] = v
	}
	rows.Close()
	if len(stored) != 4 {
		t.Fatalf("%d keys stored, want 4", len(stored))
	}
	for kid, v := range stored {
		if len(v) == 0 || v[0] != sealedV1 || bytes.Contains(v, []byte("hmac-")) || bytes.Contains(v, []byte("secret-")) {
			t.Errorf("eab_keys.hmac_key of %s is % x: not sealed", kid, v)
		}
	}
	for kid, want := range map[string]string{"kid-free": "secret-kid-free", "k-approved": "hmac-approved"} {
		k, err := s.GetEAB(ctx, kid)
		if err != nil || string(k.HMACKey) != want {
			t.Errorf("GetEAB(%s) = %v, %v; want the key in clear", kid, k, err)
		}
	}
	// Someone who can write the database gives kid-free the key of k-approved, whose
	// HMAC key they know (it was handed over): it must not open as kid-free's.
	if _, err := s.db.ExecContext(ctx, s.d.rebind(`UPDATE eab_keys SET hmac_key = ? WHERE kid = ?`), stored["k-approved"], "kid-free"); err != nil {
		t.Fatal(err)
	}
	if k, err := s.GetEAB(ctx, "kid-free"); !errors.Is(err, ErrEABSecret) {
		t.Fatalf("GetEAB of a moved value = %v, %v; want ErrEABSecret", k, err)
	}
	// So does a key written in clear.
	if _, err := s.db.ExecContext(ctx, s.d.rebind(`UPDATE eab_keys SET hmac_key = ? WHERE kid = ?`), []byte("hmac-in-clear-00000000000000000000"), "kid-free"); err != nil {
		t.Fatal(err)
	}
	if k, err := s.GetEAB(ctx, "kid-free"); !errors.Is(err, ErrEABSecret) {
		t.Fatalf("GetEAB of a key in clear = %v, %v; want ErrEABSecret", k, err)
	}
	if _, err := s.ListEABKeys(ctx, org1); !errors.Is(err, ErrEABSecret) {
		t.Fatalf("ListEABKeys over a key that does not open: %v, want ErrEABSecret", err)
	}
}

// plaintextEABKeys are the keys a database of schema version 22 held in clear.
var plaintextEABKeys = map[string]string{"kid-old-1": "old-hmac-key-1", "kid-old-2": "old-hmac-key-2"}

// makeV22 migrates the empty database s (opened without a secret) to version 22,
// before EAB keys were sealed, and stores plaintextEABKeys in clear, as that
// version did.
func makeV22(t *testing.T, s *SQL) {
	t.Helper()
	ctx := context.Background()
	if err := s.migrateTo(ctx, 22); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, s.d.rebind(`INSERT INTO organisations (oid, name, long_name, domains, created_at) VALUES (?, 'Vanha Oy', 'Vanha Oy', '[]', 0)`), org1); err != nil {
		t.Fatal(err)
	}
	for kid, key := range plaintextEABKeys {
		if _, err := s.db.ExecContext(ctx, s.d.rebind(`INSERT INTO eab_keys (kid, org_oid, hmac_key, domains, status, created_at) VALUES (?, ?, ?, '[]', 'approved', 0)`),
			kid, org1, []byte(key)); err != nil {
			t.Fatal(err)
		}
	}
}

// checkSealedInPlace: the keys of makeV22 read back in clear through s, are
// sealed in the database, once.
func checkSealedInPlace(t *testing.T, s *SQL) {
	t.Helper()
	ctx := context.Background()
	for kid, want := range plaintextEABKeys {
		k, err := s.GetEAB(ctx, kid)
		if err != nil || string(k.HMACKey) != want {
			t.Fatalf("GetEAB(%s) = %v, %v; want %q", kid, k, err, want)
		}
		var v []byte
		if err := s.db.QueryRowContext(ctx, s.d.rebind(`SELECT hmac_key FROM eab_keys WHERE kid = ?`), kid).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v[0] != sealedV1 || bytes.Contains(v, []byte(want)) {
			t.Fatalf("hmac_key of %s is % x after the start: not sealed", kid, v)
		}
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = 23`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("migration 23 recorded %d times (%v), want once", n, err)
	}
}

// TestSQLiteCopyWithoutSecret is the local attacker of the security review: they
// copy the database file (it was world-readable) and want an unbound key.
func TestSQLiteCopyWithoutSecret(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "varmenne.db")
	s, err := OpenSQLite(ctx, path, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddOrganisation(ctx, Organisation{OID: org1, Name: "Apteekki Oy"}); err != nil {
		t.Fatal(err)
	}
	hmacKey := []byte("unbound-hmac-key-0123456789abcdef")
	if err := s.CreateEAB(ctx, EABKey{KID: "kid-unbound", OrgOID: org1, HMACKey: hmacKey, Status: EABApproved}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	stolen := filepath.Join(t.TempDir(), "stolen.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stolen, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, hmacKey) {
		t.Fatal("the database file holds the HMAC key in clear")
	}

	t.Run("read with SQL, hmac_key is ciphertext", func(t *testing.T) {
		raw := rawSQLite(t, stolen)
		var v []byte
		if err := raw.db.QueryRow(`SELECT hmac_key FROM eab_keys WHERE kid = 'kid-unbound'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v[0] != sealedV1 || bytes.Contains(v, hmacKey) {
			t.Fatalf("hmac_key % x: want a sealed value", v)
		}
	})
	attacker, _ := GenerateEABSecret()
	t.Run("the store refuses to open it with another secret", func(t *testing.T) {
		s, err := OpenSQLite(ctx, stolen, attacker)
		var mismatch *EABSecretMismatchError
		if !errors.As(err, &mismatch) {
			if err == nil {
				s.Close()
			}
			t.Fatalf("err %v, want EABSecretMismatchError", err)
		}
		if mismatch.Database != testSecret.ID() || mismatch.Given != attacker.ID() {
			t.Errorf("mismatch %+v: want database %s, given %s", mismatch, testSecret.ID(), attacker.ID())
		}
	})
	t.Run("with the recorded id forged, GetEAB still yields no key", func(t *testing.T) {
		raw := rawSQLite(t, stolen)
		if _, err := raw.db.Exec(`UPDATE settings SET value = ? WHERE name = ?`, hexID(attacker), eabSecretSetting); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		s, err := OpenSQLite(ctx, stolen, attacker)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		k, err := s.GetEAB(ctx, "kid-unbound")
		if !errors.Is(err, ErrEABSecret) {
			t.Fatalf("GetEAB = %v, %v; want ErrEABSecret", k, err)
		}
		if strings.Contains(err.Error(), string(hmacKey)) {
			t.Fatalf("the error %q holds the key", err)
		}
	})
}

// rawSQLite opens the SQLite file as any SQL client would: no secret, no
// migrations.
func rawSQLite(t *testing.T, path string) *SQL {
	t.Helper()
	db, err := sql.Open(sqliteDialect.driver, path+"?"+sqlitePragmas)
	if err != nil {
		t.Fatal(err)
	}
	s := &SQL{db: db, writer: make(chan struct{}, 1), d: &sqliteDialect}
	t.Cleanup(func() { s.Close() })
	return s
}

func hexID(k *EABSecret) string { return hex.EncodeToString(k.id) }

func TestSQLiteSealsPlaintextKeysInPlace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "varmenne.db")
	raw := rawSQLite(t, path)
	raw.secret = testSecret // not used up to version 22
	makeV22(t, raw)
	raw.Close()
	// The server and the CLI start on the old database at once.
	stores := make([]*SQL, 2)
	for i, err := range race(2, func(i int) (err error) {
		stores[i], err = OpenSQLite(ctx, path, testSecret)
		return err
	}) {
		if err != nil {
			t.Fatalf("opener %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	for _, s := range stores {
		checkSealedInPlace(t, s)
	}
	// Opened again, nothing is sealed twice.
	s, err := OpenSQLite(ctx, path, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkSealedInPlace(t, s)
}

func TestOpenWithoutSecret(t *testing.T) {
	if s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "x.db"), nil); err == nil {
		s.Close()
		t.Fatal("opened without a secret")
	}
}
