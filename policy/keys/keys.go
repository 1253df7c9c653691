// Package keys judges public keys. Its functions check a key's quality from the key
// alone and the operator's lists of Debian's weak keys (WeakKeys) — account keys when
// an account is made or its key rolled over (CheckAccountKey), the key in a CSR before
// it is certified (CheckCertificateKey) — and acme/authority calls them on every
// request, whatever the profile. Its plugin,
// "keys", holds the SOTE rules a profile switches on: the profile's key types and no
// key certified twice. Every answer is an *acme.Error the client can act on.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"

	"github.com/varmenne/varmenne/acme"
)

// CheckAccountKey refuses account keys the server will not accept: *acme.Error kind
// badPublicKey. RSA, ECDSA P-256/P-384 and Ed25519 keys are accepted. weak is the
// operator's lists of Debian's weak RSA keys (nil: none loaded).
func CheckAccountKey(pub crypto.PublicKey, weak *WeakKeys) error {
	return check(pub, weak, acme.BadPublicKey, true)
}

// CheckCertificateKey refuses keys that may not be certified: *acme.Error kind badCSR.
// SOTE certificates carry RSA or ECDSA P-256/P-384 keys only. weak is as for
// CheckAccountKey.
func CheckCertificateKey(pub crypto.PublicKey, weak *WeakKeys) error {
	return check(pub, weak, acme.BadCSR, false)
}

func check(pub crypto.PublicKey, weak *WeakKeys, kind acme.ErrorKind, allowEd25519 bool) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return acme.Errorf(kind, "the RSA public key is empty")
		}
		if detail := checkRSA(k, weak); detail != "" {
			return acme.Errorf(kind, "%s", detail)
		}
		return nil
	case *ecdsa.PublicKey:
		if k == nil {
			return acme.Errorf(kind, "the ECDSA public key is empty")
		}
		if detail := checkECDSA(k); detail != "" {
			return acme.Errorf(kind, "%s", detail)
		}
		return nil
	case ed25519.PublicKey:
		if !allowEd25519 {
			return acme.Errorf(kind, "Ed25519 keys cannot be certified; "+
				"SOTE certificates need an RSA (2048, 3072 or 4096 bits) or ECDSA (P-256 or P-384) key")
		}
		if len(k) != ed25519.PublicKeySize {
			return acme.Errorf(kind, "Ed25519 public key is %d bytes, not %d; send the key as generated",
				len(k), ed25519.PublicKeySize)
		}
		return nil
	default:
		// The Go type name would mean nothing to the person at the client.
		if allowEd25519 {
			return acme.Errorf(kind, "this key type is not accepted; "+
				"use RSA (2048, 3072 or 4096 bits), ECDSA (P-256 or P-384) or Ed25519")
		}
		return acme.Errorf(kind, "this key type is not accepted; "+
			"use RSA (2048, 3072 or 4096 bits) or ECDSA (P-256 or P-384)")
	}
}

// checkECDSA returns why k is refused, or "".
func checkECDSA(k *ecdsa.PublicKey) string {
	if k.Curve == nil {
		return "the ECDSA public key names no curve; use P-256 or P-384"
	}
	// Compare with the standard library's own curves, not by name: a look-alike
	// CurveParams would bypass the constant-time implementations and point checks.
	if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
		switch name := k.Curve.Params().Name; name {
		case "P-256", "P-384":
			return "ECDSA key on a non-standard implementation of " + name +
				" is not accepted; send a plain P-256 or P-384 key"
		case "":
			return "ECDSA key on an unnamed curve is not accepted; use P-256 or P-384"
		default:
			return "ECDSA key on curve " + name + " is not accepted; use P-256 or P-384"
		}
	}
	if k.X == nil || k.Y == nil {
		return "the ECDSA public key has no point; send the key as generated"
	}
	// Bytes validates the point: on the curve, not the point at infinity, and
	// coordinates in [0, p). Parsers usually enforce this, but a caller may build the
	// key from JSON or by hand.
	if _, err := k.Bytes(); err != nil {
		return "ECDSA public key is not a valid point on " + k.Curve.Params().Name +
			"; generate a new key"
	}
	if smallScalar(k) {
		return "the ECDSA key's private scalar is a small number, which anyone can find in moments; the key generator is broken: generate a new key with a sound one"
	}
	return ""
}
