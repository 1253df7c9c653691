package e2e

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

// The sample THL register of policy/thl: the pharmacy is private and active, the
// medical centre ended on 2020-12-31.
const (
	sampleRegister = "../../policy/thl/testdata/register.json"
	regPharmacy    = "1.2.246.10.12345678.10.0"
	regEnded       = "1.2.246.10.45678901.10.0"
	regUnlisted    = "1.2.246.10.11111111.10.0"
)

// copyRegister copies the sample register to a file a test may change, and
// returns its path and the sample.
func copyRegister(t *testing.T) (string, []byte) {
	t.Helper()
	sample, err := os.ReadFile(sampleRegister)
	if err != nil {
		t.Fatal(err)
	}
	regFile := filepath.Join(t.TempDir(), "register.json")
	if err := os.WriteFile(regFile, sample, 0o600); err != nil {
		t.Fatal(err)
	}
	return regFile, sample
}

// wantProblem fails unless err is a problem of kind whose detail holds every want.
func wantProblem(t *testing.T, err error, kind string, wants ...string) {
	t.Helper()
	p, ok := err.(*problem)
	if !ok || p.Type != "urn:ietf:params:acme:error:"+kind {
		t.Fatalf("newOrder: %v, want a %s problem", err, kind)
	}
	for _, w := range wants {
		if !strings.Contains(p.Detail, w) {
			t.Errorf("detail %q does not mention %q", p.Detail, w)
		}
	}
}

// TestRegisterGuardsIssuance runs the server with THL's register from a file: only
// organisations active in it get accounts and certificates, with the register's long
// name as OU; an organisation the register stops listing as active is refused even
// at the finalize of an order made before; a private provider gets a system
// signature certificate only with a certificate of conformity on file; and a
// register that cannot be refreshed for longer than --register-max-stale pauses
// issuance until it can.
func TestRegisterGuardsIssuance(t *testing.T) {
	regFile, sample := copyRegister(t)
	in := startWith(t, "", "--register-source", regFile, "--register-refresh", "1s", "--register-max-stale", "4s")
	r := in.responder()
	cli := func(args ...string) string {
		t.Helper()
		out, err := in.cli(args...)
		if err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
		return out
	}
	// The start loaded the register into the database: the active pharmacy is there,
	// named by the register, and needs only its domains approved.
	if out := cli("org", "show", regPharmacy); !strings.Contains(out, "Helsingin VI apteekki") {
		t.Fatalf("the start did not load the register's pharmacy into the database:\n%s", out)
	}
	cli("org", "domains", "add", regPharmacy, "--domain", "apteekki.example")
	cli("org", "add", "--oid", regUnlisted, "--name", "Rekisteritön Oy", "--domain", "muu.example")
	cli("org", "add", "--oid", regEnded, "--name", "Lakannut Oy", "--domain", "lakannut.example")
	// The key of an organisation added by hand that the register does not list
	// (development): the server's register decides at every ACME step.
	unlistedKID, unlistedMAC := in.eab(regUnlisted)
	if out := cli("org", "import", regFile); !strings.Contains(out, "organisation "+regUnlisted+" (Rekisteritön Oy) was added by hand and is not in the register") {
		t.Errorf("org import did not point out the unlisted organisation:\n%s", out)
	}
	pharmacy := in.client(in.eab(regPharmacy))

	t.Run("an organisation in the register gets a certificate with the register's long name", func(t *testing.T) {
		chain, _ := in.obtain(pharmacy, r, newKey(t), "www.apteekki.example")
		leaf, err := x509.ParseCertificate(chain[0])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(leaf.Subject.OrganizationalUnit, []string{"Helsingin VI apteekki"}) || !slices.Equal(leaf.Subject.Organization, []string{"Helsingin VI apteekki"}) {
			t.Errorf("subject %s; want O and OU Helsingin VI apteekki (the register's names)", leaf.Subject)
		}
	})
	t.Run("an organisation not in the register gets no account", func(t *testing.T) {
		_, err := in.register(unlistedKID, unlistedMAC, newKey(t))
		wantRefused(t, "newAccount", err, "unauthorized", regUnlisted, "is not in THL's SOTE organisation register", "ask THL")
	})
	t.Run("an organisation that ended in the imported register gets no EAB key", func(t *testing.T) {
		out, err := in.cli("eab", "create", "--org", regEnded)
		if err == nil || !strings.Contains(out, "ended on 2020-12-31") {
			t.Errorf("eab create for an organisation that ended: %v: %s", err, out)
		}
	})
	t.Run("an organisation the register stops listing as active is refused at finalize", func(t *testing.T) {
		in.pointAt("kesken.apteekki.example")
		finalizeURL, err := readyOrder(ctxT(t), pharmacy, r, "kesken.apteekki.example")
		if err != nil {
			t.Fatal(err)
		}
		passive := strings.Replace(string(sample), `"status": "ACTIVE"`, `"status": "PASSIVE"`, 1) // the pharmacy's record is the first
		if err := os.WriteFile(regFile, []byte(passive), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.WriteFile(regFile, sample, 0o600) })
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			if _, err = in.newOrder(pharmacy, "", "", "odotus.apteekki.example"); err != nil {
				break
			}
		}
		wantProblem(t, err, "unauthorized", regPharmacy, "is passive")
		_, _, err = pharmacy.CreateOrderCert(ctxT(t), finalizeURL, csrFor(t, "kesken.apteekki.example"), true)
		wantRefused(t, "finalize", err, "unauthorized", regPharmacy, "is passive")
		if err := os.WriteFile(regFile, sample, 0o600); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			if _, err = in.newOrder(pharmacy, "", "", "odotus.apteekki.example"); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("the pharmacy is active in the register again, yet: %v", err)
		}
	})
	t.Run("a private provider needs a certificate of conformity for system signature", func(t *testing.T) {
		_, err := in.newOrder(pharmacy, "sote-system-signature", "", "allekirjoitus.apteekki.example")
		wantProblem(t, err, "unauthorized", "is a private provider and has no valid certificate of conformity on file",
			"varmenne org conformity add "+regPharmacy)
		cli("org", "conformity", "add", regPharmacy, "--system", "Apteekkijärjestelmä Y", "--expires", "2099-12-31")
		o, err := in.newOrder(pharmacy, "sote-system-signature", "", "allekirjoitus.apteekki.example")
		if err != nil {
			t.Fatalf("newOrder with a certificate of conformity on file: %v", err)
		}
		certs, err := in.finish(pharmacy, r, o, rsaKey2048(t), "allekirjoitus.apteekki.example")
		if err != nil {
			t.Fatalf("finalize: %v", err)
		}
		if !slices.Equal(certs[0].Subject.OrganizationalUnit, []string{"Helsingin VI apteekki"}) {
			t.Errorf("system signature certificate subject %s", certs[0].Subject)
		}
		if out := cli("org", "show", regPharmacy); !strings.Contains(out, "Apteekkijärjestelmä Y, until 2099-12-31 (valid)") || !strings.Contains(out, "2 issued, 2 valid") {
			t.Errorf("org show:\n%s", out)
		}
	})
	t.Run("a register that cannot be refreshed pauses issuance, and a refresh resumes it", func(t *testing.T) {
		if err := os.WriteFile(regFile, []byte(`{"conceptCodes": [`), 0o600); err != nil {
			t.Fatal(err)
		}
		var err error
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			if _, err = in.newOrder(pharmacy, "", "", "paussi.apteekki.example"); err != nil {
				break
			}
		}
		wantProblem(t, err, "serverInternal", "the THL register was last loaded at", "issuance is paused until it can be refreshed")
		if !strings.Contains(in.Logs.String(), "loading the THL register failed") {
			t.Errorf("the log does not record the failed refreshes")
		}
		if err := os.WriteFile(regFile, sample, 0o600); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			if _, err = in.newOrder(pharmacy, "", "", "paussi.apteekki.example"); err == nil {
				break
			}
		}
		if err != nil {
			t.Errorf("issuance did not resume after the register could be loaded again: %v", err)
		}
	})
}

