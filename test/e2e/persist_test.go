package e2e

import (
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/base32"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

// Issue 21 end to end with golang.org/x/crypto/acme, which answers any challenge
// type (Accept); the records are computed here as an organisation's DNS team or
// IT vendor would publish them:
//   - dns-persist-01: one record at _validation-persist.<name> serves every later
//     order of the account, the DNS left untouched; records naming another
//     account or CA, past their persistUntil, or a wildcard without
//     policy=wildcard are refused with a problem saying which;
//   - dns-account-01: two accounts prove one name at once, each at its own label.

const persistCAA = "ca.varmenne.test"

// persistRecord is the TXT value an organisation publishes for the account.
func persistRecord(issuer, accountURL string, params ...string) string {
	return strings.Join(append([]string{issuer, "accounturi=" + accountURL}, params...), "; ")
}

// accountLabel is dns-account-01's label (draft-ietf-acme-dns-account-label),
// computed independently of the server's code.
func accountLabel(accountURL string) string {
	sum := sha256.Sum256([]byte(accountURL))
	return "_" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:10]))
}

func noDNSChange(*acme.Client, *acme.Authorization, *acme.Challenge) error { return nil }

func TestDNSPersist01(t *testing.T) {
	// The default profile reads the record at every order (persist_reuse "0s"), so
	// each order below is a validation of its own against the one record.
	dir := t.TempDir()
	config := `{"profiles": {"sote-server": {"description": "SOTE server certificate; a persistent record is read at every order", "kind": "server", "persist_reuse": "0s"}}}`
	configFile := filepath.Join(dir, "varmenne.json")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	in := startWith(t, "", "--config", configFile, "--allow-wildcards", "--caa-identity", persistCAA)
	const oid = "1.2.246.10.99999999.10.0"
	kid, mac := in.org(oid, "Yhdeksas apteekki", "yhdeksas.example")
	c := in.client(kid, mac)
	account := string(c.KID)
	until := time.Now().Add(365 * 24 * time.Hour).Unix()

	t.Run("one record serves several orders without touching DNS again", func(t *testing.T) {
		name := "www.yhdeksas.example"
		record := persistRecord(persistCAA, account, "persistUntil="+strconv.FormatInt(until, 10))
		in.DNS.SetTXT("_validation-persist."+name, record)
		var serials []string
		for i := range 3 {
			chain, err := in.order(c, "dns-persist-01", noDNSChange, newKey(t), name)
			if err != nil {
				t.Fatalf("order %d: %v\n%s", i+1, err, tail([]byte(in.Logs.String()), 3000))
			}
			leaf, _ := x509.ParseCertificate(chain[0])
			if !slices.Equal(leaf.DNSNames, []string{name}) {
				t.Errorf("order %d: certificate names %q", i+1, leaf.DNSNames)
			}
			serials = append(serials, leaf.SerialNumber.String())
		}
		if len(slices.Compact(slices.Sorted(slices.Values(serials)))) != 3 {
			t.Errorf("serials %v: want three certificates", serials)
		}

		// Each order read the record (persist_reuse 0s) and kept what it read.
		db, err := sql.Open("sqlite", filepath.Join(in.Data, "varmenne.db")+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(`SELECT c.evidence FROM challenges c JOIN authorizations a ON a.id = c.authz_id
			WHERE a.name = ? AND c.type = 'dns-persist-01' AND c.status = 'valid' AND c.validated > 0`, name)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var evidence []string
		for rows.Next() {
			var e string
			rows.Scan(&e)
			evidence = append(evidence, e)
		}
		want := fmt.Sprintf("_validation-persist.%s TXT %q", name, record)
		if len(evidence) != 3 || slices.ContainsFunc(evidence, func(e string) bool { return e != want }) {
			t.Errorf("valid dns-persist-01 challenges keep %q, want three of %q", evidence, want)
		}
		out, err := in.cli("audit", "export")
		if err != nil {
			t.Fatalf("audit export: %v: %s", err, out)
		}
		if n := strings.Count(out, "authz.validate.persistent-record"); n != 3 {
			t.Errorf("%d authz.validate.persistent-record events, want 3:\n%s", n, tail([]byte(out), 2000))
		}
		if !strings.Contains(out, "persist_until=") || !strings.Contains(out, "name="+name) {
			t.Errorf("the audit events do not name the record's name and persistUntil:\n%s", tail([]byte(out), 2000))
		}
		// The operator sees which names a persistent record authorises, for which
		// account and until when (the console's organisation page shows the same view).
		out, err = in.cli("org", "show", oid)
		accountID := account[strings.LastIndex(account, "/")+1:]
		if err != nil || !strings.Contains(out, "persistent record:") || !strings.Contains(out, name+" for account "+accountID+" until ") ||
			!strings.Contains(out, want) {
			t.Errorf("org show does not list the name the record authorises: %v\n%s", err, out)
		}
	})

	t.Run("removing the record stops issuance at the next order", func(t *testing.T) {
		name := "poistettu.yhdeksas.example"
		in.DNS.SetTXT("_validation-persist."+name, persistRecord(persistCAA, account))
		if _, err := in.order(c, "dns-persist-01", noDNSChange, newKey(t), name); err != nil {
			t.Fatalf("order while the record is published: %v", err)
		}
		in.DNS.Clear("_validation-persist." + name)
		_, err := in.order(c, "dns-persist-01", noDNSChange, newKey(t), name)
		if ae := problemOf(err, "dns"); ae == nil || !strings.Contains(ae.Detail, "_validation-persist."+name) {
			t.Fatalf("order after the record was removed: want a dns problem naming the label, got %v", err)
		}
	})

	t.Run("a record behind a CNAME in the vendor's zone is followed", func(t *testing.T) {
		name := "kassa.yhdeksas.example"
		in.DNS.SetCNAME("_validation-persist."+name, "yhdeksas.persist.vendor.example")
		in.DNS.SetTXT("yhdeksas.persist.vendor.example", persistRecord(persistCAA, account))
		if _, err := in.order(c, "dns-persist-01", noDNSChange, newKey(t), name); err != nil {
			t.Fatalf("order: %v", err)
		}
	})

	other := in.client(in.eab(oid))
	refusals := []struct {
		name, record, kind, says string
	}{
		{"a record naming another account", persistRecord(persistCAA, string(other.KID)), "unauthorized", "names another account"},
		{"a record naming another CA", persistRecord("letsencrypt.org", account), "unauthorized", "names another CA"},
		{"a record past its persistUntil", persistRecord(persistCAA, account, "persistUntil=1700000000"), "unauthorized", "persistUntil passed on 2023-11-14T22:13:20Z"},
		{"a record without an accounturi", persistCAA, "unauthorized", "no accounturi"},
		{"a malformed record", persistCAA + "; accounturi", "incorrectResponse", "malformed"},
	}
	for i, tt := range refusals {
		t.Run(tt.name+" is refused and the problem says so", func(t *testing.T) {
			name := fmt.Sprintf("r%d.yhdeksas.example", i)
			in.DNS.SetTXT("_validation-persist."+name, tt.record)
			_, err := in.order(c, "dns-persist-01", noDNSChange, newKey(t), name)
			ae := problemOf(err, tt.kind)
			if ae == nil || !strings.Contains(ae.Detail, tt.says) {
				t.Fatalf("want a %s problem saying %q, got %v", tt.kind, tt.says, err)
			}
		})
	}

	t.Run("a wildcard needs policy=wildcard", func(t *testing.T) {
		in.DNS.SetTXT("_validation-persist.yhdeksas.example", persistRecord(persistCAA, account))
		_, err := in.order(c, "dns-persist-01", noDNSChange, newKey(t), "*.yhdeksas.example")
		if ae := problemOf(err, "unauthorized"); ae == nil || !strings.Contains(ae.Detail, "policy=wildcard") {
			t.Fatalf("wildcard without policy=wildcard: want an unauthorized problem naming policy=wildcard, got %v", err)
		}
		in.DNS.SetTXT("_validation-persist.yhdeksas.example", persistRecord(persistCAA, account, "policy=wildcard"))
		chain, err := in.order(c, "dns-persist-01", noDNSChange, newKey(t), "*.yhdeksas.example")
		if err != nil {
			t.Fatalf("wildcard with policy=wildcard: %v", err)
		}
		if leaf, _ := x509.ParseCertificate(chain[0]); !slices.Equal(leaf.DNSNames, []string{"*.yhdeksas.example"}) {
			t.Errorf("certificate names %q", leaf.DNSNames)
		}
	})

	t.Run("CAA validationmethods can allow only dns-persist-01", func(t *testing.T) {
		name := "caa.yhdeksas.example"
		in.DNS.SetCAA(name, 0, "issue", persistCAA+"; validationmethods=dns-persist-01")
		in.DNS.SetTXT("_validation-persist."+name, persistRecord(persistCAA, account))
		if _, err := in.order(c, "dns-persist-01", noDNSChange, newKey(t), name); err != nil {
			t.Fatalf("dns-persist-01 where CAA allows it: %v", err)
		}
		byDNS := func(c *acme.Client, az *acme.Authorization, ch *acme.Challenge) error {
			v, err := c.DNS01ChallengeRecord(ch.Token)
			in.DNS.SetTXT("_acme-challenge."+az.Identifier.Value, v)
			return err
		}
		_, err := in.order(other, "dns-01", byDNS, newKey(t), name)
		if ae := problemOf(err, "caa"); ae == nil || !strings.Contains(ae.Detail, "validation method dns-01") {
			t.Fatalf("dns-01 where CAA allows only dns-persist-01: want a caa problem, got %v", err)
		}
	})
}

func TestDNSAccount01TwoAccountsAtOnce(t *testing.T) {
	in := start(t, "")
	const oid = "1.2.246.10.99999998.10.0"
	kidA, macA := in.org(oid, "Kymmenes apteekki", "kymmenes.example")
	a := in.client(kidA, macA)
	b := in.client(in.eab(oid)) // the IT vendor's account beside the pharmacy's own
	name := "yhteinen.kymmenes.example"
	if accountLabel(string(a.KID)) == accountLabel(string(b.KID)) {
		t.Fatal("two accounts share a label")
	}

	// Each account publishes at its own label; neither overwrites the other, and
	// both wait until the other has published, so both records are live at once.
	var published sync.WaitGroup
	published.Add(2)
	byAccountLabel := func(c *acme.Client, az *acme.Authorization, ch *acme.Challenge) error {
		v, err := c.DNS01ChallengeRecord(ch.Token)
		in.DNS.SetTXT(accountLabel(string(c.KID))+"._acme-challenge."+az.Identifier.Value, v)
		published.Done()
		published.Wait()
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	names := make([][]string, 2)
	for i, c := range []*acme.Client{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chain, err := in.order(c, "dns-account-01", byAccountLabel, newKey(t), name)
			errs[i] = err
			if err == nil {
				leaf, _ := x509.ParseCertificate(chain[0])
				names[i] = leaf.DNSNames
			}
		}()
	}
	wg.Wait()
	for i, who := range []string{"the pharmacy's account", "the vendor's account"} {
		if errs[i] != nil {
			t.Errorf("%s: %v", who, errs[i])
		} else if !slices.Equal(names[i], []string{name}) {
			t.Errorf("%s: certificate names %q", who, names[i])
		}
	}

	t.Run("a value at another account's label does not count", func(t *testing.T) {
		other := "toinen.kymmenes.example"
		byWrongLabel := func(c *acme.Client, az *acme.Authorization, ch *acme.Challenge) error {
			v, err := c.DNS01ChallengeRecord(ch.Token)
			in.DNS.SetTXT(accountLabel(string(b.KID))+"._acme-challenge."+az.Identifier.Value, v)
			return err
		}
		_, err := in.order(a, "dns-account-01", byWrongLabel, newKey(t), other)
		if ae := problemOf(err, "dns"); ae == nil || !strings.Contains(ae.Detail, accountLabel(string(a.KID))+"._acme-challenge."+other) {
			t.Fatalf("want a dns problem naming the account's own label, got %v", err)
		}
	})
}
