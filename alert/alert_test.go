package alert

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/internal/signedpost"
	"github.com/varmenne/varmenne/store"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func secretFile(t *testing.T) (string, []byte) {
	t.Helper()
	secret := []byte("0123456789abcdef0123456789abcdef")
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, append(secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, secret
}

// receiver is a webhook receiver on loopback that checks each POST's signature.
type receiver struct {
	srv    *httptest.Server
	alerts chan Alert
}

func newReceiver(t *testing.T, secret []byte) *receiver {
	r := &receiver{alerts: make(chan Alert, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		if req.Header.Get(signedpost.SignatureHeader) != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			t.Errorf("an alert with a bad signature %q", req.Header.Get(signedpost.SignatureHeader))
			http.Error(w, "bad signature", http.StatusForbidden)
			return
		}
		var a Alert
		if err := json.Unmarshal(body, &a); err != nil {
			t.Errorf("an alert that is not JSON: %s", body)
		}
		r.alerts <- a
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func next(t *testing.T, c <-chan Alert) Alert {
	t.Helper()
	select {
	case a := <-c:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no alert arrived")
		return Alert{}
	}
}

func TestWebhookSink(t *testing.T) {
	path, secret := secretFile(t)
	r := newReceiver(t, secret)
	sink, err := Webhook(r.srv.URL, path, loopback)
	if err != nil {
		t.Fatal(err)
	}
	h := New("ca1", []Sink{sink}, nil, nil)
	h.Raise(Alert{Kind: KindHSMFault, Severity: Critical, Summary: "re-login failed", Fields: map[string]string{"token": "varmenne"}})
	h.Close(context.Background())
	a := next(t, r.alerts)
	if a.Kind != KindHSMFault || a.Severity != Critical || a.Host != "ca1" || a.Fields["token"] != "varmenne" || a.Time.IsZero() {
		t.Fatalf("alert %+v", a)
	}
}

func TestWebhookRefusals(t *testing.T) {
	path, _ := secretFile(t)
	short := filepath.Join(t.TempDir(), "short")
	os.WriteFile(short, []byte("abc"), 0o600)
	tests := []struct {
		name, url, secret string
		allow             []netip.Prefix
		want              string
	}{
		{"loopback not allow-listed", "https://127.0.0.1:9/alerts", path, nil, "not a public address"},
		{"the metadata address", "https://169.254.169.254/", path, nil, "not a public address"},
		{"plain http to a public address", "http://192.0.2.80/alerts", path, nil, "plain http only reaches allow-listed networks"},
		{"user info", "https://u:p@alerts.example/", path, nil, "without user info"},
		{"no secret", "https://alerts.example/", "", nil, "--alert-webhook-secret-file"},
		{"a short secret", "https://alerts.example/", short, nil, "at least 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Webhook(tt.url, tt.secret, tt.allow)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Webhook(%s) = %v, want a refusal mentioning %q", tt.url, err, tt.want)
			}
		})
	}
	// A name that resolves to loopback is refused when dialled.
	sink, err := Webhook("https://localhost:9/alerts", path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Send(context.Background(), Alert{Kind: KindStart}); err == nil || !strings.Contains(err.Error(), "not a public address") {
		t.Fatalf("Send to localhost: %v, want the dial refused", err)
	}
}

func TestSyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	sink, err := Syslog("udp://"+pc.LocalAddr().String(), "ca1")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	if err := sink.Send(context.Background(), Alert{Time: at, Kind: KindRegisterStale, Severity: Critical, Summary: "stale", Fields: map[string]string{"err": "x"}}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	want := "<82>1 2026-03-01T08:00:00.000000Z ca1 varmenne " + strconv.Itoa(os.Getpid()) + ` register.stale - register.stale: stale {"err":"x"}`
	if got := string(buf[:n]); got != want {
		t.Fatalf("syslog message\n%s\nwant\n%s", got, want)
	}
}

func TestSyslogTCPFraming(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sink, err := Syslog("tcp://"+ln.Addr().String(), "ca1")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 2)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			l, err := r.ReadString(' ')
			if err != nil {
				return
			}
			n, _ := strconv.Atoi(strings.TrimSpace(l))
			msg := make([]byte, n)
			if _, err := io.ReadFull(r, msg); err != nil {
				return
			}
			got <- string(msg)
		}
	}()
	for _, k := range []string{KindStart, KindStop} {
		if err := sink.Send(context.Background(), Alert{Kind: k, Severity: Notice, Summary: k}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{KindStart, KindStop} {
		select {
		case m := <-got:
			if !strings.HasPrefix(m, "<85>1 ") || !strings.Contains(m, " "+k+" - ") {
				t.Fatalf("message %q: want notice (85) of %s", m, k)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no message")
		}
	}
}

func TestSyslogTargets(t *testing.T) {
	for _, bad := range []string{"syslog.example:514", "http://x:1", "udp://x", "udp://x:514/path"} {
		if _, err := Syslog(bad, "h"); err == nil || !strings.Contains(err.Error(), "udp://HOST:PORT") {
			t.Errorf("Syslog(%q) = %v, want a refusal naming the forms", bad, err)
		}
	}
}

// blockingSink holds every delivery until released.
type blockingSink struct {
	release chan struct{}
	mu      sync.Mutex
	got     []Alert
}

func (b *blockingSink) Name() string { return "blocking" }
func (b *blockingSink) Send(_ context.Context, a Alert) error {
	<-b.release
	b.mu.Lock()
	b.got = append(b.got, a)
	b.mu.Unlock()
	return nil
}

// TestRaiseNeverBlocks: with the sink stuck, Raise returns at once; what does not
// fit the queue is dropped and counted, and what did is delivered at Close.
func TestRaiseNeverBlocks(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{})}
	h := New("h", []Sink{sink}, nil, nil)
	const raised = QueueSize + 50
	for i := range raised {
		h.Raise(Alert{Kind: KindAnchor, Summary: strconv.Itoa(i)})
	}
	// One alert may be out of the queue, held by the sink.
	if d := h.Dropped(); d < raised-QueueSize-1 || d > raised-QueueSize {
		t.Fatalf("dropped %d, want %d or %d", d, raised-QueueSize-1, raised-QueueSize)
	}
	close(sink.release)
	h.Close(context.Background())
	if got := uint64(len(sink.got)) + h.Dropped(); got != raised {
		t.Fatalf("delivered %d + dropped %d, want %d in all", len(sink.got), h.Dropped(), raised)
	}
	h.Raise(Alert{Kind: KindAnchor}) // after Close: dropped, no panic
	if h.Dropped() != raised-uint64(len(sink.got))+1 {
		t.Fatal("an alert raised after Close was not counted as dropped")
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestBurst(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{})}
	close(sink.release)
	c := &clock{t: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)}
	h := New("h", []Sink{sink}, nil, c.now)
	b := h.Burst(KindRefusedLogins, "logins refused", 3, time.Minute)
	for i := range 5 { // the third raises, the fourth and fifth do not
		c.t = c.t.Add(time.Second)
		b.Add(map[string]string{"n": strconv.Itoa(i)})
	}
	c.t = c.t.Add(time.Minute) // a new window: two refusals are below the threshold
	b.Add(nil)
	b.Add(nil)
	c.t = c.t.Add(time.Minute)
	for range 3 {
		b.Add(nil)
	}
	h.Close(context.Background())
	if len(sink.got) != 2 {
		t.Fatalf("%d alerts, want 2 (one per window that reached 3): %+v", len(sink.got), sink.got)
	}
	if a := sink.got[0]; a.Kind != KindRefusedLogins || a.Fields["count"] != "3" || a.Fields["last_n"] != "2" || a.Summary != "3 logins refused within 1m0s" {
		t.Fatalf("first alert %+v", a)
	}
}

