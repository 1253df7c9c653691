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
	"crypto/x509/pkix"
	"encoding/asn1"
	"github.com/varmenne/varmenne/revocation"
	"math/big"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

var (
	soteSerial = "0100000168f0a805c366b43b5de968c691fb" // SOTE.md: 18 bytes, format 0x01
	oldSerial  = "0bf4eab0"                             // SOTE.md: the old 4-byte form
	highSerial = "80ff00"                               // top bit set: DER needs a 0x00 before it
)

func template(number int64) Template {
	return Template{Number: big.NewInt(number), ThisUpdate: t0, NextUpdate: t0.Add(8 * time.Hour),
		DistributionPoint: "http://crl.example/crl/production.crl"}
}

func sampleEntries(t testing.TB) []Entry {
	return []Entry{
		{Serial: mustHex(t, soteSerial), RevokedAt: t0.Add(-time.Hour), Reason: revocation.KeyCompromise.Code, InvalidityDate: t0.Add(-72 * time.Hour)},
		{Serial: mustHex(t, oldSerial), RevokedAt: t0.Add(-2 * time.Hour), Reason: revocation.Unspecified.Code},
		{Serial: mustHex(t, highSerial), RevokedAt: t0.Add(-3 * time.Hour), Reason: revocation.Superseded.Code},
	}
}

func TestBuildReadsBackWithCryptoX509(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	keys := []struct {
		name string
		key  crypto.Signer
		alg  x509.SignatureAlgorithm
	}{
		{"RSA (sha512WithRSAEncryption, as SOTE issuers sign)", rsaKey, x509.SHA512WithRSA},
		{"ECDSA P-256", newKey(t), x509.ECDSAWithSHA256},
		{"ECDSA P-384", p384, x509.ECDSAWithSHA384},
		{"Ed25519", edKey, x509.PureEd25519},
	}
	for _, k := range keys {
		t.Run(k.name, func(t *testing.T) {
			is := newIssuer(t, "production", k.key)
			entries := sampleEntries(t)
			tmpl := template(42)
			der, err := Build(is.Cert, is.Key, tmpl, entries)
			if err != nil {
				t.Fatal(err)
			}
			if err := Check(der, is.Cert, tmpl, entries, t0); err != nil {
				t.Fatalf("Check refuses what Build made: %v", err)
			}
			rl, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatalf("crypto/x509 cannot parse it: %v", err)
			}
			if err := rl.CheckSignatureFrom(is.Cert); err != nil {
				t.Errorf("signature: %v", err)
			}
			checks := []struct {
				name string
				ok   bool
			}{
				{"signature algorithm", rl.SignatureAlgorithm == k.alg},
				{"number", rl.Number.Cmp(big.NewInt(42)) == 0},
				{"thisUpdate", rl.ThisUpdate.Equal(t0)},
				{"nextUpdate", rl.NextUpdate.Equal(t0.Add(8 * time.Hour))},
				{"issuer name", bytes.Equal(rl.RawIssuer, is.Cert.RawSubject)},
				{"authority key identifier", bytes.Equal(rl.AuthorityKeyId, is.Cert.SubjectKeyId)},
				{"three entries", len(rl.RevokedCertificateEntries) == 3},
			}
			for _, c := range checks {
				if !c.ok {
					t.Errorf("%s is wrong", c.name)
				}
			}
			idp := extension(rl.Extensions, oidIssuingDistPoint)
			if idp == nil || !idp.Critical || !bytes.Contains(idp.Value, []byte(tmpl.DistributionPoint)) {
				t.Errorf("issuing distribution point %+v: want critical, naming %s", idp, tmpl.DistributionPoint)
			}
			if len(rl.RevokedCertificateEntries) != 3 {
				return
			}
			for i, e := range rl.RevokedCertificateEntries {
				want := entries[i]
				if e.SerialNumber.Cmp(new(big.Int).SetBytes(want.Serial)) != 0 || !e.RevocationTime.Equal(want.RevokedAt) || e.ReasonCode != want.Reason {
					t.Errorf("entry %d: serial %x at %s reason %d; want %x at %s reason %d", i, e.SerialNumber, e.RevocationTime,
						e.ReasonCode, want.Serial, want.RevokedAt, want.Reason)
				}
			}
			t.Run("an unspecified reason is left out, not written as 0", func(t *testing.T) {
				if len(rl.RevokedCertificateEntries[1].Extensions) != 0 {
					t.Errorf("entry with reason unspecified has extensions %v", rl.RevokedCertificateEntries[1].Extensions)
				}
			})
			t.Run("the invalidity date is a GeneralizedTime extension", func(t *testing.T) {
				ext := extension(rl.RevokedCertificateEntries[0].Extensions, oidInvalidityDate)
				var got time.Time
				if ext == nil {
					t.Fatal("no invalidity date")
				}
				if _, err := asn1.UnmarshalWithParams(ext.Value, &got, "generalized"); err != nil || !got.Equal(entries[0].InvalidityDate) {
					t.Errorf("invalidity date %s (%v), want %s", got, err, entries[0].InvalidityDate)
				}
			})
		})
	}
}

