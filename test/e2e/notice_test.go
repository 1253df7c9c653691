package e2e

// Complete revocation records and the notice to the holder (issue 18, item 7):
// the built server with --smtp-server on an SMTP server on loopback.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/test/smtpserver"
)

const noticeFrom = "Varmenne <varmenne@ca.example>"

// holder is an organisation whose EAB request names a technical contact, and an
// account of it with mailto: contacts (one the technical contact again, with
// the domain in other case).
func holder(t *testing.T, in *instance, oid, name, domain string) *acme.Client {
	t.Helper()
	if out, err := in.cli("org", "add", "--oid", oid, "--name", name, "--long-name", name+" (long)", "--domain", domain); err != nil {
		t.Fatalf("org add: %v: %s", err, out)
	}
	out, err := in.cli("eab", "create", "--org", oid, "--json", "--technical-contact", "IT-toimittaja Oy <it@vendor.example>")
	if err != nil {
		t.Fatalf("eab create: %v: %s", err, out)
	}
	var k struct {
		KID     string `json:"kid"`
		HMACKey string `json:"hmac_key"`
	}
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.KID == "" {
		t.Fatalf("eab create printed %q: %v", out, err)
	}
	mac, err := base64.RawURLEncoding.DecodeString(k.HMACKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := &acme.Client{Key: key, DirectoryURL: in.Directory, HTTPClient: in.httpClient(), UserAgent: "varmenne-e2e"}
	if _, err := c.Register(ctxT(t), &acme.Account{Contact: []string{"mailto:yllapito@" + domain, "mailto:it@VENDOR.example"},
		ExternalAccountBinding: &acme.ExternalAccountBinding{KID: k.KID, Key: mac}}, acme.AcceptTOS); err != nil {
		t.Fatalf("register: %v", err)
	}
	return c
}

// received is a notice as its reader sees it.
type received struct {
	to            []string
	subject, body string
}

func readNotice(t *testing.T, m smtpserver.Message) received {
	t.Helper()
	msg, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
	if err != nil {
		t.Fatalf("notice is not RFC 5322: %v\n%s", err, m.Data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	to := slices.Clone(m.To)
	for i := range to {
		to[i] = strings.ToLower(to[i])
	}
	slices.Sort(to)
	return received{to: to, subject: subject, body: string(body)}
}

// auditEvents are the events of action in the audit log.
func auditEvents(t *testing.T, in *instance, action string) []admin.EventView {
	t.Helper()
	out, err := in.cli("audit", "export")
	if err != nil {
		t.Fatalf("audit export: %v: %s", err, out)
	}
	var found []admin.EventView
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e admin.EventView
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit export line %q: %v", line, err)
		}
		if e.Action == action {
			found = append(found, e)
		}
	}
	return found
}

// waitAudit waits until the audit log holds an event of action whose object
// holds object, and returns it.
func waitAudit(t *testing.T, in *instance, action, object string) admin.EventView {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, e := range auditEvents(t, in, action) {
			if strings.Contains(e.Object, object) {
				return e
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event with %q in the audit log after 60 s\n%s", action, object, in.Logs.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func serialHex(c *x509.Certificate) string { return hex.EncodeToString(c.SerialNumber.Bytes()) }

// TestRevocationNoticeByEveryDoor: a revocation through ACME, the admin API and
// the command line each send one notice to the holder's contacts (the account's
// mailto: contacts and the EAB request's technical contact, once each) naming
// the serial, the names and the reason; each record has its request time and
// the door that received it; each notice is an audit event.
func TestRevocationNoticeByEveryDoor(t *testing.T) {
	smtp := smtpserver.StartT(t, nil)
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in := startWith(t, "", "--smtp-server", smtp.Addr(), "--smtp-from", noticeFrom, "--admin-listen", adminAddr)
	if !in.LogHas("revocation notices go by e-mail") {
		t.Errorf("serve does not say where the notices go:\n%s", in.Logs.String())
	}
	c := holder(t, in, "1.2.246.10.44444444.10.0", "Apteekki Neljä", "nelja.example")
	r := in.responder()
	var leaves []*x509.Certificate
	for _, name := range []string{"acme.nelja.example", "api.nelja.example", "cli.nelja.example"} {
		chain, _ := in.obtain(c, r, newKey(t), name)
		leaves = append(leaves, mustParse(t, chain[0]))
	}
	want := []string{"it@vendor.example", "yllapito@nelja.example"}

	// Bearer token of an administrator for the API.
	out, err := in.cli("operator", "add", "pekka", "--role", "administrator", "--token")
	m := regexp.MustCompile(`token: (\S+)`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("operator add: %v: %s", err, out)
	}
	api := func(method, path, body string, out any) int {
		t.Helper()
		req, _ := http.NewRequest(method, "https://"+adminAddr+"/admin/v1"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+m[1])
		resp, err := in.httpClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if out != nil && resp.StatusCode == 200 {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: %s: %v", method, path, b, err)
			}
		}
		return resp.StatusCode
	}

	doors := []struct {
		name, reason, receivedBy string
		leaf                     *x509.Certificate
		revoke                   func(leaf *x509.Certificate)
	}{
		{"ACME revokeCert", "keyCompromise", "ACME revokeCert by acme", leaves[0], func(leaf *x509.Certificate) {
			if err := c.RevokeCert(ctxT(t), nil, leaf.Raw, acme.CRLReasonKeyCompromise); err != nil {
				t.Fatalf("ACME revoke: %v", err)
			}
		}},
		{"admin API", "affiliationChanged", "admin API by pekka", leaves[1], func(leaf *x509.Certificate) {
			body := fmt.Sprintf(`{"reason":"affiliationChanged","requested_by":"Maija, Apteekki Neljä","identified_by":"call back","invalidity_date":%q}`,
				leaf.NotBefore.Add(time.Minute).UTC().Format(time.RFC3339))
			if st := api("POST", "/certificates/"+serialHex(leaf)+"/revoke", body, nil); st != 200 {
				t.Fatalf("API revoke: %d", st)
			}
		}},
		{"command line", "superseded", "command line by " + admin.BootstrapOperator, leaves[2], func(leaf *x509.Certificate) {
			if out, err := in.cli("revoke", "--serial", serialHex(leaf), "--reason", "superseded",
				"--requested-by", "Maija, Apteekki Neljä", "--identified-by", "e-service"); err != nil {
				t.Fatalf("varmenne revoke: %v: %s", err, out)
			}
		}},
	}
	for i, d := range doors {
		t.Run(d.name, func(t *testing.T) {
			before := time.Now().UTC().Truncate(time.Second)
			d.revoke(d.leaf)
			got := smtp.Wait(i+1, 60*time.Second)
			if len(got) != i+1 {
				t.Fatalf("%d messages after the revocation, want %d\n%s", len(got), i+1, in.Logs.String())
			}
			n := readNotice(t, got[i])
			serial := serialHex(d.leaf)
			if !slices.Equal(n.to, want) {
				t.Errorf("recipients %v, want %v (each once)", n.to, want)
			}
			if !strings.Contains(n.subject, serial) || !strings.Contains(n.subject, d.leaf.DNSNames[0]) {
				t.Errorf("subject %q lacks the serial %s or the name", n.subject, serial)
			}
			for _, s := range []string{serial, d.leaf.DNSNames[0], d.reason, "cannot be reinstated", "Peruminen on lopullinen"} {
				if !strings.Contains(n.body, s) {
					t.Errorf("body lacks %q:\n%s", s, n.body)
				}
			}
			if d.name == "admin API" && !strings.Contains(n.body, "Invalid since") {
				t.Errorf("the API's invalidity date is not in the notice:\n%s", n.body)
			}

			var views []admin.CertView
			if st := api("GET", "/certificates?serial=0x"+serial, "", &views); st != 200 || len(views) != 1 {
				t.Fatalf("GET certificate: %d %+v", st, views)
			}
			v := views[0]
			requested, err := time.Parse(time.RFC3339, v.RevokeRequestedAt)
			if err != nil || requested.Before(before) || requested.After(time.Now()) || v.RevokeReceivedBy != d.receivedBy || v.RevokeReason != d.reason {
				t.Errorf("record %+v: want a request time since %s, received by %q", v, before, d.receivedBy)
			}
			e := waitAudit(t, in, "revocation.notice", "serial="+serial)
			if e.Outcome != "ok" || !strings.Contains(e.Object, "recipients=2") || e.Actor != "system" {
				t.Errorf("audit event %+v: want ok, 2 recipients", e)
			}
		})
	}
	if got := smtp.Messages(); len(got) != len(doors) {
		t.Errorf("%d messages for %d revocations", len(got), len(doors))
	}
}

// TestRevocationNoticeFailureLeavesTheRevocation: an SMTP server that refuses
// (5xx) or is down never undoes a revocation: ACME answers 200, the CRL lists
// the certificate, and the audit log records the failed notice.
func TestRevocationNoticeFailureLeavesTheRevocation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	refusing := smtpserver.StartT(t, func(s *smtpserver.Server) { s.RefuseRcpt = "550 5.1.1 mailbox unavailable" })
	for _, tc := range []struct {
		name, server, outcome string
		retry                 bool
	}{
		{"SMTP server refuses (5xx)", refusing.Addr(), "mailbox unavailable", false},
		{"SMTP server down", down, "connect to " + down, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := startWith(t, "", "--smtp-server", tc.server, "--smtp-from", noticeFrom)
			c := holder(t, in, "1.2.246.10.55555555.10.0", "Apteekki Viisi", "viisi.example")
			chain, _ := in.obtain(c, in.responder(), newKey(t), "www.viisi.example")
			leaf := mustParse(t, chain[0])
			if err := c.RevokeCert(ctxT(t), nil, leaf.Raw, acme.CRLReasonCessationOfOperation); err != nil {
				t.Fatalf("revoke: %v", err)
			}
			e := waitAudit(t, in, "revocation.notice", "serial="+serialHex(leaf))
			if !strings.HasPrefix(e.Outcome, "failed: ") || !strings.Contains(e.Outcome, tc.outcome) || !strings.Contains(e.Object, "attempt=1") ||
				strings.Contains(e.Object, "retry=") != tc.retry {
				t.Errorf("audit event %+v: want the first try failed (%q), retry %v", e, tc.outcome, tc.retry)
			}
			if revs := auditEvents(t, in, "certificate.revoke"); len(revs) != 1 || !strings.Contains(revs[0].Object, serialHex(leaf)) {
				t.Errorf("revocation events %+v", revs)
			}
			rl, _ := waitCRL(t, "http://"+in.PublicAddr+"/crl/production.crl", func(rl *x509.RevocationList) bool { return listed(rl, leaf.SerialNumber) != nil })
			if listed(rl, leaf.SerialNumber) == nil {
				t.Fatal("the CRL does not list the certificate")
			}
			// x/crypto/acme takes alreadyRevoked for success: the server's log tells.
			if err := c.RevokeCert(ctxT(t), nil, leaf.Raw, acme.CRLReasonCessationOfOperation); err != nil || !in.LogHas(`"problem":"alreadyRevoked"`) {
				t.Errorf("second revocation: %v, and not answered alreadyRevoked: the first must stand", err)
			}
		})
	}
	if len(refusing.Messages()) != 0 {
		t.Error("the refusing server kept a message")
	}
}

// TestServeWithoutSMTPSaysSo: without --smtp-server no notice is sent and serve
// says so once at start; a remote server without STARTTLS is refused at start.
func TestServeWithoutSMTPSaysSo(t *testing.T) {
	in := start(t, "")
	if !in.LogHas("no SMTP server (--smtp-server)") {
		t.Errorf("serve does not say that no notice is sent:\n%s", in.Logs.String())
	}
	out, err := in.cli("serve", "--smtp-server", "mail.example.fi:25", "--smtp-from", "varmenne@ca.example", "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(out, "give --smtp-starttls") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("serve with a remote SMTP server in clear: %v, %q; want one line asking for --smtp-starttls", err, out)
	}
}
