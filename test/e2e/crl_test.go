package e2e

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// crlWait bounds how long a revocation may take to reach the served CRL. The
// server polls every 2 s; the bound leaves room for a loaded machine.
const crlWait = 30 * time.Second

// fetchCRL gets and parses the CRL at u.
func fetchCRL(t *testing.T, u string) (*x509.RevocationList, []byte, http.Header) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	der, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, %v", u, resp.StatusCode, err)
	}
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("the CRL at %s does not parse: %v", u, err)
	}
	return rl, der, resp.Header
}

// waitCRL polls u until the served CRL satisfies ok, and fails after crlWait. It
// checks that the number never goes down while it waits.
func waitCRL(t *testing.T, u string, ok func(*x509.RevocationList) bool) (*x509.RevocationList, []byte) {
	t.Helper()
	deadline := time.Now().Add(crlWait)
	var last *big.Int
	for {
		rl, der, _ := fetchCRL(t, u)
		if last != nil && rl.Number.Cmp(last) < 0 {
			t.Fatalf("CRL number went down from %v to %v", last, rl.Number)
		}
		last = rl.Number
		if ok(rl) {
			return rl, der
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CRL at %s did not change as expected within %s (number %v, %d entries)", u, crlWait, rl.Number, len(rl.RevokedCertificateEntries))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func listed(rl *x509.RevocationList, serial *big.Int) *x509.RevocationListEntry {
	for i := range rl.RevokedCertificateEntries {
		if rl.RevokedCertificateEntries[i].SerialNumber.Cmp(serial) == 0 {
			return &rl.RevokedCertificateEntries[i]
		}
	}
	return nil
}

// openssl runs the openssl command line tool, which relying parties use.
func openssl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed (scripts/install-test-deps installs it)")
	}
	out, err := exec.Command("openssl", args...).CombinedOutput()
	return string(out), err
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// serialTLV is the serialNumber INTEGER, tag and length included, of a certificate's
// TBS or of a CRL entry.
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

// colonHex writes a serial as SOTE documents and openssl do: upper-case hex bytes
// joined by colons.
func colonHex(n *big.Int) string {
	var parts []string
	for _, b := range n.Bytes() {
		parts = append(parts, fmt.Sprintf("%02X", b))
	}
	return strings.Join(parts, ":")
}

var oidInvalidityDate = asn1.ObjectIdentifier{2, 5, 29, 24}

// TestRevocationStatusEndToEnd: a relying party with nothing but openssl and the
// URLs in the certificate sees a certificate good, then revoked within seconds of an
// ACME or operator revocation, on the CRL and over OCSP.
func TestRevocationStatusEndToEnd(t *testing.T) {
	in := start(t, "")
	kid, mac := in.org("1.2.246.10.33333333.10.0", "Apteekki Kolme", "kolme.example")
	c := in.client(kid, mac)
	r := in.responder()
	dir := t.TempDir()

	var leaves []*x509.Certificate
	var issuerDER []byte
	for _, name := range []string{"www.kolme.example", "portaali.kolme.example", "api.kolme.example", "jaa.kolme.example"} {
		chain, _ := in.obtain(c, r, newKey(t), name)
		leaf, err := x509.ParseCertificate(chain[0])
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, leaf)
		issuerDER = chain[1]
	}
	leaf := leaves[0]
	public := "http://" + in.PublicAddr
	crlURL, ocspURL := public+"/crl/production.crl", public+"/ocsp/production"

	t.Run("certificates name the CRL, OCSP and issuer URLs the server serves", func(t *testing.T) {
		if got := leaf.CRLDistributionPoints; len(got) != 1 || got[0] != crlURL {
			t.Errorf("CRL DP %v, want %s", got, crlURL)
		}
		if got := leaf.OCSPServer; len(got) != 1 || got[0] != ocspURL {
			t.Errorf("AIA OCSP %v, want %s", got, ocspURL)
		}
		if len(leaf.IssuingCertificateURL) != 1 {
			t.Fatalf("AIA caIssuers %v", leaf.IssuingCertificateURL)
		}
		resp, err := http.Get(leaf.IssuingCertificateURL[0])
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(got, issuerDER) || resp.Header.Get("Content-Type") != "application/pkix-cert" {
			t.Errorf("issuer at %s: status %d, %d bytes, %s; want the chain's issuer DER", leaf.IssuingCertificateURL[0],
				resp.StatusCode, len(got), resp.Header.Get("Content-Type"))
		}
	})

	issuerPEM := writePEM(t, dir, "issuer.pem", "CERTIFICATE", issuerDER)
	var leafPEM []string
	for i, l := range leaves {
		leafPEM = append(leafPEM, writePEM(t, dir, fmt.Sprintf("leaf%d.pem", i), "CERTIFICATE", l.Raw))
	}
	verify := func(t *testing.T, crlDER []byte, leafPath string) (string, error) {
		t.Helper()
		crlPEM := writePEM(t, dir, "crl.pem", "X509 CRL", crlDER)
		return openssl(t, "verify", "-crl_check", "-CRLfile", crlPEM, "-CAfile", in.Roots, "-untrusted", issuerPEM, leafPath)
	}
	ocspStatus := func(t *testing.T, leafPath string) string {
		t.Helper()
		out, err := openssl(t, "ocsp", "-issuer", issuerPEM, "-cert", leafPath, "-url", ocspURL, "-CAfile", in.Roots, "-no_nonce")
		if err != nil || !strings.Contains(out, "Response verify OK") {
			t.Fatalf("openssl ocsp: %v\n%s", err, out)
		}
		return out
	}

	rl, der, header := fetchCRL(t, crlURL)
	t.Run("the CRL is DER that openssl reads, cacheable until its nextUpdate", func(t *testing.T) {
		out, err := openssl(t, "crl", "-inform", "DER", "-in", mustWrite(t, dir, "first.der", der), "-noout", "-text")
		if err != nil || !strings.Contains(out, "Certificate Revocation List") || !strings.Contains(out, "X509v3 CRL Number") {
			t.Fatalf("openssl crl: %v\n%s", err, out)
		}
		if ct := header.Get("Content-Type"); ct != "application/pkix-crl" {
			t.Errorf("Content-Type %q", ct)
		}
		m := regexp.MustCompile(`max-age=(\d+)`).FindStringSubmatch(header.Get("Cache-Control"))
		if m == nil {
			t.Fatalf("Cache-Control %q has no max-age", header.Get("Cache-Control"))
		}
		age, _ := strconv.Atoi(m[1])
		if left := time.Until(rl.NextUpdate); age <= 0 || time.Duration(age)*time.Second > left+time.Second {
			t.Errorf("max-age %d s, but nextUpdate is %s away", age, left.Round(time.Second))
		}
		if exp, err := http.ParseTime(header.Get("Expires")); err != nil || !exp.Equal(rl.NextUpdate) {
			t.Errorf("Expires %q, want nextUpdate %s", header.Get("Expires"), rl.NextUpdate)
		}
		if d := rl.NextUpdate.Sub(rl.ThisUpdate); d <= 0 || d > 8*time.Hour {
			t.Errorf("nextUpdate − thisUpdate = %s, want (0, 8h]", d)
		}
	})
	t.Run("a relying party accepts the good certificate", func(t *testing.T) {
		if out, err := verify(t, der, leafPEM[0]); err != nil || !strings.Contains(out, ": OK") {
			t.Fatalf("openssl verify -crl_check: %v\n%s", err, out)
		}
		if out := ocspStatus(t, leafPEM[0]); !strings.Contains(out, leafPEM[0]+": good") {
			t.Fatalf("openssl ocsp says\n%s\nwant good", out)
		}
	})

	// Revocation by the ACME account.
	if err := c.RevokeCert(ctxT(t), nil, leaf.Raw, acme.CRLReasonSuperseded); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	revokedAt := time.Now()
	rl, der = waitCRL(t, crlURL, func(rl *x509.RevocationList) bool { return listed(rl, leaf.SerialNumber) != nil })
	t.Logf("the revocation was on the served CRL (number %v) %s after the ACME answer", rl.Number, time.Since(revokedAt).Round(10*time.Millisecond))

	t.Run("a relying party rejects it after the ACME revocation", func(t *testing.T) {
		out, err := verify(t, der, leafPEM[0])
		if err == nil || !strings.Contains(out, "certificate revoked") {
			t.Fatalf("openssl verify -crl_check accepted a revoked certificate: %v\n%s", err, out)
		}
		out = ocspStatus(t, leafPEM[0])
		if !strings.Contains(out, leafPEM[0]+": revoked") || !strings.Contains(out, "Reason: superseded") {
			t.Fatalf("openssl ocsp says\n%s\nwant revoked, superseded", out)
		}
		if out, err := verify(t, der, leafPEM[1]); err != nil || !strings.Contains(out, ": OK") {
			t.Fatalf("another certificate is rejected: %v\n%s", err, out)
		}
	})

	// Operator revocations, by serial as SOTE documents write it.
	cliRevoke := func(t *testing.T, args ...string) string {
		t.Helper()
		base := []string{"revoke", "--requested-by", "Maija Meikäläinen, Apteekki Kolme", "--identified-by", "strong identification in the e-service"}
		out, err := in.cli(append(base, args...)...)
		if err != nil {
			t.Fatalf("varmenne revoke %v: %v\n%s", args, err, out)
		}
		return out
	}
	// RFC 5280 invalidityDate: not after now, not before the certificate's notBefore.
	invalidity := leaves[1].NotBefore.UTC()
	t.Run("the CLI revokes by upper-case hex with colons", func(t *testing.T) {
		out := cliRevoke(t, "--serial", colonHex(leaves[1].SerialNumber), "--reason", "keyCompromise",
			"--invalidity-date", invalidity.Format(time.RFC3339), "--note", "ticket 1234")
		if want := "revoked certificate " + hex.EncodeToString(leaves[1].SerialNumber.Bytes()); !strings.Contains(out, want) {
			t.Errorf("output %q does not say %q", out, want)
		}
	})
	t.Run("the CLI revokes by decimal", func(t *testing.T) {
		dec := leaves[2].SerialNumber.String()
		if len(dec) < 40 {
			t.Fatalf("decimal serial %s: want the 41-42 digits of an 18-byte SOTE serial", dec)
		}
		cliRevoke(t, "--serial", dec, "--reason", "unspecified")
	})
	t.Run("a second revocation is refused: revocation is final", func(t *testing.T) {
		out, err := in.cli("revoke", "--serial", fmt.Sprintf("0x%x", leaves[1].SerialNumber), "--reason", "superseded",
			"--requested-by", "x", "--identified-by", "y")
		if err == nil || !strings.Contains(out, "already revoked") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("second revocation: %v, %q; want one line saying it is already revoked", err, out)
		}
	})
	rl, der = waitCRL(t, crlURL, func(rl *x509.RevocationList) bool {
		return listed(rl, leaves[1].SerialNumber) != nil && listed(rl, leaves[2].SerialNumber) != nil
	})
	t.Run("entries: serial byte for byte, time, reason (left out for unspecified), invalidity date", func(t *testing.T) {
		cases := []struct {
			leaf       *x509.Certificate
			reason     int
			invalidity bool
		}{
			{leaves[0], 4, false},
			{leaves[1], 1, true},
			{leaves[2], 0, false},
		}
		for _, tc := range cases {
			e := listed(rl, tc.leaf.SerialNumber)
			if !bytes.Equal(serialTLV(t, e.Raw, false), serialTLV(t, tc.leaf.RawTBSCertificate, true)) {
				t.Errorf("%x: the entry's serial is not the certificate's byte for byte", tc.leaf.SerialNumber)
			}
			if e.ReasonCode != tc.reason || time.Since(e.RevocationTime) > time.Minute || e.RevocationTime.After(time.Now()) {
				t.Errorf("%x: reason %d at %s; want reason %d, just now", tc.leaf.SerialNumber, e.ReasonCode, e.RevocationTime, tc.reason)
			}
			if tc.reason == 0 && len(e.Extensions) != 0 {
				t.Errorf("%x: reason unspecified, yet extensions %v", tc.leaf.SerialNumber, e.Extensions)
			}
			var inv time.Time
			for _, ext := range e.Extensions {
				if ext.Id.Equal(oidInvalidityDate) {
					asn1.UnmarshalWithParams(ext.Value, &inv, "generalized")
				}
			}
			if tc.invalidity != !inv.IsZero() || (tc.invalidity && !inv.Equal(invalidity)) {
				t.Errorf("%x: invalidity date %s, want %v %s", tc.leaf.SerialNumber, inv, tc.invalidity, invalidity)
			}
		}
		for _, i := range []int{1, 2} {
			if out, err := verify(t, der, leafPEM[i]); err == nil || !strings.Contains(out, "certificate revoked") {
				t.Errorf("openssl verify accepts certificate %d revoked by the CLI: %v\n%s", i, err, out)
			}
		}
	})
	t.Run("OCSP by GET (RFC 5019) reports the CLI revocation with its reason", func(t *testing.T) {
		req, err := ocsp.CreateRequest(leaves[1], mustParse(t, issuerDER), &ocsp.RequestOptions{Hash: crypto.SHA1})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(ocspURL + "/" + url.PathEscape(base64.StdEncoding.EncodeToString(req)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got, err := ocsp.ParseResponseForCert(body, leaves[1], mustParse(t, issuerDER))
		if err != nil || got.Status != ocsp.Revoked || got.RevocationReason != ocsp.KeyCompromise {
			t.Fatalf("OCSP GET: %+v, %v; want revoked for keyCompromise", got, err)
		}
		if resp.Header.Get("Cache-Control") == "" || resp.Header.Get("Content-Type") != "application/ocsp-response" {
			t.Errorf("headers %v", resp.Header)
		}
	})
	t.Run("crl show reads what is served, beside the running server", func(t *testing.T) {
		out, err := in.cli("crl", "show", "--issuer", "production")
		if err != nil {
			t.Fatalf("crl show: %v\n%s", err, out)
		}
		for _, want := range []string{"number:       " + rl.Number.String(), "entries:      3", "nextUpdate:", "(valid)"} {
			if !strings.Contains(out, want) {
				t.Errorf("crl show output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("revoke --org revokes every unexpired, unrevoked certificate of the organisation", func(t *testing.T) {
		const org = "1.2.246.10.44444444.10.0"
		kidB, macB := in.org(org, "Apteekki Neljä", "nelja.example")
		cB := in.client(kidB, macB)
		var bLeaves []*x509.Certificate
		for _, name := range []string{"www.nelja.example", "api.nelja.example"} {
			chain, _ := in.obtain(cB, r, newKey(t), name)
			l, _ := x509.ParseCertificate(chain[0])
			bLeaves = append(bLeaves, l)
		}
		out := cliRevoke(t, "--org", org, "--reason", "cessationOfOperation")
		if !strings.HasPrefix(out, "revoked 2 certificates of organisation "+org) {
			t.Errorf("output %q, want the count 2", out)
		}
		out = cliRevoke(t, "--org", org, "--reason", "cessationOfOperation")
		if !strings.HasPrefix(out, "revoked 0 certificates") {
			t.Errorf("second run: %q, want 0", out)
		}
		rl, _ := waitCRL(t, crlURL, func(rl *x509.RevocationList) bool {
			return listed(rl, bLeaves[0].SerialNumber) != nil && listed(rl, bLeaves[1].SerialNumber) != nil
		})
		if e := listed(rl, bLeaves[0].SerialNumber); e.ReasonCode != 5 {
			t.Errorf("reason %d, want cessationOfOperation (5)", e.ReasonCode)
		}
		if listed(rl, leaves[3].SerialNumber) != nil {
			t.Error("another organisation's certificate was revoked")
		}
		if out := ocspStatus(t, leafPEM[3]); !strings.Contains(out, leafPEM[3]+": good") {
			t.Errorf("the other organisation's certificate is not good on OCSP:\n%s", out)
		}
	})
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustWrite(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCRLNumberIncreasesOverRevocationsAndRestarts: 100 certificates issued through
// ACME and revoked through ACME in four batches, with a restart between batches: every
// CRL served has a number above all before it, across the restarts, and the last
// one lists all 100.
func TestCRLNumberIncreasesOverRevocationsAndRestarts(t *testing.T) {
	const clients, perClient = 4, 25
	started := time.Now()
	in := start(t, "")
	r := in.responder()
	const org = "1.2.246.10.55555555.10.0"
	kid, mac := in.org(org, "Apteekki Viisi", "viisi.example")

	// Each account proves its name once; its later orders reuse the authorization,
	// so the 100 issuances cost a newOrder and a finalize each.
	type issued struct {
		key crypto.Signer
		der []byte
	}
	certs := make([][]issued, clients)
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		if i > 0 {
			kid, mac = in.eab(org)
		}
		c := in.client(kid, mac)
		name := fmt.Sprintf("w%d.viisi.example", i)
		key := newKey(t)
		chain, _ := in.obtain(c, r, key, name)
		certs[i] = append(certs[i], issued{key, chain[0]})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for len(certs[i]) < perClient {
				key := newKey(t)
				der, err := issueReused(in, c, key, name)
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
					return
				}
				certs[i] = append(certs[i], issued{key, der})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("issued %d certificates in %s", clients*perClient, time.Since(started).Round(time.Millisecond))

	crlURL := "http://" + in.PublicAddr + "/crl/production.crl"
	last, _, _ := fetchCRL(t, crlURL)
	numbers := []string{last.Number.String()}
	revoked := 0
	for batch := range clients {
		if batch > 0 {
			in.restart()
			rl, _, _ := fetchCRL(t, crlURL)
			if rl.Number.Cmp(last.Number) <= 0 {
				t.Fatalf("after restart %d the CRL number is %v, not above %v", batch, rl.Number, last.Number)
			}
			numbers = append(numbers, rl.Number.String()+" (restart)")
			last = rl
		}
		// Revoked by each certificate's own key, concurrently: no account needed
		// after a restart, and the server sees revocations arrive at once.
		var wg sync.WaitGroup
		failed := make(chan error, perClient)
		for _, c := range certs[batch] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := &acme.Client{Key: c.key, DirectoryURL: in.Directory, HTTPClient: in.httpClient()}
				if err := cl.RevokeCert(ctxT(t), c.key, c.der, acme.CRLReasonCessationOfOperation); err != nil {
					failed <- err
				}
			}()
		}
		wg.Wait()
		close(failed)
		for err := range failed {
			t.Fatalf("batch %d: revoke: %v", batch, err)
		}
		revoked += perClient
		rl, _ := waitCRL(t, crlURL, func(rl *x509.RevocationList) bool { return len(rl.RevokedCertificateEntries) == revoked })
		if rl.Number.Cmp(last.Number) <= 0 {
			t.Fatalf("batch %d: CRL number %v is not above %v", batch, rl.Number, last.Number)
		}
		numbers = append(numbers, rl.Number.String())
		last = rl
	}
	for _, batch := range certs {
		for _, c := range batch {
			if listed(last, mustParse(t, c.der).SerialNumber) == nil {
				t.Fatalf("serial %x is missing from the last CRL", mustParse(t, c.der).SerialNumber)
			}
		}
	}
	out, err := in.cli("crl", "show", "--issuer", "production")
	if err != nil || !strings.Contains(out, "number:       "+last.Number.String()+"\n") || !strings.Contains(out, "revocations:  100 recorded, all covered") {
		t.Errorf("crl show: %v\n%s\nwant number %v covering 100 revocations", err, out, last.Number)
	}
	t.Logf("CRL numbers: %s; whole test %s", strings.Join(numbers, ", "), time.Since(started).Round(time.Millisecond))
}

// issueReused orders a certificate for a name whose authorization the account holds.
func issueReused(in *instance, c *acme.Client, key crypto.Signer, name string) ([]byte, error) {
	ctx := ctxT(in.T)
	order, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name))
	if err != nil {
		return nil, err
	}
	if order.Status != acme.StatusReady {
		return nil, fmt.Errorf("order for %s is %s, want ready (authorization reuse)", name, order.Status)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, key)
	if err != nil {
		return nil, err
	}
	chain, _, err := c.CreateOrderCert(ctx, order.FinalizeURL, csr, false)
	if err != nil {
		return nil, err
	}
	return chain[0], nil
}

// TestACMERevocationRights: who may revoke through ACME, and what a revocation does
// beyond the CRL. The owner, the certificate key and finality are proven in
// TestGoClientIssueDownloadRevoke; this adds the organisation's other accounts,
// another organisation's account, the refused reasons and the blocked key.
func TestACMERevocationRights(t *testing.T) {
	in := start(t, "")
	const orgA = "1.2.246.10.66666666.10.0"
	kidA, macA := in.org(orgA, "Apteekki Kuusi", "kuusi.example")
	owner := in.client(kidA, macA)
	kidA2, macA2 := in.eab(orgA)
	colleague := in.client(kidA2, macA2)
	kidB, macB := in.org("1.2.246.10.77777777.10.0", "Apteekki Seitsemän", "seitseman.example")
	stranger := in.client(kidB, macB)
	r := in.responder()
	certKey := newKey(t)
	chain, _ := in.obtain(owner, r, certKey, "www.kuusi.example")
	leaf := mustParse(t, chain[0])
	crlURL := "http://" + in.PublicAddr + "/crl/production.crl"

	steps := []struct {
		name   string
		do     func() error
		wantOK bool
		want   string // the problem type when refused
	}{
		{"an account of another organisation is refused",
			func() error { return stranger.RevokeCert(ctxT(t), nil, leaf.Raw, acme.CRLReasonKeyCompromise) }, false, "unauthorized"},
		{"removeFromCRL is refused: revocation is final",
			func() error { return owner.RevokeCert(ctxT(t), nil, leaf.Raw, acme.CRLReasonRemoveFromCRL) }, false, "badRevocationReason"},
		{"aACompromise is refused",
			func() error { return owner.RevokeCert(ctxT(t), nil, leaf.Raw, acme.CRLReasonAACompromise) }, false, "badRevocationReason"},
		{"another account of the same organisation may revoke",
			func() error { return colleague.RevokeCert(ctxT(t), nil, leaf.Raw, acme.CRLReasonKeyCompromise) }, true, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			err := s.do()
			if s.wantOK && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !s.wantOK && !isProblem(err, s.want) {
				t.Fatalf("got %v, want %s", err, s.want)
			}
		})
	}
	t.Run("the revocation reaches the CRL with its reason", func(t *testing.T) {
		rl, _ := waitCRL(t, crlURL, func(rl *x509.RevocationList) bool { return listed(rl, leaf.SerialNumber) != nil })
		if e := listed(rl, leaf.SerialNumber); e.ReasonCode != 1 {
			t.Errorf("reason %d, want keyCompromise (1)", e.ReasonCode)
		}
	})
	t.Run("the compromised key cannot become an account key", func(t *testing.T) {
		kid, mac := in.eab(orgA)
		key, err := base64.RawURLEncoding.DecodeString(mac)
		if err != nil {
			t.Fatal(err)
		}
		c := &acme.Client{Key: certKey, DirectoryURL: in.Directory, HTTPClient: in.httpClient()}
		_, err = c.Register(ctxT(t), &acme.Account{ExternalAccountBinding: &acme.ExternalAccountBinding{KID: kid, Key: key}}, acme.AcceptTOS)
		if !isProblem(err, "badPublicKey") {
			t.Errorf("registering with the compromised key: %v, want badPublicKey", err)
		}
	})
}