func TestWatcherOfTheAuditLog(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{})}
	close(sink.release)
	h := New("h", []Sink{sink}, nil, nil)
	w := h.Watch(Thresholds{RefusedLogins: 2, ACMEUnauthorized: 2, Window: time.Hour})
	ev := func(a audit.Action, outcome string) store.AuditEvent {
		return store.AuditEvent{Seq: 1, Time: time.Now(), Actor: "x", Action: string(a), Outcome: outcome}
	}
	for _, e := range []store.AuditEvent{
		ev(audit.ActServeStart, audit.OK),
		ev(audit.ActOperatorLogin, audit.OK),                      // no alert
		ev(audit.ActOperatorLogin, "refused: unknown credential"), // 1 of 2
		ev(audit.ActOperatorLogin, "refused: unknown credential"), // burst
		ev(audit.ActHSMRelogin, audit.OK),                         // no alert
		ev(audit.ActHSMRelogin, "failed: CKR_PIN_INCORRECT"),
		ev(audit.ActSignEnd, audit.OK), // no alert
		ev(audit.ActSignEnd, "failed: signing or verifying the signature failed"),
		ev(audit.ActLoginsThrottled, "refused: too many refused logins"),
		ev(audit.ActServeStop, audit.OK),
	} {
		w.AuditEvent(e)
	}
	w.ACMEProblem("malformed")
	w.ACMEProblem("unauthorized")
	w.ACMEProblem("unauthorized")
	h.Close(context.Background())
	var kinds []string
	for _, a := range sink.got {
		kinds = append(kinds, a.Kind)
	}
	want := []string{KindStart, KindRefusedLogins, KindHSMFault, KindHSMFault, KindLoginsThrottled, KindStop, KindACMEUnauthorized}
	if strings.Join(kinds, " ") != strings.Join(want, " ") {
		t.Fatalf("alerts %v, want %v", kinds, want)
	}
}
