package crl

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Entry is one revoked certificate as a CRL lists it.
type Entry struct {
	// Serial is the certificate's serial number as big-endian bytes, as the store
	// keeps it. It is encoded as the certificate encodes it (minimal, positive), so
	// the CRL's INTEGER is byte for byte the certificate's.
	Serial         []byte
	RevokedAt      time.Time
	Reason         int       // RFC 5280 CRLReason; 0 (unspecified) is left out, as RFC 5280 5.3.1 asks
	InvalidityDate time.Time // zero: not given
}

// Template is what a CRL states besides its entries.
type Template struct {
	Number     *big.Int // CRLNumber: positive, below 2^159
	ThisUpdate time.Time
	NextUpdate time.Time
	// DistributionPoint is the URL in the issuing distribution point extension:
	// the CRL distribution point the issuer's certificates name. "": none.
	DistributionPoint string
	// Final marks the last CRL of a retired issuer, valid until after its last
	// certificate expired: the one CRL allowed a validity beyond MaxValidity.
	Final bool
}

// maxNumber is 2^159: RFC 5280 5.2.3 limits CRLNumber to 20 octets.
var maxNumber = new(big.Int).Lsh(big.NewInt(1), 159)

var (
	oidAuthorityKeyID   = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber        = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidIssuingDistPoint = asn1.ObjectIdentifier{2, 5, 29, 28}
	oidReasonCode       = asn1.ObjectIdentifier{2, 5, 29, 21}
	oidInvalidityDate   = asn1.ObjectIdentifier{2, 5, 29, 24}

	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519         = asn1.ObjectIdentifier{1, 3, 101, 112}
)

// sigAlg is how an issuer key signs: the AlgorithmIdentifier, the digest, and the
// same algorithm as crypto/x509 names it (to verify the signature).
type sigAlg struct {
	oid    asn1.ObjectIdentifier
	null   bool // RSA's AlgorithmIdentifier carries NULL parameters
	hash   crypto.Hash
	x509ID x509.SignatureAlgorithm
}

// signatureAlgorithm matches the signer's certificates: SOTE issuers sign with
// sha512WithRSAEncryption; EC keys with the hash of their curve's size.
func signatureAlgorithm(pub crypto.PublicKey) (sigAlg, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return sigAlg{oidSHA512WithRSA, true, crypto.SHA512, x509.SHA512WithRSA}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return sigAlg{oidECDSAWithSHA256, false, crypto.SHA256, x509.ECDSAWithSHA256}, nil
		case elliptic.P384():
			return sigAlg{oidECDSAWithSHA384, false, crypto.SHA384, x509.ECDSAWithSHA384}, nil
		case elliptic.P521():
			return sigAlg{oidECDSAWithSHA512, false, crypto.SHA512, x509.ECDSAWithSHA512}, nil
		}
		return sigAlg{}, fmt.Errorf("unsupported issuer curve %s", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return sigAlg{oidEd25519, false, 0, x509.PureEd25519}, nil
	}
	return sigAlg{}, fmt.Errorf("unsupported issuer key type %T", pub)
}

// Build encodes a full version 2 CRL of issuer (RFC 5280 5.1) with the entries in
// the order given, signs it with key — a file key or an HSM key, anything that is a
// crypto.Signer for the issuer certificate's public key — and checks the signature
// against the issuer certificate before returning the DER.
//
// The encoder writes DER directly instead of going through crypto/x509: a CRL of a
// million entries then costs its own size in memory a few times over, not a tree
// of objects per entry. A publisher that republishes keeps a List instead, so that
// the next CRL encodes only the entries that changed.
func Build(issuer *x509.Certificate, key crypto.Signer, t Template, entries []Entry) ([]byte, error) {
	var l List
	if err := l.Set(entries); err != nil {
		return nil, err
	}
	return l.Build(issuer, key, t)
}

// List is the encoded revokedCertificates of a CRL, kept between publications: Set
// with the next list of entries encodes only the entries that are not in the
// previous one (a revocation added, anywhere, and entries dropped after expiry),
// and Build re-signs around the encoded list. A CRL built this way is byte for byte
// the CRL Build makes of the same entries. The zero List is empty. Not safe for
// concurrent use.
type List struct {
	entries []Entry // as last Set; the caller must not change them afterwards
	der     []byte  // the entries' encodings, back to back
	offsets []int   // offsets[i]: where entry i starts in der; len(entries)+1 values
}

