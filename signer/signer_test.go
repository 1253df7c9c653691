package signer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/store"
)

var (
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
)

func findExt(c *x509.Certificate, id asn1.ObjectIdentifier) *pkix.Extension {
	for i := range c.Extensions {
		if c.Extensions[i].Id.Equal(id) {
			return &c.Extensions[i]
		}
	}
	return nil
}

func TestIssueCertificateContents(t *testing.T) {
	tests := []struct {
		name       string
		issuerKind string
		subject    string
		wantKU     x509.KeyUsage
		wantSigAlg x509.SignatureAlgorithm
	}{
		{"P-256 issuer, P-256 subject: digitalSignature only", "p256", "p256", x509.KeyUsageDigitalSignature, x509.ECDSAWithSHA256},
		{"P-384 issuer, RSA subject: keyEncipherment added", "p384", "rsa", x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, x509.ECDSAWithSHA384},
		{"RSA issuer signs sha512WithRSA, P-256 subject", "rsa", "p256", x509.KeyUsageDigitalSignature, x509.SHA512WithRSA},
		// Ed25519 issuers and subjects are refused by lint: see TestIssueLintRefusal.
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.issuerKind, testProfile())
			req := testRequest(t, tt.subject)
			got, err := h.ca.Issue(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			c := got.Cert

			roots := x509.NewCertPool()
			roots.AddCert(h.pki.root)
			inter := x509.NewCertPool()
			inter.AddCert(h.pki.issuer.Cert)
			if _, err := c.Verify(x509.VerifyOptions{
				DNSName: "example.fi", Roots: roots, Intermediates: inter, CurrentTime: testNow,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			}); err != nil {
				t.Errorf("verify against root and issuer: %v", err)
			}
			if c.SignatureAlgorithm != tt.wantSigAlg {
				t.Errorf("signature algorithm = %v, want %v", c.SignatureAlgorithm, tt.wantSigAlg)
			}
			if c.Version != 3 {
				t.Errorf("version = %d, want 3", c.Version)
			}

			serial := c.SerialNumber.Bytes()
			if len(serial) != 18 || serial[0] != 0x01 {
				t.Errorf("serial = %x, want 18 bytes starting 0x01", serial)
			}
			if got.Serial != hex.EncodeToString(serial) {
				t.Errorf("Issued.Serial = %s, certificate serial %x", got.Serial, serial)
			}
			if !bytes.Equal(got.DER, c.Raw) {
				t.Error("Issued.DER is not the certificate's DER")
			}
			if wantHash, _ := KeyHash(req.PublicKey); got.KeyHash != wantHash {
				t.Errorf("KeyHash = %s, want %s", got.KeyHash, wantHash)
			}

			if c.KeyUsage != tt.wantKU {
				t.Errorf("key usage = %b, want %b", c.KeyUsage, tt.wantKU)
			}
			if e := findExt(c, oidKeyUsage); e == nil || !e.Critical {
				t.Error("key usage extension missing or not critical")
			}
			if e := findExt(c, oidBasicConstraints); e == nil || !e.Critical || !c.BasicConstraintsValid || c.IsCA {
				t.Error("basic constraints must be present, critical, CA:false")
			}
			if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}; !slices.Equal(c.ExtKeyUsage, want) {
				t.Errorf("EKU = %v, want %v", c.ExtKeyUsage, want)
			}
			if c.Subject.CommonName != "www.example.fi" {
				t.Errorf("CN = %q, want the first name", c.Subject.CommonName)
			}
			if !slices.Equal(c.Subject.Organization, []string{"Esimerkki Oy"}) || !slices.Equal(c.Subject.OrganizationalUnit, []string{"Helsingin VI apteekki"}) || !slices.Equal(c.Subject.Country, []string{"FI"}) {
				t.Errorf("subject = %s, want the request's C, O, OU", c.Subject)
			}
			if !slices.Equal(c.DNSNames, req.Names) {
				t.Errorf("SANs = %v, want %v", c.DNSNames, req.Names)
			}
			if len(c.PolicyIdentifiers) != 1 || !c.PolicyIdentifiers[0].Equal(DefaultPolicyOID) {
				t.Errorf("policies = %v, want [%v]", c.PolicyIdentifiers, DefaultPolicyOID)
			}
			p := testProfile()
			if !slices.Equal(c.CRLDistributionPoints, []string{p.CRLURL}) {
				t.Errorf("CRL DP = %v, want %s", c.CRLDistributionPoints, p.CRLURL)
			}
			if !slices.Equal(c.IssuingCertificateURL, []string{p.IssuerURL}) {
				t.Errorf("AIA caIssuers = %v, want %s", c.IssuingCertificateURL, p.IssuerURL)
			}
			if !slices.Equal(c.OCSPServer, []string{p.OCSPURL}) {
				t.Errorf("AIA OCSP = %v, want %s", c.OCSPServer, p.OCSPURL)
			}
			if !bytes.Equal(c.AuthorityKeyId, h.pki.issuer.Cert.SubjectKeyId) || len(c.AuthorityKeyId) == 0 {
				t.Errorf("AKI = %x, want issuer SKI %x", c.AuthorityKeyId, h.pki.issuer.Cert.SubjectKeyId)
			}
			if len(c.SubjectKeyId) != 20 {
				t.Errorf("SKI = %x, want 20 bytes", c.SubjectKeyId)
			}
			if d := c.NotAfter.Sub(c.NotBefore); d > p.Validity {
				t.Errorf("validity %s exceeds the profile's %s", d, p.Validity)
			}
			if want := testNow.Add(-p.Backdate); !c.NotBefore.Equal(want) {
				t.Errorf("notBefore = %s, want now - backdate = %s", c.NotBefore, want)
			}

			if len(h.rec.intents) != 1 {
				t.Fatalf("intents = %d, want 1", len(h.rec.intents))
			}
			in := h.rec.intents[0]
			want := store.IssuanceIntent{Serial: got.Serial, OrderID: "order-1", Issuer: "production", Names: req.Names, KeyHash: got.KeyHash, CreatedAt: testNow}
			if in.Serial != want.Serial || in.OrderID != want.OrderID || in.Issuer != want.Issuer || !slices.Equal(in.Names, want.Names) || in.KeyHash != want.KeyHash || !in.CreatedAt.Equal(want.CreatedAt) {
				t.Errorf("intent = %+v, want %+v", in, want)
			}
			if !bytes.Equal(in.LintTBS, c.RawTBSCertificate) {
				t.Error("intent's lint TBS differs from the signed certificate's TBS")
			}
			if n := h.ev.count("sign"); n != 1 {
				t.Errorf("issuer key signed %d times, want 1", n)
			}
		})
	}
}

