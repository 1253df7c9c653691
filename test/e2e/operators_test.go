package e2e

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestOperatorsWalkthrough is the README's "From e-service registration to the
// first certificate" against the built binary: operators are added with the CLI
// (a client certificate for the administrator, tokens for the e-service and the
// auditor), the e-service asks for a key over the admin API, the administrator
// approves it with mutual TLS, the e-service fetches the key once, certbot binds
// it and gets a certificate, and the auditor reads every step back.
func TestOperatorsWalkthrough(t *testing.T) {
	certbot, err := exec.LookPath("certbot")
	if err != nil {
		t.Fatal("certbot is not installed: run ./scripts/install-test-deps (make test does)")
	}
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in := startWith(t, "", "--admin-listen", adminAddr)
	const oid = "1.2.246.10.12345678.10.0"
	if out, err := in.cli("org", "add", "--oid", oid, "--name", "Helsingin VI apteekki", "--domain", "apteekki.example"); err != nil {
		t.Fatalf("org add: %v: %s", err, out)
	}
	ops := t.TempDir()
	if out, err := in.cli("operator", "add", "anna", "--role", "administrator", "--out", ops); err != nil {
		t.Fatalf("operator add anna: %v: %s", err, out)
	}
	token := func(name, role string) string {
		out, err := in.cli("operator", "add", name, "--role", role, "--token")
		m := regexp.MustCompile(`token: (\S+)`).FindStringSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("operator add %s: %v: %s", name, err, out)
		}
		return m[1]
	}
	eservice, auditor := token("e-palvelu", "registrar"), token("aino", "auditor")
	admin := "https://" + adminAddr + "/admin/v1"

	// The clients trust roots.pem, as curl --cacert does; anna also presents her
	// client certificate.
	bearer := in.httpClient()
	anna := in.httpClient()
	pair, err := tls.LoadX509KeyPair(filepath.Join(ops, "anna.pem"), filepath.Join(ops, "anna.key"))
	if err != nil {
		t.Fatal(err)
	}
	anna.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{pair}
	call := func(c *http.Client, tok, method, path, body string, want int, out any) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, admin+path, rd)
		if method != http.MethodGet {
			// A state change is JSON, also without a body (curl -H 'Content-Type: application/json').
			req.Header.Set("Content-Type", "application/json")
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: %s: %v", method, path, b, err)
			}
		}
	}

	// 1. The e-service asks for a key after a person registered the organisation.
	var req struct{ ID, Status string }
	call(bearer, eservice, "POST", "/eab-requests", `{
	  "organisation": "`+oid+`", "person": "Maija Meikäläinen",
	  "identified_by": "suomi.fi strong identification", "technical_contact": "it@vendor.example",
	  "domains": ["apteekki.example"], "profiles": ["sote-server"]}`, http.StatusCreated, &req)
	if req.Status != "requested" {
		t.Fatalf("new request status %q", req.Status)
	}
	// The e-service, a registrar, cannot approve it.
	call(bearer, eservice, "POST", "/eab-requests/"+req.ID+"/approve", "", http.StatusForbidden, nil)

	// 2. The administrator approves it, authenticated by her client certificate.
	var key struct {
		KID, Status, Fingerprint string
		ApprovedBy               string `json:"approved_by"`
	}
	call(anna, "", "POST", "/eab-requests/"+req.ID+"/approve", "", http.StatusOK, &key)
	if key.ApprovedBy != "anna" || key.Status != "approved" {
		t.Fatalf("approval %+v", key)
	}

	// 3. The e-service fetches the key, once.
	var h struct {
		KID         string `json:"kid"`
		HMACKey     string `json:"hmac_key"`
		Fingerprint string `json:"fingerprint"`
	}
	call(bearer, eservice, "POST", "/eab-requests/"+req.ID+"/key", "", http.StatusOK, &h)
	if h.KID != key.KID || h.Fingerprint != key.Fingerprint || h.HMACKey == "" {
		t.Fatalf("handover %+v of key %+v", h, key)
	}
	call(bearer, eservice, "POST", "/eab-requests/"+req.ID+"/key", "", http.StatusGone, nil)

	// 4. certbot binds it and gets the organisation's first certificate.
	dir, _ := in.certbotCertonly(certbot, h.KID, h.HMACKey, "www.apteekki.example")
	text, err := exec.Command("openssl", "x509", "-in", filepath.Join(dir, "config", "live", "www.apteekki.example", "cert.pem"), "-noout", "-subject").Output()
	if err != nil || !bytes.Contains(text, []byte("Helsingin VI apteekki")) {
		t.Fatalf("certificate subject %s: %v", text, err)
	}
	var k struct{ Status, Account string }
	call(anna, "", "GET", "/eab-keys/"+h.KID, "", http.StatusOK, &k)
	if k.Status != "bound" || k.Account == "" {
		t.Fatalf("key after certbot: %+v", k)
	}

	// 5. The auditor follows every step, over the API and in the export.
	var events []struct{ Actor, Action, Object, Outcome string }
	call(bearer, auditor, "GET", "/audit?after=0", "", http.StatusOK, &events)
	var got []string
	for _, e := range events {
		got = append(got, e.Actor+" "+e.Action+" "+e.Outcome)
	}
	want := []string{
		"e-palvelu eab.request ok", "e-palvelu access.denied refused: role registrar", "anna eab.approve ok",
		"e-palvelu eab.handover ok", "e-palvelu eab.handover refused: already handed over",
		"varmenne serve account.create ok", "varmenne serve order.create ok", "varmenne serve certificate.sign.end ok",
	}
	if missing, ok := firstMissingInOrder(got, want); !ok {
		t.Fatalf("the audit log lacks %q (in order) among:\n%s", missing, strings.Join(got, "\n"))
	}
	out, err := in.cli("audit", "export", "--since", time.Now().UTC().Format(time.DateOnly))
	if err != nil || !strings.Contains(out, `"action":"eab.approve"`) || strings.Contains(out, h.HMACKey) {
		t.Fatalf("audit export: %v: %s", err, out)
	}
	if out, err := in.cli("audit", "verify"); err != nil || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify: %v: %s", err, out)
	}
}

// firstMissingInOrder reports whether want appears in got in order (other entries
// may stand between), and otherwise the first entry of want that does not.
func firstMissingInOrder(got, want []string) (missing string, ok bool) {
	next := 0
	for _, g := range got {
		if next < len(want) && g == want[next] {
			next++
		}
	}
	if next < len(want) {
		return want[next], false
	}
	return "", true
}
