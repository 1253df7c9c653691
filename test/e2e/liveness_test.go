package e2e

import (
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"io"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

// A crash costs seconds, not half a minute (issue 17): the right to publish CRLs
// and a serving process's liveness are locks that die with the process, so a
// restarted server or a surviving replica publishes a revocation within 5 s of a
// SIGKILL, and an order the killed process was finalizing is invalid within
// seconds of the restart. The bounds are the issue's stated guarantees, waited for
// by polls that fail when they pass.
const (
	crashCRLBound   = 5 * time.Second
	crashOrderBound = 10 * time.Second
)

// TestCrashCostsSeconds: the server (SQLite) is SIGKILLed while it finalizes an
// order, and restarted on the same data directory. A certificate revoked right
// after the restart is on the CRL served over HTTP within 5 s, and the order is
// invalid, with the problem that tells the client to start over, within 10 s.
func TestCrashCostsSeconds(t *testing.T) {
	in := start(t, "")
	kid, mac := in.org("1.2.246.10.17171717.10.0", "Kaatuva ja nouseva apteekki", "nousu.example")
	c := in.client(kid, mac)
	r := in.responder()
	ctx := ctxT(t)

	certKey := newKey(t)
	chain, _ := in.obtain(c, r, certKey, "www.nousu.example")
	leaf := mustParse(t, chain[0])

	// An order held in processing: the issuance intent's INSERT never ends (a
	// trigger counting a cross join), so the server is killed in the middle of
	// the finalize, after the order became processing.
	in.pointAt("kesken.nousu.example")
	finalizeURL, err := readyOrder(ctx, c, r, "kesken.nousu.example")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(in.Data, "varmenne.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range []string{
		`CREATE TABLE e2e_slow (x INTEGER)`,
		`INSERT INTO e2e_slow WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20000) SELECT x FROM n`,
		`CREATE TRIGGER e2e_slow_intent BEFORE INSERT ON issuance_intents BEGIN
			SELECT COUNT(*) FROM e2e_slow a, e2e_slow b, e2e_slow c; END`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"kesken.nousu.example"}}, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, _, _ = c.CreateOrderCert(ctx, finalizeURL, csr, false) }() // cut by the kill
	orderID := waitProcessing(t, db)
	_ = in.Cmd.Process.Kill() // SIGKILL: no shutdown, the locks are not released
	<-in.Done
	for _, stmt := range []string{`DROP TRIGGER e2e_slow_intent`, `DROP TABLE e2e_slow`} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}

	in.launch() // same data directory
	restarted := time.Now()
	crlURL := "http://" + in.PublicAddr + "/crl/production.crl"

	t.Run("a revocation right after the restart is on the CRL within 5 s", func(t *testing.T) {
		revoker := &acme.Client{Key: certKey, DirectoryURL: in.Directory, HTTPClient: in.httpClient()}
		asked := time.Now()
		if err := revoker.RevokeCert(ctx, certKey, leaf.Raw, acme.CRLReasonKeyCompromise); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		der := waitListed(t, http.DefaultClient, crlURL, leaf.SerialNumber, asked.Add(crashCRLBound))
		t.Logf("listed %s after the revocation was asked, %s after the restart",
			time.Since(asked).Round(10*time.Millisecond), time.Since(restarted).Round(10*time.Millisecond))
		out, err := openssl(t, "crl", "-inform", "DER", "-in", mustWrite(t, t.TempDir(), "crl.der", der), "-noout", "-text")
		// openssl writes a serial's bytes in upper-case hex.
		if err != nil || !strings.Contains(out, "Serial Number: "+strings.ToUpper(hex.EncodeToString(leaf.SerialNumber.Bytes()))) {
			t.Errorf("openssl crl does not list serial %X: %v\n%s", leaf.SerialNumber, err, out)
		}
	})
	t.Run("the order cut by the kill is invalid within seconds of the restart", func(t *testing.T) {
		client := &acme.Client{Key: c.Key, DirectoryURL: in.Directory, HTTPClient: in.httpClient()}
		orderURL := strings.TrimSuffix(in.Directory, "/acme/directory") + "/acme/order/" + orderID
		deadline := restarted.Add(crashOrderBound)
		for {
			o, err := client.GetOrder(ctx, orderURL)
			if err != nil {
				t.Fatalf("get order %s: %v", orderURL, err)
			}
			if o.Status == acme.StatusInvalid {
				if o.Error == nil || o.Error.ProblemType != "urn:ietf:params:acme:error:serverInternal" ||
					!strings.Contains(o.Error.Detail, "issuance was interrupted") {
					t.Errorf("the order's problem is %+v, want serverInternal saying the issuance was interrupted", o.Error)
				}
				t.Logf("invalid %s after the restart", time.Since(restarted).Round(10*time.Millisecond))
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the order cut by the kill is %s %s after the restart, want invalid", o.Status, crashOrderBound)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// waitProcessing waits (up to 30 s) for an order to be processing and returns its id.
func waitProcessing(t *testing.T, db *sql.DB) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var id string
		err := db.QueryRow(`SELECT id FROM orders WHERE status = 'processing'`).Scan(&id)
		if err == nil {
			return id
		}
		if err != sql.ErrNoRows || time.Now().After(deadline) {
			t.Fatalf("no order became processing: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitListed polls the CRL at u until it lists serial, and fails at deadline. It
// returns the CRL's DER.
func waitListed(t *testing.T, hc *http.Client, u string, serial *big.Int, deadline time.Time) []byte {
	t.Helper()
	for {
		resp, err := hc.Get(u)
		if err == nil {
			der, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				rl, err := x509.ParseRevocationList(der)
				if err != nil {
					t.Fatalf("the CRL at %s does not parse: %v", u, err)
				}
				if listed(rl, serial) != nil {
					return der
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CRL at %s does not list serial %x by the deadline", u, serial)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReplicaCrashCostsSeconds: of two replicas on PostgreSQL, the one holding the
// right to publish CRLs is SIGKILLed; a certificate revoked right after is on the
// survivor's CRL within 5 s.
func TestReplicaCrashCostsSeconds(t *testing.T) {
	rs := startReplicas(t, binary, 2)
	keys := rs.org("1.2.246.10.17171718.10.0", "replicalive.example", 1)
	c := rs.client(keys[0])
	ctx := ctxT(t)
	chain, _, _, err := rs.issue(ctx, c, "www.replicalive.example", nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, issuer := mustParse(t, chain[0]), mustParse(t, chain[1])

	// The holder is the one that published at its start; the other found the
	// right taken.
	var holder, survivor []*replica
	for _, r := range rs.replicas {
		if strings.Contains(r.logs.String(), `"msg":"CRL published","issuer":"production"`) {
			holder = append(holder, r)
		} else {
			survivor = append(survivor, r)
		}
	}
	if len(holder) != 1 || len(survivor) != 1 {
		t.Fatalf("%d replicas published production CRLs, want one", len(holder))
	}
	rs.kill(holder[0])

	asked := time.Now()
	if err := c.RevokeCert(ctx, nil, leaf.Raw, acme.CRLReasonSuperseded); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	der := waitListed(t, &http.Client{Timeout: 5 * time.Second}, "http://"+survivor[0].public+"/crl/production.crl",
		leaf.SerialNumber, asked.Add(crashCRLBound))
	t.Logf("listed by the survivor %s after the revocation was asked", time.Since(asked).Round(10*time.Millisecond))
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		t.Errorf("the survivor's CRL is not signed by the issuer: %v", err)
	}
	if !strings.Contains(survivor[0].logs.String(), `"msg":"CRL published","issuer":"production"`) {
		t.Error("the survivor served a CRL it did not publish")
	}
}
