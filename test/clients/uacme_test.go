package clients

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// systemTrust serialises the uacme runs that put a test root into the system store.
var systemTrust sync.Mutex

// trustSystemWide puts the server's roots into the system trust store (uacme has no
// CA-bundle option: it trusts only what GnuTLS reads from /etc/ssl/certs) and removes
// them when the test ends. The caller holds systemTrust.
func (e *env) trustSystemWide() {
	e.t.Helper()
	update := lookPath(e.t, "update-ca-certificates")
	b, err := os.ReadFile(e.in.Roots)
	if err != nil {
		e.t.Fatal(err)
	}
	tag := make([]byte, 6)
	_, _ = rand.Read(tag)
	var files []string
	for rest, i := b, 0; ; i++ {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		f := filepath.Join("/usr/local/share/ca-certificates", "varmenne-test-"+hex.EncodeToString(tag)+"-"+string(rune('a'+i))+".crt")
		if err := os.WriteFile(f, pem.EncodeToMemory(blk), 0o644); err != nil {
			e.t.Fatalf("trusting the test root system-wide (uacme has no CA-bundle option): %v", err)
		}
		files = append(files, f)
	}
	e.t.Cleanup(func() {
		for _, f := range files {
			os.Remove(f)
		}
		if out, err := exec.Command(update).CombinedOutput(); err != nil {
			e.t.Errorf("update-ca-certificates after removing the test root: %v: %s", err, out)
		}
	})
	if out, err := exec.Command(update).CombinedOutput(); err != nil {
		e.t.Fatalf("update-ca-certificates: %v: %s", err, out)
	}
}

// uacme: the Debian uacme with -e KID:KEY; the hook answers http-01 (a file in a
// webroot) or dns-01 (a TXT record), whichever the run asks for; -f issue renews;
// newkey rolls the account key over; revoke.
func uacme(e *env) {
	prog := lookPath(e.t, "uacme")
	systemTrust.Lock()
	e.t.Cleanup(systemTrust.Unlock) // registered first, so it runs after the trust is removed
	e.trustSystemWide()

	webroot := e.in.Webroot(filepath.Join(e.dir, "www"))
	dnsHook := e.in.DNSHook()
	hook := e.script("hook.sh", `method="$1"; type="$2"; ident="$3"; token="$4"; auth="$5"
[ "$type" = "$UACME_CHALLENGE" ] || exit 1
case "$method:$type" in
begin:http-01) printf '%s' "$auth" > "`+webroot+`/.well-known/acme-challenge/$token" ;;
begin:dns-01) name="_acme-challenge.$ident"; value="$auth"
`+dnsHookCurl(dnsHook)+`;;
esac
`)
	conf := filepath.Join(e.dir, "uacme")
	ua := func(challenge string, args ...string) *exec.Cmd {
		cmd := exec.Command(prog, append([]string{"-v", "-c", conf, "-a", e.in.Directory, "-t", "EC", "-h", hook}, args...)...)
		cmd.Env = append(os.Environ(), "UACME_CHALLENGE="+challenge)
		return cmd
	}
	e.run(ua("", "--eab="+e.kid+":"+e.mac, "-y", "new", "it@"+e.domain))
	name := e.name("www")
	e.run(ua("http-01", "issue", name))
	certFile := filepath.Join(conf, name, "cert.pem")
	first, issuer := e.cert(certFile, "", name)

	// uacme keeps the certificate's key at renewal; SOTE certifies a key once, so the
	// server refuses that with badCSR. Removing the key makes uacme generate a new one.
	if out, err := ua("http-01", "-f", "issue", name).CombinedOutput(); err == nil || !strings.Contains(string(out), "urn:ietf:params:acme:error:badCSR") {
		e.t.Fatalf("uacme renewing with its old key: %v, want badCSR (key certified before):\n%s", err, out)
	}
	if err := os.Remove(filepath.Join(conf, "private", name, "key.pem")); err != nil {
		e.t.Fatal(err)
	}
	e.run(ua("http-01", "-f", "issue", name))
	second, issuer := e.cert(certFile, "", name)
	e.renewed(first, second)

	// Key rollover (RFC 8555 7.3.5), then an order signed by the new account key.
	oldKey, _ := os.ReadFile(filepath.Join(conf, "private", "key.pem"))
	e.run(ua("", "newkey"))
	if newKey, _ := os.ReadFile(filepath.Join(conf, "private", "key.pem")); len(newKey) == 0 || string(newKey) == string(oldKey) {
		e.t.Fatal("uacme newkey left the account key as it was")
	}
	dnsName := e.name("dns")
	e.run(ua("dns-01", "issue", dnsName))
	e.cert(filepath.Join(conf, dnsName, "cert.pem"), "", dnsName)

	e.run(ua("", "revoke", certFile))
	e.revoked(second, issuer)
}