// Len is the number of entries.
func (l *List) Len() int { return len(l.entries) }

// Set makes the list hold entries, in that order. The entries that begin and end
// both the previous and the new list are copied as encoded; only those between are
// encoded again. On an error the list is left as it was. Set keeps entries (not a
// copy): the caller must not change them while the List is in use.
func (l *List) Set(entries []Entry) error {
	prefix := 0
	for prefix < len(l.entries) && prefix < len(entries) && sameEntry(&l.entries[prefix], &entries[prefix]) {
		prefix++
	}
	suffix := 0
	for suffix < len(l.entries)-prefix && suffix < len(entries)-prefix &&
		sameEntry(&l.entries[len(l.entries)-1-suffix], &entries[len(entries)-1-suffix]) {
		suffix++
	}
	oldSuffix := len(l.entries) - suffix // first old entry of the common suffix
	newSuffix := len(entries) - suffix
	size := 0
	if len(l.entries) > 0 {
		size = l.offsets[prefix] + (l.offsets[len(l.entries)] - l.offsets[oldSuffix])
	}
	// About 50 bytes an entry; a good guess saves the copies of a growing buffer.
	der := make([]byte, 0, size+56*(newSuffix-prefix))
	offsets := make([]int, 0, len(entries)+1)
	if prefix > 0 {
		der = append(der, l.der[:l.offsets[prefix]]...)
		offsets = append(offsets, l.offsets[:prefix]...)
	}
	for i := prefix; i < newSuffix; i++ {
		offsets = append(offsets, len(der))
		var err error
		if der, err = appendEntry(der, &entries[i]); err != nil {
			return err
		}
	}
	if suffix > 0 {
		shift := len(der) - l.offsets[oldSuffix]
		for _, o := range l.offsets[oldSuffix:len(l.entries)] {
			offsets = append(offsets, o+shift)
		}
		der = append(der, l.der[l.offsets[oldSuffix]:l.offsets[len(l.entries)]]...)
	}
	offsets = append(offsets, len(der))
	l.entries, l.der, l.offsets = entries, der, offsets
	return nil
}

// sameEntry reports whether a and b encode the same.
func sameEntry(a, b *Entry) bool {
	return a.Reason == b.Reason && a.RevokedAt.Equal(b.RevokedAt) && a.InvalidityDate.Equal(b.InvalidityDate) &&
		bytes.Equal(a.Serial, b.Serial)
}

