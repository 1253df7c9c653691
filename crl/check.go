package crl

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// MaxValidity is the longest a SOTE CRL may be valid: nextUpdate − thisUpdate.
const MaxValidity = 8 * time.Hour

// Check reads der back, independently of how Build wrote it, and refuses it unless
// it is the CRL that was meant: signed by the issuer (signature verified), issuer
// name and authority key identifier of the issuer, number t.Number below 2^159,
// thisUpdate t.ThisUpdate and not after now, nextUpdate t.NextUpdate at most
// MaxValidity later (a retired issuer's final CRL, t.Final, excepted), the distribution point t.DistributionPoint, and exactly the
// entries given, in order: serial, time (not after thisUpdate), reason and
// invalidity date each.
//
// It walks the DER without building an object per entry, so checking a CRL of a
// million entries costs about what building it did.
func Check(der []byte, issuer *x509.Certificate, t Template, entries []Entry, now time.Time) error {
	if err := check(der, issuer, t, entries, now); err != nil {
		return fmt.Errorf("crl: check before publishing: %w", err)
	}
	return nil
}

func check(der []byte, issuer *x509.Certificate, t Template, entries []Entry, now time.Time) error {
	alg, err := signatureAlgorithm(issuer.PublicKey)
	if err != nil {
		return err
	}
	in := cryptobyte.String(der)
	var list, tbs, outerAlg cryptobyte.String
	var sig asn1.BitString
	if !in.ReadASN1(&list, cbasn1.SEQUENCE) || !in.Empty() {
		return errors.New("not one DER SEQUENCE")
	}
	if !list.ReadASN1Element(&tbs, cbasn1.SEQUENCE) || !list.ReadASN1Element(&outerAlg, cbasn1.SEQUENCE) ||
		!list.ReadASN1BitString(&sig) || !list.Empty() {
		return errors.New("not a CertificateList")
	}
	if sig.BitLength%8 != 0 {
		return errors.New("signature is not a whole number of bytes")
	}
	if err := issuer.CheckSignature(alg.x509ID, tbs, sig.Bytes); err != nil {
		return fmt.Errorf("signature does not verify against issuer %q: %w", issuer.Subject, err)
	}
	wantAlg := cryptobyte.NewBuilder(nil)
	addAlgorithm(wantAlg, alg)
	algDER := wantAlg.BytesOrPanic()
	if !bytes.Equal(outerAlg, algDER) {
		return errors.New("signature algorithm is not the issuer's")
	}

	body := tbs
	var version int64
	var innerAlg, name cryptobyte.String
	if !body.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1Integer(&version) ||
		!body.ReadASN1Element(&innerAlg, cbasn1.SEQUENCE) || !body.ReadASN1Element(&name, cbasn1.SEQUENCE) {
		return errors.New("malformed TBSCertList")
	}
	switch {
	case version != 1:
		return fmt.Errorf("version %d, want 1 (v2)", version)
	case !bytes.Equal(innerAlg, algDER):
		return errors.New("inner and outer signature algorithms differ")
	case !bytes.Equal(name, issuer.RawSubject):
		return errors.New("issuer name is not the issuer certificate's subject")
	}

	thisUpdate, ok1 := readTime(&body)
	nextUpdate, ok2 := readTime(&body)
	switch {
	case !ok1 || !ok2:
		return errors.New("malformed thisUpdate or nextUpdate")
	case !thisUpdate.Equal(t.ThisUpdate.Truncate(time.Second)):
		return fmt.Errorf("thisUpdate %s, want %s", thisUpdate, t.ThisUpdate)
	case thisUpdate.After(now):
		return fmt.Errorf("thisUpdate %s is in the future (now %s)", thisUpdate, now.UTC())
	case !nextUpdate.Equal(t.NextUpdate.Truncate(time.Second)):
		return fmt.Errorf("nextUpdate %s, want %s", nextUpdate, t.NextUpdate)
	case !nextUpdate.After(thisUpdate) || (nextUpdate.Sub(thisUpdate) > MaxValidity && !t.Final):
		return fmt.Errorf("validity %s is not in (0, %s]", nextUpdate.Sub(thisUpdate), MaxValidity)
	}

	if body.PeekASN1Tag(cbasn1.SEQUENCE) {
		var revoked cryptobyte.String
		if !body.ReadASN1(&revoked, cbasn1.SEQUENCE) {
			return errors.New("malformed revokedCertificates")
		}
		if len(entries) == 0 {
			return errors.New("revokedCertificates is present but empty of meaning: no entries were given")
		}
		if err := checkEntries(revoked, entries, thisUpdate); err != nil {
			return err
		}
	} else if len(entries) > 0 {
		return fmt.Errorf("no entries, want %d", len(entries))
	}

	var exts cryptobyte.String
	if !body.ReadASN1(&exts, cbasn1.Tag(0).Constructed().ContextSpecific()) || !exts.ReadASN1(&exts, cbasn1.SEQUENCE) || !body.Empty() {
		return errors.New("malformed crlExtensions")
	}
	return checkExtensions(exts, issuer, t)
}

