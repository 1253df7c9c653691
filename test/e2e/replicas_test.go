package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	_ "github.com/lib/pq"
	"golang.org/x/crypto/acme"

	"github.com/varmenne/varmenne/store"
	"github.com/varmenne/varmenne/store/pgtest"
	"github.com/varmenne/varmenne/test/dnsserver"
	"github.com/varmenne/varmenne/test/harness"
)

// The package's private PostgreSQL server: started by the first test that needs it,
// stopped by TestMain.
var (
	pgOnce    sync.Once
	pgCluster *pgtest.Cluster
	pgErr     error
)

func postgresCluster(tb testing.TB) *pgtest.Cluster {
	tb.Helper()
	pgOnce.Do(func() { pgCluster, pgErr = pgtest.Start() })
	if pgErr != nil {
		tb.Fatal(pgErr)
	}
	return pgCluster
}

func stopPostgres() {
	if pgCluster != nil {
		pgCluster.Stop()
	}
}

// replica is one `varmenne serve` of a replica set.
type replica struct {
	addr   string // its ACME listener
	ops    string // its operator listener (/healthz, /readyz)
	public string // its CRL, OCSP and issuer listener
	cmd    *exec.Cmd
	logs   *syncBuffer
	done   chan error
}

// replicaSet is replicas sharing one PostgreSQL database behind one base URL, as
// behind a load balancer. They also share the data directory (the development PKI
// the first one makes), the DNS server and the http-01 port.
type replicaSet struct {
	tb       testing.TB
	bin      string
	pg       *pgtest.Cluster
	dsn      string
	data     string
	lb       string // host:port in every URL the replicas give; nothing listens there
	lbPublic string // the same for the CRL and OCSP URLs in certificates
	dns      *dnsserver.Server
	anchors  string // the --dnssec-anchors file of dns's signed zones
	http01   *challengeServer
	replicas []*replica
	rr       *roundRobin
	db       *sql.DB // the test's view of what is stored

	extra []string // further serve flags of every replica
}

// startReplicas starts n replicas on a new database, each with the serve flags extra.
func startReplicas(tb testing.TB, bin string, n int, extra ...string) *replicaSet {
	tb.Helper()
	return startReplicasOn(tb, bin, n, postgresCluster(tb).NewDatabase(tb), tb.TempDir(), extra...)
}

// startReplicasOn starts n replicas on the database at dsn with the data directory
// data (empty, or one a replica set made before), each with the serve flags extra.
func startReplicasOn(tb testing.TB, bin string, n int, dsn, data string, extra ...string) *replicaSet {
	tb.Helper()
	pg := postgresCluster(tb)
	rs := &replicaSet{tb: tb, bin: bin, pg: pg, dsn: dsn, data: data, extra: extra,
		lb: fmt.Sprintf("127.0.0.1:%d", freePortTB(tb)), lbPublic: fmt.Sprintf("127.0.0.1:%d", freePortTB(tb))}
	dns, err := dnsserver.Start("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { dns.Close() })
	rs.dns, rs.anchors = dns, harness.SignDNS(tb, dns)
	rs.http01 = startChallengeServer(tb)
	// The first start makes the development PKI in the shared data directory.
	for range n {
		rs.replicas = append(rs.replicas, rs.launch())
	}
	var addrs []string
	for _, r := range rs.replicas {
		addrs = append(addrs, r.addr)
	}
	rs.rr = newRoundRobin(rs.lb, addrs, rs.roots())
	if rs.db, err = sql.Open("postgres", rs.dsn); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rs.db.Close() })
	return rs
}