// Build encodes, signs and checks the signature of a CRL of the list's entries, as
// the function Build does. The TBSCertList is hashed in pieces and written once,
// into the CRL itself: the entries are not copied into a TBS of their own.
func (l *List) Build(issuer *x509.Certificate, key crypto.Signer, t Template) ([]byte, error) {
	if issuer == nil || key == nil {
		return nil, errors.New("crl: issuer certificate and key are required")
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(issuer.PublicKey) {
		return nil, fmt.Errorf("crl: the signing key is not the key of issuer %q", issuer.Subject)
	}
	if len(issuer.SubjectKeyId) == 0 {
		return nil, fmt.Errorf("crl: issuer %q has no subject key identifier for the CRL's authority key identifier", issuer.Subject)
	}
	if t.Number == nil || t.Number.Sign() <= 0 || t.Number.Cmp(maxNumber) >= 0 {
		return nil, fmt.Errorf("crl: CRL number %v is not in 1 … 2^159-1", t.Number)
	}
	thisUpdate, nextUpdate := t.ThisUpdate.UTC().Truncate(time.Second), t.NextUpdate.UTC().Truncate(time.Second)
	if !nextUpdate.After(thisUpdate) {
		return nil, fmt.Errorf("crl: nextUpdate %s is not after thisUpdate %s", nextUpdate, thisUpdate)
	}
	alg, err := signatureAlgorithm(issuer.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("crl: issuer %q: %w", issuer.Subject, err)
	}

	// TBSCertList = SEQUENCE { head, [SEQUENCE { list }], extensions }.
	head, exts, err := tbsParts(issuer, alg, t.Number, thisUpdate, nextUpdate, t.DistributionPoint)
	if err != nil {
		return nil, err
	}
	var listHdr []byte
	if len(l.der) > 0 { // RFC 5280: absent, not empty, when nothing is revoked
		listHdr = appendLen([]byte{0x30}, len(l.der))
	}
	tbsLen := len(head) + len(listHdr) + len(l.der) + len(exts)
	tbsHdr := appendLen([]byte{0x30}, tbsLen)
	parts := [][]byte{tbsHdr, head, listHdr, l.der, exts}

	var signed []byte
	if alg.hash != 0 {
		h := alg.hash.New()
		for _, p := range parts {
			h.Write(p)
		}
		signed = h.Sum(nil)
	} else { // Ed25519 signs the message itself
		signed = make([]byte, 0, len(tbsHdr)+tbsLen)
		for _, p := range parts {
			signed = append(signed, p...)
		}
	}
	sig, err := key.Sign(rand.Reader, signed, alg.hash)
	if err != nil {
		return nil, fmt.Errorf("crl: signing with issuer %q: %w", issuer.Subject, err)
	}

	ab := cryptobyte.NewBuilder(nil)
	addAlgorithm(ab, alg)
	ab.AddASN1BitString(sig)
	tail, err := ab.Bytes()
	if err != nil {
		return nil, fmt.Errorf("crl: encoding: %w", err)
	}
	bodyLen := len(tbsHdr) + tbsLen + len(tail)
	der := appendLen(append(make([]byte, 0, 2+lenLen(bodyLen)+bodyLen), 0x30), bodyLen)
	tbsStart := len(der)
	for _, p := range parts {
		der = append(der, p...)
	}
	tbs := der[tbsStart:]
	der = append(der, tail...)
	// A faulty HSM or a wrong key must never yield a published CRL.
	if err := issuer.CheckSignature(alg.x509ID, tbs, sig); err != nil {
		return nil, fmt.Errorf("crl: the signature does not verify against issuer %q: %w", issuer.Subject, err)
	}
	return der, nil
}

// tbsParts encodes what the TBSCertList holds before and after the entries: the
// version, algorithm, issuer and dates; and the CRL extensions.
func tbsParts(issuer *x509.Certificate, alg sigAlg, number *big.Int, thisUpdate, nextUpdate time.Time, dp string) (head, exts []byte, err error) {
	b := cryptobyte.NewBuilder(make([]byte, 0, 512))
	b.AddASN1Int64(1) // v2
	addAlgorithm(b, alg)
	b.AddBytes(issuer.RawSubject)
	b.AddBytes(appendTime(nil, thisUpdate))
	b.AddBytes(appendTime(nil, nextUpdate))
	if head, err = b.Bytes(); err != nil {
		return nil, nil, fmt.Errorf("crl: encoding: %w", err)
	}
	e := cryptobyte.NewBuilder(make([]byte, 0, 256))
	e.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			addExtension(b, oidAuthorityKeyID, false, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					// keyIdentifier [0] IMPLICIT OCTET STRING
					b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(issuer.SubjectKeyId) })
				})
			})
			addExtension(b, oidCRLNumber, false, func(b *cryptobyte.Builder) { b.AddASN1BigInt(number) })
			if dp != "" {
				addExtension(b, oidIssuingDistPoint, true, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						// distributionPoint [0] (EXPLICIT: a CHOICE) → fullName [0] GeneralNames → [6] URI
						b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
								b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(dp)) })
							})
						})
					})
				})
			}
		})
	})
	if exts, err = e.Bytes(); err != nil {
		return nil, nil, fmt.Errorf("crl: encoding: %w", err)
	}
	return head, exts, nil
}

func addAlgorithm(b *cryptobyte.Builder, alg sigAlg) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(alg.oid)
		if alg.null {
			b.AddASN1NULL()
		}
	})
}

func addExtension(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, critical bool, value cryptobyte.BuilderContinuation) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if critical { // DEFAULT FALSE: DER leaves a false one out
			b.AddASN1Boolean(true)
		}
		b.AddASN1(cbasn1.OCTET_STRING, value)
	})
}