func checkExtensions(exts cryptobyte.String, issuer *x509.Certificate, t Template) error {
	seen := map[string]bool{}
	for !exts.Empty() {
		var ext, value cryptobyte.String
		var oid asn1.ObjectIdentifier
		critical := false
		if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&oid) ||
			(ext.PeekASN1Tag(cbasn1.BOOLEAN) && (!ext.ReadASN1Boolean(&critical) || !critical)) ||
			!ext.ReadASN1(&value, cbasn1.OCTET_STRING) || !ext.Empty() {
			return errors.New("malformed CRL extension (a false critical must be left out)")
		}
		if seen[oid.String()] {
			return fmt.Errorf("extension %s appears twice", oid)
		}
		seen[oid.String()] = true
		switch {
		case oid.Equal(oidCRLNumber):
			n := new(big.Int)
			if !value.ReadASN1Integer(n) || !value.Empty() {
				return errors.New("malformed CRL number")
			}
			if n.Sign() <= 0 || n.Cmp(maxNumber) >= 0 || t.Number == nil || n.Cmp(t.Number) != 0 {
				return fmt.Errorf("CRL number %v, want %v (positive, below 2^159)", n, t.Number)
			}
		case oid.Equal(oidAuthorityKeyID):
			var aki, keyID cryptobyte.String
			if !value.ReadASN1(&aki, cbasn1.SEQUENCE) || !aki.ReadASN1(&keyID, cbasn1.Tag(0).ContextSpecific()) ||
				!bytes.Equal(keyID, issuer.SubjectKeyId) {
				return errors.New("authority key identifier is not the issuer's subject key identifier")
			}
		case oid.Equal(oidIssuingDistPoint):
			var idp, dp, full, uri cryptobyte.String
			if !critical || !value.ReadASN1(&idp, cbasn1.SEQUENCE) ||
				!idp.ReadASN1(&dp, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
				!dp.ReadASN1(&full, cbasn1.Tag(0).Constructed().ContextSpecific()) ||
				!full.ReadASN1(&uri, cbasn1.Tag(6).ContextSpecific()) || !full.Empty() || !idp.Empty() {
				return errors.New("malformed or non-critical issuing distribution point")
			}
			if string(uri) != t.DistributionPoint {
				return fmt.Errorf("issuing distribution point %q, want %q", uri, t.DistributionPoint)
			}
		case critical:
			return fmt.Errorf("unexpected critical CRL extension %s", oid)
		default:
			return fmt.Errorf("unexpected CRL extension %s", oid)
		}
	}
	switch {
	case !seen[oidCRLNumber.String()]:
		return errors.New("no CRL number")
	case !seen[oidAuthorityKeyID.String()]:
		return errors.New("no authority key identifier")
	case t.DistributionPoint != "" && !seen[oidIssuingDistPoint.String()]:
		return errors.New("no issuing distribution point")
	}
	return nil
}

