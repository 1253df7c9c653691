package jws

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"hash"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/varmenne/varmenne/acme"
)

// macAlgorithms are the MAC algorithms accepted for an external account binding.
var macAlgorithms = map[string]func() hash.Hash{
	"HS256": sha256.New,
	"HS384": sha512.New384,
	"HS512": sha512.New,
}

// EAB is a parsed externalAccountBinding (RFC 8555 section 7.3.4), not yet MAC-checked.
type EAB struct {
	KID string
	Alg string // HS256, HS384 or HS512

	signingInput []byte // ASCII(protected "." payload), as sent
	mac          []byte
}

// ParseEAB checks the structure and binding of an externalAccountBinding: a flattened
// JWS with a MAC alg, a kid, no nonce, the outer url, and the outer JWS's key as payload.
//
// A payload key that differs from outerKey is unauthorized (403), not badPublicKey: the
// key itself may be fine, but the holder of the HMAC key bound a different one, so the
// request is not authorised by this binding, just as with a wrong MAC.
func ParseEAB(raw json.RawMessage, outerURL string, outerKey *jose.JSONWebKey) (*EAB, error) {
	const what = "externalAccountBinding"
	if outerKey == nil || outerKey.Key == nil {
		return nil, errors.New("jws: ParseEAB needs the outer JWS key")
	}
	env, err := parseEnvelope(raw, what)
	if err != nil {
		return nil, err
	}
	h, err := parseProtected(env.protected, what)
	if err != nil {
		return nil, err
	}

	e := &EAB{}
	alg, hasAlg, err := h.str("alg")
	if err != nil {
		return nil, err
	}
	if !hasAlg {
		return nil, acme.Errorf(acme.Malformed, "%s protected header has no alg; use HS256, HS384 or HS512", what)
	}
	if macAlgorithms[alg] == nil {
		return nil, acme.Errorf(acme.Malformed, "%s alg %q is not a MAC algorithm; use HS256, HS384 or HS512", what, alg)
	}
	e.Alg = alg
	if e.KID, _, err = h.str("kid"); err != nil {
		return nil, err
	}
	if e.KID == "" {
		return nil, acme.Errorf(acme.Malformed, "%s has no kid; use the key identifier the CA issued with your HMAC key", what)
	}
	if _, ok := h["nonce"]; ok {
		return nil, acme.Errorf(acme.Malformed, "%s protected header must not contain a nonce (RFC 8555 section 7.3.4)", what)
	}
	url, _, err := h.str("url")
	if err != nil {
		return nil, err
	}
	if url != outerURL {
		return nil, acme.Errorf(acme.Malformed, "%s url %q differs from the newAccount url %q; they must be equal", what, url, outerURL)
	}
	if len(env.signature) == 0 {
		return nil, acme.Errorf(acme.Malformed, "%s signature is empty", what)
	}

	if err := checkJSONObject(env.payload); err != nil {
		return nil, acme.Errorf(acme.Malformed, "%s payload %s; it must be your account key as a JWK", what, err)
	}
	key, err := parseJWK(env.payload, "")
	if err != nil {
		if ae, ok := acme.AsError(err); ok {
			ae.Detail = what + " payload: " + ae.Detail
		}
		return nil, err
	}
	if !KeyEqual(key, outerKey) {
		return nil, acme.Errorf(acme.Unauthorized, "%s binds a different key than the one that signed this request; bind your account key", what)
	}

	e.signingInput = []byte(env.protectedB64 + "." + env.payloadB64)
	e.mac = env.signature
	return e, nil
}

// VerifyMAC checks the MAC with hmacKey in constant time; a wrong MAC is unauthorized.
func (e *EAB) VerifyMAC(hmacKey []byte) error {
	if e == nil || e.signingInput == nil {
		return errors.New("jws: VerifyMAC on an EAB that ParseEAB did not return")
	}
	if len(hmacKey) == 0 {
		return errors.New("jws: VerifyMAC needs an HMAC key")
	}
	mac := hmac.New(macAlgorithms[e.Alg], hmacKey)
	mac.Write(e.signingInput)
	if !hmac.Equal(mac.Sum(nil), e.mac) {
		return acme.Errorf(acme.Unauthorized, "externalAccountBinding MAC does not verify for kid %q; sign it with the HMAC key issued with this kid (base64url-decoded)", e.KID)
	}
	return nil
}