func (rs *replicaSet) launch() *replica {
	tb := rs.tb
	tb.Helper()
	r := &replica{
		addr: fmt.Sprintf("127.0.0.1:%d", freePortTB(tb)),
		ops:  fmt.Sprintf("127.0.0.1:%d", freePortTB(tb)),
		logs: &syncBuffer{},
		done: make(chan error, 1),
	}
	r.public = fmt.Sprintf("127.0.0.1:%d", freePortTB(tb))
	r.cmd = exec.Command(rs.bin, "serve",
		"--data", rs.data,
		"--public-listen", r.public,
		"--public-url", "http://"+rs.lbPublic,
		"--db", rs.dsn,
		"--listen", r.addr,
		"--base-url", "https://"+rs.lb,
		"--ops-listen", r.ops,
		"--http01-port", fmt.Sprint(rs.http01.port),
		"--dns-resolver", rs.dns.Addr(),
		"--dnssec-anchors", rs.anchors,
		"--validation-allow", "127.0.0.0/8",
		"--validation-timeout", "10s",
		"--log-format", "json",
	)
	r.cmd.Args = append(r.cmd.Args, rs.extra...)
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	r.cmd.Stderr = r.logs
	if err := r.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	tb.Cleanup(r.stop)
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(strings.TrimSpace(sc.Text()), "ACME directory: ") {
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case err := <-r.done:
		tb.Fatalf("replica exited at start: %v\n%s", err, r.logs.String())
	case <-time.After(60 * time.Second):
		tb.Fatalf("replica did not start in 60 s\n%s", r.logs.String())
	}
	return r
}

