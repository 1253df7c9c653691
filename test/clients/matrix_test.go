package clients

import (
	"strings"
	"testing"

	"github.com/varmenne/varmenne/test/harness"
)

// matrix lists every client's flow: register with EAB, obtain, renew, revoke.
// noRetry marks a client that does not retry a badNonce: under chaos the test asserts
// that it stops at the first refused nonce with the badNonce problem, the behaviour
// the README documents, so a version that starts retrying makes the test fail and the
// README is corrected.
var matrix = []struct {
	name    string
	run     func(*env)
	noRetry bool
}{
	{"certbot-standalone", certbotStandalone, false},
	{"certbot-webroot", certbotWebroot, false},
	{"lego-cli", legoCLI, false},
	{"dehydrated", dehydrated, true}, // 0.7.0 (Debian 12) exits on the first badNonce
	{"uacme", uacme, false},
	{"node-acme-client", nodeACMEClient, false},
	{"python3-acme", pyACME, false}, // 2.1.0 (Debian 12) retries a badNonce once, enough for the chaos knob's spacing
	{"x-crypto-acme", xcryptoACME, false},
	{"acmez", acmezFlow, false},
	{"lego-lib", legoLib, false},
}

// TestMatrix runs every client against its own server, once plainly and once with
// 10 % of valid nonces refused (--chaos-reject-nonces 0.1). Under chaos the test also
// asserts the server did refuse some of the client's nonces, so a pass proves the
// client retried badNonce.
func TestMatrix(t *testing.T) {
	for _, mode := range []struct {
		name  string
		chaos bool
	}{{"plain", false}, {"chaos-nonces-0.1", true}} {
		for _, c := range matrix {
			t.Run(mode.name+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, c.name, mode.chaos)
				e.noRetry = c.noRetry
				if c.noRetry && mode.chaos {
					runExpectingBadNonceAbort(e, c.run)
					return
				}
				c.run(e)
				if mode.chaos {
					if n := strings.Count(e.in.Logs.String(), `"problem":"badNonce"`); n == 0 {
						t.Fatalf("the server refused none of %s's nonces: the chaos run proved nothing", c.name)
					} else {
						t.Logf("%s retried %d refused nonces", c.name, n)
					}
				}
			})
		}
	}
}

// runExpectingBadNonceAbort runs the flow of a client that does not retry badNonce
// under chaos and asserts that it gave up, and on exactly that.
func runExpectingBadNonceAbort(e *env, flow func(*env)) {
	t := e.t
	t.Helper()
	var aborted *abortedOnBadNonce
	func() {
		defer func() {
			if r := recover(); r != nil {
				a, ok := r.(abortedOnBadNonce)
				if !ok {
					panic(r)
				}
				aborted = &a
			}
		}()
		flow(e)
	}()
	switch {
	case aborted == nil:
		t.Fatal("the client completed its flow with 10 % of nonces refused: it retries badNonce now; move it out of noRetry and correct the README table")
	case !strings.Contains(aborted.output, "urn:ietf:params:acme:error:badNonce"):
		t.Fatalf("the client failed under chaos, but not on a refused nonce:\n%s", harness.Tail([]byte(aborted.output), 4000))
	}
	t.Logf("as documented, the client gave up on the first refused nonce (badNonce, no retry)")
}
