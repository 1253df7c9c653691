// Package bench is varmenne's ACME load generator: it drives any ACME server
// (varmenne, Pebble, step-ca, …) through golang.org/x/crypto/acme with many accounts
// and concurrent orders, answers http-01 from its own loopback responder and names
// from its own loopback DNS server, and reports certificates per second, per-step
// latency percentiles, errors by ACME problem type and the server's CPU time per
// certificate.
//
// The target must be pointed at the responder: its validation must resolve names
// through the DNS server (DNSListen) and connect to the HTTP port (HTTP01Listen) on
// loopback. varmenne: --dns-resolver, --http01-port, --validation-allow 127.0.0.0/8;
// Pebble: -dnsserver and httpPort; step-ca: its resolver setting.
package bench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/varmenne/varmenne/internal/progress"
	"github.com/varmenne/varmenne/test/dnsserver"
)

// EAB is one external account binding: a key identifier and its HMAC key.
type EAB struct {
	KID  string
	HMAC []byte
}

// Config is one load run.
type Config struct {
	Directory   string         // ACME directory URL
	Roots       *x509.CertPool // trust roots of the directory's TLS certificate; nil: the system's
	EAB         []EAB          // one account per key; without keys, Accounts accounts without EAB
	Accounts    int            // accounts when EAB is empty
	Orders      int            // orders in all
	Concurrency int            // orders in flight at once
	KeyType     string         // certificate key: "p256" (default), "rsa2048", "rsa4096"
	Profile     string         // newOrder "profile" (draft-ietf-acme-profiles); "": the server's default
	Stock       bool           // honour Retry-After as an unmodified client; false: poll tightly
	Poll        time.Duration  // tight mode: wait between polls (default 5 ms)
	Domain      string         // names are <run>-<n>.<Domain>
	HTTP01      string         // listen address of the http-01 responder, e.g. 127.0.0.1:5002
	DNS         string         // listen address of the DNS server (UDP and TCP); "": none
	ServerPIDs  []int          // processes whose CPU time is counted (with their children)
	Progress    io.Writer      // a progress line on a terminal, else a summary line at the end; nil: none
	Timeout     time.Duration  // per order (default 2 min)
}

