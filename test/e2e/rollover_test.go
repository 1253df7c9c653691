package e2e

import (
	"crypto/x509"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestIssuerRolloverAndRetirement runs the issuer lifecycle by hand, as an
// operator would with the built binary (practice statement 6.6, 6.8.1): a new
// production generation is made by "issuer new", loaded at a restart, and takes
// over issuance on "issuer activate" while the first generation keeps its CRL
// and OCSP; the first generation is then retired by two administrators, which
// revokes its valid certificate and publishes a final CRL that openssl reads,
// valid beyond the last certificate's expiry — the only CRL longer than 8 hours.
func TestIssuerRolloverAndRetirement(t *testing.T) {
	in := start(t, "")
	kid, mac := in.org("1.2.246.10.44444444.10.0", "Apteekki Neljä", "nelja.example")
	c := in.client(kid, mac)
	r := in.responder()
	dir := t.TempDir()
	public := "http://" + in.PublicAddr

	chainA, _ := in.obtain(c, r, newKey(t), "www.nelja.example")
	leafA, err := x509.ParseCertificate(chainA[0])
	if err != nil {
		t.Fatal(err)
	}
	if got := leafA.CRLDistributionPoints; len(got) != 1 || got[0] != public+"/crl/production.crl" {
		t.Fatalf("first certificate names CRL %v, want the first generation's", got)
	}

	out, err := in.cli("issuer", "new", "--hierarchy", "production")
	if err != nil || !strings.Contains(out, "issuer production-2 made (standby") {
		t.Fatalf("issuer new: %v\n%s", err, out)
	}
	// A standby generation's retirement may be asked for, and withdrawn.
	if out, err := in.cli("issuer", "retire", "production-2", "--reason", "asked by mistake"); err != nil {
		t.Fatalf("retire production-2: %v\n%s", err, out)
	}
	if out, err := in.cli("issuer", "retire", "production-2", "--withdraw", "--reason", "asked by mistake"); err != nil || !strings.Contains(out, "withdrawn") {
		t.Fatalf("withdraw: %v\n%s", err, out)
	}
	in.restart() // every server loads a new generation at its start
	out, err = in.cli("issuer", "list")
	if err != nil || !regexpHas(out, `production +production gen 1  active`) || !regexpHas(out, `production-2 +production gen 2  standby`) {
		t.Fatalf("issuer list after the restart: %v\n%s", err, out)
	}

	t.Run("the active generation cannot be retired", func(t *testing.T) {
		out, err := in.cli("issuer", "retire", "production", "--reason", "too early")
		if err == nil || !strings.Contains(out, "is the active production issuer: make another generation active first") {
			t.Fatalf("retire the active generation: %v\n%s", err, out)
		}
	})

	if out, err := in.cli("issuer", "activate", "production-2"); err != nil || !strings.Contains(out, "production goes on signing its CRLs") {
		t.Fatalf("issuer activate: %v\n%s", err, out)
	}
	waitFor(t, 30*time.Second, "the server to switch to production-2", func() bool {
		return in.LogHas(`"msg":"issuer generation took over","profile":"sote-server","issuer":"production-2"`)
	})

	kid, mac = in.eab("1.2.246.10.44444444.10.0") // the restart moved the ACME listener: a client of its new directory
	chainB, _ := in.obtain(in.client(kid, mac), r, newKey(t), "portaali.nelja.example")
	leafB, err := x509.ParseCertificate(chainB[0])
	if err != nil {
		t.Fatal(err)
	}
	issuerB, err := x509.ParseCertificate(chainB[1])
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the new generation signs, under the same root, with URLs of its own", func(t *testing.T) {
		if !strings.HasSuffix(issuerB.Subject.CommonName, " G2") {
			t.Errorf("second certificate's issuer %q, want the second generation", issuerB.Subject)
		}
		if _, err := leafB.Verify(x509.VerifyOptions{Roots: in.rootPool(), Intermediates: pool(issuerB)}); err != nil {
			t.Errorf("second certificate does not verify through roots.pem: %v", err)
		}
		if got := leafB.CRLDistributionPoints; len(got) != 1 || got[0] != public+"/crl/production-2.crl" {
			t.Errorf("second certificate names CRL %v", got)
		}
		rl, _, _ := fetchCRL(t, public+"/crl/production-2.crl")
		if err := rl.CheckSignatureFrom(issuerB); err != nil {
			t.Errorf("production-2.crl is not signed by the second generation: %v", err)
		}
	})
	issuerA, err := x509.ParseCertificate(chainA[1])
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the first generation keeps answering for its certificate", func(t *testing.T) {
		if got := in.OCSPStatus(leafA, issuerA); got != 0 {
			t.Errorf("OCSP for the first certificate: status %d, want good (0)", got)
		}
		rl, _, _ := fetchCRL(t, public+"/crl/production.crl")
		if err := rl.CheckSignatureFrom(issuerA); err != nil || rl.NextUpdate.Sub(rl.ThisUpdate) > 8*time.Hour {
			t.Errorf("production.crl: signature %v, validity %s", err, rl.NextUpdate.Sub(rl.ThisUpdate))
		}
	})

	// Retirement: one administrator asks, another carries it out.
	if out, err := in.cli("issuer", "retire", "production", "--reason", "rolled over to production-2"); err != nil || !strings.Contains(out, "another administrator carries it out") {
		t.Fatalf("issuer retire --reason: %v\n%s", err, out)
	}
	t.Run("the administrator who asked cannot carry it out", func(t *testing.T) {
		out, err := in.cli("issuer", "retire", "production", "--approve")
		if err == nil || !strings.Contains(out, "cannot carry it out (dual control); another administrator must") {
			t.Fatalf("retire --approve by the requester: %v\n%s", err, out)
		}
	})
	out, err = in.cli("issuer", "retire", "production", "--approve", "--operator-token-file", in.SecondAdmin())
	serialA := fmt.Sprintf("%x", leafA.SerialNumber)
	if err != nil || !strings.Contains(out, "issuer production is retired: 1 certificates revoked (cessationOfOperation)") || !strings.Contains(out, serialA) {
		t.Fatalf("issuer retire --approve by a second administrator: %v\n%s", err, out)
	}

	var final *x509.RevocationList
	var finalDER []byte
	waitFor(t, 30*time.Second, "the final CRL of production", func() bool {
		final, finalDER, _ = fetchCRL(t, public+"/crl/production.crl")
		return final.NextUpdate.Sub(final.ThisUpdate) > 8*time.Hour
	})
	t.Run("the final CRL lists the certificate and outlasts its expiry", func(t *testing.T) {
		if err := final.CheckSignatureFrom(issuerA); err != nil {
			t.Fatalf("final CRL signature: %v", err)
		}
		if !final.NextUpdate.After(leafA.NotAfter) {
			t.Errorf("final CRL's nextUpdate %s is not after the last expiry %s", final.NextUpdate, leafA.NotAfter)
		}
		listed := false
		for _, e := range final.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(leafA.SerialNumber) == 0 && e.ReasonCode == 5 {
				listed = true
			}
		}
		if !listed {
			t.Errorf("final CRL does not list %s as cessationOfOperation", serialA)
		}
		text, err := openssl(t, "crl", "-inform", "DER", "-in", mustWrite(t, dir, "final.der", finalDER), "-noout", "-text")
		if err != nil || !strings.Contains(text, "Cessation Of Operation") {
			t.Errorf("openssl crl -text: %v\n%s", err, text)
		}
		t.Logf("the final CRL as openssl reads it:\n%s", text)
		out, err := in.cli("crl", "show", "--issuer", "production")
		if err != nil || !strings.Contains(out, "FINAL: the issuer is retired") {
			t.Errorf("crl show: %v\n%s", err, out)
		}
		leafPEM := writePEM(t, dir, "a.pem", "CERTIFICATE", leafA.Raw)
		out, err = openssl(t, "verify", "-crl_check", "-CRLfile", writePEM(t, dir, "final.pem", "X509 CRL", finalDER),
			"-CAfile", in.Roots, "-untrusted", writePEM(t, dir, "issuerA.pem", "CERTIFICATE", issuerA.Raw), leafPEM)
		if err == nil || !strings.Contains(out, "certificate revoked") {
			t.Errorf("openssl verify -crl_check with the final CRL: %v\n%s", err, out)
		}
	})
	t.Run("a retired generation stays retired and is published no more", func(t *testing.T) {
		out, err := in.cli("issuer", "activate", "production")
		if err == nil || !strings.Contains(out, "is retired and signs nothing again") {
			t.Errorf("activate the retired generation: %v\n%s", err, out)
		}
		out, err = in.cli("issuer", "list")
		if err != nil || !regexpHas(out, `production +production gen 1  retired`) || !strings.Contains(out, "(final)") {
			t.Errorf("issuer list: %v\n%s", err, out)
		}
		in.restart()
		again, _, _ := fetchCRL(t, public+"/crl/production.crl")
		if again.Number.Cmp(final.Number) != 0 {
			t.Errorf("after a restart the retired generation published CRL %s after its final %s", again.Number, final.Number)
		}
		if got := in.OCSPStatus(leafB, issuerB); got != 0 {
			t.Errorf("OCSP for the second generation's certificate: %d, want good", got)
		}
	})
}

// regexpHas reports whether the pattern matches somewhere in s.
func regexpHas(s, pattern string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// waitFor polls cond every 200 ms until it holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(limit); !cond(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("waited %s for %s", limit, what)
		}
	}
}
