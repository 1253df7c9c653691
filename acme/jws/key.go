package jws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/varmenne/varmenne/acme"
)

// RSA modulus bounds for signature checks. Key quality (2048-bit minimum, exponent,
// ROCA …) is policy/keys' job; these bounds exist because crypto/rsa refuses to verify
// below 1024 bits, and a huge modulus would make every verification expensive.
const (
	minRSABits = 1024
	maxRSABits = 8192
)

// privateMembers are JWK members that carry private or symmetric key material.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// parseJWK parses a public JWK from a protected header (alg is the JWS alg it must fit)
// or from an EAB payload (alg is "").
func parseJWK(raw json.RawMessage, alg string) (*jose.JSONWebKey, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil || members == nil {
		return nil, acme.Errorf(acme.Malformed, "jwk must be a JSON object")
	}
	for _, name := range privateMembers {
		if _, ok := members[name]; ok {
			return nil, acme.Errorf(acme.Malformed, "jwk contains private or symmetric key material (%q); send only the public key", name)
		}
	}
	var m struct{ Kty, Crv, Alg *string }
	for name, dst := range map[string]**string{"kty": &m.Kty, "crv": &m.Crv, "alg": &m.Alg} {
		v, ok := members[name]
		if !ok {
			continue
		}
		*dst = new(string)
		if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, *dst) != nil {
			return nil, acme.Errorf(acme.Malformed, "jwk member %q must be a string", name)
		}
	}
	if m.Kty == nil {
		return nil, acme.Errorf(acme.Malformed, "jwk has no kty")
	}
	crv := ""
	if m.Crv != nil {
		crv = *m.Crv
	}
	switch *m.Kty {
	case "RSA":
	case "EC":
		if crv != "P-256" && crv != "P-384" {
			return nil, acme.Errorf(acme.BadPublicKey, "EC curve %q is not supported; use P-256 or P-384", crv)
		}
	case "OKP":
		if crv != "Ed25519" {
			return nil, acme.Errorf(acme.BadPublicKey, "OKP curve %q is not supported; use Ed25519", crv)
		}
	default:
		return nil, acme.Errorf(acme.BadPublicKey, "jwk key type %q is not supported; use RSA, EC (P-256, P-384) or OKP (Ed25519)", *m.Kty)
	}
	if alg != "" && m.Alg != nil && *m.Alg != alg {
		return nil, acme.Errorf(acme.Malformed, "jwk declares alg %q but the JWS is signed with %q; drop alg from the jwk or make them agree", *m.Alg, alg)
	}

	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil || !k.Valid() {
		return nil, acme.Errorf(acme.BadPublicKey, "jwk is not a valid %s public key; check its members and their base64url encoding", *m.Kty)
	}
	if !k.IsPublic() {
		return nil, acme.Errorf(acme.Malformed, "jwk must be a public key")
	}
	keyAlg, err := algForKey(k.Key)
	if err != nil {
		return nil, err
	}
	if alg != "" && keyAlg != alg {
		return nil, badAlg("JWS alg %s does not fit the %s key in jwk; sign with %s", alg, describeKey(k.Key), keyAlg)
	}
	return &k, nil
}

// checkKeyAlg refuses a key the JWS alg does not fit (RS256 with an EC key, ES256 with
// a P-384 key), so a verifier never runs with a mismatched algorithm.
func checkKeyAlg(key any, alg string) error {
	keyAlg, err := algForKey(key)
	if err != nil {
		return err
	}
	if keyAlg != alg {
		return badAlg("JWS alg %s does not fit the account's %s key; sign with %s", alg, describeKey(key), keyAlg)
	}
	return nil
}

// algForKey is the one algorithm of Algorithms each supported public key signs with.
func algForKey(key any) (string, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			break
		}
		if n := k.N.BitLen(); n < minRSABits || n > maxRSABits {
			return "", acme.Errorf(acme.BadPublicKey, "RSA key of %d bits is outside %d–%d bits", n, minRSABits, maxRSABits)
		}
		return "RS256", nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			break
		}
		switch k.Curve {
		case elliptic.P256():
			return "ES256", nil
		case elliptic.P384():
			return "ES384", nil
		}
		return "", acme.Errorf(acme.BadPublicKey, "EC curve %s is not supported; use P-256 or P-384", k.Curve.Params().Name)
	case ed25519.PublicKey:
		if len(k) == ed25519.PublicKeySize {
			return "EdDSA", nil
		}
	}
	return "", acme.Errorf(acme.BadPublicKey, "the key is not a usable RSA, EC (P-256, P-384) or Ed25519 public key")
}

func describeKey(key any) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		if k.Curve != nil {
			return "EC " + k.Curve.Params().Name
		}
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return "unsupported"
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint, base64url without padding.
func Thumbprint(key *jose.JSONWebKey) (string, error) {
	if key == nil || key.Key == nil {
		return "", errors.New("jws: thumbprint of a nil key")
	}
	sum, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("jws: thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// KeyEqual reports whether two public JWKs are the same key (by thumbprint). A key
// without a thumbprint (nil, symmetric, unknown type) equals nothing.
func KeyEqual(a, b *jose.JSONWebKey) bool {
	ta, err := Thumbprint(a)
	if err != nil {
		return false
	}
	tb, err := Thumbprint(b)
	return err == nil && ta == tb
}
