// Package jws answers one question for the ACME server: is this request body an
// acceptable, authentic JWS (and, for newAccount, external account binding) for this URL?
//
// It owns the structural rules of RFC 8555 section 6.2 (one flattened JWS, everything in
// the protected header, an allow-listed alg, jwk xor kid, a url), key parsing and
// signature checks, key thumbprints, and the structure and MAC of an EAB (section 7.3.4).
//
// It must not know about nonces' validity, accounts, HMAC key storage or HTTP: the
// server runs a linear check (Parse → find the key → Verify → redeem the nonce →
// compare the url) and decides which step applies to which resource. Every refusal a
// client should see is an *acme.Error; any other error is a caller bug.
package jws

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/varmenne/varmenne/acme"
)

// Algorithms the server accepts on the outer JWS, in the order the directory/problem lists them.
var Algorithms = []string{"RS256", "ES256", "ES384", "EdDSA"}

// Message is a parsed, structurally valid, NOT yet verified flattened JWS.
type Message struct {
	Alg   string
	Nonce string           // "" if absent
	URL   string           // always non-empty after Parse
	KID   string           // "" unless the header had kid
	JWK   *jose.JSONWebKey // nil unless the header had jwk

	hasNonce bool
	// What the signature covers and the signature itself, as sent; Parse guarantees
	// both are non-nil, which Verify relies on to tell a parsed Message from another.
	signingInput []byte // ASCII(protected "." payload), RFC 7515 section 5.2
	signature    []byte
	payload      []byte // decoded
}

// Parse checks body is exactly one flattened JWS suitable for ACME.
func Parse(body []byte) (*Message, error) {
	return parse(body, "JWS")
}

// ParseKeyChange parses the inner JWS of a keyChange (RFC 8555 section 7.3.5): same
// structural rules as Parse, but it must carry jwk (the new key), must not carry kid,
// and must not carry a nonce.
func ParseKeyChange(body []byte) (*Message, error) {
	const what = "inner JWS of the key change"
	m, err := parse(body, what)
	if err != nil {
		return nil, err
	}
	if m.JWK == nil {
		return nil, acme.Errorf(acme.Malformed, "the %s must carry the new key as jwk, not kid (RFC 8555 section 7.3.5)", what)
	}
	if m.hasNonce {
		return nil, acme.Errorf(acme.Malformed, "the %s must not carry a nonce (RFC 8555 section 7.3.5)", what)
	}
	return m, nil
}

func parse(body []byte, what string) (*Message, error) {
	env, err := parseEnvelope(body, what)
	if err != nil {
		return nil, err
	}
	h, err := parseProtected(env.protected, what)
	if err != nil {
		return nil, err
	}

	alg, ok, err := h.str("alg")
	if err != nil {
		return nil, err
	}
	if !ok || alg == "" {
		return nil, acme.Errorf(acme.Malformed, "the %s protected header has no alg", what)
	}
	if !slices.Contains(Algorithms, alg) {
		return nil, badAlg("the %s alg %q is not accepted; sign with one of %s", what, alg, strings.Join(Algorithms, ", "))
	}

	m := &Message{Alg: alg}
	_, hasJWK := h["jwk"]
	_, hasKID := h["kid"]
	switch {
	case hasJWK && hasKID:
		return nil, acme.Errorf(acme.Malformed, "the %s protected header has both jwk and kid; send jwk only for newAccount and revocation by certificate key, kid otherwise", what)
	case !hasJWK && !hasKID:
		return nil, acme.Errorf(acme.Malformed, "the %s protected header has neither jwk nor kid; one of them identifies the signing key", what)
	}
	if hasKID {
		if m.KID, _, err = h.str("kid"); err != nil {
			return nil, err
		}
		if m.KID == "" {
			return nil, acme.Errorf(acme.Malformed, "the %s kid is empty; it must be your account URL", what)
		}
	}

	if m.Nonce, m.hasNonce, err = h.str("nonce"); err != nil {
		return nil, err
	}
	if m.URL, _, err = h.str("url"); err != nil {
		return nil, err
	}
	if m.URL == "" {
		return nil, acme.Errorf(acme.Malformed, "the %s protected header has no url; it must be the URL the request is sent to", what)
	}

	if hasJWK {
		if m.JWK, err = parseJWK(h["jwk"], alg); err != nil {
			return nil, err
		}
	}
	if len(env.signature) == 0 {
		return nil, acme.Errorf(acme.Malformed, "the %s signature is empty", what)
	}

	m.signingInput = signingInput(env.protectedB64, env.payloadB64)
	m.signature = env.signature
	m.payload = env.payload
	return m, nil
}

// signingInput is ASCII(protected "." payload) in one allocation.
func signingInput(protectedB64, payloadB64 string) []byte {
	b := make([]byte, 0, len(protectedB64)+1+len(payloadB64))
	b = append(b, protectedB64...)
	b = append(b, '.')
	return append(b, payloadB64...)
}

