package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/varmenne/varmenne/store/pgtest"
)

// These tests hold the built server on PostgreSQL to the guarantee that a signed
// certificate is stored and delivered: every client whose order became valid
// downloads its certificate, and it is the stored one, byte for byte; the log never
// says "certificate signed but not stored" while the database is back within the
// request's deadline; a refused client gets an RFC 7807 problem, never a hang.

// signedNotStored is what the server logs when it signed a certificate and then
// failed to store it (acme/authority/finalize.go).
const signedNotStored = "certificate signed but not stored"

// finalizeTimeout bounds one client's finalize and download: longer than the
// server's own bound on an issuance (issueTimeout, a minute), so a client that runs
// into it met a server that did not answer.
const finalizeTimeout = 90 * time.Second

// readied is an order its client took to "ready".
type readied struct {
	c     *acme.Client
	name  string
	order *acme.Order
}

// outcome is what a client got from finalizing one order.
type outcome struct {
	readied
	chain [][]byte // DER, leaf first, when the client got its certificate
	err   error
}

// loadAccounts is a database holding one organisation and its accounts, from
// which each round copies a database of its own: the copy is fresh where issuance
// writes (no orders, authorizations, intents or certificates yet), and registering
// 32 accounts through EAB, an operator command per key, costs more than a round.
type loadAccounts struct {
	template string              // the database's name
	data     string              // the data directory of its server: PKI, EAB secret
	domain   string              // the organisation's domain
	keys     []*ecdsa.PrivateKey // the accounts' keys
}

const loadAccountCount = 32

var (
	loadOnce sync.Once
	loadAcct *loadAccounts
	loadDB   atomic.Int64 // numbers the copies
)

// accountsTemplate makes the database of loadAccounts the first time a test asks,
// with a server of its own that it stops before anything is copied.
func accountsTemplate(t *testing.T) *loadAccounts {
	t.Helper()
	loadOnce.Do(func() {
		pg := postgresCluster(t)
		const name = "pgload_accounts"
		if err := pg.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
			t.Fatal(err)
		}
		// Beside the binary: removed with it when the package's tests end.
		data, err := os.MkdirTemp(filepath.Dir(binary), "pgload-")
		if err != nil {
			t.Fatal(err)
		}
		rs := startReplicasOn(t, binary, 1, pg.DSN(name), data)
		l := &loadAccounts{template: name, data: data, domain: "kuorma.example"}
		const oid = "1.2.246.10.44444444.10.0"
		if out, err := rs.cli("org", "add", "--oid", oid, "--name", "Kuormitus Oy", "--domain", l.domain); err != nil {
			t.Fatalf("org add: %v: %s", err, out)
		}
		l.keys = make([]*ecdsa.PrivateKey, loadAccountCount)
		errs := make([]error, loadAccountCount)
		sem := make(chan struct{}, 4)
		var wg sync.WaitGroup
		for i := range l.keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				l.keys[i], errs[i] = rs.register(oid)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		for _, r := range rs.replicas {
			r.stop()
		}
		rs.db.Close()
		loadAcct = l
	})
	if loadAcct == nil {
		t.Fatal("the accounts' database could not be made (see the first test that asked)")
	}
	return loadAcct
}

// register creates an EAB key for the organisation, registers an account with it
// and returns the account's key.
func (rs *replicaSet) register(oid string) (*ecdsa.PrivateKey, error) {
	out, err := rs.cli("eab", "create", "--org", oid, "--json")
	if err != nil {
		return nil, fmt.Errorf("eab create: %v: %s", err, out)
	}
	var k struct {
		KID     string `json:"kid"`
		HMACKey string `json:"hmac_key"`
	}
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.KID == "" {
		return nil, fmt.Errorf("eab create --json printed %q: %v", out, err)
	}
	mac, err := base64.RawURLEncoding.DecodeString(k.HMACKey)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := rs.acmeClient(key).Register(ctx, &acme.Account{ExternalAccountBinding: &acme.ExternalAccountBinding{KID: k.KID, Key: mac}},
		acme.AcceptTOS); err != nil {
		return nil, fmt.Errorf("register with EAB: %w", err)
	}
	return key, nil
}

// acmeClient is a client of the account with that key, through the load balancer.
func (rs *replicaSet) acmeClient(key *ecdsa.PrivateKey) *acme.Client {
	return &acme.Client{Key: key, DirectoryURL: "https://" + rs.lb + "/acme/directory",
		HTTPClient: &http.Client{Transport: rs.rr, Timeout: 30 * time.Second}, UserAgent: "varmenne-e2e-pgload"}
}

