package authority

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/go-jose/go-jose/v4"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws"
	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/internal/mailaddr"
	"github.com/varmenne/varmenne/policy/keys"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/store"
)

// maxContacts bounds the contact list of an account.
const maxContacts = 10

// AccountByKey finds the account that holds key.
func (a *Authority) AccountByKey(ctx context.Context, key *jose.JSONWebKey) (*store.Account, error) {
	tp, err := jws.Thumbprint(key)
	if err != nil {
		return nil, acme.Errorf(acme.BadPublicKey, "the account key has no thumbprint: %v", err)
	}
	acct, err := a.store.GetAccountByThumbprint(ctx, tp)
	if isNotFound(err) {
		return nil, acme.Errorf(acme.AccountDoesNotExist, "no account exists for this key; create one with newAccount and an External Account Binding")
	}
	if err != nil {
		return nil, a.internal(ctx, "look up the account", err)
	}
	return acct, nil
}

// Account finds an account by id for a kid; a deactivated account is refused.
func (a *Authority) Account(ctx context.Context, id string) (*store.Account, error) {
	acct, err := a.store.GetAccount(ctx, id)
	if isNotFound(err) {
		return nil, acme.Errorf(acme.AccountDoesNotExist, "account %s does not exist", id)
	}
	if err != nil {
		return nil, a.internal(ctx, "look up the account", err)
	}
	if acct.Status != string(acme.StatusValid) {
		return nil, acme.Errorf(acme.Unauthorized, "account %s is %s and can no longer be used", id, acct.Status)
	}
	return acct, nil
}