func TestIssueProfileOptions(t *testing.T) {
	custom := asn1.ObjectIdentifier{1, 2, 246, 517, 1, 10, 203, 4}
	tests := []struct {
		name   string
		change func(*Profile)
		check  func(*testing.T, *x509.Certificate)
	}{
		{"policy OIDs from the profile replace the default", func(p *Profile) { p.PolicyOIDs = []asn1.ObjectIdentifier{custom} },
			func(t *testing.T, c *x509.Certificate) {
				if len(c.PolicyIdentifiers) != 1 || !c.PolicyIdentifiers[0].Equal(custom) {
					t.Errorf("policies = %v, want [%v]", c.PolicyIdentifiers, custom)
				}
			}},
		// A CRL and caIssuers URL are required (lint): see TestIssueLintRefusal.
		{"an empty OCSP URL leaves the OCSP extension out", func(p *Profile) { p.OCSPURL = "" },
			func(t *testing.T, c *x509.Certificate) {
				if c.OCSPServer != nil {
					t.Errorf("OCSP %v: want none", c.OCSPServer)
				}
				if len(c.CRLDistributionPoints) != 1 || len(c.IssuingCertificateURL) != 1 {
					t.Errorf("CRL DP %v, caIssuers %v: want one each", c.CRLDistributionPoints, c.IssuingCertificateURL)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testProfile()
			tt.change(&p)
			h := newHarness(t, "p256", p)
			got, err := h.ca.Issue(context.Background(), testRequest(t, "p256"))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, got.Cert)
		})
	}
}

