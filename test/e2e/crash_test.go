package e2e

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"

	"golang.org/x/crypto/acme"
	_ "modernc.org/sqlite" // the test reads the database itself, not through the store
)

// serialField is the serial an audit event's object names.
var serialField = regexp.MustCompile(`(?:^| )serial=([0-9a-f]+)(?: |$)`)

// readyOrder takes an order for name through http-01 to "ready" and returns its
// finalize URL. It reports errors instead of failing, for use in goroutines.
func readyOrder(ctx context.Context, c *acme.Client, r *responder, name string) (string, error) {
	order, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name))
	if err != nil {
		return "", fmt.Errorf("newOrder %s: %w", name, err)
	}
	for _, u := range order.AuthzURLs {
		az, err := c.GetAuthorization(ctx, u)
		if err != nil {
			return "", err
		}
		for _, ch := range az.Challenges {
			if ch.Type != "http-01" {
				continue
			}
			ka, err := c.HTTP01ChallengeResponse(ch.Token)
			if err != nil {
				return "", err
			}
			r.Set(ch.Token, ka)
			if _, err := c.Accept(ctx, ch); err != nil {
				return "", err
			}
		}
		if _, err := c.WaitAuthorization(ctx, u); err != nil {
			return "", fmt.Errorf("authorization of %s: %w", name, err)
		}
	}
	if _, err := c.WaitOrder(ctx, order.URI); err != nil {
		return "", err
	}
	return order.FinalizeURL, nil
}

