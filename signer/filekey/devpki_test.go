package filekey

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/store"
)

var caFiles = []string{"root.pem", "root.key", "test-root.pem", "test-root.key", "production.pem", "production.key", "test.pem", "test.key"}

func mustEnsure(t *testing.T, dir, keyType string, names []string, wantCreated bool) *DevPKI {
	t.Helper()
	pki, created, err := EnsureDevPKI(dir, keyType, names)
	if err != nil {
		t.Fatal(err)
	}
	if created != wantCreated {
		t.Fatalf("created = %v, want %v", created, wantCreated)
	}
	return pki
}

func rootPool(t *testing.T, pemData []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemData) {
		t.Fatal("RootsPEM holds no certificate")
	}
	return p
}

func TestEnsureDevPKICreatesThenReloads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	first := mustEnsure(t, dir, "", []string{"acme.test"}, true)
	second := mustEnsure(t, dir, "", []string{"acme.test"}, false)

	t.Run("second call loads the same CA", func(t *testing.T) {
		if Fingerprint(first.Root) != Fingerprint(second.Root) {
			t.Errorf("root fingerprint changed: %s → %s", Fingerprint(first.Root), Fingerprint(second.Root))
		}
		if !first.Production.Cert.Equal(second.Production.Cert) || !first.Test.Cert.Equal(second.Test.Cert) {
			t.Error("issuer certificates changed on reload")
		}
		if !bytes.Equal(first.TLS.Certificate[0], second.TLS.Certificate[0]) {
			t.Error("a TLS certificate still good was re-issued")
		}
	})
	t.Run("files exist, keys 0600", func(t *testing.T) {
		for _, f := range append(slices.Clone(caFiles), "tls.pem", "tls.key") {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Error(err)
			}
			if strings.HasSuffix(f, ".key") {
				assertMode(t, filepath.Join(dir, f), 0o600)
			}
		}
	})
	for _, root := range []struct {
		name, cn string
		get      func(*DevPKI) *x509.Certificate
	}{
		{"production root", "varmenne development production root", func(p *DevPKI) *x509.Certificate { return p.Root }},
		{"test root", "varmenne development TEST root", func(p *DevPKI) *x509.Certificate { return p.TestRoot }},
	} {
		t.Run(root.name+": self-signed CA, default key ecdsa-p384, 10 years", func(t *testing.T) {
			r := root.get(second)
			want := pkix.Name{CommonName: root.cn, Organization: []string{"varmenne development"}, Country: []string{"FI"}}
			if r.Subject.String() != want.String() || !r.IsCA || r.CheckSignatureFrom(r) != nil {
				t.Errorf("root %s: IsCA %v", r.Subject, r.IsCA)
			}
			if k, ok := r.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P384() {
				t.Errorf("root key %T, want ecdsa P-384", r.PublicKey)
			}
			if y := r.NotAfter.Sub(r.NotBefore).Hours() / 24 / 365; y < 9.9 || y > 10.1 {
				t.Errorf("root lifetime %.2f years, want 10", y)
			}
		})
	}
	if second.SharedTestRoot || second.Root.Equal(second.TestRoot) {
		t.Fatal("a new development PKI has no test root of its own")
	}
	for _, iss := range []struct {
		name, cn string
		get      func(*DevPKI) *signer.Issuer
		root     func(*DevPKI) *x509.Certificate
	}{
		{"production", "varmenne development production issuer", func(p *DevPKI) *signer.Issuer { return p.Production }, func(p *DevPKI) *x509.Certificate { return p.Root }},
		{"test", "varmenne development TEST issuer", func(p *DevPKI) *signer.Issuer { return p.Test }, func(p *DevPKI) *x509.Certificate { return p.TestRoot }},
	} {
		t.Run(iss.name+" issuer: below its root, path length 0, certSign|crlSign critical, 5 years", func(t *testing.T) {
			i := iss.get(second)
			c := i.Cert
			if i.Name != iss.name || c.Subject.CommonName != iss.cn || len(i.Chain) != 0 {
				t.Errorf("issuer %q CN %q chain %d", i.Name, c.Subject.CommonName, len(i.Chain))
			}
			if err := c.CheckSignatureFrom(iss.root(second)); err != nil {
				t.Error(err)
			}
			if !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero {
				t.Errorf("IsCA %v MaxPathLen %d zero %v", c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
			}
			if c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
				t.Errorf("key usage %b", c.KeyUsage)
			}
			for _, e := range c.Extensions {
				if e.Id.Equal([]int{2, 5, 29, 15}) && !e.Critical {
					t.Error("key usage not critical")
				}
			}
			if y := c.NotAfter.Sub(c.NotBefore).Hours() / 24 / 365; y < 4.9 || y > 5.1 {
				t.Errorf("lifetime %.2f years, want 5", y)
			}
			if err := i.Check(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Run("TLS certificate verifies against RootsPEM for every listener name", func(t *testing.T) {
		leaf := second.TLS.Leaf
		if leaf == nil {
			t.Fatal("TLS.Leaf is nil")
		}
		if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
			t.Errorf("TLS key %T, want ecdsa P-256", leaf.PublicKey)
		}
		for _, name := range []string{"localhost", "127.0.0.1", "::1", "acme.test"} {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: rootPool(t, second.RootsPEM)}); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if d := leaf.NotAfter.Sub(leaf.NotBefore).Hours() / 24; d < 364 || d > 367 {
			t.Errorf("TLS lifetime %.1f days, want one year", d)
		}
	})
	t.Run("TLS handshake with a client trusting RootsPEM", func(t *testing.T) {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{second.TLS}})
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				c.(*tls.Conn).Handshake()
				c.Close()
			}
		}()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: rootPool(t, second.RootsPEM), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
	t.Run("RootsPEM is the production root only, TestRootsPEM the test root only", func(t *testing.T) {
		if !bytes.Equal(second.RootsPEM, CertPEM(second.Root)) || !bytes.Equal(second.TestRootsPEM, CertPEM(second.TestRoot)) {
			t.Error("the roots PEM are not one root each")
		}
	})
	for _, tt := range []struct {
		issuer          func(*DevPKI) *signer.Issuer
		trusts, rejects func(*DevPKI) []byte
	}{
		{func(p *DevPKI) *signer.Issuer { return p.Production }, func(p *DevPKI) []byte { return p.RootsPEM }, func(p *DevPKI) []byte { return p.TestRootsPEM }},
		{func(p *DevPKI) *signer.Issuer { return p.Test }, func(p *DevPKI) []byte { return p.TestRootsPEM }, func(p *DevPKI) []byte { return p.RootsPEM }},
	} {
		iss := tt.issuer(second)
		t.Run("a certificate of the "+iss.Name+" issuer verifies to its own root only", func(t *testing.T) {
			leaf := issueOne(t, iss)
			inter := x509.NewCertPool()
			inter.AddCert(iss.Cert)
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "www.example.fi", Roots: rootPool(t, tt.trusts(second)), Intermediates: inter}); err != nil {
				t.Errorf("does not verify to its own root: %v", err)
			}
			_, err := leaf.Verify(x509.VerifyOptions{DNSName: "www.example.fi", Roots: rootPool(t, tt.rejects(second)), Intermediates: inter})
			var unknown x509.UnknownAuthorityError
			if !errors.As(err, &unknown) {
				t.Errorf("verified against the other hierarchy's root: %v, want an unknown authority", err)
			}
		})
	}
}

