package admin

import (
	"context"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"
)

// BlockKey blocks a public key by the SHA-256 of its SubjectPublicKeyInfo (hex):
// no CSR with it is certified and no account uses it from now on, on every
// replica (the block is in the database, which every finalize and account check
// reads). Administrators only; e.g. for a key reported compromised whose
// certificates were issued elsewhere.
func (s *Service) BlockKey(ctx context.Context, who *store.Operator, keyHash, reason string) error {
	if err := s.allow(ctx, who, "block keys", store.RoleAdministrator); err != nil {
		return err
	}
	keyHash = strings.ToLower(strings.TrimSpace(strings.ReplaceAll(keyHash, ":", "")))
	if b, err := hex.DecodeString(keyHash); err != nil || len(b) != 32 {
		return errorf(Malformed, "key hash %q: give the hex SHA-256 of the key's SubjectPublicKeyInfo (openssl pkey -pubin -outform DER | sha256sum)", keyHash)
	}
	reason, err := text("reason", reason, true)
	if err != nil {
		return err
	}
	err = s.aud.Do(ctx, func(tx *store.Tx) ([]audit.Record, error) {
		return []audit.Record{audit.Done(who.Name, audit.KeyBlocked{KeyHash: keyHash, Reason: reason})},
			tx.BlockKey(store.BlockedKey{KeyHash: keyHash, Reason: reason, Source: "operator " + who.Name, CreatedAt: s.now()})
	})
	if errors.Is(err, store.ErrDuplicate) {
		return errorf(Conflict, "key %s is blocked already", keyHash)
	}
	if err != nil {
		return s.internal(ctx, "block the key", err)
	}
	return nil
}