func (c *Config) check() error {
	switch {
	case c.Directory == "":
		return errors.New("the ACME directory URL is required")
	case c.Orders < 1:
		return fmt.Errorf("orders %d: give at least 1", c.Orders)
	case c.Concurrency < 1:
		return fmt.Errorf("concurrency %d: give at least 1", c.Concurrency)
	case len(c.EAB) == 0 && c.Accounts < 1:
		return fmt.Errorf("accounts %d: give at least 1, or EAB keys", c.Accounts)
	case c.Domain == "":
		return errors.New("a domain for the order names is required")
	case c.HTTP01 == "":
		return errors.New("the http-01 responder's listen address is required")
	}
	switch c.KeyType {
	case "":
		c.KeyType = "p256"
	case "p256", "rsa2048", "rsa4096":
	default:
		return fmt.Errorf("certificate key type %q: use p256, rsa2048 or rsa4096", c.KeyType)
	}
	if c.Poll <= 0 {
		c.Poll = 5 * time.Millisecond
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	return nil
}

// Steps of one order, as reported.
const (
	StepNewOrder  = "newOrder"
	StepChallenge = "challenge" // from fetching the authorization to its status valid
	StepFinalize  = "finalize"  // from the finalize POST to the order valid
	StepDownload  = "download"
	StepOrder     = "order" // the whole order
)

var steps = []string{StepNewOrder, StepChallenge, StepFinalize, StepDownload, StepOrder}

// Run registers the accounts, issues cfg.Orders certificates with cfg.Concurrency
// orders in flight and reports what it measured. Account registration and key
// generation happen before the clock starts. A failed order is counted, by problem
// type, and not retried.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	resp, err := startResponder(cfg.HTTP01, cfg.DNS)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	defer resp.close()

	hc := &http.Client{Transport: newTransport(cfg), Timeout: time.Minute}
	clients, err := register(ctx, cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("bench: registering accounts: %w", err)
	}
	keys, err := generateKeys(cfg.KeyType, cfg.Orders)
	if err != nil {
		return nil, fmt.Errorf("bench: certificate keys: %w", err)
	}
	run := fmt.Sprintf("b%x", time.Now().UnixNano()&0xffffffffff)

	rec := newRecorder(cfg.Orders)
	cpuBefore := cpuTime(cfg.ServerPIDs)
	began := time.Now()
	// A progress line on a terminal, else one summary line (internal/progress).
	var meter *progress.Meter
	if cfg.Progress != nil {
		meter = progress.New(cfg.Progress, "issuing certificates")
	}
	meter.Begin(cfg.Orders)
	runCtx, stall := context.WithCancelCause(ctx)
	defer stall(nil)
	stopWatch := watchdog(rec, cfg.Timeout, stall)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(cfg.Concurrency, cfg.Orders) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= cfg.Orders {
					return
				}
				if runCtx.Err() != nil {
					rec.add(nil, context.Cause(runCtx))
					meter.Fail(1)
					continue
				}
				o := &orderRun{cfg: &cfg, c: clients[i%len(clients)], resp: resp, key: keys[i],
					name: fmt.Sprintf("%s-%d.%s", run, i, cfg.Domain)}
				octx, cancel := context.WithTimeout(runCtx, cfg.Timeout)
				err := o.issue(octx)
				cancel()
				if err != nil && ctx.Err() == nil && runCtx.Err() != nil {
					err = fmt.Errorf("%w (%v)", context.Cause(runCtx), err)
				}
				rec.add(o.times, err)
				if err != nil {
					meter.Fail(1)
				} else {
					meter.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	stopWatch()
	if ctx.Err() != nil {
		meter.Abandon()
	} else {
		meter.Finish()
	}
	cpuAfter := cpuTime(cfg.ServerPIDs)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bench: stopped: %w", err)
	}
	return rec.report(cfg, elapsed, cpuAfter-cpuBefore), nil
}

// ErrStalled ends a run whose server answered no order for an order timeout: the
// orders in flight and those not yet started count as failed with it.
var ErrStalled = errors.New("the server completed no order within the order timeout; the remaining orders were not sent")

// watchdog cancels the run with ErrStalled when no order ends (issued or failed)
// for timeout, so that a server that stopped answering does not hold the run for
// every remaining order's timeout.
func watchdog(rec *recorder, timeout time.Duration, stall context.CancelCauseFunc) func() {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last, since := -1, time.Now()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			issued, failed := rec.counts()
			if n := issued + failed; n != last {
				last, since = n, time.Now()
			} else if time.Since(since) > timeout {
				stall(ErrStalled)
				return
			}
		}
	}()
	return func() { close(done) }
}

func newTransport(cfg Config) http.RoundTripper {
	t := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: cfg.Roots},
		MaxIdleConnsPerHost: cfg.Concurrency + 8,
		IdleConnTimeout:     time.Minute,
		ForceAttemptHTTP2:   false,
	}
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	var rt http.RoundTripper = &timingTransport{next: t}
	if !cfg.Stock {
		rt = &tightTransport{next: rt, poll: cfg.Poll}
	}
	return rt
}

// tightTransport makes x/crypto/acme poll quickly: a waiting answer (one with
// Retry-After, as a pending authorization or a processing order carries) is held for
// the poll interval and its Retry-After replaced by a time already past, so the
// client asks again at once instead of after the server's Retry-After (or its
// default of a second). Answers without Retry-After pass unchanged.
type tightTransport struct {
	next http.RoundTripper
	poll time.Duration
}

func (t *tightTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.next.RoundTrip(r)
	if err != nil || res.Header.Get("Retry-After") == "" || res.StatusCode >= 400 {
		return res, err
	}
	select {
	case <-time.After(t.poll):
	case <-r.Context().Done():
	}
	res.Header.Set("Retry-After", time.Now().Add(-2*time.Second).UTC().Format(http.TimeFormat))
	return res, nil
}