// issueOne is a server certificate for www.example.fi from iss.
func issueOne(t *testing.T, iss *signer.Issuer) *x509.Certificate {
	t.Helper()
	ca := signer.New(iss, signer.Profile{
		Name: "sote-server", Validity: 365 * 24 * time.Hour, Backdate: time.Minute,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		// Every certificate needs a CRL and an issuer URL (lint).
		CRLURL: "http://crl.example.fi/" + iss.Name + ".crl", IssuerURL: "http://ca.example.fi/" + iss.Name + ".cer",
	}, nopRecorder{}, nil, nil)
	key, _ := Generate("ecdsa-p256")
	got, err := ca.Issue(context.Background(), signer.Request{PublicKey: key.Public(), Names: []string{"www.example.fi"}})
	if err != nil {
		t.Fatal(err)
	}
	return got.Cert
}

type nopRecorder struct{}

func (nopRecorder) RecordIntent(context.Context, store.IssuanceIntent) error { return nil }

func TestEnsureDevPKIKeyTypeForNewCA(t *testing.T) {
	pki := mustEnsure(t, t.TempDir(), "ecdsa-p256", nil, true)
	for _, c := range []*x509.Certificate{pki.Root, pki.TestRoot, pki.Production.Cert, pki.Test.Cert} {
		if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
			t.Errorf("%s: key %T, want ecdsa P-256", c.Subject.CommonName, c.PublicKey)
		}
	}
	if _, _, err := EnsureDevPKI(t.TempDir(), "dsa-1024", nil); err == nil {
		t.Error("unknown key type accepted")
	}
}

