package e2e

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/profile"
	"github.com/varmenne/varmenne/signer/filekey"
)

// TestTestHierarchy: a production certificate and a test certificate from the built
// server, checked as relying parties check them, with crypto/x509 and with
// `openssl verify`: the production certificate verifies against roots.pem and not
// against test-roots.pem, the test certificate the other way round, and each
// carries its own policy OID. The start output says which file to trust where. A
// data directory from before the test root keeps starting, and says what it is.
func TestTestHierarchy(t *testing.T) {
	in := start(t, "")
	t.Run("the start output says which roots file to trust where", func(t *testing.T) {
		for _, want := range []string{
			"Trust roots:    " + in.Roots + " (production relying parties and ACME clients: this file only)",
			"Test roots:     " + in.TestRoots + " (test environments only",
		} {
			if !in.StdoutHas(want) {
				t.Errorf("the start output lacks %q:\n%s", want, in.Stdout.String())
			}
		}
	})

	r := in.responder()
	kid, mac := in.org("1.2.246.10.24681357.10.0", "Hierarkia Oy", "hierarkia.example")
	c := in.client(kid, mac)
	dir := t.TempDir()
	type issued struct {
		leaf, chain string // PEM files: the leaf, and the issuer served after it
		certs       []*x509.Certificate
	}
	issue := func(profileName, name string) issued {
		t.Helper()
		o, err := in.newOrder(c, profileName, "", name)
		if err != nil {
			t.Fatalf("newOrder %s: %v", profileName, err)
		}
		certs, err := in.finish(c, r, o, newKey(t), name)
		if err != nil {
			t.Fatalf("finalize %s: %v", profileName, err)
		}
		if len(certs) != 2 {
			t.Fatalf("%s: a chain of %d certificates, want leaf + issuer", profileName, len(certs))
		}
		return issued{
			leaf:  writePEM(t, dir, profileName+".pem", "CERTIFICATE", certs[0].Raw),
			chain: writePEM(t, dir, profileName+"-chain.pem", "CERTIFICATE", certs[1].Raw),
			certs: certs,
		}
	}
	prod := issue("sote-server", "www.hierarkia.example")
	test := issue("sote-server-test", "testi.hierarkia.example")

	for _, tt := range []struct {
		name            string
		cert            issued
		trusts, rejects string // roots files
		policy          string
	}{
		{"the production certificate", prod, in.Roots, in.TestRoots, profile.DefaultPolicyOID},
		{"the test certificate", test, in.TestRoots, in.Roots, profile.DefaultTestPolicyOID},
	} {
		leaf := tt.cert.certs[0]
		name := leaf.DNSNames[0]
		inter := x509.NewCertPool()
		inter.AddCert(tt.cert.certs[1])
		t.Run(tt.name+" verifies against "+filepath.Base(tt.trusts)+" only (crypto/x509)", func(t *testing.T) {
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: rootsFile(t, tt.trusts), Intermediates: inter}); err != nil {
				t.Errorf("a verifier trusting %s refuses it: %v", filepath.Base(tt.trusts), err)
			}
			_, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: rootsFile(t, tt.rejects), Intermediates: inter})
			var unknown x509.UnknownAuthorityError
			if !errors.As(err, &unknown) {
				t.Errorf("a verifier trusting only %s: %v, want an unknown authority", filepath.Base(tt.rejects), err)
			}
		})
		t.Run(tt.name+" verifies against "+filepath.Base(tt.trusts)+" only (openssl verify)", func(t *testing.T) {
			out, err := openssl(t, "verify", "-CAfile", tt.trusts, "-untrusted", tt.cert.chain, "-purpose", "sslserver", tt.cert.leaf)
			if err != nil || !strings.Contains(out, tt.cert.leaf+": OK") {
				t.Errorf("openssl verify -CAfile %s: %v\n%s", filepath.Base(tt.trusts), err, out)
			}
			out, err = openssl(t, "verify", "-CAfile", tt.rejects, "-untrusted", tt.cert.chain, "-purpose", "sslserver", tt.cert.leaf)
			if err == nil || strings.Contains(out, ": OK") || !strings.Contains(out, "unable to get local issuer certificate") {
				t.Errorf("openssl verify -CAfile %s: %v, want a refusal for the unknown issuer\n%s", filepath.Base(tt.rejects), err, out)
			}
		})
		t.Run(tt.name+" carries the policy "+tt.policy+" only", func(t *testing.T) {
			var got []string
			for _, p := range leaf.Policies {
				got = append(got, p.String())
			}
			if !slices.Equal(got, []string{tt.policy}) {
				t.Errorf("certificate policies %v, want [%s]", got, tt.policy)
			}
			out, err := openssl(t, "x509", "-in", tt.cert.leaf, "-noout", "-text")
			if err != nil || !strings.Contains(out, "Policy: "+tt.policy) {
				t.Errorf("openssl x509 -text does not show Policy: %s: %v\n%s", tt.policy, err, out)
			}
		})
	}

	t.Run("a data directory from before the test root starts as it is and warns", func(t *testing.T) {
		in.stop()
		pki := filepath.Join(in.Data, "pki")
		oldTest := underProductionRoot(t, pki)
		for _, f := range []string{"test-root.pem", "test-root.key"} {
			if err := os.Remove(filepath.Join(pki, f)); err != nil {
				t.Fatal(err)
			}
		}
		in.launch()
		if !in.LogHas("TEST ISSUER UNDER THE PRODUCTION ROOT") || !in.LogHas("remove test.pem, test.key, test-ocsp.pem and test-ocsp.key") {
			t.Errorf("no warning of the shared root, with how to make the PKI again:\n%s", in.Logs.String())
		}
		if got := mustRead(t, filepath.Join(pki, "test.pem")); !bytes.Equal(got, filekey.CertPEM(oldTest)) {
			t.Error("the start changed the old test issuer's certificate")
		}
		for _, f := range []string{"test-root.pem", "test-root.key"} {
			if _, err := os.Stat(filepath.Join(pki, f)); err == nil {
				t.Errorf("the start made %s for an old PKI", f)
			}
		}
		if !bytes.Equal(mustRead(t, in.TestRoots), mustRead(t, in.Roots)) {
			t.Error("test-roots.pem is not the one root this old PKI has")
		}
	})
}

// rootsFile is the pool of a roots file the server wrote.
func rootsFile(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(mustRead(t, path)) {
		t.Fatalf("%s holds no certificate", path)
	}
	return pool
}

// underProductionRoot rewrites pki/test.pem as varmenne made it before the test
// root: the same key and subject, signed by the production root (root.key), and
// returns the new certificate.
func underProductionRoot(t *testing.T, pki string) *x509.Certificate {
	t.Helper()
	root, err := filekey.LoadCertificate(filepath.Join(pki, "root.pem"))
	if err != nil {
		t.Fatal(err)
	}
	rootKey, err := filekey.Load(filepath.Join(pki, "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	test, err := filekey.LoadCertificate(filepath.Join(pki, "test.pem"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: test.SerialNumber, Subject: test.Subject, NotBefore: test.NotBefore, NotAfter: test.NotAfter,
		KeyUsage: test.KeyUsage, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(nil, tmpl, root, test.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, der)
	if err := os.WriteFile(filepath.Join(pki, "test.pem"), filekey.CertPEM(c), 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}
