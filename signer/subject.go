package signer

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"unicode/utf8"
)

// Attribute types whose values are PrintableString in SOTE subjects; every other
// attribute is a UTF8String.
var (
	oidCountry      = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidSerialNumber = asn1.ObjectIdentifier{2, 5, 4, 5}
)

// encodeSubject is the DER of the subject with the string types SOTE certificates
// use: PrintableString for countryName and serialNumber (RFC 5280 requires it for C),
// UTF8String for everything else. crypto/x509 would pick PrintableString for any
// value that happens to fit it ("Apteekki Oy") and UTF8String only for the rest
// ("Väestö"), so the same attribute would change type from one organisation to the
// next.
func encodeSubject(name pkix.Name) ([]byte, error) {
	seq := name.ToRDNSequence()
	for i, rdn := range seq {
		for j, atv := range rdn {
			v, ok := atv.Value.(string)
			if !ok {
				continue
			}
			tag := asn1.TagUTF8String
			if !utf8.ValidString(v) {
				return nil, fmt.Errorf("attribute %s value is not valid UTF-8", atv.Type)
			}
			if atv.Type.Equal(oidCountry) || atv.Type.Equal(oidSerialNumber) {
				if !printable(v) {
					return nil, fmt.Errorf("attribute %s value %q is not a PrintableString", atv.Type, v)
				}
				tag = asn1.TagPrintableString
			}
			seq[i][j].Value = asn1.RawValue{Class: asn1.ClassUniversal, Tag: tag, Bytes: []byte(v)}
		}
	}
	return asn1.Marshal(seq)
}

// printable reports whether s fits ASN.1 PrintableString (X.680 41.4).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == ' ', c == '\'', c == '(', c == ')', c == '+', c == ',', c == '-', c == '.', c == '/', c == ':', c == '=', c == '?':
		default:
			return false
		}
	}
	return true
}
