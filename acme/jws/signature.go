package jws

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"math/big"
)

// verifySignature reports whether sig is a valid alg signature of input under key, as
// RFC 7518 section 3 defines each alg of Algorithms. Verify has already checked with
// checkKeyAlg that key fits alg; the type and curve checks here only keep a mismatch
// from ever reaching a verifier.
func verifySignature(alg string, key any, input, sig []byte) bool {
	switch alg {
	case "RS256": // RSASSA-PKCS1-v1_5 with SHA-256 (section 3.3)
		k, ok := key.(*rsa.PublicKey)
		if !ok {
			return false
		}
		digest := sha256.Sum256(input)
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig) == nil
	case "ES256": // ECDSA P-256 with SHA-256 (section 3.4)
		digest := sha256.Sum256(input)
		return verifyECDSA(key, elliptic.P256(), digest[:], sig)
	case "ES384": // ECDSA P-384 with SHA-384
		digest := sha512.Sum384(input)
		return verifyECDSA(key, elliptic.P384(), digest[:], sig)
	case "EdDSA": // Ed25519 (RFC 8037 section 3.1); ed25519.Verify panics on a short key
		k, ok := key.(ed25519.PublicKey)
		return ok && len(k) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize &&
			ed25519.Verify(k, input, sig)
	}
	return false
}

// verifyECDSA checks a JWS ECDSA signature: R and S as fixed-size big-endian integers
// of the curve's byte length, concatenated (RFC 7518 section 3.4). Any other length,
// including the ASN.1 DER form crypto.Signer produces, is refused rather than guessed at.
func verifyECDSA(key any, curve elliptic.Curve, digest, sig []byte) bool {
	k, ok := key.(*ecdsa.PublicKey)
	if !ok || k.Curve != curve {
		return false
	}
	size := (curve.Params().BitSize + 7) / 8
	if len(sig) != 2*size {
		return false
	}
	r := new(big.Int).SetBytes(sig[:size])
	s := new(big.Int).SetBytes(sig[size:])
	return ecdsa.Verify(k, digest, r, s)
}