func TestIssueSubjectCN(t *testing.T) {
	h := newHarness(t, "p256", testProfile())
	req := testRequest(t, "p256")
	req.Subject.CommonName = "ignored.example.fi"
	req.Subject.ExtraNames = []pkix.AttributeTypeAndValue{{Type: oidCommonName, Value: "smuggled.example.fi"}}
	got, err := h.ca.Issue(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var cns []string
	for _, atv := range got.Cert.Subject.Names {
		if atv.Type.Equal(oidCommonName) {
			cns = append(cns, fmt.Sprint(atv.Value))
		}
	}
	if !slices.Equal(cns, []string{"www.example.fi"}) {
		t.Errorf("subject CNs = %v, want only the first name", cns)
	}
}

// IP identifiers (RFC 8738) become iPAddress SANs; the CN stays the first DNS name,
// even when an address comes first.
func TestIssueIPAddresses(t *testing.T) {
	h := newHarness(t, "p256", testProfile())
	req := testRequest(t, "p256")
	req.Names = []string{"192.0.2.10", "www.example.fi", "2001:db8::10", "api.example.fi"}
	got, err := h.ca.Issue(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	c := got.Cert
	if c.Subject.CommonName != "www.example.fi" {
		t.Errorf("CN %q, want the first DNS name www.example.fi", c.Subject.CommonName)
	}
	if !slices.Equal(c.DNSNames, []string{"www.example.fi", "api.example.fi"}) {
		t.Errorf("dNSName SANs %v", c.DNSNames)
	}
	var ips []string
	for _, ip := range c.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(ips, []string{"192.0.2.10", "2001:db8::10"}) {
		t.Errorf("iPAddress SANs %v, want 192.0.2.10 and 2001:db8::10", ips)
	}
	if len(c.IPAddresses[0]) != 4 {
		t.Errorf("the IPv4 SAN is encoded in %d bytes, want 4", len(c.IPAddresses[0]))
	}
}

// Refused requests never reach the store or the issuer key.
func TestIssueRefusesRequests(t *testing.T) {
	p := testProfile()
	long := "a123456789b123456789c123456789d123456789e123456789f123456789.example.fi"
	tests := []struct {
		name        string
		change      func(*Request)
		wantInvalid bool // wraps ErrInvalidRequest
	}{
		{"validity beyond the profile", func(r *Request) { r.NotAfter = testNow.Add(p.Validity) }, true},
		{"validity one day beyond the profile", func(r *Request) { r.NotBefore = testNow; r.NotAfter = testNow.Add(p.Validity + 24*time.Hour) }, true},
		{"notAfter before notBefore", func(r *Request) { r.NotAfter = testNow.Add(-time.Hour) }, true},
		{"notBefore in the future", func(r *Request) { r.NotBefore = testNow.Add(time.Hour) }, true},
		{"notBefore backdated beyond the profile", func(r *Request) { r.NotBefore = testNow.Add(-time.Hour) }, true},
		{"no names", func(r *Request) { r.Names = nil }, true},
		{"an empty name", func(r *Request) { r.Names = []string{"example.fi", ""} }, true},
		{"a name twice, differing in case", func(r *Request) { r.Names = []string{"example.fi", "EXAMPLE.fi"} }, true},
		{"first name too long for a CN", func(r *Request) { r.Names = []string{long} }, true},
		{"first DNS name after an IP address too long for a CN", func(r *Request) { r.Names = []string{"192.0.2.1", long} }, true},
		{"IP addresses only", func(r *Request) { r.Names = []string{"192.0.2.1", "2001:db8::1"} }, true},
		{"no public key", func(r *Request) { r.PublicKey = nil }, false},
		{"unsupported public key", func(r *Request) { r.PublicKey = "key" }, false},
		{"validity beyond the issuer's (the client may ask for an earlier notAfter)", func(r *Request) {}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "p256", p)
			if strings.HasPrefix(tt.name, "validity beyond the issuer") {
				h.ca.issuer.Cert = makeCA(t, "short-lived issuer", h.pki.issuer.Key.Public(), h.pki.root, h.pki.rootKey, 30*24*time.Hour)
			}
			req := testRequest(t, "p256")
			tt.change(&req)
			got, err := h.ca.Issue(context.Background(), req)
			if err == nil {
				t.Fatalf("Issue = serial %s, want an error", got.Serial)
			}
			if errors.Is(err, ErrInvalidRequest) != tt.wantInvalid {
				t.Errorf("errors.Is(%v, ErrInvalidRequest) = %v, want %v", err, !tt.wantInvalid, tt.wantInvalid)
			}
			if n := len(h.rec.intents); n != 0 {
				t.Errorf("%d intents recorded, want 0", n)
			}
			if n := h.ev.count("sign"); n != 0 {
				t.Errorf("issuer key signed %d times, want 0", n)
			}
		})
	}
}