// checkEntries compares the encoded entries with the wanted ones, in order.
func checkEntries(revoked cryptobyte.String, entries []Entry, thisUpdate time.Time) error {
	for i := range entries {
		want := &entries[i]
		var entry, serial cryptobyte.String
		if !revoked.ReadASN1(&entry, cbasn1.SEQUENCE) {
			return fmt.Errorf("%d entries, want %d", i, len(entries))
		}
		if !entry.ReadASN1(&serial, cbasn1.INTEGER) || len(serial) == 0 {
			return fmt.Errorf("entry %d: malformed serial", i)
		}
		wantSerial := bytes.TrimLeft(want.Serial, "\x00")
		got := []byte(serial)
		negative := got[0]&0x80 != 0
		if len(got) > 1 && got[0] == 0 && got[1]&0x80 != 0 { // the sign byte
			got = got[1:]
		}
		if negative || !bytes.Equal(got, wantSerial) {
			return fmt.Errorf("entry %d: serial %x, want %x", i, []byte(serial), wantSerial)
		}
		at, ok := readTime(&entry)
		if !ok || !at.Equal(want.RevokedAt.UTC().Truncate(time.Second)) {
			return fmt.Errorf("entry %x: revocation time %s, want %s", wantSerial, at, want.RevokedAt.UTC())
		}
		if at.After(thisUpdate) {
			// Recorded by a process whose clock is ahead of this one's.
			return fmt.Errorf("entry %x: revocation time %s is after thisUpdate %s (clocks of the processes differ?)", wantSerial, at, thisUpdate)
		}
		reason, invalidity := unspecifiedReason, time.Time{}
		if !entry.Empty() {
			var exts cryptobyte.String
			if !entry.ReadASN1(&exts, cbasn1.SEQUENCE) || !entry.Empty() || exts.Empty() {
				return fmt.Errorf("entry %x: malformed extensions", wantSerial)
			}
			for !exts.Empty() {
				// The OID is compared as encoded: decoding one per entry would cost a
				// million allocations on a CRL of a million entries.
				var ext, oid, value cryptobyte.String
				critical := false
				if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) ||
					(ext.PeekASN1Tag(cbasn1.BOOLEAN) && (!ext.ReadASN1Boolean(&critical) || !critical)) ||
					!ext.ReadASN1(&value, cbasn1.OCTET_STRING) || !ext.Empty() {
					return fmt.Errorf("entry %x: malformed extension (a false critical must be left out)", wantSerial)
				}
				known := bytes.Equal(oid, reasonCodeOID) || bytes.Equal(oid, invalidityDateOID)
				switch {
				case known && critical:
					return fmt.Errorf("entry %x: a reason code or invalidity date marked critical", wantSerial)
				case bytes.Equal(oid, reasonCodeOID):
					var code int
					if !value.ReadASN1Enum(&code) || !value.Empty() || code == unspecifiedReason {
						return fmt.Errorf("entry %x: malformed reason code (unspecified must be left out)", wantSerial)
					}
					reason = code
				case bytes.Equal(oid, invalidityDateOID):
					if !value.ReadASN1GeneralizedTime(&invalidity) || !value.Empty() {
						return fmt.Errorf("entry %x: malformed invalidity date", wantSerial)
					}
				default:
					id := asn1.ObjectIdentifier{}
					if _, err := asn1.Unmarshal(append([]byte{0x06, byte(len(oid))}, oid...), &id); err != nil || len(oid) > 127 {
						return fmt.Errorf("entry %x: malformed extension identifier", wantSerial)
					}
					if critical {
						return fmt.Errorf("entry %x: unexpected critical extension %s", wantSerial, id)
					}
					return fmt.Errorf("entry %x: unexpected extension %s", wantSerial, id)
				}
			}
		}
		if reason != want.Reason {
			return fmt.Errorf("entry %x: reason %d, want %d", wantSerial, reason, want.Reason)
		}
		if !invalidity.Equal(want.InvalidityDate.UTC().Truncate(time.Second)) {
			return fmt.Errorf("entry %x: invalidity date %s, want %s", wantSerial, invalidity, want.InvalidityDate)
		}
	}
	if !revoked.Empty() {
		return fmt.Errorf("more entries than the %d wanted", len(entries))
	}
	return nil
}

// The content octets of the entry extensions' OIDs (id-ce 21 and 24).
var (
	reasonCodeOID     = []byte{0x55, 0x1d, 0x15}
	invalidityDateOID = []byte{0x55, 0x1d, 0x18}
)

func readTime(s *cryptobyte.String) (time.Time, bool) {
	var t time.Time
	switch {
	case s.PeekASN1Tag(cbasn1.UTCTime):
		if !s.ReadASN1UTCTime(&t) {
			return t, false
		}
	case s.PeekASN1Tag(cbasn1.GeneralizedTime):
		if !s.ReadASN1GeneralizedTime(&t) {
			return t, false
		}
	default:
		return t, false
	}
	return t.UTC(), true
}
