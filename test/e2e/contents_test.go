package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"slices"
	"testing"
)

// checkServerContents asserts what a relying party reads in a sote-server
// certificate for an RSA key: key usage digitalSignature + keyEncipherment (critical),
// EKU serverAuth + clientAuth whatever the CSR asked, the SOTE policy OID, CA:false,
// and the subject C=FI (PrintableString), O = the organisation's name, OU = its long
// name, CN = the first name, each of those three a UTF8String, never the CSR's subject.
func checkServerContents(t *testing.T, leaf *x509.Certificate, org, long, cn string) {
	t.Helper()
	if want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment; leaf.KeyUsage != want {
		t.Errorf("key usage %b, want digitalSignature + keyEncipherment (%b)", leaf.KeyUsage, want)
	}
	critical := map[string]bool{}
	for _, e := range leaf.Extensions {
		critical[e.Id.String()] = e.Critical
	}
	if !critical["2.5.29.15"] || !critical["2.5.29.19"] {
		t.Errorf("key usage critical %v, basic constraints critical %v; want both critical", critical["2.5.29.15"], critical["2.5.29.19"])
	}
	if leaf.IsCA || !leaf.BasicConstraintsValid {
		t.Errorf("CA %v (basic constraints present %v), want CA:false", leaf.IsCA, leaf.BasicConstraintsValid)
	}
	if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}; !slices.Equal(leaf.ExtKeyUsage, want) || len(leaf.UnknownExtKeyUsage) != 0 {
		t.Errorf("EKUs %v %v, want serverAuth and clientAuth only (not the CSR's codeSigning)", leaf.ExtKeyUsage, leaf.UnknownExtKeyUsage)
	}
	var policies []string
	for _, p := range leaf.Policies {
		policies = append(policies, p.String())
	}
	if !slices.Equal(policies, []string{"1.2.246.517.1.10.203"}) {
		t.Errorf("certificate policies %v, want 1.2.246.517.1.10.203", policies)
	}
	type rawATV struct {
		Type  asn1.ObjectIdentifier
		Value asn1.RawValue
	}
	type rawRDNSET []rawATV // encoding/asn1 reads a slice type named …SET as a SET OF
	var rdns []rawRDNSET
	if rest, err := asn1.Unmarshal(leaf.RawSubject, &rdns); err != nil || len(rest) != 0 {
		t.Fatalf("subject does not parse: %v", err)
	}
	const printable, utf8 = 19, 12
	type attr struct {
		oid, value string
		tag        int
	}
	var got []attr
	for _, rdn := range rdns {
		for _, atv := range rdn {
			got = append(got, attr{atv.Type.String(), string(atv.Value.Bytes), atv.Value.Tag})
		}
	}
	want := []attr{{"2.5.4.6", "FI", printable}, {"2.5.4.10", org, utf8}, {"2.5.4.11", long, utf8}, {"2.5.4.3", cn, utf8}}
	if !slices.Equal(got, want) {
		t.Errorf("subject attributes %+v,\nwant %+v (C as PrintableString, the others as UTF8String)", got, want)
	}
}

func rsaKey2048(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