// TestRegisterNeverLoadedFailsClosed: a server whose register source cannot be read
// at start runs, and refuses every step towards a certificate, from newAccount on,
// until the register is loaded.
func TestRegisterNeverLoadedFailsClosed(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "register.json")
	in := startWith(t, "", "--register-source", missing)
	kid, hmacKey := in.org(regPharmacy, "Helsingin VI apteekki", "apteekki.example")
	mac, err := base64.RawURLEncoding.DecodeString(hmacKey)
	if err != nil {
		t.Fatal(err)
	}
	c := &acme.Client{Key: newKey(t), DirectoryURL: in.Directory, HTTPClient: in.httpClient()}
	noRetry(c) // a 503 is retried by default
	_, err = c.Register(ctxT(t), &acme.Account{ExternalAccountBinding: &acme.ExternalAccountBinding{KID: kid, Key: mac}}, acme.AcceptTOS)
	wantRefused(t, "newAccount", err, "serverInternal", "has never been loaded", "issuance is paused")
	var ae *acme.Error
	if errors.As(err, &ae) && ae.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", ae.StatusCode)
	}
}

// TestRegisterCopySurvivesARestart: the register a server loaded is in the
// database, so a restart whose source cannot be read serves from that copy (it is
// younger than --register-max-stale) instead of pausing issuance, and the copy's
// age is on /readyz.
func TestRegisterCopySurvivesARestart(t *testing.T) {
	regFile, _ := copyRegister(t)
	in := startWith(t, "", "--register-source", regFile)
	if out, err := in.cli("org", "domains", "add", regPharmacy, "--domain", "apteekki.example"); err != nil {
		t.Fatalf("org domains add (the start loaded the pharmacy): %v: %s", err, out)
	}
	// The source is gone; the server restarts and cannot load it.
	if err := os.Remove(regFile); err != nil {
		t.Fatal(err)
	}
	in.restart()
	if !strings.Contains(in.Logs.String(), "the THL register could not be loaded at start") {
		t.Fatalf("the restart loaded a register that is gone:\n%s", in.Logs.String())
	}
	pharmacy := in.client(in.eab(regPharmacy)) // newAccount asks the register too
	if _, _, err := in.tryFinalize(pharmacy, in.responder(), newKey(t), "www.apteekki.example"); err != nil {
		t.Fatalf("after a restart without its source the server does not issue from the copy in the database: %v", err)
	}

	resp, err := http.Get("http://" + in.Ops() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	age := regexp.MustCompile(`(?m)^register_age_seconds (\d+)$`).FindSubmatch(body)
	if resp.StatusCode != http.StatusOK || age == nil || !bytes.Contains(body, []byte("register_records 7\n")) {
		t.Fatalf("/readyz %d:\n%s\nwant the register copy's age and its 7 records", resp.StatusCode, body)
	}
	if n, _ := strconv.Atoi(string(age[1])); n > 600 {
		t.Errorf("/readyz says the copy is %d s old; it was loaded at the first start of this test", n)
	}
}