func extension(exts []pkix.Extension, oid asn1.ObjectIdentifier) *pkix.Extension {
	for i := range exts {
		if exts[i].Id.Equal(oid) {
			return &exts[i]
		}
	}
	return nil
}

// TestBuildSerialsAreByteIdentical: the INTEGER of each entry is the very TLV of
// the certificate's serialNumber, for serials that need a sign byte and the long
// SOTE format alike.
func TestBuildSerialsAreByteIdentical(t *testing.T) {
	is := newIssuer(t, "production", nil)
	for _, s := range []string{soteSerial, oldSerial, highSerial, "01", "7f", "ff"} {
		t.Run(s, func(t *testing.T) {
			serial := new(big.Int).SetBytes(mustHex(t, s))
			tmpl := &x509.Certificate{SerialNumber: serial, NotBefore: t0, NotAfter: t0.AddDate(1, 0, 0)}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, is.Cert, newKey(t).Public(), is.Key)
			if err != nil {
				t.Fatal(err)
			}
			cert, _ := x509.ParseCertificate(der)
			certSerial := serialTLV(t, cert.RawTBSCertificate, true)

			crlDER, err := Build(is.Cert, is.Key, template(1), []Entry{{Serial: cert.SerialNumber.Bytes(), RevokedAt: t0}})
			if err != nil {
				t.Fatal(err)
			}
			rl, err := x509.ParseRevocationList(crlDER)
			if err != nil {
				t.Fatal(err)
			}
			entrySerial := serialTLV(t, rl.RevokedCertificateEntries[0].Raw, false)
			if !bytes.Equal(entrySerial, certSerial) {
				t.Errorf("CRL entry serial %x, certificate serial %x", entrySerial, certSerial)
			}
		})
	}
}

// serialTLV returns the first INTEGER element of a SEQUENCE (after the optional
// [0] version of a TBSCertificate).
func serialTLV(t *testing.T, der []byte, tbs bool) []byte {
	t.Helper()
	in := cryptobyte.String(der)
	var seq, serial cryptobyte.String
	ok := in.ReadASN1(&seq, cbasn1.SEQUENCE)
	if tbs {
		ok = ok && seq.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific())
	}
	if !ok || !seq.ReadASN1Element(&serial, cbasn1.INTEGER) {
		t.Fatal("no serial INTEGER")
	}
	return serial
}

