// Package jwstest builds ACME request bodies for tests and load generators: flattened
// JWS signed the way real clients sign them, crafted ones with a caller-chosen protected
// header, and external account bindings. Server code must not import it.
package jwstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"

	jose "github.com/go-jose/go-jose/v4"
)

// Sign makes a flattened JWS over payload with key (*ecdsa.PrivateKey, *rsa.PrivateKey
// or ed25519.PrivateKey), putting either the public jwk (when kid == "") or kid in the
// protected header, plus nonce (omitted if "") and url. A nil payload makes a
// POST-as-GET body (payload "").
func Sign(key crypto.Signer, kid, nonce, url string, payload []byte) ([]byte, error) {
	alg, err := algFor(key)
	if err != nil {
		return nil, err
	}
	h := struct {
		Alg   string           `json:"alg"`
		JWK   *jose.JSONWebKey `json:"jwk,omitempty"`
		KID   string           `json:"kid,omitempty"`
		Nonce string           `json:"nonce,omitempty"`
		URL   string           `json:"url"`
	}{Alg: alg, KID: kid, Nonce: nonce, URL: url}
	if kid == "" {
		h.JWK = JWK(key)
	}
	protected, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	return SignProtected(key, protected, payload)
}

// SignProtected signs with an explicit protected header, used verbatim, so tests can
// craft bad inputs (extra or duplicate members, a wrong alg label). The algorithm is
// the key's own (RS256 for RSA, ES256/ES384/ES512 by curve, EdDSA for Ed25519); if the
// header's alg names another one, the result is a deliberately mislabelled JWS.
func SignProtected(key crypto.Signer, protectedJSON []byte, payload []byte) ([]byte, error) {
	p := b64(protectedJSON)
	pl := b64(payload)
	sig, err := signInput(key, []byte(p+"."+pl))
	if err != nil {
		return nil, err
	}
	return flattened(p, pl, b64(sig))
}

// EAB builds the externalAccountBinding JSON (flattened JWS, HS256 unless alg is given)
// binding accountKey's public JWK to kid and hmacKey for url.
func EAB(accountKey crypto.Signer, kid string, hmacKey []byte, url string, alg string) (json.RawMessage, error) {
	if alg == "" {
		alg = "HS256"
	}
	newHash := map[string]func() hash.Hash{"HS256": sha256.New, "HS384": sha512.New384, "HS512": sha512.New}[alg]
	if newHash == nil {
		return nil, fmt.Errorf("jwstest: EAB alg %q is not HS256, HS384 or HS512", alg)
	}
	protected, err := json.Marshal(struct {
		Alg string `json:"alg"`
		KID string `json:"kid"`
		URL string `json:"url"`
	}{alg, kid, url})
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(JWK(accountKey))
	if err != nil {
		return nil, err
	}
	p, pl := b64(protected), b64(payload)
	mac := hmac.New(newHash, hmacKey)
	mac.Write([]byte(p + "." + pl))
	return flattened(p, pl, b64(mac.Sum(nil)))
}

// JWK returns the public JWK of key.
func JWK(key crypto.Signer) *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: key.Public()}
}

func algFor(key crypto.Signer) (string, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return "RS256", nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256", nil
		case elliptic.P384():
			return "ES384", nil
		case elliptic.P521():
			return "ES512", nil
		}
	case ed25519.PrivateKey:
		return "EdDSA", nil
	}
	return "", fmt.Errorf("jwstest: cannot sign with a %T", key)
}

// signInput signs a JWS signing input the way RFC 7518 defines for the key's algorithm:
// ECDSA signatures are the fixed-size r||s, not ASN.1.
func signInput(key crypto.Signer, input []byte) ([]byte, error) {
	if _, err := algFor(key); err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		d := sha256.Sum256(input)
		return rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
	case *ecdsa.PrivateKey:
		var h hash.Hash
		switch k.Curve {
		case elliptic.P256():
			h = sha256.New()
		case elliptic.P384():
			h = sha512.New384()
		default:
			h = sha512.New()
		}
		h.Write(input)
		r, s, err := ecdsa.Sign(rand.Reader, k, h.Sum(nil))
		if err != nil {
			return nil, err
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*size)
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
		return sig, nil
	default:
		return ed25519.Sign(key.(ed25519.PrivateKey), input), nil
	}
}

func flattened(protected, payload, signature string) ([]byte, error) {
	return json.Marshal(struct {
		Protected string `json:"protected"`
		Payload   string `json:"payload"`
		Signature string `json:"signature"`
	}{protected, payload, signature})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
