package e2e

import (
	"crypto/x509"
	"strings"
	"testing"

	"github.com/varmenne/varmenne/test/harness"
)

// TestProductionWithFileKeys: "serve --production" holds file keys to production's
// rules. An organisation cannot be added by hand (one line, non-zero exit, nothing
// added); one THL's register lists comes in by the import, gets its domains
// approved and an EAB key through dual control, and a client gets a certificate
// whose OU is the register's long name; the database stays production, so a later
// start without the flag and without a register is refused.
func TestProductionWithFileKeys(t *testing.T) {
	const listed = "1.2.246.10.55555555.10.0"
	register := harness.WriteRegister(t, harness.RegisterOrg{OID: listed, Name: "Tuotantoapteekki"})
	in := startWith(t, "", "--production", "--register-source", register)
	if logs := in.Logs.String(); !strings.Contains(logs, "production mode") || !strings.Contains(logs, "--production") {
		t.Fatalf("serve --production did not say it runs in production:\n%s", logs)
	}

	out, err := in.cli("org", "add", "--oid", "1.2.246.10.55555556.10.0", "--name", "Käsin Oy", "--domain", "kasin.example")
	if err == nil || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, "cannot be added by hand in production") {
		t.Fatalf("org add in production: %v: %q, want one line of refusal", err, out)
	}
	if show, err := in.cli("org", "show", "1.2.246.10.55555556.10.0"); err == nil {
		t.Fatalf("the refused organisation exists: %s", show)
	}

	kid, mac := in.org(listed, "Tuotantoapteekki", "tuotanto.example") // import, domains add, request, approve, key
	c := in.client(kid, mac)
	chain, _ := in.obtain(c, in.responder(), newKey(t), "www.tuotanto.example")
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	if ou := leaf.Subject.OrganizationalUnit; len(ou) != 1 || ou[0] != "Tuotantoapteekki" {
		t.Errorf("certificate OU %q, want the register's long name", ou)
	}

	in.stop()
	out, err = varmenne("serve", "--data", in.Data, "--listen", "127.0.0.1:0", "--ops-listen", "", "--public-listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(out, "this database has served in production before") || !strings.Contains(out, "--register-source is required") {
		t.Fatalf("serve without --production on a production database: %v: %s", err, out)
	}
}