// start copies the accounts' database into a new one, dropped when t ends, starts
// a server on it and returns the server and clients of the first n accounts.
func (l *loadAccounts) start(t *testing.T, n int) (*replicaSet, []*acme.Client) {
	t.Helper()
	pg := postgresCluster(t)
	name := fmt.Sprintf("pgload_%d", loadDB.Add(1))
	// The template's last sessions may still be ending.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := pg.Exec(context.Background(), "CREATE DATABASE "+name+" TEMPLATE "+l.template)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "being accessed by other users") || time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if err := pg.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	rs := startReplicasOn(t, binary, 1, pg.DSN(name), l.data)
	clients := make([]*acme.Client, n)
	for i := range clients {
		clients[i] = rs.acmeClient(l.keys[i])
	}
	return rs, clients
}

// readyAll takes one order per name to "ready" through http-01, a few at a time,
// the i-th with clients[i % len(clients)].
func (rs *replicaSet) readyAll(t *testing.T, clients []*acme.Client, names []string) []readied {
	t.Helper()
	out := make([]readied, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c := clients[i%len(clients)]
			o, err := rs.ready(ctx, c, name)
			out[i], errs[i] = readied{c: c, name: name, order: o}, err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// ready creates an order for name and proves it with http-01 until it is ready.
func (rs *replicaSet) ready(ctx context.Context, c *acme.Client, name string) (*acme.Order, error) {
	rs.dns.SetA(name, "127.0.0.1")
	o, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name))
	if err != nil {
		return nil, fmt.Errorf("newOrder %s: %w", name, err)
	}
	for _, u := range o.AuthzURLs {
		az, err := c.GetAuthorization(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("authorization of %s: %w", name, err)
		}
		for _, ch := range az.Challenges {
			if ch.Type != "http-01" {
				continue
			}
			ka, err := c.HTTP01ChallengeResponse(ch.Token)
			if err != nil {
				return nil, err
			}
			rs.http01.set(ch.Token, ka)
			if _, err := c.Accept(ctx, ch); err != nil {
				return nil, fmt.Errorf("accept the challenge of %s: %w", name, err)
			}
		}
		if _, err := c.WaitAuthorization(ctx, u); err != nil {
			return nil, fmt.Errorf("authorization of %s: %w", name, err)
		}
	}
	if o, err = c.WaitOrder(ctx, o.URI); err != nil {
		return nil, fmt.Errorf("order for %s not ready: %w", name, err)
	}
	return o, nil
}

// finalize sends the order's finalize with a CSR for a new key and downloads the
// certificate, as a client does.
func finalize(r readied) outcome {
	ctx, cancel := context.WithTimeout(context.Background(), finalizeTimeout)
	defer cancel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return outcome{readied: r, err: err}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{r.name}}, key)
	if err != nil {
		return outcome{readied: r, err: err}
	}
	chain, _, err := r.c.CreateOrderCert(ctx, r.order.FinalizeURL, csr, true)
	return outcome{readied: r, chain: chain, err: err}
}

// figures is what a load came to, as the clients and the database see it.
type figures struct {
	delivered  int            // finalizes that returned the certificate
	refused    map[string]int // the others, by the problem type the order records
	validLater int            // orders valid although their finalize was refused
	stored     int            // certificates in the database
	pending    int            // intents without a certificate, still pending
}

