package clients

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/varmenne/varmenne/test/harness"
)

// nodeACMEClient: acme-client 5.4.0 from npm (testdata/node, installed by
// ./scripts/install-test-deps) as vendors' scripts use it: EAB, http-01 into a webroot,
// renewal, updateAccountKey (key rollover), dns-01, revokeCertificate.
func nodeACMEClient(e *env) {
	node := lookPath(e.t, "node")
	dir, err := filepath.Abs(filepath.Join("testdata", "node"))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "acme-client", "package.json")); err != nil {
		e.t.Fatalf("acme-client is not installed in %s: run ./scripts/install-test-deps (make test does)", dir)
	}
	name, dnsName := e.name("www"), e.name("dns")
	cmd := exec.Command(node, filepath.Join(dir, "matrix.js"))
	cmd.Env = append(os.Environ(),
		"NODE_EXTRA_CA_CERTS="+e.in.Roots,
		"DIRECTORY="+e.in.Directory, "EAB_KID="+e.kid, "EAB_HMAC="+e.mac, "DOMAIN="+e.domain,
		"NAME="+name, "DNS_NAME="+dnsName,
		"WEBROOT="+e.in.Webroot(filepath.Join(e.dir, "www")), "DNS_HOOK="+e.in.DNSHook())
	var got struct{ First, Second, DNS string }
	if err := json.Unmarshal([]byte(e.runStdout(cmd)), &got); err != nil {
		e.t.Fatalf("acme-client printed no certificates: %v", err)
	}
	first, _ := e.check(harness.ParseChain(e.t, []byte(got.First)), name)
	second, issuer := e.check(harness.ParseChain(e.t, []byte(got.Second)), name)
	e.renewed(first, second)
	e.check(harness.ParseChain(e.t, []byte(got.DNS)), dnsName)
	e.revoked(second, issuer)
	e.good(first, issuer)
}