func TestEnsureDevPKITLSReissue(t *testing.T) {
	tests := []struct {
		name        string
		prepare     func(t *testing.T, dir string, pki *DevPKI) // between the two calls
		names       []string                                    // for the second call
		wantReissue bool
	}{
		{"still good: kept", func(*testing.T, string, *DevPKI) {}, nil, false},
		{"a name already covered, in other case and brackets: kept", func(*testing.T, string, *DevPKI) {}, []string{"LOCALHOST", "[::1]"}, false},
		{"a new DNS name: re-issued", func(*testing.T, string, *DevPKI) {}, []string{"acme.internal"}, true},
		{"a new IP: re-issued", func(*testing.T, string, *DevPKI) {}, []string{"192.0.2.7"}, true},
		{"expires within 30 days: re-issued", writeShortTLS, nil, true},
		{"tls.key replaced by another key: re-issued", func(t *testing.T, dir string, _ *DevPKI) {
			k, _ := Generate("ecdsa-p256")
			if err := Save(filepath.Join(dir, "tls.key"), k); err != nil {
				t.Fatal(err)
			}
		}, nil, true},
		{"tls.pem missing: re-issued", func(t *testing.T, dir string, _ *DevPKI) { os.Remove(filepath.Join(dir, "tls.pem")) }, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first := mustEnsure(t, dir, "ecdsa-p256", nil, true)
			tt.prepare(t, dir, first)
			second := mustEnsure(t, dir, "ecdsa-p256", tt.names, false)
			if Fingerprint(first.Root) != Fingerprint(second.Root) {
				t.Error("root changed")
			}
			reissued := !bytes.Equal(first.TLS.Certificate[0], second.TLS.Certificate[0])
			if reissued != tt.wantReissue {
				t.Errorf("re-issued = %v, want %v", reissued, tt.wantReissue)
			}
			for _, name := range append([]string{"localhost", "127.0.0.1", "::1"}, tt.names...) {
				name = strings.Trim(name, "[]")
				if err := second.TLS.Leaf.VerifyHostname(name); err != nil {
					t.Error(err)
				}
			}
			if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.pem"), filepath.Join(dir, "tls.key")); err != nil {
				t.Errorf("files on disk do not load as a pair: %v", err)
			}
		})
	}
}

// writeShortTLS replaces the TLS certificate with one for the same key and names
// that expires in 10 days.
func writeShortTLS(t *testing.T, dir string, pki *DevPKI) {
	t.Helper()
	rootKey, err := Load(filepath.Join(dir, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	old := pki.TLS.Leaf
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: old.Subject, DNSNames: old.DNSNames, IPAddresses: old.IPAddresses,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(nil, tmpl, pki.Root, old.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	if err := saveCert(filepath.Join(dir, "tls.pem"), c); err != nil {
		t.Fatal(err)
	}
}

func TestEnsureDevPKIRefusesDamagedCA(t *testing.T) {
	otherKey := func(t *testing.T, dir, file string) {
		k, _ := Generate("ecdsa-p256")
		if err := Save(filepath.Join(dir, file), k); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		damage   func(t *testing.T, dir string)
		wantFile string // the error must name it
	}{
		{"production.key replaced by another key", func(t *testing.T, dir string) { otherKey(t, dir, "production.key") }, "production.key"},
		{"test.key replaced by another key", func(t *testing.T, dir string) { otherKey(t, dir, "test.key") }, "test.key"},
		{"root.key replaced by another key", func(t *testing.T, dir string) { otherKey(t, dir, "root.key") }, "root.key"},
		{"test-root.key replaced by another key", func(t *testing.T, dir string) { otherKey(t, dir, "test-root.key") }, "test-root.key"},
		{"test-root.key missing", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "test-root.key")) }, "test-root.key"},
		{"test root files missing while the test issuer remains", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "test-root.key"))
			os.Remove(filepath.Join(dir, "test-root.pem"))
		}, "test-root.key"},
		{"test.pem signed by the production root while a test root exists", func(t *testing.T, dir string) {
			resignTestIssuer(t, dir, "root")
		}, "test.pem"},
		{"production.pem from another PKI", func(t *testing.T, dir string) {
			other := t.TempDir()
			mustEnsure(t, other, "ecdsa-p256", nil, true)
			for _, f := range []string{"production.pem", "production.key"} {
				data, _ := os.ReadFile(filepath.Join(other, f))
				os.WriteFile(filepath.Join(dir, f), data, 0o600)
			}
		}, "production.pem"},
		{"test.key missing", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "test.key")) }, "test.key"},
		{"root files missing while issuers remain", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "root.key"))
			os.Remove(filepath.Join(dir, "root.pem"))
		}, "root.key"},
		{"production.pem not a certificate", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "production.pem"), []byte("garbage"), 0o644)
		}, "production.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mustEnsure(t, dir, "ecdsa-p256", nil, true)
			tt.damage(t, dir)
			before := snapshot(t, dir)
			pki, _, err := EnsureDevPKI(dir, "ecdsa-p256", nil)
			if err == nil || pki != nil {
				t.Fatalf("EnsureDevPKI = %v, %v; want an error", pki, err)
			}
			// The full path: t.TempDir's name holds the test name, which may hold the file's.
			if want := filepath.Join(dir, tt.wantFile); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
			if after := snapshot(t, dir); !maps.Equal(before, after) {
				t.Error("a refused load changed the CA files")
			}
		})
	}
}