// timingTransport adds the time of certificate downloads (answers of type
// application/pem-certificate-chain, until their body is read) to the order's
// download step, so the finalize step does not include it.
type timingTransport struct{ next http.RoundTripper }

type stepTimes struct {
	d        map[string]time.Duration
	finalize string // the order's finalize URL …
	order    string // … and its own URL
}

type timesKey struct{}

func (t *timingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	res, err := t.next.RoundTrip(r)
	if err != nil {
		return res, err
	}
	st, _ := r.Context().Value(timesKey{}).(*stepTimes)
	// x/crypto/acme polls the order at the Location of the finalize answer, which
	// RFC 8555 does not require and Pebble leaves out.
	if st != nil && st.finalize != "" && r.URL.String() == st.finalize && res.Header.Get("Location") == "" {
		res.Header.Set("Location", st.order)
	}
	if st != nil && strings.HasPrefix(res.Header.Get("Content-Type"), "application/pem-certificate-chain") {
		res.Body = &timedBody{ReadCloser: res.Body, done: func() { st.d[StepDownload] += time.Since(start) }}
	}
	return res, nil
}

type timedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(b.done)
	}
	return n, err
}

func (b *timedBody) Close() error {
	b.once.Do(b.done)
	return b.ReadCloser.Close()
}

// tightRetry is the tight client's answer to a failed request x/crypto/acme may
// retry (badNonce, 429, 5xx, an unexpected status): again at once, at most three
// times, then the error counts. The stock client keeps x/crypto/acme's backoff.
func tightRetry(n int, _ *http.Request, _ *http.Response) time.Duration {
	if n > 3 {
		return -1
	}
	return time.Millisecond
}

func register(ctx context.Context, cfg Config, hc *http.Client) ([]*acme.Client, error) {
	n := len(cfg.EAB)
	if n == 0 {
		n = cfg.Accounts
	}
	clients := make([]*acme.Client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				errs[i] = err
				return
			}
			c := &acme.Client{Key: key, DirectoryURL: cfg.Directory, HTTPClient: hc, UserAgent: "varmenne-bench"}
			if !cfg.Stock {
				c.RetryBackoff = tightRetry
			}
			acct := &acme.Account{}
			if len(cfg.EAB) > 0 {
				acct.ExternalAccountBinding = &acme.ExternalAccountBinding{KID: cfg.EAB[i].KID, Key: cfg.EAB[i].HMAC}
			}
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if _, err := c.Register(rctx, acct, acme.AcceptTOS); err != nil {
				errs[i] = fmt.Errorf("account %d: %w", i+1, err)
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	return clients, errors.Join(errs...)
}

func generateKeys(kind string, n int) ([]crypto.Signer, error) {
	keys := make([]crypto.Signer, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var first error
	var mu sync.Mutex
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				k, err := generateKey(kind)
				if err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
					return
				}
				keys[i] = k
			}
		}()
	}
	wg.Wait()
	return keys, first
}

func generateKey(kind string) (crypto.Signer, error) {
	switch kind {
	case "rsa2048":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "rsa4096":
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// orderRun is one order from newOrder to the downloaded certificate.
type orderRun struct {
	cfg   *Config
	c     *acme.Client
	resp  *responder
	key   crypto.Signer
	name  string
	times map[string]time.Duration
}

func (o *orderRun) issue(ctx context.Context) error {
	st := &stepTimes{d: map[string]time.Duration{}}
	o.times = st.d
	ctx = context.WithValue(ctx, timesKey{}, st)
	o.resp.point(o.name)
	defer o.resp.forget(o.name)
	began := time.Now()

	t := time.Now()
	order, err := o.newOrder(ctx)
	if err != nil {
		return fmt.Errorf("newOrder: %w", err)
	}
	o.times[StepNewOrder] = time.Since(t)

	t = time.Now()
	for _, u := range order.AuthzURLs {
		if err := o.prove(ctx, u); err != nil {
			return err
		}
	}
	orderURL := order.URI
	if order, err = o.c.WaitOrder(ctx, orderURL); err != nil {
		return fmt.Errorf("waiting for the order to be ready: %w", err)
	}
	o.times[StepChallenge] = time.Since(t)

	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{o.name}}, o.key)
	if err != nil {
		return err
	}
	st.finalize, st.order = order.FinalizeURL, orderURL
	t = time.Now()
	chain, _, err := o.c.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		return fmt.Errorf("finalize: %w", err)
	}
	o.times[StepFinalize] = time.Since(t) - o.times[StepDownload]
	if len(chain) == 0 {
		return errors.New("download: no certificate in the answer")
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return fmt.Errorf("download: the certificate does not parse: %w", err)
	}
	if err := leaf.VerifyHostname(o.name); err != nil {
		return fmt.Errorf("download: %w", err)
	}
	o.times[StepOrder] = time.Since(began)
	return nil
}

