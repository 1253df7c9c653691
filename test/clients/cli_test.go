package clients

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// dnsHookCurl is the shell line a dns-01 hook runs to publish $name TXT $value in the
// test's DNS server.
func dnsHookCurl(url string) string {
	return `curl -fsS --noproxy '*' --data-urlencode "name=$name" --data-urlencode "value=$value" ` + url + "\n"
}

// certbotStandalone: certbot's own web server answers http-01; renew with
// --force-renewal; revoke with --reason.
func certbotStandalone(e *env) {
	certbot := lookPath(e.t, "certbot")
	name := e.name("www")
	cfg := []string{"--config-dir", filepath.Join(e.dir, "config"), "--work-dir", filepath.Join(e.dir, "work"), "--logs-dir", filepath.Join(e.dir, "logs")}
	cb := func(args ...string) *exec.Cmd {
		cmd := exec.Command(certbot, append(append(args, cfg...), "--non-interactive")...)
		cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+e.in.Roots)
		return cmd
	}
	e.run(cb("certonly", "--agree-tos", "--register-unsafely-without-email", "--server", e.in.Directory,
		"--eab-kid="+e.kid, "--eab-hmac-key="+e.mac, // "=": a base64url key may begin with "-"
		"--standalone", "--http-01-address", "127.0.0.1", "--http-01-port", strconv.Itoa(e.in.HTTP01Port),
		"--key-type", "ecdsa", "-d", name))
	live := filepath.Join(e.dir, "config", "live", name)
	first, issuer := e.cert(filepath.Join(live, "cert.pem"), filepath.Join(live, "chain.pem"), name)
	e.good(first, issuer)

	e.run(cb("renew", "--force-renewal", "--no-random-sleep-on-renew", "--cert-name", name))
	second, issuer := e.cert(filepath.Join(live, "cert.pem"), filepath.Join(live, "chain.pem"), name)
	e.renewed(first, second)

	e.run(cb("revoke", "--server", e.in.Directory, "--cert-path", filepath.Join(live, "cert.pem"), "--reason", "superseded", "--no-delete-after-revoke"))
	e.revoked(second, issuer)
}

// certbotWebroot: certbot writes http-01 files into a webroot another web server
// serves; dns-01 through --manual-auth-hook; renew; revoke.
func certbotWebroot(e *env) {
	certbot := lookPath(e.t, "certbot")
	webroot := e.in.Webroot(filepath.Join(e.dir, "www"))
	hook := e.in.DNSHook()
	cfg := []string{"--config-dir", filepath.Join(e.dir, "config"), "--work-dir", filepath.Join(e.dir, "work"), "--logs-dir", filepath.Join(e.dir, "logs")}
	cb := func(args ...string) *exec.Cmd {
		cmd := exec.Command(certbot, append(append(args, cfg...), "--non-interactive")...)
		cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+e.in.Roots)
		return cmd
	}
	name := e.name("www")
	e.run(cb("certonly", "--agree-tos", "--register-unsafely-without-email", "--server", e.in.Directory,
		"--eab-kid="+e.kid, "--eab-hmac-key="+e.mac, // "=": a base64url key may begin with "-"
		"--webroot", "-w", webroot, "--key-type", "ecdsa", "-d", name))
	live := filepath.Join(e.dir, "config", "live", name)
	first, issuer := e.cert(filepath.Join(live, "cert.pem"), filepath.Join(live, "chain.pem"), name)

	e.run(cb("renew", "--force-renewal", "--no-random-sleep-on-renew", "--cert-name", name))
	second, issuer := e.cert(filepath.Join(live, "cert.pem"), filepath.Join(live, "chain.pem"), name)
	e.renewed(first, second)

	// dns-01: the hook publishes the TXT record; the account registered above is reused.
	auth := e.script("auth-hook", `name="_acme-challenge.$CERTBOT_DOMAIN"; value="$CERTBOT_VALIDATION"`+"\n"+dnsHookCurl(hook))
	clean := e.script("cleanup-hook", `curl -fsS --noproxy '*' -X DELETE "`+hook+`?name=_acme-challenge.$CERTBOT_DOMAIN"`+"\n")
	dnsName := e.name("dns")
	e.run(cb("certonly", "--server", e.in.Directory, "--manual", "--preferred-challenges", "dns",
		"--manual-auth-hook", auth, "--manual-cleanup-hook", clean, "--key-type", "ecdsa", "-d", dnsName))
	dnsLive := filepath.Join(e.dir, "config", "live", dnsName)
	e.cert(filepath.Join(dnsLive, "cert.pem"), filepath.Join(dnsLive, "chain.pem"), dnsName)

	e.run(cb("revoke", "--server", e.in.Directory, "--cert-path", filepath.Join(live, "cert.pem"), "--reason", "keycompromise", "--no-delete-after-revoke"))
	e.revoked(second, issuer)
}