func (f figures) String() string {
	var kinds []string
	for k, n := range f.refused {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	refused := 0
	for _, n := range f.refused {
		refused += n
	}
	return fmt.Sprintf("%d valid and delivered, %d refused (%s), %d of the refused valid afterwards, %d certificates stored, %d intents pending",
		f.delivered, refused, strings.Join(kinds, ", "), f.validLater, f.stored, f.pending)
}

// check asserts the guarantee on what the clients got and what the database holds,
// and returns the figures. It reads every order again, as a client polling it would.
func (rs *replicaSet) check(t *testing.T, outs []outcome) figures {
	t.Helper()
	f := figures{refused: map[string]int{}}
	storedDER := func(serial string) ([]byte, int) {
		rows, err := rs.db.Query("SELECT der FROM certificates WHERE serial = $1", serial)
		if err != nil {
			t.Fatalf("read certificate %s: %v", serial, err)
		}
		defer rows.Close()
		var n int
		var der []byte
		for rows.Next() {
			n++
			if err := rows.Scan(&der); err != nil {
				t.Fatalf("read certificate %s: %v", serial, err)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("read certificate %s: %v", serial, err)
		}
		return der, n
	}
	leafSerial := func(der []byte) string {
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			t.Errorf("a certificate a client received does not parse: %v", err)
			return ""
		}
		return hex.EncodeToString(leaf.SerialNumber.Bytes())
	}
	delivered := map[string]string{} // serial → name
	for _, o := range outs {
		if o.err == nil {
			f.delivered++
			serial := leafSerial(o.chain[0])
			if prev, dup := delivered[serial]; dup {
				t.Errorf("serial %s was delivered for %s and for %s", serial, prev, o.name)
			}
			delivered[serial] = o.name
			if der, n := storedDER(serial); n != 1 || !bytes.Equal(der, o.chain[0]) {
				t.Errorf("%s: the certificate the client received (serial %s) is stored %d times, same bytes %v; want once, identical",
					o.name, serial, n, bytes.Equal(der, o.chain[0]))
			}
		} else {
			// Refused: with a problem document, never a client that gave up waiting.
			var ae *acme.Error
			var oe *acme.OrderError
			switch {
			case errors.As(o.err, &ae) && strings.HasPrefix(ae.ProblemType, "urn:ietf:params:acme:error:"):
			case errors.As(o.err, &oe):
			default:
				t.Errorf("%s: finalize ended with %v: want the certificate or an ACME problem", o.name, o.err)
			}
		}
		// The order as its client reads it now: valid ones deliver their certificate.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cur, err := o.c.GetOrder(ctx, o.order.URI)
		if err != nil {
			cancel()
			t.Errorf("%s: read the order: %v", o.name, err)
			continue
		}
		switch cur.Status {
		case acme.StatusValid:
			chain, err := o.c.FetchCert(ctx, cur.CertURL, true)
			if err != nil || len(chain) == 0 {
				t.Errorf("%s: the order is valid, its certificate cannot be downloaded: %v", o.name, err)
				break
			}
			serial := leafSerial(chain[0])
			if der, n := storedDER(serial); n != 1 || !bytes.Equal(der, chain[0]) {
				t.Errorf("%s: the downloaded certificate (serial %s) is stored %d times, same bytes %v", o.name, serial, n, bytes.Equal(der, chain[0]))
			}
			if o.err == nil && !bytes.Equal(chain[0], o.chain[0]) {
				t.Errorf("%s: the order's certificate is not the one its finalize returned", o.name)
			}
			if o.err != nil {
				f.validLater++
			}
		default:
			if o.err == nil {
				t.Errorf("%s: the finalize returned a certificate, the order is %s", o.name, cur.Status)
				break
			}
			kind := "no problem recorded"
			if cur.Error != nil {
				kind = strings.TrimPrefix(cur.Error.ProblemType, "urn:ietf:params:acme:error:")
			}
			var ae *acme.Error
			if cur.Status == acme.StatusInvalid && cur.Error == nil {
				t.Errorf("%s: the order is invalid without a problem", o.name)
			} else if cur.Status != acme.StatusInvalid && errors.As(o.err, &ae) {
				kind = strings.TrimPrefix(ae.ProblemType, "urn:ietf:params:acme:error:")
			}
			f.refused[fmt.Sprintf("%s (order %s)", kind, cur.Status)]++
		}
		cancel()
	}
	// What the database holds: every certificate once, with its issued intent, for
	// an order that is valid and names it.
	var distinct, withoutIntent, orderNotValid int
	if err := rs.db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT serial),
		COUNT(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM issuance_intents i WHERE i.serial = c.serial AND i.status = 'issued')),
		COUNT(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.id = c.order_id AND o.status = 'valid' AND o.cert_serial = c.serial))
		FROM certificates c`).Scan(&f.stored, &distinct, &withoutIntent, &orderNotValid); err != nil {
		t.Fatal(err)
	}
	if f.stored != distinct || withoutIntent != 0 || orderNotValid != 0 {
		t.Errorf("%d certificates stored: %d distinct serials, %d without an issued intent, %d whose order is not valid with that serial",
			f.stored, distinct, withoutIntent, orderNotValid)
	}
	if err := rs.db.QueryRow(`SELECT COUNT(*) FROM issuance_intents WHERE status = 'pending'`).Scan(&f.pending); err != nil {
		t.Fatal(err)
	}
	for i, r := range rs.replicas {
		logs := r.logs.String()
		if strings.Contains(logs, signedNotStored) {
			t.Errorf("replica %d logged %q:\n%s", i, signedNotStored, grepLines(logs, signedNotStored))
		}
		// Why the server refused, for whoever reads a failure.
		if f.delivered != len(outs) {
			t.Logf("replica %d's errors:\n%s", i, grepLines(logs, `"level":"ERROR"`))
		}
	}
	return f
}

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestPostgresConcurrentFinalizes: on a fresh database, 32 clients each finalize a
// ready order at the same moment, and every one gets its certificate — the review
// saw one of 8 signed and then lost to a serialization failure. Each round runs on
// a database of its own, created for it.
func TestPostgresConcurrentFinalizes(t *testing.T) {
	const rounds, clients = 3, loadAccountCount
	for round := range rounds {
		t.Run(fmt.Sprintf("round %d", round+1), func(t *testing.T) {
			rs, cs := accountsTemplate(t).start(t, clients)
			names := make([]string, clients)
			for i := range names {
				names[i] = fmt.Sprintf("c%02d.r%d.kuorma.example", i, round+1)
			}
			ready := rs.readyAll(t, cs, names)

			outs := make([]outcome, clients)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range ready {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					outs[i] = finalize(ready[i])
				}()
			}
			close(start)
			wg.Wait()

			for _, o := range outs {
				if o.err != nil {
					t.Errorf("%s: finalize: %v", o.name, o.err)
				}
			}
			f := rs.check(t, outs)
			if f.delivered != clients || f.stored != clients {
				t.Errorf("%d of %d clients got their certificate, %d stored", f.delivered, clients, f.stored)
			}
			t.Logf("%d concurrent finalizes on a fresh database: %v", clients, f)
		})
	}
}

// TestPostgresRestartUnderLoad: 16 clients finalize 100 ready orders while
// PostgreSQL restarts, once with a fast shutdown and once with an immediate one
// (crash recovery). A finalize cut by the restart may be refused, with a problem
// document; one that signed is stored and delivered.
func TestPostgresRestartUnderLoad(t *testing.T) {
	const (
		orders    = 100
		workers   = 16
		restartAt = 30 // finalizes answered before the restart
	)
	for _, mode := range []pgtest.Shutdown{pgtest.Fast, pgtest.Immediate} {
		t.Run("restart -m "+mode.String(), func(t *testing.T) {
			rs, cs := accountsTemplate(t).start(t, workers)
			domain := fmt.Sprintf("%s.kuorma.example", mode)
			names := make([]string, orders)
			for j := range names {
				names[j] = fmt.Sprintf("o%03d.%s", j, domain)
			}
			ready := rs.readyAll(t, cs, names)

			outs := make([]outcome, orders)
			var answered atomic.Int64
			restartNow := make(chan struct{})
			var once sync.Once
			restarted := make(chan time.Duration, 1)
			go func() {
				<-restartNow
				began := time.Now()
				if err := rs.pg.Restart(mode); err != nil {
					t.Error(err)
				}
				restarted <- time.Since(began)
			}()
			jobs := make(chan int)
			go func() {
				for j := range orders {
					jobs <- j
				}
				close(jobs)
			}()
			var wg sync.WaitGroup
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range jobs {
						// The order's own account finalizes it.
						outs[j] = finalize(ready[j])
						if answered.Add(1) == restartAt {
							once.Do(func() { close(restartNow) })
						}
					}
				}()
			}
			wg.Wait()
			once.Do(func() { close(restartNow) })
			down := <-restarted

			f := rs.check(t, outs)
			if f.delivered < restartAt {
				t.Errorf("only %d of %d orders delivered their certificate", f.delivered, orders)
			}
			// After the restart, issuance works as before.
			after := rs.readyAll(t, cs[:1], []string{"after." + domain})
			if o := finalize(after[0]); o.err != nil {
				t.Errorf("an order after the restart: %v", o.err)
			}
			t.Logf("restart -m %s after %d of %d finalizes (%v until PostgreSQL accepted connections again): %v",
				mode, restartAt, orders, down.Round(time.Millisecond), f)
			for j, r := range rs.replicas {
				if !r.alive() {
					t.Errorf("replica %d exited", j)
				}
			}
		})
	}
}
