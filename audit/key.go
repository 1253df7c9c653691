package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"

	"github.com/varmenne/varmenne/internal/keyfile"
	"github.com/varmenne/varmenne/store"
)

// Key keys the audit log: every event appended with it carries a MAC, the
// HMAC-SHA256 of its sequence number and hash under the key. The key lives outside
// the database (a file of its own, which replicas and the operator commands
// share), so someone who can only write the database can change an event and
// recompute the chain, but not the MAC: Verify with the key finds the rewrite.
type Key struct {
	k  []byte
	id []byte // HMAC of a fixed label: names the key, reveals nothing of it
}

// KeySize is the length of the key in bytes.
const KeySize = 32

// Domain-separated uses of the one key.
const (
	macLabel   = "varmenne-audit-mac-v1"
	keyIDLabel = "varmenne audit key id v1"
)

// NewKey makes the key of KeySize bytes.
func NewKey(k []byte) (*Key, error) {
	if len(k) != KeySize {
		return nil, fmt.Errorf("audit: an audit key is %d bytes, not %d", KeySize, len(k))
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(keyIDLabel))
	return &Key{k: bytes.Clone(k), id: m.Sum(nil)}, nil
}

// GenerateKey makes a new random key and returns it with the text of its key file.
func GenerateKey() (*Key, []byte) {
	k := make([]byte, KeySize)
	rand.Read(k) // never fails (crypto/rand)
	key, err := NewKey(k)
	if err != nil {
		panic(err) // the length is right by construction
	}
	return key, []byte(hex.EncodeToString(k) + "\n")
}

// ParseKey reads the text of a key file: the key as hex (64 digits), with
// surrounding white space allowed.
func ParseKey(text []byte) (*Key, error) {
	k, err := hex.DecodeString(string(bytes.TrimSpace(text)))
	if err != nil || len(k) != KeySize {
		return nil, fmt.Errorf("not an audit key: want %d hex digits", 2*KeySize)
	}
	return NewKey(k)
}

// ReadKeyFile reads the key from its file. The caller checks that the file is its
// owner's only.
func ReadKeyFile(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// CreateKeyFile makes a new key and writes it to path, which must not exist (else
// an error satisfying errors.Is(err, fs.ErrExist)): 0600, whole and durable.
func CreateKeyFile(path string) (*Key, error) {
	k, text := GenerateKey()
	if err := keyfile.Create(path, text); err != nil {
		return nil, err
	}
	return k, nil
}

// ID names the key in messages: the start of its id, which reveals nothing of it.
func (k *Key) ID() string { return hex.EncodeToString(k.id[:8]) }

// MAC is the lower-case hex HMAC-SHA256 of e's sequence number and hash under k.
// The hash covers every other field and the previous event's hash, so the MAC
// seals the event and its place in the chain.
func (k *Key) MAC(e store.AuditEvent) string {
	m := hmac.New(sha256.New, k.k)
	m.Write([]byte(macLabel))
	for _, f := range []string{strconv.FormatInt(e.Seq, 10), e.Hash} {
		m.Write([]byte(strconv.Itoa(len(f)) + ":"))
		m.Write([]byte(f))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// Check reports whether e carries its MAC under k.
func (k *Key) Check(e store.AuditEvent) bool {
	got, err := hex.DecodeString(e.MAC)
	if err != nil {
		return false
	}
	want, _ := hex.DecodeString(k.MAC(e))
	return hmac.Equal(got, want)
}
