package e2e

import (
	"strings"
	"testing"
)

// TestOrganisationDataRules reproduces the review's findings about organisation
// data against the built binary: a name approved for two organisations without a
// word, a name no certificate subject can carry accepted (and every finalize then
// failing), and approved domains that could not be withdrawn.
func TestOrganisationDataRules(t *testing.T) {
	in := start(t, "")
	const (
		first  = "1.2.246.10.61000001.10.0"
		second = "1.2.246.10.61000002.10.0"
	)
	cli := func(args ...string) (string, error) { return in.cli(args...) }
	if out, err := cli("org", "add", "--oid", first, "--name", "Ensimmäinen Oy", "--domain", "yhteinen.example"); err != nil {
		t.Fatalf("org add: %v: %s", err, out)
	}

	t.Run("a domain another organisation has is refused unless shared by an administrator", func(t *testing.T) {
		for _, domain := range []string{"yhteinen.example", "www.yhteinen.example"} {
			out, err := cli("org", "add", "--oid", second, "--name", "Toinen Oy", "--domain", domain)
			if err == nil || !strings.Contains(out, "overlaps yhteinen.example, approved for organisation "+first) || !strings.Contains(out, "--shared") {
				t.Fatalf("org add with %s: %v: %s; want a refusal naming the other organisation", domain, err, out)
			}
		}
		if out, err := cli("org", "add", "--oid", second, "--name", "Toinen Oy", "--domain", "toinen.example"); err != nil {
			t.Fatalf("org add: %v: %s", err, out)
		}
		if out, err := cli("org", "domains", "add", second, "--domain", "palvelu.yhteinen.example"); err == nil || !strings.Contains(out, "overlaps") {
			t.Fatalf("org domains add of another organisation's subdomain: %v: %s", err, out)
		}
		if out, err := cli("org", "domains", "add", second, "--domain", "palvelu.yhteinen.example", "--shared"); err != nil {
			t.Fatalf("org domains add --shared by the administrator: %v: %s", err, out)
		}
		events, err := cli("audit", "export")
		if err != nil || !strings.Contains(events, `"action":"organisation.names.add","object":"org=`+second+` domains=palvelu.yhteinen.example networks=\"\" shared=palvelu.yhteinen.example"`) {
			t.Fatalf("the audit log does not record the shared approval: %v\n%s", err, events)
		}
	})

	t.Run("a name no certificate subject can carry is refused where it enters", func(t *testing.T) {
		long := strings.TrimSpace(strings.Repeat("Pitkänimi ", 7)) // 69 characters
		out, err := cli("org", "add", "--oid", "1.2.246.10.61000003.10.0", "--name", long, "--domain", "pitka.example")
		if err == nil || !strings.Contains(out, "has 69 characters; a certificate subject takes at most 64") {
			t.Fatalf("org add with a 69-character name: %v: %s", err, out)
		}
		out, err = cli("org", "add", "--oid", "1.2.246.10.61000003.10.0", "--name", "Lyhyt Oy", "--long-name", "Lyhyt\tOy", "--domain", "pitka.example")
		if err == nil || !strings.Contains(out, "long name (certificate OU)") {
			t.Fatalf("org add with a tab in the long name: %v: %s", err, out)
		}
	})

	t.Run("an approved domain can be withdrawn, and is then refused at newOrder", func(t *testing.T) {
		kid, mac := in.EAB(first)
		c := in.client(kid, mac)
		if out, err := cli("org", "domains", "add", first, "--domain", "poistuva.example"); err != nil {
			t.Fatalf("org domains add: %v: %s", err, out)
		}
		if _, err := in.newOrder(c, "", "", "www.poistuva.example"); err != nil {
			t.Fatalf("newOrder before the withdrawal: %v", err)
		}
		if out, err := cli("org", "domains", "remove", first, "--domain", "poistuva.example"); err != nil {
			t.Fatalf("org domains remove: %v: %s", err, out)
		}
		_, err := in.newOrder(c, "", "", "www.poistuva.example")
		wantProblem(t, err, "rejectedIdentifier", "www.poistuva.example")
		if out, err := cli("org", "domains", "remove", first, "--domain", "poistuva.example"); err == nil || !strings.Contains(out, "has no domain poistuva.example") {
			t.Fatalf("withdrawing a domain twice: %v: %s", err, out)
		}
	})
}