// newOrder uses x/crypto/acme, or signs the request itself when a profile is asked
// for (x/crypto/acme cannot send one).
func (o *orderRun) newOrder(ctx context.Context) (*acme.Order, error) {
	if o.cfg.Profile == "" {
		return o.c.AuthorizeOrder(ctx, acme.DomainIDs(o.name))
	}
	url, err := newOrderWithProfile(ctx, o.c, o.name, o.cfg.Profile)
	if err != nil {
		return nil, err
	}
	return o.c.GetOrder(ctx, url)
}

// prove answers the authorization's http-01 challenge and waits until it is valid.
func (o *orderRun) prove(ctx context.Context, url string) error {
	az, err := o.c.GetAuthorization(ctx, url)
	if err != nil {
		return fmt.Errorf("authorization: %w", err)
	}
	if az.Status == acme.StatusValid {
		return nil
	}
	var chal *acme.Challenge
	for _, ch := range az.Challenges {
		if ch.Type == "http-01" {
			chal = ch
		}
	}
	if chal == nil {
		return fmt.Errorf("authorization for %s offers no http-01 challenge", az.Identifier.Value)
	}
	ka, err := o.c.HTTP01ChallengeResponse(chal.Token)
	if err != nil {
		return err
	}
	o.resp.set(chal.Token, ka)
	defer o.resp.unset(chal.Token)
	if _, err := o.c.Accept(ctx, chal); err != nil {
		return fmt.Errorf("accepting the challenge: %w", err)
	}
	if _, err := o.c.WaitAuthorization(ctx, url); err != nil {
		return fmt.Errorf("waiting for the authorization: %w", err)
	}
	return nil
}

// responder answers http-01 for every order and, when it has one, resolves every
// order's name to 127.0.0.1.
type responder struct {
	srv  *http.Server
	dns  *dnsserver.Server
	keys sync.Map // token → key authorization
}

func startResponder(httpAddr, dnsAddr string) (*responder, error) {
	ln, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return nil, fmt.Errorf("http-01 responder: %w", err)
	}
	r := &responder{}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if ka, ok := r.keys.Load(strings.TrimPrefix(req.URL.Path, "/.well-known/acme-challenge/")); ok {
			io.WriteString(w, ka.(string))
			return
		}
		http.NotFound(w, req)
	}), ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln)
	if dnsAddr != "" {
		if r.dns, err = dnsserver.Start(dnsAddr); err != nil {
			r.srv.Close()
			return nil, fmt.Errorf("DNS server: %w", err)
		}
	}
	return r, nil
}

func (r *responder) set(token, ka string) { r.keys.Store(token, ka) }
func (r *responder) unset(token string)   { r.keys.Delete(token) }

func (r *responder) point(name string) {
	if r.dns != nil {
		r.dns.SetA(name, "127.0.0.1")
	}
}

func (r *responder) forget(name string) {
	if r.dns != nil {
		r.dns.Clear(name)
	}
}

func (r *responder) close() {
	r.srv.Close()
	if r.dns != nil {
		r.dns.Close()
	}
}
