package store

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/varmenne/varmenne/internal/keyfile"
)

// EABSecret seals the EAB HMAC keys the store keeps: eab_keys.hmac_key holds
// AES-256-GCM ciphertext, its associated data the key's kid, so a copy of the
// database without this secret yields no usable HMAC key and a sealed key moved to
// another row does not open. The secret lives outside the database (a file of its
// own, which PostgreSQL replicas share); the database keeps only its id, so that
// a store opened with another secret is refused at once instead of failing at the
// first EAB binding.
type EABSecret struct {
	aead cipher.AEAD
	id   []byte // HMAC-SHA256 of a fixed label: names the secret, reveals nothing of it
}

// EABSecretSize is the length of the secret in bytes.
const EABSecretSize = 32

// Domain-separated uses of the one secret.
const (
	eabSealLabel = "varmenne eab_keys.hmac_key AES-256-GCM v1"
	eabIDLabel   = "varmenne EAB secret id v1"
)

// sealedV1 starts every sealed HMAC key: the format (AES-256-GCM, 12-byte nonce),
// so that a later format can be told apart.
const sealedV1 = 0x01

// ErrEABSecret means a sealed HMAC key does not open with the store's EAB secret:
// the secret is another one, or the value was changed or moved to another row.
var ErrEABSecret = errors.New("the HMAC key does not open with this EAB secret (another secret, or a tampered or moved value)")

// NewEABSecret makes the secret of a key of EABSecretSize bytes.
func NewEABSecret(key []byte) (*EABSecret, error) {
	if len(key) != EABSecretSize {
		return nil, fmt.Errorf("store: an EAB secret is %d bytes, not %d", EABSecretSize, len(key))
	}
	block, err := aes.NewCipher(derive(key, eabSealLabel))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &EABSecret{aead: aead, id: derive(key, eabIDLabel)}, nil
}

func derive(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// GenerateEABSecret makes a new random secret and returns it with the text of its
// key file.
func GenerateEABSecret() (*EABSecret, []byte) {
	key := make([]byte, EABSecretSize)
	rand.Read(key) // never fails (crypto/rand)
	s, err := NewEABSecret(key)
	if err != nil {
		panic(err) // the length is right by construction
	}
	return s, []byte(hex.EncodeToString(key) + "\n")
}

// ParseEABSecret reads the text of a key file: the key as hex (64 digits), with
// surrounding white space allowed.
func ParseEABSecret(text []byte) (*EABSecret, error) {
	key, err := hex.DecodeString(string(bytes.TrimSpace(text)))
	if err != nil || len(key) != EABSecretSize {
		return nil, fmt.Errorf("not an EAB secret: want %d hex digits", 2*EABSecretSize)
	}
	return NewEABSecret(key)
}

// ReadEABSecretFile reads the secret from its key file. The caller checks that
// the file is its owner's only.
func ReadEABSecretFile(path string) (*EABSecret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseEABSecret(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// CreateEABSecretFile makes a new secret and writes it to path, which must not
// exist (else an error satisfying errors.Is(err, fs.ErrExist)), readable and
// writable by its owner only, and durably: a database sealed with a secret that a
// crash then lost would keep no usable HMAC key. The file appears whole or not at
// all (written beside, then linked), so a second process starting at once reads
// either nothing or the whole secret.
func CreateEABSecretFile(path string) (*EABSecret, error) {
	s, text := GenerateEABSecret()
	if err := keyfile.Create(path, text); err != nil {
		return nil, err
	}
	return s, nil
}

// ID names the secret in messages: the start of its id, which reveals nothing of it.
func (k *EABSecret) ID() string { return hex.EncodeToString(k.id[:8]) }

// eabAD is the associated data of kid's sealed HMAC key.
func eabAD(kid string) []byte { return append([]byte(eabSealLabel+"\x00"), kid...) }

// seal encrypts kid's HMAC key: sealedV1, a random nonce, the ciphertext and tag.
func (k *EABSecret) seal(kid string, hmacKey []byte) []byte {
	out := make([]byte, 1+k.aead.NonceSize(), 1+k.aead.NonceSize()+len(hmacKey)+k.aead.Overhead())
	out[0] = sealedV1
	rand.Read(out[1:]) // never fails (crypto/rand)
	return k.aead.Seal(out, out[1:], hmacKey, eabAD(kid))
}

// open decrypts what seal made for kid.
func (k *EABSecret) open(kid string, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < 1+n+k.aead.Overhead() || sealed[0] != sealedV1 {
		return nil, ErrEABSecret
	}
	key, err := k.aead.Open(nil, sealed[1:1+n], sealed[1+n:], eabAD(kid))
	if err != nil {
		return nil, ErrEABSecret
	}
	return key, nil
}

// eabSecretSetting is the settings row holding the hex id of the secret that seals
// this database's EAB keys.
const eabSecretSetting = "eab_secret"

// sealEABKeys is migration 0023 (Go): every HMAC key stored in clear until now is
// sealed in place, and the secret's id recorded, in the migration's transaction.
// It runs once per database, whichever replica or command opens it first; a
// plaintext value written into eab_keys later is never sealed, and does not open.
func (s *SQL) sealEABKeys(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT kid, hmac_key FROM eab_keys`)
	if err != nil {
		return err
	}
	type plain struct {
		kid string
		key []byte
	}
	var keys []plain
	for rows.Next() {
		var p plain
		if err := rows.Scan(&p.kid, &p.key); err != nil {
			rows.Close()
			return err
		}
		keys = append(keys, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range keys {
		if _, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE eab_keys SET hmac_key = ? WHERE kid = ?`), s.secret.seal(p.kid, p.key), p.kid); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, s.d.rebind(`INSERT INTO settings (name, value, set_at) VALUES (?, ?, ?)`),
		eabSecretSetting, hex.EncodeToString(s.secret.id), time.Now().UnixMicro())
	return err
}

// checkEABSecret refuses a store opened with another secret than the one its EAB
// keys are sealed with.
func (s *SQL) checkEABSecret(ctx context.Context) error {
	var recorded string
	err := s.q().QueryRowContext(ctx, s.d.rebind(`SELECT value FROM settings WHERE name = ?`), eabSecretSetting).Scan(&recorded)
	if err != nil {
		return fmt.Errorf("reading the EAB secret's id: %w", err)
	}
	if want, err := hex.DecodeString(recorded); err != nil || !hmac.Equal(want, s.secret.id) {
		id := recorded
		if len(id) > 16 {
			id = id[:16]
		}
		return &EABSecretMismatchError{Given: s.secret.ID(), Database: id}
	}
	return nil
}

// EABSecretMismatchError is the refusal to open a database whose EAB keys another
// secret sealed.
type EABSecretMismatchError struct {
	Given, Database string // ids (EABSecret.ID)
}

func (e *EABSecretMismatchError) Error() string {
	return fmt.Sprintf("this database's EAB keys are sealed with EAB secret %s, not with the one given (%s)", e.Database, e.Given)
}