func TestIssueValidityWindow(t *testing.T) {
	p := testProfile()
	tests := []struct {
		name          string
		notBefore     time.Time
		notAfter      time.Time
		wantNotBefore time.Time
		wantNotAfter  time.Time
	}{
		{"defaults: backdated, longest period counting both ends", time.Time{}, time.Time{}, testNow.Add(-time.Minute), testNow.Add(-time.Minute + p.Validity - time.Second)},
		{"requested window inside the profile", testNow, testNow.Add(90 * 24 * time.Hour), testNow, testNow.Add(90 * 24 * time.Hour)},
		{"requested notAfter at the limit", testNow, testNow.Add(p.Validity - time.Second), testNow, testNow.Add(p.Validity - time.Second)},
		{"sub-second parts are truncated", testNow.Add(-500 * time.Millisecond), testNow.Add(time.Hour + 999*time.Millisecond), testNow.Add(-time.Second), testNow.Add(time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "p256", p)
			req := testRequest(t, "p256")
			req.NotBefore, req.NotAfter = tt.notBefore, tt.notAfter
			got, err := h.ca.Issue(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Cert.NotBefore.Equal(tt.wantNotBefore) || !got.Cert.NotAfter.Equal(tt.wantNotAfter) {
				t.Errorf("validity %s to %s, want %s to %s", got.Cert.NotBefore, got.Cert.NotAfter, tt.wantNotBefore, tt.wantNotAfter)
			}
		})
	}
}

func TestIssueRecordsIntentBeforeSigning(t *testing.T) {
	t.Run("intent is recorded before the key signs", func(t *testing.T) {
		h := newHarness(t, "p256", testProfile())
		if _, err := h.ca.Issue(context.Background(), testRequest(t, "p256")); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(h.ev.log, []string{"intent", "sign"}) {
			t.Errorf("events = %v, want [intent sign]", h.ev.log)
		}
	})
	t.Run("a failing recorder means no signing", func(t *testing.T) {
		dbDown := errors.New("database unavailable")
		h := newHarness(t, "p256", testProfile(), dbDown)
		got, err := h.ca.Issue(context.Background(), testRequest(t, "p256"))
		if !errors.Is(err, dbDown) || got != nil {
			t.Fatalf("Issue = %v, %v; want nil and the recorder's error", got, err)
		}
		if n := h.ev.count("sign"); n != 0 {
			t.Errorf("issuer key signed %d times, want 0", n)
		}
	})
	t.Run("a request cancelled after the intent is not signed", func(t *testing.T) {
		h := newHarness(t, "p256", testProfile())
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := h.ca.Issue(ctx, testRequest(t, "p256")); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnsigned) {
			t.Fatalf("err = %v, want context.Canceled and ErrUnsigned", err)
		}
		if n := h.ev.count("sign"); n != 0 {
			t.Errorf("issuer key signed %d times, want 0", n)
		}
	})
}

