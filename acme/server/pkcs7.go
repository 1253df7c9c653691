package server

import (
	"encoding/asn1"
)

// PKCS#7 / CMS object identifiers (RFC 5652).
var (
	oidSignedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
)

// degenerateSignedData is a "certs-only" PKCS#7 (RFC 5652 SignedData without signers,
// as RFC 8894 and `openssl crl2pkcs7` make): the certificates given, DER, in order.
// It is what the certificate URL serves for Accept: application/pkcs7-mime.
func degenerateSignedData(certs [][]byte) ([]byte, error) {
	var all []byte
	for _, c := range certs {
		all = append(all, c...)
	}
	emptySet := asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true}
	sd, err := asn1.Marshal(struct {
		Version          int
		DigestAlgorithms asn1.RawValue
		EncapContentInfo struct{ ContentType asn1.ObjectIdentifier }
		Certificates     asn1.RawValue
		SignerInfos      asn1.RawValue
	}{
		Version:          1,
		DigestAlgorithms: emptySet,
		EncapContentInfo: struct{ ContentType asn1.ObjectIdentifier }{oidData},
		Certificates:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: all}, // [0] IMPLICIT SET OF Certificate
		SignerInfos:      emptySet,
	})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue
	}{oidSignedData, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: sd}}) // [0] EXPLICIT
}
