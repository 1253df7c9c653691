package crl

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"github.com/varmenne/varmenne/revocation"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/signer"
)

// TestListRepublishesTheSameCRL keeps one List across a run of publications —
// a revocation appended, one inserted in the middle, entries dropped at the start,
// the end and the middle, all replaced, emptied and refilled — and checks that
// every CRL it makes is byte for byte the CRL Build makes of the same entries
// (RSA PKCS #1 v1.5 signatures are deterministic), passes Check, parses with
// crypto/x509 and with openssl crl (signature verified), and lists entry for entry
// what x509.CreateRevocationList lists for the same entries.
func TestListRepublishesTheSameCRL(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := newIssuer(t, "production", key)
	issuerPEM := filepath.Join(t.TempDir(), "issuer.pem")
	if err := os.WriteFile(issuerPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: is.Cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	mk := func(i int) Entry {
		serial, err := signer.NewSerial(t0.Add(-time.Duration(1000-i)*time.Minute), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		e := Entry{Serial: serial, RevokedAt: t0.Add(-time.Duration(1000-i) * time.Minute), Reason: []int{0, 1, 3, 4, 5, 9}[i%6]}
		if i%4 == 0 {
			e.InvalidityDate = t0.Add(-time.Duration(2000-i) * time.Minute)
		}
		return e
	}
	base := make([]Entry, 50)
	for i := range base {
		base[i] = mk(i)
	}
	join := func(parts ...[]Entry) []Entry {
		var out []Entry
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	extra, middle := mk(500), mk(501)
	steps := []struct {
		name    string
		entries []Entry
	}{
		{"first publication", base},
		{"one revocation appended", join(base, []Entry{extra})},
		{"one revocation inserted in the middle", join(base[:20], []Entry{middle}, base[20:], []Entry{extra})},
		{"nothing changed", join(base[:20], []Entry{middle}, base[20:], []Entry{extra})},
		{"first entries expired", join(base[5:20], []Entry{middle}, base[20:], []Entry{extra})},
		{"last entry expired", join(base[5:20], []Entry{middle}, base[20:])},
		{"middle entries expired and one appended", join(base[5:10], base[30:], []Entry{mk(502)})},
		{"a reason differs (same serial, new encoding)", join(base[5:10], []Entry{{Serial: base[10].Serial, RevokedAt: base[10].RevokedAt, Reason: revocation.KeyCompromise.Code}}, base[11:12])},
		{"all replaced", []Entry{mk(600), mk(601)}},
		{"emptied", nil},
		{"refilled", base[:3]},
	}
	var l List
	for n, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			tmpl := template(int64(n + 1))
			if err := l.Set(st.entries); err != nil {
				t.Fatal(err)
			}
			if l.Len() != len(st.entries) {
				t.Fatalf("Len %d, want %d", l.Len(), len(st.entries))
			}
			got, err := l.Build(is.Cert, is.Key, tmpl)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := Build(is.Cert, is.Key, tmpl, st.entries)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("the republished CRL (%d bytes) differs from the one built plainly (%d bytes)", len(got), len(plain))
			}
			if err := Check(got, is.Cert, tmpl, st.entries, t0); err != nil {
				t.Fatal(err)
			}
			parsed, err := x509.ParseRevocationList(got)
			if err != nil {
				t.Fatalf("crypto/x509 cannot parse it: %v", err)
			}
			if err := parsed.CheckSignatureFrom(is.Cert); err != nil {
				t.Fatalf("crypto/x509: %v", err)
			}
			var xs []x509.RevocationListEntry
			for _, e := range st.entries {
				xe := x509.RevocationListEntry{SerialNumber: new(big.Int).SetBytes(e.Serial), RevocationTime: e.RevokedAt, ReasonCode: e.Reason}
				if !e.InvalidityDate.IsZero() {
					xe.ExtraExtensions = append(xe.ExtraExtensions, invalidityExtension(t, e.InvalidityDate))
				}
				xs = append(xs, xe)
			}
			stdDER, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{RevokedCertificateEntries: xs,
				Number: tmpl.Number, ThisUpdate: tmpl.ThisUpdate, NextUpdate: tmpl.NextUpdate}, is.Cert, is.Key)
			if err != nil {
				t.Fatal(err)
			}
			std, err := x509.ParseRevocationList(stdDER)
			if err != nil {
				t.Fatal(err)
			}
			if len(parsed.RevokedCertificateEntries) != len(std.RevokedCertificateEntries) {
				t.Fatalf("%d entries, x509.CreateRevocationList lists %d", len(parsed.RevokedCertificateEntries), len(std.RevokedCertificateEntries))
			}
			for i, e := range parsed.RevokedCertificateEntries {
				w := std.RevokedCertificateEntries[i]
				// crypto/x509 writes the invalidity date before the reason code; both orders are DER.
				gotInv, wantInv := extension(e.Extensions, oidInvalidityDate), extension(w.Extensions, oidInvalidityDate)
				if e.SerialNumber.Cmp(w.SerialNumber) != 0 || !e.RevocationTime.Equal(w.RevocationTime) || e.ReasonCode != w.ReasonCode ||
					(gotInv == nil) != (wantInv == nil) || (gotInv != nil && !bytes.Equal(gotInv.Value, wantInv.Value)) || len(e.Extensions) != len(w.Extensions) {
					t.Fatalf("entry %d: %x at %s reason %d, x509.CreateRevocationList: %x at %s reason %d",
						i, e.SerialNumber, e.RevocationTime, e.ReasonCode, w.SerialNumber, w.RevocationTime, w.ReasonCode)
				}
			}
			file := filepath.Join(t.TempDir(), "crl.der")
			if err := os.WriteFile(file, got, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("openssl", "crl", "-inform", "DER", "-in", file, "-CAfile", issuerPEM, "-noout", "-text").CombinedOutput()
			if err != nil || !strings.Contains(string(out), "verify OK") {
				t.Fatalf("openssl crl: %v\n%s", err, out)
			}
			if c := strings.Count(string(out), "Serial Number: "); c != len(st.entries) {
				t.Fatalf("openssl crl lists %d serials, want %d", c, len(st.entries))
			}
		})
	}
}

// TestListSetKeepsTheListOnAnError: a bad entry leaves the previous list in use.
func TestListSetKeepsTheListOnAnError(t *testing.T) {
	is := newIssuer(t, "production", nil)
	entries := sampleEntries(t)
	var l List
	if err := l.Set(entries); err != nil {
		t.Fatal(err)
	}
	bad := append(append([]Entry{}, entries...), Entry{Serial: []byte{0}, RevokedAt: t0})
	if err := l.Set(bad); err == nil || !strings.Contains(err.Error(), "serial number 0") {
		t.Fatalf("Set of a serial 0: %v, want a refusal naming it", err)
	}
	der, err := l.Build(is.Cert, is.Key, template(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(der, is.Cert, template(2), entries, t0); err != nil {
		t.Fatalf("after a refused Set: %v", err)
	}
}

// invalidityExtension is the invalidity date entry extension (RFC 5280 5.3.2) as
// crypto/x509 callers add it.
func invalidityExtension(t *testing.T, at time.Time) pkix.Extension {
	t.Helper()
	v, err := asn1.MarshalWithParams(at.UTC(), "generalized")
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidInvalidityDate, Value: v}
}