// Fixed parts of the entry extensions (RFC 5280 5.3): SEQUENCE { OID, OCTET STRING }.
var (
	reasonExtPrefix     = []byte{0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01} // … ENUMERATED code
	invalidityExtPrefix = []byte{0x30, 0x18, 0x06, 0x03, 0x55, 0x1d, 0x18, 0x04, 0x11, 0x18, 0x0f} // … GeneralizedTime (15)
)

// appendEntry appends one revokedCertificates element. It is written by hand, not
// with a builder per entry: a million entries would otherwise be a million small
// allocations.
func appendEntry(dst []byte, e *Entry) ([]byte, error) {
	serial := bytes.TrimLeft(e.Serial, "\x00")
	if len(serial) == 0 {
		return nil, errors.New("crl: an entry has serial number 0")
	}
	if e.Reason < 0 || e.Reason > maxReason || e.Reason == 7 {
		return nil, fmt.Errorf("crl: serial %x: %d is not a CRLReason", serial, e.Reason)
	}
	if e.RevokedAt.IsZero() {
		return nil, fmt.Errorf("crl: serial %x has no revocation time", serial)
	}
	pad := 0
	if serial[0]&0x80 != 0 { // keep it positive, as the certificate's DER does
		pad = 1
	}
	intLen := pad + len(serial)
	var tm [17]byte
	timeTLV := appendTime(tm[:0], e.RevokedAt)
	extLen := 0
	if e.Reason != unspecifiedReason {
		extLen += len(reasonExtPrefix) + 1
	}
	if !e.InvalidityDate.IsZero() {
		extLen += len(invalidityExtPrefix) + 15
	}
	content := 2 + lenLen(intLen) + intLen + len(timeTLV)
	if extLen > 0 {
		content += 2 + lenLen(extLen) + extLen
	}

	dst = append(dst, 0x30)
	dst = appendLen(dst, content)
	dst = append(dst, 0x02)
	dst = appendLen(dst, intLen)
	if pad == 1 {
		dst = append(dst, 0)
	}
	dst = append(dst, serial...)
	dst = append(dst, timeTLV...)
	if extLen == 0 {
		return dst, nil
	}
	dst = append(dst, 0x30)
	dst = appendLen(dst, extLen)
	if e.Reason != unspecifiedReason {
		dst = append(append(dst, reasonExtPrefix...), byte(e.Reason))
	}
	if !e.InvalidityDate.IsZero() {
		dst = append(dst, invalidityExtPrefix...)
		dst = e.InvalidityDate.UTC().AppendFormat(dst, generalizedTimeFormat)
	}
	return dst, nil
}

const (
	utcTimeFormat         = "060102150405Z0700"
	generalizedTimeFormat = "20060102150405Z0700"
)

// appendTime appends a Time as RFC 5280 4.1.2.5 asks: UTCTime through 2049,
// GeneralizedTime from 2050, whole seconds, UTC.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	if y := t.Year(); y >= 1950 && y < 2050 {
		return t.AppendFormat(append(dst, 0x17, 13), utcTimeFormat)
	}
	return t.AppendFormat(append(dst, 0x18, 15), generalizedTimeFormat)
}

// lenLen is the number of bytes of the DER length after the first.
func lenLen(n int) int {
	k := 0
	if n >= 0x80 {
		for ; n > 0; n >>= 8 {
			k++
		}
	}
	return k
}

func appendLen(dst []byte, n int) []byte {
	k := lenLen(n)
	if k == 0 {
		return append(dst, byte(n))
	}
	dst = append(dst, 0x80|byte(k))
	for i := k - 1; i >= 0; i-- {
		dst = append(dst, byte(n>>(8*i)))
	}
	return dst
}

// unspecifiedReason is CRLReason unspecified (0), which RFC 5280 5.3.1 says to
// leave out of an entry rather than encode. The reasons SOTE accepts are
// revocation's.
const unspecifiedReason = 0

// maxReason is the largest RFC 5280 CRLReason (aACompromise); 7 is unused.
const maxReason = 10