// Verify checks the signature with key and returns the payload bytes ("" payload for
// POST-as-GET is returned as an empty slice). The key must fit the JWS alg: for a kid
// this is where an account key that does not match the alg is refused.
func (m *Message) Verify(key *jose.JSONWebKey) ([]byte, error) {
	if m == nil || m.signingInput == nil || m.signature == nil {
		return nil, errors.New("jws: Verify on a Message that Parse did not return")
	}
	if key == nil || key.Key == nil {
		return nil, errors.New("jws: Verify needs a key")
	}
	pub := key.Public()
	if pub.Key == nil {
		return nil, fmt.Errorf("jws: Verify cannot use a key of type %T", key.Key)
	}
	if err := checkKeyAlg(pub.Key, m.Alg); err != nil {
		return nil, err
	}
	if !verifySignature(m.Alg, pub.Key, m.signingInput, m.signature) {
		return nil, acme.Errorf(acme.Malformed, "JWS signature is invalid")
	}
	payload := m.payload
	if payload == nil {
		payload = []byte{}
	}
	return payload, nil
}

func badAlg(format string, args ...any) *acme.Error {
	e := acme.Errorf(acme.BadSignatureAlgorithm, format, args...)
	e.Algorithms = slices.Clone(Algorithms)
	return e
}

// envelope is the decoded flattened JWS serialization.
type envelope struct {
	protectedB64, payloadB64 string
	protected, payload       []byte
	signature                []byte
}

// parseEnvelope checks body is one flattened JWS JSON object whose only members are
// protected, payload and signature, each valid base64url.
func parseEnvelope(body []byte, what string) (*envelope, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, acme.Errorf(acme.Malformed, "the %s is empty; send a flattened JWS JSON object (RFC 8555 section 6.2)", what)
	}
	if trimmed[0] != '{' {
		return nil, acme.Errorf(acme.Malformed, "the %s is not a JSON object; only the flattened JSON serialization is accepted, not compact (RFC 8555 section 6.2)", what)
	}
	if err := checkJSONObject(body); err != nil {
		return nil, acme.Errorf(acme.Malformed, "the %s %s", what, err)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return nil, acme.Errorf(acme.Malformed, "the %s is not valid JSON", what)
	}
	if _, ok := members["signatures"]; ok {
		return nil, acme.Errorf(acme.Malformed, "the %s uses the general serialization (signatures); send one flattened JWS with a single signature", what)
	}
	if _, ok := members["header"]; ok {
		return nil, acme.Errorf(acme.Malformed, "the %s has an unprotected header; put every header parameter in protected", what)
	}
	for _, name := range slices.Sorted(maps.Keys(members)) {
		if name != "protected" && name != "payload" && name != "signature" {
			return nil, acme.Errorf(acme.Malformed, "the %s has an unexpected member %q; only protected, payload and signature are allowed", what, name)
		}
	}

	env := &envelope{}
	for _, p := range []struct {
		name string
		b64  *string
		dst  *[]byte
	}{
		{"protected", &env.protectedB64, &env.protected},
		{"payload", &env.payloadB64, &env.payload},
		{"signature", nil, &env.signature},
	} {
		raw, ok := members[p.name]
		if !ok {
			return nil, acme.Errorf(acme.Malformed, "the %s has no %s member", what, p.name)
		}
		// null would decode as "" and pass for an empty member.
		var s string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			return nil, acme.Errorf(acme.Malformed, "the %s member %s must be a base64url string", what, p.name)
		}
		b, ok := decodeB64(s)
		if !ok {
			return nil, acme.Errorf(acme.Malformed, "the %s member %s is not valid base64url (use the URL-safe alphabet without padding)", what, p.name)
		}
		if p.b64 != nil {
			*p.b64 = s
		}
		*p.dst = b
	}
	return env, nil
}

// header is a protected header, member by member, exactly as named on the wire.
type header map[string]json.RawMessage

// parseProtected decodes the protected header, refusing ambiguity and the header
// parameters that would change how the JWS is read.
func parseProtected(data []byte, what string) (header, error) {
	if err := checkJSONObject(data); err != nil {
		return nil, acme.Errorf(acme.Malformed, "the %s protected header %s", what, err)
	}
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, acme.Errorf(acme.Malformed, "the %s protected header is not valid JSON", what)
	}
	// crit names extensions we would have to understand; b64:false (RFC 7797) would make
	// the payload member raw bytes, which a reader honouring it would read differently.
	for _, name := range []string{"crit", "b64"} {
		if _, ok := h[name]; ok {
			return nil, acme.Errorf(acme.Malformed, "the %s protected header member %q is not supported", what, name)
		}
	}
	return h, nil
}

// str returns the string member name, whether it is present, and a malformed error if
// it is present but not a string.
func (h header) str(name string) (string, bool, error) {
	raw, ok := h[name]
	if !ok {
		return "", false, nil
	}
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", true, acme.Errorf(acme.Malformed, "protected header member %q must be a string", name)
	}
	return s, true, nil
}
