package signer

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	sotserial "github.com/varmenne/varmenne/policy/serial"
)

// SerialLen is the length in bytes of a SOTE long serial.
const SerialLen = sotserial.Len

// NewSerial returns the SOTE long serial: 0x01 ‖ 8-byte big-endian unix time in ms ‖
// 9 random bytes (18 bytes), as policy/serial draws it. The leading 0x01 keeps the
// DER INTEGER positive and its length fixed, so the serial round-trips byte for byte
// through a certificate.
func NewSerial(now time.Time, random io.Reader) ([]byte, error) {
	s, err := sotserial.New(now, random)
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	return s, nil
}

// KeyHash is the lower-case hex SHA-256 of the public key's SubjectPublicKeyInfo DER.
func KeyHash(pub crypto.PublicKey) (string, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("signer: key hash: %w", err)
	}
	sum := sha256.Sum256(spki)
	return hex.EncodeToString(sum[:]), nil
}

// subjectKeyID is RFC 7093 section 2 method 1: the leftmost 160 bits of the SHA-256
// of the subjectPublicKey BIT STRING value. Go does this only for CA templates, so
// the leaf's SKI is computed here.
func subjectKeyID(spki []byte) ([]byte, error) {
	var info struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	rest, err := asn1.Unmarshal(spki, &info)
	if err != nil {
		return nil, fmt.Errorf("signer: subject key identifier: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("signer: subject key identifier: trailing data after SubjectPublicKeyInfo")
	}
	sum := sha256.Sum256(info.PublicKey.Bytes)
	return sum[:20], nil
}