func (r *replica) stop() {
	if r.cmd.ProcessState != nil {
		return
	}
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// kill ends the replica with SIGKILL: no shutdown, requests in flight are cut.
func (rs *replicaSet) kill(r *replica) {
	rs.rr.remove(r.addr) // the load balancer's health check notices
	_ = r.cmd.Process.Kill()
	<-r.done
}

func (r *replica) alive() bool {
	select {
	case err := <-r.done:
		r.done <- err
		return false
	default:
		return true
	}
}

func (rs *replicaSet) roots() *x509.CertPool {
	pemBytes, err := os.ReadFile(filepath.Join(rs.data, "roots.pem"))
	if err != nil {
		rs.tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		rs.tb.Fatal("roots.pem holds no certificate")
	}
	return pool
}

// cli runs an operator command on the shared database.
func (rs *replicaSet) cli(args ...string) (string, error) {
	cmd := exec.Command(rs.bin, append(args, "--data", rs.data, "--db", rs.dsn)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

// org adds an organisation administering domain and returns n EAB keys for it.
func (rs *replicaSet) org(oid, domain string, n int) [][2]string {
	tb := rs.tb
	tb.Helper()
	if out, err := rs.cli("org", "add", "--oid", oid, "--name", "Replica Oy "+oid, "--domain", domain); err != nil {
		tb.Fatalf("org add: %v: %s", err, out)
	}
	var keys [][2]string
	for range n {
		out, err := rs.cli("eab", "create", "--org", oid, "--json")
		if err != nil {
			tb.Fatalf("eab create: %v: %s", err, out)
		}
		var k struct {
			KID     string `json:"kid"`
			HMACKey string `json:"hmac_key"`
		}
		if err := json.Unmarshal([]byte(out), &k); err != nil || k.KID == "" {
			tb.Fatalf("eab create --json printed %q: %v", out, err)
		}
		keys = append(keys, [2]string{k.KID, k.HMACKey})
	}
	return keys
}

// client registers an account with EAB through the load balancer.
func (rs *replicaSet) client(eab [2]string) *acme.Client {
	tb := rs.tb
	tb.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := &acme.Client{Key: key, DirectoryURL: "https://" + rs.lb + "/acme/directory",
		HTTPClient: &http.Client{Transport: rs.rr, Timeout: 30 * time.Second}, UserAgent: "varmenne-e2e-replicas"}
	mac, err := base64.RawURLEncoding.DecodeString(eab[1])
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Register(ctx, &acme.Account{ExternalAccountBinding: &acme.ExternalAccountBinding{KID: eab[0], Key: mac}},
		acme.AcceptTOS); err != nil {
		tb.Fatalf("register with EAB: %v", err)
	}
	return c
}

// attempt is one try at a certificate: the order and key it used, so a retry can
// resume an order that is still ready.
type attempt struct {
	order *acme.Order
	key   *ecdsa.PrivateKey
}

// issue runs an order for name to its certificate chain (DER), or resumes prev's
// order when it is still ready.
func (rs *replicaSet) issue(ctx context.Context, c *acme.Client, name string, prev *attempt) ([][]byte, *attempt, bool, error) {
	if prev != nil && prev.order != nil {
		if o, err := c.GetOrder(ctx, prev.order.URI); err == nil && o.Status == acme.StatusReady {
			chain, err := finalizeOrder(ctx, c, o, prev.key, name)
			return chain, prev, true, err
		}
	}
	at := &attempt{}
	at.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rs.dns.SetA(name, "127.0.0.1")
	o, err := c.AuthorizeOrder(ctx, acme.DomainIDs(name))
	if err != nil {
		return nil, at, false, fmt.Errorf("newOrder: %w", err)
	}
	at.order = o
	for _, u := range o.AuthzURLs {
		az, err := c.GetAuthorization(ctx, u)
		if err != nil {
			return nil, at, false, fmt.Errorf("authorization: %w", err)
		}
		if az.Status == acme.StatusValid {
			continue
		}
		var chal *acme.Challenge
		for _, ch := range az.Challenges {
			if ch.Type == "http-01" {
				chal = ch
			}
		}
		if chal == nil {
			return nil, at, false, errors.New("no http-01 challenge")
		}
		ka, err := c.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			return nil, at, false, err
		}
		rs.http01.set(chal.Token, ka)
		if _, err := c.Accept(ctx, chal); err != nil {
			return nil, at, false, fmt.Errorf("accept: %w", err)
		}
		if _, err := c.WaitAuthorization(ctx, u); err != nil {
			return nil, at, false, fmt.Errorf("wait for the authorization: %w", err)
		}
	}
	if o, err = c.WaitOrder(ctx, o.URI); err != nil {
		return nil, at, false, fmt.Errorf("wait for the order: %w", err)
	}
	chain, err := finalizeOrder(ctx, c, o, at.key, name)
	return chain, at, false, err
}

func finalizeOrder(ctx context.Context, c *acme.Client, o *acme.Order, key *ecdsa.PrivateKey, name string) ([][]byte, error) {
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, key)
	if err != nil {
		return nil, err
	}
	chain, _, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	if err != nil {
		return nil, fmt.Errorf("finalize: %w", err)
	}
	return chain, nil
}

// loadResult is what the clients of a load run got.
type loadResult struct {
	received map[string][]byte // serial (hex) → leaf DER, every certificate a client got
	issued   int               // names that got a certificate
	failed   int               // attempts that failed and were retried
	resumed  int               // retries that finished the failed attempt's order
	errs     []error           // names that got no certificate in maxTries
	why      []string          // what the failed attempts saw, for the log
	slowest  time.Duration     // of the successful attempts
}

// runLoad issues total certificates, for names <prefix>-<i>.<domain>, with
// `workers` concurrent goroutines over clients. A failed attempt is retried (the
// same order if it is still ready, else a new order with a new key), at most
// maxTries times. fault, when not nil, runs once faultAt certificates were issued;
// runLoad returns after it finished.
func (rs *replicaSet) runLoad(clients []*acme.Client, prefix, domain string, total, workers, faultAt int, fault func()) *loadResult {
	const maxTries = 6
	// An attempt waits its turn behind the others: with hundreds at once on two
	// shared CPUs, a whole issuance takes longer than with a dozen.
	attemptTimeout := max(20*time.Second, time.Duration(workers)*250*time.Millisecond)
	res := &loadResult{received: map[string][]byte{}}
	var mu sync.Mutex
	var done atomic.Int64
	faultNow := make(chan struct{})
	var faultOnce sync.Once
	faultDone := make(chan struct{})
	go func() {
		defer close(faultDone)
		if fault == nil {
			return
		}
		<-faultNow
		fault()
	}()
	if fault == nil || faultAt <= 0 {
		faultOnce.Do(func() { close(faultNow) })
	}
	jobs := make(chan int)
	go func() {
		for i := range total {
			jobs <- i
		}
		close(jobs)
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clients[w%len(clients)]
			for i := range jobs {
				name := fmt.Sprintf("%s-%d.%s", prefix, i, domain)
				var prev *attempt
				var lastErr error
				ok := false
				for try := 1; try <= maxTries && !ok; try++ {
					ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
					began := time.Now()
					chain, at, resumed, err := rs.issue(ctx, c, name, prev)
					took := time.Since(began)
					cancel()
					mu.Lock()
					switch {
					case err != nil:
						res.failed++
						prev, lastErr = at, err
						res.why = append(res.why, fmt.Sprintf("%s after %v: %v", name, took.Round(time.Millisecond), err))
					default:
						ok = true
						res.slowest = max(res.slowest, took)
						res.issued++
						if resumed {
							res.resumed++
						}
						leaf, perr := x509.ParseCertificate(chain[0])
						if perr != nil {
							res.errs = append(res.errs, fmt.Errorf("%s: %w", name, perr))
							break
						}
						serial := hex.EncodeToString(leaf.SerialNumber.Bytes())
						if _, dup := res.received[serial]; dup {
							res.errs = append(res.errs, fmt.Errorf("serial %s was given to two clients", serial))
						}
						res.received[serial] = chain[0]
					}
					mu.Unlock()
					if err != nil {
						time.Sleep(200 * time.Millisecond) // let the load balancer and database settle
					}
				}
				if !ok {
					mu.Lock()
					res.errs = append(res.errs, fmt.Errorf("%s: no certificate in %d tries, last: %w", name, maxTries, lastErr))
					mu.Unlock()
				}
				if done.Add(1) == int64(faultAt) {
					faultOnce.Do(func() { close(faultNow) })
				}
			}
		}()
	}
	wg.Wait()
	faultOnce.Do(func() { close(faultNow) })
	<-faultDone
	return res
}

