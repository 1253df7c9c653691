package signer

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"slices"
	"testing"
	"time"
)

// systemSignatureProfile is the SOTE system signature profile as serve wires it.
func systemSignatureProfile() Profile {
	p := testProfile()
	p.Name = "sote-system-signature"
	p.Validity = 730 * 24 * time.Hour
	p.ExtKeyUsage = nil
	p.NoExtKeyUsage = true
	p.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
	linter, err := NewLinter(SystemSignatureIgnoredLints())
	if err != nil {
		panic(err)
	}
	p.Linter = linter
	return p
}

var oidExtKeyUsage = asn1.ObjectIdentifier{2, 5, 29, 37}

func TestIssueSystemSignature(t *testing.T) {
	for _, subject := range []string{"p256", "rsa"} {
		t.Run(subject+" key gets digitalSignature and nonRepudiation, no EKU, 730 days", func(t *testing.T) {
			h := newHarness(t, "p256", systemSignatureProfile())
			got, err := h.ca.Issue(context.Background(), testRequest(t, subject))
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			c := got.Cert
			if want := x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment; c.KeyUsage != want {
				t.Errorf("key usage %b, want %b", c.KeyUsage, want)
			}
			if e := findExt(c, oidKeyUsage); e == nil || !e.Critical {
				t.Errorf("key usage extension missing or not critical")
			}
			if findExt(c, oidExtKeyUsage) != nil || len(c.ExtKeyUsage) != 0 {
				t.Errorf("EKU %v present; a system signature certificate carries none", c.ExtKeyUsage)
			}
			if d := c.NotAfter.Sub(c.NotBefore); d != 730*24*time.Hour-time.Second {
				t.Errorf("validity %s, want 730 days less the last second", d)
			}
		})
	}
}

func TestProfileEKUMustBeExplicit(t *testing.T) {
	tests := []struct {
		name    string
		eku     []x509.ExtKeyUsage
		noEKU   bool
		wantErr bool
	}{
		{"no EKU and no NoExtKeyUsage is refused", nil, false, true},
		{"EKUs and NoExtKeyUsage together are refused", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, true, true},
		{"NoExtKeyUsage alone issues", nil, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := systemSignatureProfile()
			p.ExtKeyUsage, p.NoExtKeyUsage = tt.eku, tt.noEKU
			h := newHarness(t, "p256", p)
			_, err := h.ca.Issue(context.Background(), testRequest(t, "p256"))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Issue: %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr && slices.Contains(h.ev.log, "sign") {
				t.Errorf("the issuer key was used for a refused profile")
			}
		})
	}
}

func TestIssueNotBeforeStartDelay(t *testing.T) {
	tests := []struct {
		name    string
		delay   time.Duration
		nb      time.Time
		invalid bool
	}{
		{"a future notBefore is refused without a start delay", 0, testNow.Add(time.Hour), true},
		{"a notBefore inside the start delay is honoured", 48 * time.Hour, testNow.Add(24 * time.Hour), false},
		{"a notBefore past the start delay is refused", 48 * time.Hour, testNow.Add(49 * time.Hour), true},
		{"a notBefore backdated past the margin stays refused", 48 * time.Hour, testNow.Add(-time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testProfile()
			p.MaxStartDelay = tt.delay
			h := newHarness(t, "p256", p)
			req := testRequest(t, "p256")
			req.NotBefore = tt.nb
			got, err := h.ca.Issue(context.Background(), req)
			if tt.invalid {
				if !errors.Is(err, ErrInvalidRequest) {
					t.Fatalf("Issue: %v, want ErrInvalidRequest", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if !got.Cert.NotBefore.Equal(tt.nb) || !got.Cert.NotAfter.Equal(tt.nb.Add(p.Validity-time.Second)) {
				t.Errorf("validity %s to %s, want from %s for the full profile", got.Cert.NotBefore, got.Cert.NotAfter, tt.nb)
			}
		})
	}
}

// rdnTags returns the ASN.1 string tag of each subject attribute, by type.
func rdnTags(t *testing.T, raw []byte) map[string]int {
	t.Helper()
	var seq []asn1.RawValue
	if _, err := asn1.Unmarshal(raw, &seq); err != nil {
		t.Fatal(err)
	}
	tags := map[string]int{}
	for _, set := range seq {
		var atvs []struct {
			Type  asn1.ObjectIdentifier
			Value asn1.RawValue
		}
		if _, err := asn1.UnmarshalWithParams(set.FullBytes, &atvs, "set"); err != nil {
			t.Fatal(err)
		}
		for _, a := range atvs {
			tags[a.Type.String()] = a.Value.Tag
		}
	}
	return tags
}

func TestSubjectStringTypes(t *testing.T) {
	tests := []struct {
		name string
		org  string
	}{
		{"an ASCII name is still UTF8String", "Esimerkki Oy"},
		{"a name with Finnish letters is UTF8String", "Väestö- ja apteekkipalvelut Oy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "p256", testProfile())
			req := testRequest(t, "p256")
			req.Subject.Organization = []string{tt.org}
			got, err := h.ca.Issue(context.Background(), req)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			tags := rdnTags(t, got.Cert.RawSubject)
			want := map[string]int{
				"2.5.4.6":  asn1.TagPrintableString, // C
				"2.5.4.10": asn1.TagUTF8String,      // O
				"2.5.4.11": asn1.TagUTF8String,      // OU
				"2.5.4.3":  asn1.TagUTF8String,      // CN
			}
			for oid, tag := range want {
				if tags[oid] != tag {
					t.Errorf("attribute %s has tag %d, want %d", oid, tags[oid], tag)
				}
			}
			if !slices.Equal(got.Cert.Subject.Organization, []string{tt.org}) {
				t.Errorf("O = %q, want %q", got.Cert.Subject.Organization, tt.org)
			}
		})
	}
}