// TestBuildAfter2049: from 2050 on, times are GeneralizedTime (RFC 5280 5.1.2.4).
func TestBuildAfter2049(t *testing.T) {
	is := newIssuer(t, "production", nil)
	this := time.Date(2051, 1, 2, 4, 0, 0, 0, time.UTC)
	tmpl := Template{Number: big.NewInt(1), ThisUpdate: this, NextUpdate: this.Add(8 * time.Hour)}
	entries := []Entry{{Serial: []byte{1}, RevokedAt: this.Add(-time.Hour), Reason: revocation.Superseded.Code}}
	der, err := Build(is.Cert, is.Key, tmpl, entries)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(der, is.Cert, tmpl, entries, this); err != nil {
		t.Fatal(err)
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if !rl.ThisUpdate.Equal(this) || !rl.RevokedCertificateEntries[0].RevocationTime.Equal(this.Add(-time.Hour)) {
		t.Errorf("thisUpdate %s, revocation %s", rl.ThisUpdate, rl.RevokedCertificateEntries[0].RevocationTime)
	}
	if n := bytes.Count(der, []byte("2051010204")); n != 1 || !bytes.Contains(der, []byte{0x18, 15, '2', '0', '5', '1'}) {
		t.Error("times after 2049 are not GeneralizedTime")
	}
}

func TestBuildWithoutEntriesLeavesTheListOut(t *testing.T) {
	is := newIssuer(t, "test", nil)
	der, err := Build(is.Cert, is.Key, template(7), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(der, is.Cert, template(7), nil, t0); err != nil {
		t.Fatal(err)
	}
	// After nextUpdate comes the [0] of crlExtensions, not an empty SEQUENCE.
	in := cryptobyte.String(der)
	var list, tbs cryptobyte.String
	if !in.ReadASN1(&list, cbasn1.SEQUENCE) || !list.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		t.Fatal("malformed")
	}
	for _, tag := range []cbasn1.Tag{cbasn1.INTEGER, cbasn1.SEQUENCE, cbasn1.SEQUENCE, cbasn1.UTCTime, cbasn1.UTCTime} {
		if !tbs.SkipASN1(tag) {
			t.Fatalf("no %v", tag)
		}
	}
	if !tbs.PeekASN1Tag(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		t.Error("revokedCertificates is present though nothing is revoked")
	}
}

func TestBuildRefuses(t *testing.T) {
	is := newIssuer(t, "production", nil)
	other := newIssuer(t, "other", nil)
	good := []Entry{{Serial: []byte{1}, RevokedAt: t0}}
	huge := new(big.Int).Lsh(big.NewInt(1), 159)
	cases := []struct {
		name    string
		key     crypto.Signer
		tmpl    func(*Template)
		entries []Entry
		want    string
	}{
		{name: "number 0", tmpl: func(t *Template) { t.Number = big.NewInt(0) }, want: "CRL number"},
		{name: "no number", tmpl: func(t *Template) { t.Number = nil }, want: "CRL number"},
		{name: "number 2^159", tmpl: func(t *Template) { t.Number = huge }, want: "CRL number"},
		{name: "nextUpdate not after thisUpdate", tmpl: func(t *Template) { t.NextUpdate = t.ThisUpdate }, want: "nextUpdate"},
		{name: "another CA's key", key: other.Key, want: "not the key of issuer"},
		{name: "reason 7 (unused)", entries: []Entry{{Serial: []byte{1}, RevokedAt: t0, Reason: 7}}, want: "not a CRLReason"},
		{name: "reason 11", entries: []Entry{{Serial: []byte{1}, RevokedAt: t0, Reason: 11}}, want: "not a CRLReason"},
		{name: "serial 0", entries: []Entry{{Serial: []byte{0, 0}, RevokedAt: t0}}, want: "serial number 0"},
		{name: "no revocation time", entries: []Entry{{Serial: []byte{1}}}, want: "no revocation time"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := template(1)
			if tc.tmpl != nil {
				tc.tmpl(&tmpl)
			}
			key := is.Key
			if tc.key != nil {
				key = tc.key
			}
			entries := good
			if tc.entries != nil {
				entries = tc.entries
			}
			_, err := Build(is.Cert, key, tmpl, entries)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestCheckRefusesWhatWasNotMeant(t *testing.T) {
	is := newIssuer(t, "production", nil)
	other := newIssuer(t, "test", nil)
	entries := sampleEntries(t)
	tmpl := template(9)
	der, err := Build(is.Cert, is.Key, tmpl, entries)
	if err != nil {
		t.Fatal(err)
	}
	long := tmpl
	long.NextUpdate = long.ThisUpdate.Add(8*time.Hour + time.Second)
	longDER, err := Build(is.Cert, is.Key, long, entries)
	if err != nil {
		t.Fatal(err)
	}
	future := append([]Entry{{Serial: []byte{5}, RevokedAt: t0.Add(time.Second)}}, entries...)
	futureDER, err := Build(is.Cert, is.Key, tmpl, future)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(der)
	tampered[bytes.Index(tampered, mustHex(t, soteSerial))+5] ^= 1

	with := func(f func(*Template)) Template { t := tmpl; f(&t); return t }
	edit := func(f func([]Entry) []Entry) []Entry { return f(append([]Entry(nil), entries...)) }
	cases := []struct {
		name    string
		der     []byte
		issuer  Issuer
		tmpl    Template
		entries []Entry
		now     time.Time
		want    string
	}{
		{name: "a byte changed", der: tampered, want: "signature"},
		{name: "signed by another issuer", issuer: other, want: "signature"},
		{name: "another number", tmpl: with(func(t *Template) { t.Number = big.NewInt(10) }), want: "CRL number 9, want 10"},
		{name: "another thisUpdate", tmpl: with(func(t *Template) { t.ThisUpdate = t.ThisUpdate.Add(time.Second) }), want: "thisUpdate"},
		{name: "thisUpdate in the future", now: t0.Add(-time.Second), want: "in the future"},
		{name: "another nextUpdate", tmpl: with(func(t *Template) { t.NextUpdate = t.NextUpdate.Add(-time.Hour) }), want: "nextUpdate"},
		{name: "valid longer than 8 hours", der: longDER, tmpl: long, want: "validity"},
		{name: "another distribution point", tmpl: with(func(t *Template) { t.DistributionPoint = "http://other/x.crl" }), want: "distribution point"},
		{name: "a revoked serial missing", entries: edit(func(e []Entry) []Entry { return append(e, Entry{Serial: []byte{9}, RevokedAt: t0}) }),
			want: "3 entries, want 4"},
		{name: "an entry too many", entries: edit(func(e []Entry) []Entry { return e[:2] }), want: "more entries"},
		{name: "another reason", entries: edit(func(e []Entry) []Entry { e[1].Reason = revocation.Superseded.Code; return e }), want: "reason 0, want 4"},
		{name: "another time", entries: edit(func(e []Entry) []Entry { e[0].RevokedAt = t0; return e }), want: "revocation time"},
		{name: "a revocation after thisUpdate", der: futureDER, entries: future, want: "after thisUpdate"},
		{name: "no invalidity date wanted", entries: edit(func(e []Entry) []Entry { e[0].InvalidityDate = time.Time{}; return e }), want: "invalidity"},
		{name: "another serial", entries: edit(func(e []Entry) []Entry { e[1].Serial = []byte{0x0b, 0xf4, 0xea, 0xb1}; return e }), want: "serial"},
	}
	t.Run("a retired issuer's final CRL may be valid for longer", func(t *testing.T) {
		final := tmpl
		final.NextUpdate, final.Final = final.ThisUpdate.AddDate(2, 0, 0), true
		finalDER, err := Build(is.Cert, is.Key, final, entries)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(finalDER, is.Cert, final, entries, t0); err != nil {
			t.Errorf("the final CRL: %v", err)
		}
		final.Final = false
		if err := Check(finalDER, is.Cert, final, entries, t0); err == nil || !strings.Contains(err.Error(), "validity") {
			t.Errorf("the same CRL not marked final: %v, want a validity refusal", err)
		}
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, iss, tm, es, now := der, is, tmpl, entries, t0
			if tc.der != nil {
				d = tc.der
			}
			if tc.issuer.Cert != nil {
				iss = tc.issuer
			}
			if tc.tmpl.Number != nil {
				tm = tc.tmpl
			}
			if tc.entries != nil {
				es = tc.entries
			}
			if !tc.now.IsZero() {
				now = tc.now
			}
			err := Check(d, iss.Cert, tm, es, now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check: %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestCheckRefusesUnexpectedExtensions has crypto/x509 sign CRLs that are what
// was meant except for one extension Build never writes, on an entry or on the
// CRL itself, critical or not, and asserts that Check names it; the same CRL
// without that extension passes, so each refusal is the extension's.
func TestCheckRefusesUnexpectedExtensions(t *testing.T) {
	is := newIssuer(t, "production", nil)
	tmpl := Template{Number: big.NewInt(7), ThisUpdate: t0, NextUpdate: t0.Add(8 * time.Hour)}
	entries := []Entry{{Serial: mustHex(t, soteSerial), RevokedAt: t0.Add(-time.Hour)}}
	unexpected := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}
	ext := func(critical bool) []pkix.Extension {
		return []pkix.Extension{{Id: unexpected, Critical: critical, Value: asn1.NullBytes}}
	}
	sign := func(entryExts, crlExts []pkix.Extension) []byte {
		t.Helper()
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
			Number: tmpl.Number, ThisUpdate: tmpl.ThisUpdate, NextUpdate: tmpl.NextUpdate,
			RevokedCertificateEntries: []x509.RevocationListEntry{{
				SerialNumber: new(big.Int).SetBytes(entries[0].Serial), RevocationTime: entries[0].RevokedAt,
				ExtraExtensions: entryExts,
			}},
			ExtraExtensions: crlExts,
		}, is.Cert, is.Key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	if err := Check(sign(nil, nil), is.Cert, tmpl, entries, t0); err != nil {
		t.Fatalf("Check of the CRL without an unexpected extension: %v", err)
	}
	cases := []struct {
		name string
		der  []byte
		want string
	}{
		{"an unexpected entry extension", sign(ext(false), nil), "entry " + soteSerial + ": unexpected extension " + unexpected.String()},
		{"an unexpected critical entry extension", sign(ext(true), nil), "entry " + soteSerial + ": unexpected critical extension " + unexpected.String()},
		{"an unexpected CRL extension", sign(nil, ext(false)), "unexpected CRL extension " + unexpected.String()},
		{"an unexpected critical CRL extension", sign(nil, ext(true)), "unexpected critical CRL extension " + unexpected.String()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.der, is.Cert, tmpl, entries, t0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