// legoCLI: the Debian lego binary, standalone http-01 (--http), dns-01 through its
// exec provider, renew --days, revoke.
func legoCLI(e *env) {
	lego := lookPath(e.t, "lego")
	hook := e.in.DNSHook()
	path := filepath.Join(e.dir, "lego")
	lg := func(args ...string) *exec.Cmd {
		base := []string{"--server", e.in.Directory, "--accept-tos", "--email", "it@" + e.domain,
			"--eab", "--kid=" + e.kid, "--hmac=" + e.mac, "--path", path, "--key-type", "ec256"}
		cmd := exec.Command(lego, append(base, args...)...)
		cmd.Env = append(os.Environ(), "LEGO_CA_CERTIFICATES="+e.in.Roots, "EXEC_PATH="+e.script("exec-hook",
			`[ "$1" = present ] || exit 0`+"\n"+`name="$2"; value="$3"`+"\n"+dnsHookCurl(hook)),
			"EXEC_PROPAGATION_TIMEOUT=30", "EXEC_POLLING_INTERVAL=1")
		return cmd
	}
	name := e.name("www")
	http01 := []string{"--http", "--http.port", "127.0.0.1:" + strconv.Itoa(e.in.HTTP01Port), "-d", name}
	e.run(lg(append(http01, "run")...))
	certFile := filepath.Join(path, "certificates", name+".crt")
	first, issuer := e.cert(certFile, "", name)

	e.run(lg(append(http01, "renew", "--days", "400", "--no-random-sleep")...))
	second, issuer := e.cert(certFile, "", name)
	e.renewed(first, second)

	dnsName := e.name("dns")
	e.run(lg("--dns", "exec", "--dns.resolvers", e.in.DNS.Addr(), "--dns.disable-cp", "-d", dnsName, "run"))
	e.cert(filepath.Join(path, "certificates", dnsName+".crt"), "", dnsName)

	e.run(lg(append(http01, "revoke", "--reason", "4")...))
	e.revoked(second, issuer)
}

// dehydrated: the Debian script with EAB_KID/EAB_HMAC_KEY and KEY_ALGO=prime256v1;
// http-01 into WELLKNOWN, dns-01 through its HOOK, --force renewal, -r revocation.
func dehydrated(e *env) {
	prog := lookPath(e.t, "dehydrated")
	hook := e.in.DNSHook()
	wellKnown := filepath.Join(e.in.Webroot(filepath.Join(e.dir, "www")), ".well-known", "acme-challenge")
	hookScript := e.script("hook.sh", `case "$1" in
deploy_challenge) name="_acme-challenge.$2"; value="$4"
`+dnsHookCurl(hook)+`;;
esac
`)
	config := func(challenge string) string {
		p := filepath.Join(e.dir, "config-"+challenge)
		body := strings.Join([]string{
			"CA=" + e.in.Directory,
			"BASEDIR=" + filepath.Join(e.dir, "dehydrated"),
			"WELLKNOWN=" + wellKnown,
			"CHALLENGETYPE=" + challenge,
			"HOOK=" + hookScript,
			"KEY_ALGO=prime256v1",
			"KEYSIZE=2048", // the account key (RSA); 4096 bits only slows the test
			"CONTACT_EMAIL=it@" + e.domain,
			"EAB_KID=" + e.kid,
			"EAB_HMAC_KEY=" + e.mac,
			"",
		}, "\n")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			e.t.Fatal(err)
		}
		return p
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "dehydrated"), 0o700); err != nil {
		e.t.Fatal(err)
	}
	http01, dns01 := config("http-01"), config("dns-01")
	dh := func(cfg string, args ...string) *exec.Cmd {
		cmd := exec.Command(prog, append([]string{"-f", cfg}, args...)...)
		cmd.Env = append(os.Environ(), "CURL_CA_BUNDLE="+e.in.Roots)
		return cmd
	}
	e.run(dh(http01, "--register", "--accept-terms"))
	name := e.name("www")
	e.run(dh(http01, "-c", "-d", name))
	certDir := filepath.Join(e.dir, "dehydrated", "certs", name)
	first, issuer := e.cert(filepath.Join(certDir, "cert.pem"), filepath.Join(certDir, "chain.pem"), name)

	e.run(dh(http01, "-c", "-d", name, "--force"))
	second, issuer := e.cert(filepath.Join(certDir, "cert.pem"), filepath.Join(certDir, "chain.pem"), name)
	e.renewed(first, second)

	dnsName := e.name("dns")
	e.run(dh(dns01, "-c", "-d", dnsName))
	dnsDir := filepath.Join(e.dir, "dehydrated", "certs", dnsName)
	e.cert(filepath.Join(dnsDir, "cert.pem"), filepath.Join(dnsDir, "chain.pem"), dnsName)

	e.run(dh(http01, "-r", filepath.Join(certDir, "cert.pem")))
	e.revoked(second, issuer)
}
