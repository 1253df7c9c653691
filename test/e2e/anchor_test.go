package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/store"

	_ "modernc.org/sqlite" // the test rewrites the database itself, as an attacker would
)

// alertInbox collects what the alert hook sends: the webhook's JSON bodies (each
// signature checked) and the syslog datagrams, as "kind" lines.
type alertInbox struct {
	t       *testing.T
	webhook chan string // kinds
	syslog  chan string // whole messages
}

func newAlertInbox(t *testing.T, secret []byte) (in *alertInbox, webhookURL, syslogAddr string) {
	in = &alertInbox{t: t, webhook: make(chan string, 100), syslog: make(chan string, 100)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		if r.Header.Get("X-Varmenne-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			t.Errorf("an alert with a bad signature: %s", body)
			w.WriteHeader(http.StatusForbidden)
			return
		}
		var a struct{ Kind string }
		if err := json.Unmarshal(body, &a); err != nil {
			t.Errorf("an alert that is not JSON: %s", body)
		}
		in.webhook <- a.Kind
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 8192)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			in.syslog <- string(buf[:n])
		}
	}()
	return in, "http://" + ln.Addr().String() + "/alerts", "udp://" + pc.LocalAddr().String()
}

// waitFor reads both channels until each has shown kind.
func (in *alertInbox) waitFor(kind string) {
	in.t.Helper()
	deadline := time.After(30 * time.Second)
	for seen := 0; seen < 2; {
		select {
		case k := <-in.webhook:
			if k == kind {
				seen++
			}
		case m := <-in.syslog:
			// <PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG
			if f := strings.Fields(m); len(f) > 5 && f[5] == kind {
				seen++
			}
		case <-deadline:
			in.t.Fatalf("the webhook and syslog did not both receive a %s alert", kind)
		}
	}
}

// TestAnchoredAuditLog: the built server keys every audit event, anchors the
// log's head in DATA/audit-anchors and alerts a loopback webhook and a UDP syslog
// listener of its start, a burst of refused logins and its stop; then the SQLite
// database is rewritten as an attacker who can write it would (an event's object
// changed, every later hash recomputed), and "audit verify" names the event; a
// log cut short is found by the anchors.
func TestAnchoredAuditLog(t *testing.T) {
	secret := []byte("alert-webhook-secret-0123456789")
	secretFile := filepath.Join(t.TempDir(), "alert-secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	inbox, hookURL, syslogAddr := newAlertInbox(t, secret)
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	in := startWith(t, "", "--admin-listen", adminAddr,
		"--alert-webhook", hookURL, "--alert-webhook-secret-file", secretFile, "--alert-allow-network", "127.0.0.0/8",
		"--alert-syslog", syslogAddr, "--alert-refused-logins", "3")
	inbox.waitFor("serve.start")

	// Three logins with a wrong token within the minute: one alert.
	client := in.httpClient()
	for range 3 {
		req, _ := http.NewRequest(http.MethodGet, "https://"+adminAddr+"/admin/v1/whoami", nil)
		req.Header.Set("Authorization", "Bearer not-a-token")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("a wrong token: %d, want 401", resp.StatusCode)
		}
	}
	inbox.waitFor("access.refused.burst")
	for _, name := range []string{"anna", "bert"} {
		if out, err := in.cli("operator", "add", name, "--role", "auditor", "--token"); err != nil {
			t.Fatalf("operator add %s: %v: %s", name, err, out)
		}
	}
	in.stop()
	inbox.waitFor("serve.stop")

	anchors, err := audit.ReadAnchors(filepath.Join(in.Data, "audit-anchors"))
	if err != nil || len(anchors) == 0 {
		t.Fatalf("anchors %+v, %v: want the head anchored at stop (the log was empty at start)", anchors, err)
	}
	if fi, err := os.Stat(filepath.Join(in.Data, "audit-anchors")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the anchor file: %v %v, want 0600", fi.Mode().Perm(), err)
	}
	out, err := in.cli("audit", "verify")
	if err != nil || !strings.Contains(out, "every event's MAC checked") || !strings.Contains(out, fmt.Sprintf("%d anchors", len(anchors))) {
		t.Fatalf("audit verify of the untouched log: %v: %s", err, out)
	}
	last := anchors[len(anchors)-1]
	if !strings.Contains(out, fmt.Sprintf("intact: %d events", last.Seq)) || last.MAC == "" {
		t.Fatalf("the stop's anchor %+v is not the log's head (%s)", last, out)
	}

	db, err := sql.Open("sqlite", filepath.Join(in.Data, "varmenne.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	events := readAuditLog(t, db)
	// The attack: the third event's object changed, its hash and every later
	// one recomputed with the public hash rule; the MACs cannot be.
	const victim = 3
	events[victim-1].Object = "operator=mallory role=administrator credential=token"
	for i := victim - 1; i < len(events); i++ {
		if i > 0 {
			events[i].PrevHash = events[i-1].Hash
		}
		events[i].Hash = audit.Hash(events[i])
		if _, err := db.Exec(`UPDATE audit_log SET object = ?, prev_hash = ?, hash = ? WHERE seq = ?`,
			events[i].Object, events[i].PrevHash, events[i].Hash, events[i].Seq); err != nil {
			t.Fatal(err)
		}
	}
	out, err = in.cli("audit", "verify", "--anchors", filepath.Join(t.TempDir(), "no-anchors"))
	if err == nil || !strings.Contains(out, "broken at event 3: its MAC does not match") {
		t.Fatalf("audit verify of the rewritten log: %v: %s", err, out)
	}
	out, err = in.cli("audit", "verify", "--chain-only", "--anchors", filepath.Join(t.TempDir(), "no-anchors"))
	if err == nil || !strings.Contains(out, "MACs NOT checked") {
		t.Fatalf("audit verify --chain-only of the rewritten log: %v: %s (the chain was recomputed: it must not pass as intact)", err, out)
	}

	// Cut short: the events from the third on deleted; what is left is intact
	// and keyed, but the anchors name later events.
	if _, err := db.Exec(`DELETE FROM audit_log WHERE seq >= ?`, victim); err != nil {
		t.Fatal(err)
	}
	out, err = in.cli("audit", "verify")
	if err == nil || !strings.Contains(out, "the log was cut short") {
		t.Fatalf("audit verify of the log cut short: %v: %s", err, out)
	}
}

func readAuditLog(t *testing.T, db *sql.DB) []store.AuditEvent {
	t.Helper()
	rows, err := db.Query(`SELECT seq, at, actor, action, object, outcome, prev_hash, hash, mac FROM audit_log ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		var e store.AuditEvent
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Actor, &e.Action, &e.Object, &e.Outcome, &e.PrevHash, &e.Hash, &e.MAC); err != nil {
			t.Fatal(err)
		}
		e.Time = time.UnixMicro(at)
		out = append(out, e)
	}
	return out
}
