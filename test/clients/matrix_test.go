package clients

import (
	"strings"
	"testing"
)

// matrix lists every client's flow: register with EAB, obtain, renew, revoke.
var matrix = []struct {
	name string
	run  func(*env)
}{
	{"certbot-standalone", certbotStandalone},
	{"certbot-webroot", certbotWebroot},
	{"lego-cli", legoCLI},
	{"dehydrated", dehydrated},
	{"uacme", uacme},
	{"node-acme-client", nodeACMEClient},
	{"x-crypto-acme", xcryptoACME},
	{"acmez", acmezFlow},
	{"lego-lib", legoLib},
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
				c.run(e)
				if mode.chaos {
					if n := strings.Count(e.in.Logs.String(), "refused on purpose"); n == 0 {
						t.Fatalf("the server refused none of %s's nonces: the chaos run proved nothing", c.name)
					} else {
						t.Logf("%s retried %d refused nonces", c.name, n)
					}
				}
			})
		}
	}
}