// AccountKey returns the account's public key. The key is parsed once per JWK: a
// parsed key is kept under the JWK's exact bytes, so a key change (new bytes) is
// never answered with the old key. Callers must not change the returned key. The
// account itself, and with it its status, is still read on every request.
func AccountKey(acct *store.Account) (*jose.JSONWebKey, error) {
	if k := accountKeys.get(acct.JWK); k != nil {
		return k, nil
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(acct.JWK); err != nil {
		return nil, err
	}
	accountKeys.put(acct.JWK, &k)
	return &k, nil
}

// accountKeys are the parsed account keys, by JWK.
var accountKeys = keyCache{max: 10000}

// keyCache maps a JWK's bytes to the key parsed from them. Full, it starts again
// empty: the price is one parse per account, and its size stays bounded.
type keyCache struct {
	mu   sync.RWMutex
	max  int
	keys map[string]*jose.JSONWebKey
}

func (c *keyCache) get(jwk []byte) *jose.JSONWebKey {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.keys[string(jwk)]
}

func (c *keyCache) put(jwk []byte, k *jose.JSONWebKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil || len(c.keys) >= c.max {
		c.keys = make(map[string]*jose.JSONWebKey)
	}
	c.keys[string(jwk)] = k
}

// NewAccount handles newAccount. url is the request URL the EAB must be bound to.
// It returns the account and whether it was created now (201) or existed (200).
func (a *Authority) NewAccount(ctx context.Context, req acme.NewAccountRequest, key *jose.JSONWebKey, url string) (*store.Account, bool, error) {
	existing, err := a.AccountByKey(ctx, key)
	if err == nil {
		// RFC 8555 7.3.1: an existing key returns its account; 7.3.6: a deactivated
		// account's key is no longer accepted. Finding an account is no step towards
		// a certificate, so its standing is not asked: clients look their account up
		// this way before they revoke.
		if existing.Status != string(acme.StatusValid) {
			return nil, false, acme.Errorf(acme.Unauthorized, "account %s is %s and can no longer be used; register a new key with a new EAB key", existing.ID, existing.Status)
		}
		return existing, false, nil
	}
	if !acme.IsKind(err, acme.AccountDoesNotExist) || req.OnlyReturnExisting {
		return nil, false, err
	}
	if len(req.ExternalAccountBinding) == 0 || string(req.ExternalAccountBinding) == "null" {
		return nil, false, acme.Errorf(acme.ExternalAccountRequired,
			"this CA requires an External Account Binding: ask your organisation's registrar for an EAB key id and HMAC key")
	}
	if err := a.checkAccountKey(ctx, key); err != nil {
		return nil, false, err
	}
	contacts, err := checkContacts(req.Contact)
	if err != nil {
		return nil, false, err
	}
	eab, err := jws.ParseEAB(req.ExternalAccountBinding, url, key)
	if err != nil {
		return nil, false, err
	}
	ek, err := a.store.GetEAB(ctx, eab.KID)
	if isNotFound(err) {
		return nil, false, acme.Errorf(acme.Unauthorized, "EAB key id %q is unknown", eab.KID)
	}
	if err != nil {
		return nil, false, a.internal(ctx, "look up the EAB key", err)
	}
	// The MAC is checked before the key's state is revealed, so only its holder learns it.
	if err := eab.VerifyMAC(ek.HMACKey); err != nil {
		return nil, false, err
	}
	// Binding a key is the first step towards a certificate: the standing check
	// judges the key and its organisation (standing.go).
	if err := a.bindingStanding(ctx, ek); err != nil {
		return nil, false, err
	}
	if err := a.limitNewAccount(ctx, ek.OrgOID); err != nil {
		return nil, false, err
	}
	jwkJSON, err := key.MarshalJSON()
	if err != nil {
		return nil, false, a.internal(ctx, "encode the account key", err)
	}
	tp, _ := jws.Thumbprint(key)
	acct := store.Account{
		ID:         newID(),
		Thumbprint: tp,
		JWK:        jwkJSON,
		OrgOID:     ek.OrgOID,
		EABKID:     ek.KID,
		Contacts:   contacts,
		Status:     string(acme.StatusValid),
		CreatedAt:  a.now(),
	}
	created := audit.AccountCreated{Account: acct.ID, Org: acct.OrgOID, EABKID: ek.KID}
	switch err := a.record(ctx, created, func(tx *store.Tx) error { return tx.CreateAccount(acct, ek.KID) }); {
	case errors.Is(err, store.ErrConflict):
		return nil, false, acme.Errorf(acme.Unauthorized, "EAB key %s was already used to create an account; ask for a new key", ek.KID)
	case errors.Is(err, store.ErrDuplicate):
		// Another request created an account for this key meanwhile.
		existing, err := a.AccountByKey(ctx, key)
		return existing, false, err
	case err != nil:
		return nil, false, a.internal(ctx, "create the account", err)
	}
	a.log.InfoContext(ctx, "account created", "account", acct.ID, "org", acct.OrgOID, "eab_kid", ek.KID)
	return &acct, true, nil
}

// UpdateAccount changes contacts or deactivates (RFC 8555 7.3.2, 7.3.6).
func (a *Authority) UpdateAccount(ctx context.Context, acct *store.Account, payload []byte) (*store.Account, error) {
	if len(payload) == 0 {
		return acct, nil // POST-as-GET
	}
	var req acme.AccountUpdateRequest
	if err := acme.DecodePayload(payload, &req); err != nil {
		return nil, err
	}
	switch req.Status {
	case "", acme.Status(acct.Status):
		// Clients such as acmez send the account's current status back with a contact
		// update; it changes nothing (RFC 8555 7.3.2).
	case acme.StatusDeactivated:
		// Deactivated already (ErrConflict): the earlier change has its event.
		ended := audit.AccountDeactivated{Account: acct.ID, Org: acct.OrgOID, By: "account"}
		err := a.record(ctx, ended, func(tx *store.Tx) error { return tx.DeactivateAccount(acct.ID) })
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, a.internal(ctx, "deactivate the account", err)
		}
		acct.Status = string(acme.StatusDeactivated)
		a.log.InfoContext(ctx, "account deactivated", "account", acct.ID)
		return acct, nil
	default:
		return nil, acme.Errorf(acme.Malformed, "an account's status can only be changed to \"deactivated\", not %q", req.Status)
	}
	if req.Contact != nil {
		contacts, err := checkContacts(*req.Contact)
		if err != nil {
			return nil, err
		}
		if err := a.store.UpdateAccountContacts(ctx, acct.ID, contacts); err != nil {
			return nil, a.internal(ctx, "update the contacts", err)
		}
		acct.Contacts = contacts
	}
	return acct, nil
}

