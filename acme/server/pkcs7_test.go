package server_test

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"net/http"
	"testing"
)

// TestCertificateAsPKCS7: Accept: application/pkcs7-mime gets a certs-only PKCS#7
// (RFC 5652 SignedData, version 1, no digest algorithms, no signers) holding the leaf
// and then the issuer; without alternate chains configured no Link rel="alternate".
func TestCertificateAsPKCS7(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.register(t, orgA)
	c := e.issue(t, a, "www."+domainA)
	req, err := http.NewRequest(http.MethodPost, c.certURL, bytes.NewReader(e.sign(t, a.key, a.kid, c.certURL, nil)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/jose+json")
	req.Header.Set("Accept", "application/pkcs7-mime")
	r := e.do(t, req)
	wantStatus(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/pkcs7-mime" {
		t.Fatalf("Content-Type %q", ct)
	}
	for _, l := range r.header.Values("Link") {
		if bytes.Contains([]byte(l), []byte("alternate")) {
			t.Errorf("Link %q without an alternate chain configured", l)
		}
	}
	var ci struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"explicit,tag:0"`
	}
	if rest, err := asn1.Unmarshal(r.body, &ci); err != nil || len(rest) != 0 {
		t.Fatalf("ContentInfo: %v (%d bytes after it)", err, len(rest))
	}
	if !ci.ContentType.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}) {
		t.Fatalf("content type %v, want signedData", ci.ContentType)
	}
	var sd struct {
		Version          int
		DigestAlgorithms asn1.RawValue
		EncapContentInfo struct{ ContentType asn1.ObjectIdentifier }
		Certificates     asn1.RawValue `asn1:"tag:0"`
		SignerInfos      asn1.RawValue
	}
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		t.Fatalf("SignedData: %v", err)
	}
	if sd.Version != 1 || len(sd.DigestAlgorithms.Bytes) != 0 || len(sd.SignerInfos.Bytes) != 0 ||
		!sd.EncapContentInfo.ContentType.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}) {
		t.Fatalf("not a certs-only SignedData: version %d, %d bytes of digest algorithms, %d of signers, content %v",
			sd.Version, len(sd.DigestAlgorithms.Bytes), len(sd.SignerInfos.Bytes), sd.EncapContentInfo.ContentType)
	}
	certs, err := x509.ParseCertificates(sd.Certificates.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) < 2 || !certs[0].Equal(c.cert) {
		t.Fatalf("%d certificates, want the leaf first and then its issuer", len(certs))
	}
	if err := certs[0].CheckSignatureFrom(certs[1]); err != nil {
		t.Fatalf("the second certificate did not sign the leaf: %v", err)
	}
}