func TestEnsureDevPKIRecoversCertificateForExistingKey(t *testing.T) {
	dir := t.TempDir()
	first := mustEnsure(t, dir, "ecdsa-p256", nil, true)
	// As after a crash between writing test.key and test.pem.
	os.Remove(filepath.Join(dir, "test.pem"))
	second := mustEnsure(t, dir, "ecdsa-p256", nil, false)
	if !first.Test.Cert.PublicKey.(*ecdsa.PublicKey).Equal(second.Test.Cert.PublicKey) {
		t.Error("test issuer got a new key; want a new certificate for the existing key")
	}
	if err := second.Test.Cert.CheckSignatureFrom(second.TestRoot); err != nil {
		t.Error(err)
	}
}

// resignTestIssuer replaces test.pem with a certificate for the same key and
// subject signed by the CA in <signer>.pem/.key, as a PKI made before the test
// root has it when signer is "root".
func resignTestIssuer(t *testing.T, dir, signerName string) {
	t.Helper()
	parent, err := loadCert(filepath.Join(dir, signerName+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	parentKey, err := Load(filepath.Join(dir, signerName+".key"))
	if err != nil {
		t.Fatal(err)
	}
	old, err := loadCert(filepath.Join(dir, "test.pem"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		Subject: old.Subject, NotBefore: old.NotBefore, NotAfter: old.NotAfter,
		KeyUsage: old.KeyUsage, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	c, err := createCert(tmpl, parent, old.PublicKey, parentKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := saveCert(filepath.Join(dir, "test.pem"), c); err != nil {
		t.Fatal(err)
	}
}

// TestEnsureDevPKIBeforeTheTestRoot: a data directory made when the test issuer
// was signed by the one root keeps starting, unchanged, and says so; removing its
// test issuer makes a test hierarchy of its own.
func TestEnsureDevPKIBeforeTheTestRoot(t *testing.T) {
	dir := t.TempDir()
	mustEnsure(t, dir, "ecdsa-p256", nil, true)
	resignTestIssuer(t, dir, "root")
	for _, f := range []string{"test-root.pem", "test-root.key"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, dir)

	old := mustEnsure(t, dir, "ecdsa-p256", nil, false)
	if !old.SharedTestRoot || !old.TestRoot.Equal(old.Root) || !bytes.Equal(old.TestRootsPEM, old.RootsPEM) {
		t.Errorf("SharedTestRoot %v: want the old PKI reported as one root for both issuers", old.SharedTestRoot)
	}
	if err := old.Test.Cert.CheckSignatureFrom(old.Root); err != nil {
		t.Errorf("the old test issuer was changed: %v", err)
	}
	if after := snapshot(t, dir); !maps.Equal(before, after) {
		t.Error("loading an old PKI changed its CA files or made a test root")
	}

	// The operator's redo: the test issuer's files removed.
	for _, f := range []string{"test.pem", "test.key", "test-ocsp.pem", "test-ocsp.key"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	redone := mustEnsure(t, dir, "ecdsa-p256", nil, true)
	if redone.SharedTestRoot || redone.TestRoot.Equal(redone.Root) || !redone.Root.Equal(old.Root) || !redone.Production.Cert.Equal(old.Production.Cert) {
		t.Fatal("the redo did not make a test root of its own, or changed the production hierarchy")
	}
	if redone.Test.Cert.CheckSignatureFrom(redone.Root) == nil || redone.Test.Cert.CheckSignatureFrom(redone.TestRoot) != nil {
		t.Error("the new test issuer is not signed by the test root alone")
	}
}

func TestWriteRoots(t *testing.T) {
	pki := mustEnsure(t, t.TempDir(), "ecdsa-p256", nil, true)
	data := t.TempDir()
	roots, testRoots, err := WriteRoots(data, pki.Root, pki.TestRoot)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path, name string
		want       *x509.Certificate
	}{{roots, "roots.pem", pki.Root}, {testRoots, "test-roots.pem", pki.TestRoot}} {
		if f.path != filepath.Join(data, f.name) {
			t.Errorf("path %s, want %s", f.path, filepath.Join(data, f.name))
		}
		got, err := os.ReadFile(f.path)
		if err != nil || !bytes.Equal(got, CertPEM(f.want)) {
			t.Errorf("%s does not hold exactly %s: %v", f.name, f.want.Subject, err)
		}
		assertMode(t, f.path, 0o644)
	}
}

// snapshot reads the CA files of dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, f := range caFiles {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err == nil {
			m[f] = string(data)
		}
	}
	return m
}
