// Package e2e drives the built varmenne binary with real ACME clients: the
// golang.org/x/crypto/acme library and certbot. Every name the tests use is answered by
// the test's own DNS server on loopback; the system resolver is never asked. The
// server harness lives in test/harness, shared with the client matrix (test/clients);
// this file gives it the short names the tests here use.
package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"testing"

	"github.com/varmenne/varmenne/test/harness"
	"github.com/varmenne/varmenne/test/logbuf"
)

// binary is the varmenne binary built once for the package.
var binary string

func TestMain(m *testing.M) {
	cleanup, err := harness.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = harness.Binary
	code := m.Run()
	stopPostgres()
	cleanup()
	os.Exit(code)
}

// instance is one running `varmenne serve` (harness.Instance).
type instance struct{ *harness.Instance }

// responder serves http-01 key authorisations on the instance's http-01 port.
type responder = harness.Responder

func freePort(t *testing.T) int { return harness.FreePort(t) }

func start(t *testing.T, data string) *instance { return &instance{harness.Start(t, data)} }

// startWith is start with further `varmenne serve` flags, e.g. "--allow-wildcards".
func startWith(t *testing.T, data string, extraArgs ...string) *instance {
	return &instance{harness.StartWith(t, data, extraArgs...)}
}

func (in *instance) launch()                            { in.Launch() }
func (in *instance) stop()                              { in.Stop() }
func (in *instance) restart()                           { in.Restart() }
func (in *instance) cli(args ...string) (string, error) { return in.CLI(args...) }
func (in *instance) org(oid, name string, domains ...string) (kid, hmacKey string) {
	in.T.Helper()
	return in.Org(oid, name, domains...)
}
func (in *instance) eab(oid string) (kid, hmacKey string) { in.T.Helper(); return in.EAB(oid) }
func (in *instance) rootPool() *x509.CertPool             { return in.RootPool() }
func (in *instance) httpClient() *http.Client             { return in.HTTPClient() }
func (in *instance) pointAt(name string)                  { in.PointAt(name) }
func (in *instance) responder() *responder                { return in.Responder() }

func ctxT(t *testing.T) context.Context { return harness.Ctx(t) }

// syncBuffer collects the server's log.
type syncBuffer = logbuf.Buffer