// checkStored asserts what every client of res got is stored exactly once, byte
// for byte, with its issued intent, and that no stored certificate lacks one.
func (rs *replicaSet) checkStored(t *testing.T, res *loadResult) {
	t.Helper()
	for _, err := range res.errs {
		t.Error(err)
	}
	for serial, der := range res.received {
		var n int
		var stored []byte
		if err := rs.db.QueryRow("SELECT COUNT(*) FROM certificates WHERE serial = $1", serial).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			if err := rs.db.QueryRow("SELECT der FROM certificates WHERE serial = $1 LIMIT 1", serial).Scan(&stored); err != nil {
				t.Fatal(err)
			}
		}
		if n != 1 || !bytes.Equal(stored, der) {
			t.Errorf("certificate %s a client received: %d stored, same bytes %v; want exactly one, identical", serial, n, bytes.Equal(stored, der))
		}
	}
	var total, distinct, withoutIntent int
	if err := rs.db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT serial),
		COUNT(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM issuance_intents i WHERE i.serial = c.serial AND i.status = 'issued'))
		FROM certificates c`).Scan(&total, &distinct, &withoutIntent); err != nil {
		t.Fatal(err)
	}
	if total != distinct || withoutIntent != 0 {
		t.Errorf("%d certificates stored, %d distinct serials, %d without an issued intent", total, distinct, withoutIntent)
	}
}

// counts reports how many rows of table match where, for the log.
func (rs *replicaSet) count(t *testing.T, query string) int {
	t.Helper()
	var n int
	if err := rs.db.QueryRow(query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReplicas runs three replicas on one PostgreSQL database and a client whose
// every request goes to the next replica: a nonce from one is redeemed by another.
// Then the faults: a certificate INSERT that fails, PostgreSQL restarting under
// load, a replica killed under load.
func TestReplicas(t *testing.T) {
	rs := startReplicas(t, binary, 3)
	keys := rs.org("1.2.246.10.33333333.10.0", "replicas.example", 9)

	t.Run("registration, issuance and revocation across replicas", func(t *testing.T) {
		before := rs.rr.counts()
		c := rs.client(keys[0])
		ctx := ctxT(t)
		chain, _, _, err := rs.issue(ctx, c, "www.replicas.example", nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(chain[0])
		issuer, _ := x509.ParseCertificate(chain[1])
		inter := x509.NewCertPool()
		inter.AddCert(issuer)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: rs.roots(), Intermediates: inter, DNSName: "www.replicas.example"}); err != nil {
			t.Fatalf("chain does not verify: %v", err)
		}
		if err := c.RevokeCert(ctx, nil, chain[0], acme.CRLReasonSuperseded); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		serial := hex.EncodeToString(leaf.SerialNumber.Bytes())
		if n := rs.count(t, "SELECT COUNT(*) FROM revocations WHERE serial = '"+serial+"'"); n != 1 {
			t.Errorf("%d revocations of %s stored, want 1", n, serial)
		}
		// One replica holds the CRL lease and publishes; every replica serves the
		// latest CRL from the database, listing the revocation.
		var numbers []int64
		for _, r := range rs.replicas {
			numbers = append(numbers, waitCRLListing(t, r, leaf.SerialNumber, issuer))
		}
		if numbers[0] != numbers[1] || numbers[1] != numbers[2] {
			t.Errorf("replicas serve CRL numbers %v, want one CRL", numbers)
		}
		publishers := 0
		for _, r := range rs.replicas {
			if strings.Contains(r.logs.String(), `"msg":"CRL published","issuer":"production"`) {
				publishers++
			}
		}
		if publishers != 1 {
			t.Errorf("%d replicas published production CRLs, want the one holding the lease", publishers)
		}
		after := rs.rr.counts()
		for _, r := range rs.replicas {
			if after[r.addr]-before[r.addr] < 3 {
				t.Errorf("replica %s served %d requests of the client, want several", r.addr, after[r.addr]-before[r.addr])
			}
		}
	})

	t.Run("a nonce is accepted once by any replica and never again anywhere", func(t *testing.T) {
		testNonceAcrossReplicas(t, rs) // replicas_reuse_test.go
	})
	t.Run("authorization reuse is shared by the replicas", func(t *testing.T) {
		testAuthzReuseAcrossReplicas(t, rs, keys[7], keys[8]) // replicas_reuse_test.go
	})

	t.Run("a certificate INSERT that fails leaves the intent and a revocable serial", func(t *testing.T) {
		testInsertFault(t, rs, keys[1])
	})

	t.Run("PostgreSQL restarts under load", func(t *testing.T) {
		clients := []*acme.Client{rs.client(keys[2]), rs.client(keys[3])}
		var probes []string
		res := rs.runLoad(clients, "restart", "replicas.example", 24, 8, 6, func() {
			if err := rs.pg.Down(); err != nil {
				t.Error(err)
			}
			for _, r := range rs.replicas {
				waitReady(t, r, http.StatusServiceUnavailable)
				p, err := rs.probe(r)
				if err != nil {
					t.Error(err)
				}
				probes = append(probes, p)
			}
			if err := rs.pg.Up(); err != nil {
				t.Error(err)
				return
			}
			for _, r := range rs.replicas {
				waitReady(t, r, http.StatusOK)
			}
		})
		for i, p := range probes {
			if p != "serverInternal" {
				t.Errorf("replica %d answered an ACME request during the outage with %q, want serverInternal", i, p)
			}
		}
		for i, r := range rs.replicas {
			if !r.alive() {
				t.Errorf("replica %d exited", i)
			}
			// The database answers again: the same probe is now refused for its nonce.
			if p, err := rs.probe(r); p != "badNonce" || err != nil {
				t.Errorf("replica %d after the restart: %q, %v; want badNonce", i, p, err)
			}
		}
		if res.issued != 24 {
			t.Errorf("%d of 24 certificates issued", res.issued)
		}
		rs.checkStored(t, res)
		t.Logf("restart under load: %d issued (slowest %v), %d attempts failed and were retried (%d resumed their order):\n%s",
			res.issued, res.slowest, res.failed, res.resumed, strings.Join(res.why, "\n"))
	})

	t.Run("a replica killed under load", func(t *testing.T) {
		var clients []*acme.Client
		for _, k := range keys[4:7] {
			clients = append(clients, rs.client(k))
		}
		victim := rs.replicas[2]
		servedBefore := 0
		// 300 issuances at once, spread over the three replicas; the kill comes when a
		// sixth of them are done, with the rest in flight on every replica.
		const total = 300
		began := time.Now()
		res := rs.runLoad(clients, "kill", "replicas.example", total, total, total/6, func() {
			servedBefore = rs.rr.counts()[victim.addr]
			rs.kill(victim)
		})
		took := time.Since(began)
		if res.issued != total {
			t.Errorf("%d of %d certificates issued", res.issued, total)
		}
		if servedBefore < total/3 {
			t.Errorf("the victim served %d requests before it was killed, want its share of the load", servedBefore)
		}
		rs.checkStored(t, res)
		for i, r := range rs.replicas[:2] {
			if !r.alive() {
				t.Errorf("surviving replica %d exited", i)
			}
		}
		t.Logf("kill under load: %d issuances at once took %v; victim served %d requests; %d issued (slowest %v), %d attempts failed and were retried (%d resumed their ready order); left behind: %d pending intents, %d processing orders, %d processing challenges:\n%s",
			total, took.Round(time.Millisecond), servedBefore, res.issued, res.slowest, res.failed, res.resumed,
			rs.count(t, "SELECT COUNT(*) FROM issuance_intents WHERE status = 'pending'"),
			rs.count(t, "SELECT COUNT(*) FROM orders WHERE status = 'processing'"),
			rs.count(t, "SELECT COUNT(*) FROM challenges WHERE status = 'processing'"), strings.Join(res.why, "\n"))
	})
}

// testInsertFault installs a trigger that fails certificate INSERTs, then runs
// orders. A signed certificate is always stored when it can be: a failure that
// passes (a later try succeeds) costs the client nothing; one that lasts longer
// than the store's retries fails the order, and leaves the intent and a
// revocable serial.
func testInsertFault(t *testing.T, rs *replicaSet, eab [2]string) {
	c := rs.client(eab)
	installed := false
	install := func(failures int) {
		t.Helper()
		if _, err := rs.db.Exec(fmt.Sprintf(`CREATE SEQUENCE fault_once;
		CREATE FUNCTION fail_certificate_once() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF nextval('fault_once') <= %d THEN
				RAISE EXCEPTION 'injected fault: the certificate INSERT fails';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER fail_certificate_once BEFORE INSERT ON certificates
			FOR EACH ROW EXECUTE FUNCTION fail_certificate_once();`, failures)); err != nil {
			t.Fatal(err)
		}
		installed = true
	}
	drop := func() {
		if !installed {
			return
		}
		installed = false
		if _, err := rs.db.Exec(`DROP TRIGGER fail_certificate_once ON certificates;
			DROP FUNCTION fail_certificate_once(); DROP SEQUENCE fault_once;`); err != nil {
			t.Fatal(err)
		}
	}
	defer drop()
	ctx := ctxT(t)

	// Two failed INSERTs, then the database takes it: the client gets its certificate.
	install(2)
	if _, _, _, err := rs.issue(ctx, c, "passing.replicas.example", nil); err != nil {
		t.Fatalf("an order whose certificate INSERT failed twice, then passed: %v", err)
	}
	drop()

	// A fault that outlasts the retries fails the order.
	install(1 << 30)
	_, at, _, err := rs.issue(ctx, c, "fault.replicas.example", nil)
	if err == nil {
		t.Fatal("the order succeeded although the certificate could not be stored")
	}
	drop()
	o, err := c.GetOrder(ctx, at.order.URI)
	if err != nil {
		t.Fatal(err)
	}
	var problem string
	if o.Error != nil {
		problem = o.Error.ProblemType
	}
	orderID := path.Base(at.order.URI)
	var serial, status string
	if err := rs.db.QueryRow("SELECT serial, status FROM issuance_intents WHERE order_id = $1", orderID).Scan(&serial, &status); err != nil {
		t.Fatalf("the intent of order %s: %v", orderID, err)
	}
	secret, err := store.ReadEABSecretFile(filepath.Join(rs.data, "eab-secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenPostgres(ctx, rs.dsn, secret)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, certErr := st.GetCertificate(ctx, serial)
	revokeErr := st.Revoke(ctx, store.Revocation{Serial: serial, RevokedAt: time.Now(), Reason: 0,
		RequestedBy: "e2e operator", IdentifiedBy: "test", PerformedBy: "e2e operator",
		Note: "signed, never stored: the certificate INSERT failed"}, nil)
	_, getRevErr := st.GetRevocation(ctx, serial)
	cases := []struct {
		name string
		ok   bool
		got  any
	}{
		{"the order is invalid", o.Status == acme.StatusInvalid, o.Status},
		{"its error is serverInternal", problem == "urn:ietf:params:acme:error:serverInternal", problem},
		{"the detail is generic", o.Error != nil && !strings.Contains(o.Error.Detail, "injected"), o.Error},
		{"the intent stays pending", status == "pending", status},
		{"no certificate is stored", errors.Is(certErr, store.ErrNotFound), certErr},
		{"the serial is revocable", revokeErr == nil && getRevErr == nil, errors.Join(revokeErr, getRevErr)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.ok {
				t.Errorf("got %v", tc.got)
			}
		})
	}
	// The next try succeeds (a new key: the failed intent still holds the old one).
	if _, _, _, err := rs.issue(ctx, c, "fault.replicas.example", nil); err != nil {
		t.Errorf("retry after the fault: %v", err)
	}
}

// waitCRLListing polls a replica's production CRL until it lists serial, for at most
// 30 s, checks its signature and returns its number.
func waitCRLListing(t *testing.T, r *replica, serial *big.Int, issuer *x509.Certificate) int64 {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := hc.Get("http://" + r.public + "/crl/production.crl")
		if err == nil {
			der, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				crl, err := x509.ParseRevocationList(der)
				if err != nil {
					t.Fatalf("replica %s serves an unparsable CRL: %v", r.addr, err)
				}
				if err := crl.CheckSignatureFrom(issuer); err != nil {
					t.Fatalf("replica %s serves a CRL the issuer did not sign: %v", r.addr, err)
				}
				for _, e := range crl.RevokedCertificateEntries {
					if e.SerialNumber.Cmp(serial) == 0 {
						return crl.Number.Int64()
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("replica %s: the CRL does not list %x after 30 s", r.addr, serial)
	return 0
}

// waitReady polls a replica's /readyz until it answers want, for at most 30 s.
func waitReady(t *testing.T, r *replica, want int) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	got := 0
	for time.Now().Before(deadline) {
		resp, err := hc.Get("http://" + r.ops + "/readyz")
		if err == nil {
			got = resp.StatusCode
			if got == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
				t.Errorf("/readyz 503 without Retry-After")
			}
			resp.Body.Close()
			if got == want {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("replica %s: /readyz answered %d for 30 s, want %d", r.addr, got, want)
}

// probe sends one authentic newAccount lookup with a made-up nonce straight to r
// and returns the problem type it is answered with: the nonce is checked in the
// database, so a reachable database refuses it (badNonce) and an unreachable one
// fails the request (serverInternal).
// A serverInternal answer must be a 500 with a generic detail.
func (rs *replicaSet) probe(r *replica) (string, error) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	url := "https://" + rs.lb + "/acme/new-account"
	nonce := "prob" + strings.Repeat("A", 22) // the form of this server's nonces
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, &jose.SignerOptions{
		EmbedJWK:     true,
		ExtraHeaders: map[jose.HeaderKey]any{"nonce": nonce, "url": url},
	})
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign([]byte(`{"onlyReturnExisting":true}`))
	if err != nil {
		return "", err
	}
	hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: rs.roots()}}}
	resp, err := hc.Post("https://"+r.addr+"/acme/new-account", "application/jose+json", strings.NewReader(jws.FullSerialize()))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var p struct{ Type, Detail string }
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &p); err != nil {
		return "", fmt.Errorf("probe answer %d %q is not a problem document", resp.StatusCode, body)
	}
	kind := strings.TrimPrefix(p.Type, "urn:ietf:params:acme:error:")
	if kind == "serverInternal" && (resp.StatusCode != http.StatusInternalServerError ||
		strings.Contains(p.Detail, "dial") || strings.Contains(p.Detail, "pq") || strings.Contains(p.Detail, "connect")) {
		return kind, fmt.Errorf("serverInternal as %d with detail %q: want 500 and a generic detail", resp.StatusCode, p.Detail)
	}
	return kind, nil
}

// roundRobin is a load balancer inside the client: requests for lb go to the next
// live replica in turn.
type roundRobin struct {
	lb    string
	inner *http.Transport
	mu    sync.Mutex
	live  []string
	next  int
	count map[string]int
}

func newRoundRobin(lb string, replicas []string, roots *x509.CertPool) *roundRobin {
	return &roundRobin{lb: lb, live: replicas, count: map[string]int{},
		inner: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: 64}}
}

func (rr *roundRobin) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != rr.lb {
		return rr.inner.RoundTrip(req)
	}
	rr.mu.Lock()
	if len(rr.live) == 0 {
		rr.mu.Unlock()
		return nil, errors.New("no live replica")
	}
	target := rr.live[rr.next%len(rr.live)]
	rr.next++
	rr.count[target]++
	rr.mu.Unlock()
	out := req.Clone(req.Context())
	out.URL.Host = target
	return rr.inner.RoundTrip(out)
}

func (rr *roundRobin) remove(addr string) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	for i, a := range rr.live {
		if a == addr {
			rr.live = append(rr.live[:i:i], rr.live[i+1:]...)
			return
		}
	}
}

func (rr *roundRobin) counts() map[string]int {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	out := make(map[string]int, len(rr.count))
	for k, v := range rr.count {
		out[k] = v
	}
	return out
}

// challengeServer answers http-01 for every replica.
type challengeServer struct {
	port int
	keys sync.Map // token → key authorization
}

func startChallengeServer(tb testing.TB) *challengeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	cs := &challengeServer{port: ln.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ka, ok := cs.keys.Load(strings.TrimPrefix(r.URL.Path, "/.well-known/acme-challenge/")); ok {
			io.WriteString(w, ka.(string))
			return
		}
		http.NotFound(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return cs
}

func (cs *challengeServer) set(token, keyAuth string) { cs.keys.Store(token, keyAuth) }

func freePortTB(tb testing.TB) int { return harness.FreePort(tb) }

// benchBinary is varmenne built without the race detector, for measurements.
var (
	benchOnce   sync.Once
	benchBinary string
	benchErr    error
)

func buildBenchBinary(b *testing.B) string {
	b.Helper()
	benchOnce.Do(func() {
		benchBinary = filepath.Join(filepath.Dir(binary), "varmenne-norace")
		out, err := exec.Command("go", "build", "-o", benchBinary, "github.com/varmenne/varmenne/cmd/varmenne").CombinedOutput()
		if err != nil {
			benchErr = fmt.Errorf("building varmenne: %v\n%s", err, out)
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchBinary
}

// BenchmarkReplicaIssuance measures whole ACME issuances (new order, http-01,
// finalize, download) per second by 12 concurrent clients against one and three
// replicas on one PostgreSQL database, everything on this machine. Run by hand:
//
//	go test -run '^$' -bench ReplicaIssuance -benchtime 300x ./test/e2e/
func BenchmarkReplicaIssuance(b *testing.B) {
	bin := buildBenchBinary(b)
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			rs := startReplicas(b, bin, n)
			var clients []*acme.Client
			for _, k := range rs.org("1.2.246.10.44444444.10.0", "bench.example", 4) {
				clients = append(clients, rs.client(k))
			}
			cpu := func() (replicas, db time.Duration) {
				for _, r := range rs.replicas {
					replicas += processCPU(r.cmd.Process.Pid)
				}
				return replicas, clusterCPU(rs.pg.Pid())
			}
			b.ResetTimer()
			replicasBefore, dbBefore := cpu()
			began := time.Now()
			res := rs.runLoad(clients, "b", "bench.example", b.N, 12, 0, nil)
			elapsed := time.Since(began)
			replicasAfter, dbAfter := cpu()
			b.StopTimer()
			if len(res.errs) > 0 {
				b.Fatalf("%d names failed, first: %v", len(res.errs), res.errs[0])
			}
			perCert := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(res.issued) }
			b.ReportMetric(float64(res.issued)/elapsed.Seconds(), "certs/s")
			b.ReportMetric(perCert(replicasAfter-replicasBefore), "replica-cpu-ms/cert")
			b.ReportMetric(perCert(dbAfter-dbBefore), "db-cpu-ms/cert")
			b.ReportMetric(float64(res.failed), "retried")
		})
	}
}

// processCPU is the user and system CPU time a live process used so far.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are the 12th
	// and 13th of them, cutime and cstime (reaped children) the 14th and 15th.
	_, rest, _ := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} {
		var v int64
		fmt.Sscan(f[i], &v)
		ticks += v
	}
	const clockTicks = 100 // USER_HZ on Linux
	return time.Duration(ticks) * time.Second / clockTicks
}

// clusterCPU is the CPU time of a PostgreSQL server: the postmaster with the
// backends it reaped, and its live children.
func clusterCPU(postmaster int) time.Duration {
	total := processCPU(postmaster)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		_, rest, _ := strings.Cut(string(b), ") ")
		if f := strings.Fields(rest); len(f) > 1 && f[1] == fmt.Sprint(postmaster) {
			total += processCPU(pid)
		}
	}
	return total
}