// TestCrashDuringIssuance: the server is killed with SIGKILL while 200 orders
// finalize at once, at a random point after some certificates were delivered.
// After a restart on the same data directory every certificate a client received is
// in the store, byte for byte; no serial is used twice; every intent without a
// certificate is listed by `varmenne intents list`, with how far the issuer key got
// as the audit log tells it; every order has its order.create event; and issuance
// works again.
func TestCrashDuringIssuance(t *testing.T) {
	const orders = 200
	in := start(t, "")
	kid, mac := in.org("1.2.246.10.55555555.10.0", "Kaatuva apteekki", "crash.example")
	c := in.client(kid, mac)
	r := in.responder()
	ctx := ctxT(t)

	// Every order is made ready first, so the kill lands among finalizations.
	finalize := make([]string, orders)
	names := make([]string, orders)
	var wg sync.WaitGroup
	errs := make(chan error, orders)
	sem := make(chan struct{}, 6)
	for i := range orders {
		names[i] = fmt.Sprintf("n%02d.crash.example", i)
		in.pointAt(names[i])
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			u, err := readyOrder(ctx, c, r, names[i])
			finalize[i] = u
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	keys := make([]crypto.Signer, orders)
	csrs := make([][]byte, orders)
	for i := range orders {
		keys[i] = newKey(t)
		var err error
		csrs[i], err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{names[i]}}, keys[i])
		if err != nil {
			t.Fatal(err)
		}
	}
	killAfter, _ := rand.Int(rand.Reader, big.NewInt(orders/2))
	kill := int(killAfter.Int64()) + 5 // after 5 to 34 delivered certificates

	var mu sync.Mutex
	received := map[string][]byte{} // serial hex → leaf DER, as the client got it
	var once sync.Once
	start := make(chan struct{})
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			chain, _, err := c.CreateOrderCert(ctx, finalize[i], csrs[i], true)
			if err != nil || len(chain) == 0 {
				return // refused or cut off by the kill: the client holds nothing
			}
			leaf, err := x509.ParseCertificate(chain[0])
			if err != nil {
				return
			}
			mu.Lock()
			received[hex.EncodeToString(leaf.SerialNumber.Bytes())] = chain[0]
			n := len(received)
			mu.Unlock()
			if n >= kill {
				once.Do(func() {
					_ = in.Cmd.Process.Kill() // SIGKILL: no shutdown, no flush
				})
			}
		}()
	}
	close(start)
	wg.Wait()
	once.Do(func() { _ = in.Cmd.Process.Kill() }) // every order finished before the kill point
	<-in.Done
	mu.Lock()
	got := maps.Clone(received)
	mu.Unlock()
	t.Logf("killed after %d of %d certificates were delivered (kill point %d)", len(got), orders, kill)

	in.launch() // same data directory

	db, err := sql.Open("sqlite", filepath.Join(in.Data, "varmenne.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	t.Run("every certificate a client received is stored, byte for byte", func(t *testing.T) {
		for serial, der := range got {
			var stored []byte
			if err := db.QueryRow(`SELECT der FROM certificates WHERE serial = ?`, serial).Scan(&stored); err != nil {
				t.Errorf("serial %s delivered but not stored: %v", serial, err)
				continue
			}
			if string(stored) != string(der) {
				t.Errorf("serial %s: stored DER differs from the delivered one", serial)
			}
		}
	})
	t.Run("no serial twice, and every certificate had its intent", func(t *testing.T) {
		var dup int
		if err := db.QueryRow(`SELECT COUNT(*) FROM (SELECT serial FROM certificates GROUP BY serial HAVING COUNT(*) > 1)`).Scan(&dup); err != nil {
			t.Fatal(err)
		}
		var orphans int
		if err := db.QueryRow(`SELECT COUNT(*) FROM certificates c WHERE NOT EXISTS
			(SELECT 1 FROM issuance_intents i WHERE i.serial = c.serial AND i.status = 'issued')`).Scan(&orphans); err != nil {
			t.Fatal(err)
		}
		if dup != 0 || orphans != 0 {
			t.Errorf("%d serials stored twice, %d certificates without an issued intent", dup, orphans)
		}
		rows, err := db.Query(`SELECT der FROM certificates`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		seen := map[string]bool{}
		for rows.Next() {
			var der []byte
			if err := rows.Scan(&der); err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			s := cert.SerialNumber.String()
			if seen[s] {
				t.Errorf("two stored certificates carry serial %s", s)
			}
			seen[s] = true
		}
	})
	t.Run("varmenne intents list shows every intent without a certificate", func(t *testing.T) {
		rows, err := db.Query(`SELECT serial FROM issuance_intents i WHERE NOT EXISTS
			(SELECT 1 FROM certificates c WHERE c.serial = i.serial) ORDER BY serial`)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			want = append(want, s)
		}
		rows.Close()
		out, err := in.cli("intents", "list", "--json")
		if err != nil {
			t.Fatalf("intents list: %v: %s", err, out)
		}
		var listed []struct{ Serial, Status, State string }
		if err := json.Unmarshal([]byte(out), &listed); err != nil {
			t.Fatalf("intents list --json printed %q: %v", out, err)
		}
		var gotSerials []string
		pending := 0
		for _, l := range listed {
			gotSerials = append(gotSerials, l.Serial)
			if l.Status == "pending" {
				pending++
			}
		}
		slices.Sort(gotSerials)
		if !slices.Equal(gotSerials, want) {
			t.Errorf("intents list shows %v, the database has %v", gotSerials, want)
		}
		t.Logf("%d intents without a certificate after the crash (%d pending)", len(want), pending)

		// The state each pending intent shows agrees with the audit log: asked ⇔ a
		// sign.begin event, signed ⇔ a sign.end event that succeeded.
		begun, signed := map[string]bool{}, map[string]bool{}
		events, err := db.Query(`SELECT action, object, outcome FROM audit_log WHERE action IN (?, ?)`,
			"certificate.sign.begin", "certificate.sign.end")
		if err != nil {
			t.Fatal(err)
		}
		for events.Next() {
			var action, object, outcome string
			if err := events.Scan(&action, &object, &outcome); err != nil {
				t.Fatal(err)
			}
			m := serialField.FindStringSubmatch(object)
			if m == nil {
				t.Fatalf("%s event %q names no serial", action, object)
			}
			switch {
			case action == "certificate.sign.begin":
				begun[m[1]] = true
			case outcome == "ok":
				signed[m[1]] = true
			}
		}
		events.Close()
		states := map[string]int{}
		for _, l := range listed {
			if l.Status != "pending" {
				continue
			}
			states[l.State]++
			want := "never asked"
			switch {
			case signed[l.Serial]:
				want = "signed, not stored"
			case begun[l.Serial]:
				want = "asked, outcome unknown"
			}
			if l.State != want {
				t.Errorf("intent %s is %q, but the audit log says %q (sign.begin %t, sign.end ok %t)",
					l.Serial, l.State, want, begun[l.Serial], signed[l.Serial])
			}
		}
		t.Logf("pending intents by state: %v", states)
	})
	t.Run("every order has its order.create event", func(t *testing.T) {
		var missing int
		if err := db.QueryRow(`SELECT COUNT(*) FROM orders o WHERE NOT EXISTS (SELECT 1 FROM audit_log a
			WHERE a.action = 'order.create' AND instr(a.object, 'order=' || o.id || ' ') = 1)`).Scan(&missing); err != nil {
			t.Fatal(err)
		}
		if missing != 0 {
			t.Errorf("%d orders without their order.create event", missing)
		}
	})

	// The same account, at the restarted server's new address.
	c2 := &acme.Client{Key: c.Key, DirectoryURL: in.Directory, HTTPClient: in.httpClient(), UserAgent: "varmenne-e2e"}
	if chain, _ := in.obtain(c2, r, newKey(t), "after.crash.example"); len(chain) == 0 {
		t.Fatal("no certificate after the restart")
	}
}