// ChangeKey is the keyChange rule set (RFC 8555 7.3.5) after acme/server verified both
// signatures: the account's standing (standing.go), inner names the account, oldKey
// is the current key, newKey is unused.
func (a *Authority) ChangeKey(ctx context.Context, acct *store.Account, accountURL string, inner acme.KeyChangeInner, newKey *jose.JSONWebKey) (*store.Account, error) {
	if _, _, err := a.standing(ctx, stepKeyChange, acct, nil); err != nil {
		return nil, err
	}
	if inner.Account != accountURL {
		return nil, acme.Errorf(acme.Malformed, "the inner JWS names account %q, but the outer JWS is signed by %q", inner.Account, accountURL)
	}
	var old jose.JSONWebKey
	if err := old.UnmarshalJSON(inner.OldKey); err != nil {
		return nil, acme.Errorf(acme.Malformed, "oldKey is not a JWK: %v", err)
	}
	oldTP, err := jws.Thumbprint(&old)
	if err != nil || oldTP != acct.Thumbprint {
		return nil, acme.Errorf(acme.Malformed, "oldKey is not the account's current key")
	}
	if err := a.checkAccountKey(ctx, newKey); err != nil {
		return nil, err
	}
	newTP, err := jws.Thumbprint(newKey)
	if err != nil {
		return nil, acme.Errorf(acme.BadPublicKey, "the new key has no thumbprint: %v", err)
	}
	if other, err := a.store.GetAccountByThumbprint(ctx, newTP); err == nil {
		e := acme.Errorf(acme.Malformed, "the new key already belongs to an account").WithStatus(409)
		e.Location = other.ID
		return nil, e
	}
	jwkJSON, err := newKey.MarshalJSON()
	if err != nil {
		return nil, a.internal(ctx, "encode the account key", err)
	}
	changed := audit.AccountKeyChanged{Account: acct.ID, Org: acct.OrgOID, OldThumbprint: acct.Thumbprint, NewThumbprint: newTP}
	switch err := a.record(ctx, changed, func(tx *store.Tx) error {
		return tx.ChangeAccountKey(acct.ID, acct.Thumbprint, newTP, jwkJSON)
	}); {
	case errors.Is(err, store.ErrDuplicate):
		e := acme.Errorf(acme.Malformed, "the new key already belongs to an account").WithStatus(409)
		if other, err := a.store.GetAccountByThumbprint(ctx, newTP); err == nil {
			e.Location = other.ID
		}
		return nil, e
	case errors.Is(err, store.ErrConflict):
		return nil, acme.Errorf(acme.Malformed, "the account key changed meanwhile; fetch the account and try again").WithStatus(409)
	case err != nil:
		return nil, a.internal(ctx, "change the account key", err)
	}
	acct.Thumbprint, acct.JWK = newTP, jwkJSON
	a.log.InfoContext(ctx, "account key changed", "account", acct.ID)
	return acct, nil
}

// checkAccountKey applies key quality and the blocked-key list to an account key.
func (a *Authority) checkAccountKey(ctx context.Context, key *jose.JSONWebKey) error {
	if err := keys.CheckAccountKey(key.Key, a.cfg.WeakKeys); err != nil {
		return err
	}
	hash, err := signer.KeyHash(key.Key)
	if err != nil {
		return acme.Errorf(acme.BadPublicKey, "the account key cannot be encoded: %v", err)
	}
	blocked, err := a.store.KeyBlocked(ctx, hash)
	if err != nil {
		return a.internal(ctx, "check the blocked keys", err)
	}
	if blocked {
		return acme.Errorf(acme.BadPublicKey, "this key was reported compromised and may not be used; generate a new key")
	}
	return nil
}

// checkContacts accepts mailto: URLs with exactly one plain address. The scheme is
// case-insensitive (RFC 3986 section 3.1); it is stored as "mailto:".
func checkContacts(contacts []string) ([]string, error) {
	if len(contacts) > maxContacts {
		return nil, acme.Errorf(acme.InvalidContact, "at most %d contacts are accepted, got %d", maxContacts, len(contacts))
	}
	out := make([]string, 0, len(contacts))
	for _, c := range contacts {
		scheme, addr, ok := strings.Cut(c, ":")
		if !ok || !strings.EqualFold(scheme, "mailto") {
			return nil, acme.Errorf(acme.UnsupportedContact, "contact %q is not supported: only mailto: addresses are", c)
		}
		if strings.ContainsAny(addr, "?,;% \t") {
			return nil, acme.Errorf(acme.InvalidContact, "contact %q must be one plain e-mail address, without hfields or lists", c)
		}
		switch err := mailaddr.Plain(addr); {
		case errors.Is(err, mailaddr.ErrNoDomain):
			return nil, acme.Errorf(acme.InvalidContact, "contact %q has no valid domain", c)
		case err != nil:
			return nil, acme.Errorf(acme.InvalidContact, "contact %q is not a valid e-mail address", c)
		}
		out = append(out, "mailto:"+addr)
	}
	return out, nil
}