func TestIssueIntentRefused(t *testing.T) {
	dup := fmt.Errorf("insert: %w", store.ErrDuplicate)
	inUse := fmt.Errorf("insert: %w", store.ErrKeyInUse)
	tests := []struct {
		name        string
		recErrs     []error
		wantIntents int
		wantErr     error // nil: success
	}{
		{"one duplicate serial: a new serial is drawn", []error{dup}, 2, nil},
		{"two duplicate serials: the third serial is used", []error{dup, dup}, 3, nil},
		{"three duplicate serials: give up unsigned", []error{dup, dup, dup}, 3, store.ErrDuplicate},
		{"key already certified: error passes through unsigned", []error{inUse}, 1, store.ErrKeyInUse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "p256", testProfile(), tt.recErrs...)
			got, err := h.ca.Issue(context.Background(), testRequest(t, "p256"))
			if len(h.rec.intents) != tt.wantIntents {
				t.Errorf("intents = %d, want %d", len(h.rec.intents), tt.wantIntents)
			}
			seen := map[string]bool{}
			for _, in := range h.rec.intents {
				if seen[in.Serial] {
					t.Errorf("serial %s offered twice", in.Serial)
				}
				seen[in.Serial] = true
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || got != nil {
					t.Errorf("Issue = %v, %v; want nil and an error wrapping %v", got, err, tt.wantErr)
				}
				if n := h.ev.count("sign"); n != 0 {
					t.Errorf("issuer key signed %d times, want 0", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if last := h.rec.intents[len(h.rec.intents)-1]; got.Serial != last.Serial {
				t.Errorf("certificate serial %s, want the last recorded %s", got.Serial, last.Serial)
			}
			if n := h.ev.count("sign"); n != 1 {
				t.Errorf("issuer key signed %d times, want 1", n)
			}
		})
	}
}

func TestIssueBadSignature(t *testing.T) {
	other := newKey(t, "p256")
	tests := []struct {
		name    string
		corrupt func(*testing.T) func([]byte) []byte
	}{
		{"garbage signature", func(*testing.T) func([]byte) []byte {
			return func(sig []byte) []byte { return bytes.Repeat([]byte{0x42}, len(sig)) }
		}},
		{"one bit flipped", func(*testing.T) func([]byte) []byte {
			return func(sig []byte) []byte { s := slices.Clone(sig); s[len(s)/2] ^= 1; return s }
		}},
		{"empty signature", func(*testing.T) func([]byte) []byte {
			return func([]byte) []byte { return nil }
		}},
		{"well-formed signature by another key", func(t *testing.T) func([]byte) []byte {
			return func([]byte) []byte {
				sig, err := other.Sign(rand.Reader, bytes.Repeat([]byte{1}, 32), crypto.SHA256)
				if err != nil {
					t.Error(err)
				}
				return sig
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, "p256", testProfile())
			h.key.corrupt = tt.corrupt(t)
			got, err := h.ca.Issue(context.Background(), testRequest(t, "p256"))
			if err == nil || got != nil {
				t.Fatalf("Issue = %v, %v; want nil and an error", got, err)
			}
			if errors.Is(err, ErrUnsigned) {
				t.Error("the key signed, yet the error says it did not")
			}
			if len(h.rec.intents) != 1 {
				t.Errorf("intents = %d, want the one recorded before signing", len(h.rec.intents))
			}
		})
	}
}

func TestChainPEM(t *testing.T) {
	pki := newTestPKI(t, "p256")
	tests := []struct {
		name  string
		chain []*x509.Certificate
	}{
		{"no chain: the issuer only", nil},
		{"issuer then the chain above it", []*x509.Certificate{pki.root}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss := &Issuer{Cert: pki.issuer.Cert, Chain: tt.chain}
			want := append([]*x509.Certificate{pki.issuer.Cert}, tt.chain...)
			rest := iss.ChainPEM()
			for i, w := range want {
				var b *pem.Block
				b, rest = pem.Decode(rest)
				if b == nil || b.Type != "CERTIFICATE" || !bytes.Equal(b.Bytes, w.Raw) {
					t.Fatalf("block %d is not %s", i, w.Subject)
				}
			}
			if len(bytes.TrimSpace(rest)) != 0 {
				t.Errorf("trailing data %q", rest)
			}
		})
	}
}

func TestIssuerCheck(t *testing.T) {
	tests := []struct {
		name    string
		issuer  func(*testing.T, *testPKI) *Issuer
		wantErr bool
	}{
		{"matching ECDSA key and CA certificate", func(t *testing.T, p *testPKI) *Issuer { return p.issuer }, false},
		{"key of another issuer", func(t *testing.T, p *testPKI) *Issuer {
			return &Issuer{Name: "production", Cert: p.issuer.Cert, Key: newKey(t, "p256")}
		}, true},
		{"a certificate that is not a CA", func(t *testing.T, p *testPKI) *Issuer {
			ca := New(p.issuer, testProfile(), &fakeRecorder{ev: &events{}}, func() time.Time { return testNow }, nil)
			leafKey := newKey(t, "p256")
			got, err := ca.Issue(context.Background(), Request{PublicKey: leafKey.Public(), Names: []string{"leaf.example.fi"}})
			if err != nil {
				t.Fatal(err)
			}
			return &Issuer{Name: "production", Cert: got.Cert, Key: leafKey}
		}, true},
		{"missing key", func(t *testing.T, p *testPKI) *Issuer { return &Issuer{Cert: p.issuer.Cert} }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.issuer(t, newTestPKI(t, "p256")).Check()
			if (err != nil) != tt.wantErr {
				t.Errorf("Check() = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
	t.Run("each supported issuer key type passes", func(t *testing.T) {
		for _, kind := range []string{"p256", "p384", "rsa", "ed25519"} {
			if err := newTestPKI(t, kind).issuer.Check(); err != nil {
				t.Errorf("%s: %v", kind, err)
			}
		}
	})
}

func TestIssueConcurrently(t *testing.T) {
	h := newHarness(t, "p256", testProfile())
	const n = 16
	serials := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			got, err := h.ca.Issue(context.Background(), testRequest(t, "p256"))
			if err != nil {
				t.Error(err)
				return
			}
			serials <- got.Serial
		})
	}
	wg.Wait()
	close(serials)
	seen := map[string]bool{}
	for s := range serials {
		if seen[s] {
			t.Errorf("serial %s issued twice", s)
		}
		seen[s] = true
	}
	if len(seen) != n {
		t.Errorf("%d certificates, want %d", len(seen), n)
	}
}
