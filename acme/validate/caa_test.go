package validate

import (
	"context"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/test/dnsserver"
)

const (
	ourCA     = "varmenne.example"
	ourAcct   = "https://acme.varmenne.example/acme/account/abc123"
	otherAcct = "https://acme.varmenne.example/acme/account/zzz999"
)

func TestCAA(t *testing.T) {
	type call struct {
		name, account, method string
	}
	def := call{"www.example.fi", ourAcct, "http-01"}
	tests := []struct {
		name    string
		setup   func(d *dnsserver.Server)
		call    call
		kind    acme.ErrorKind
		details []string
	}{
		// Presence and the issue property.
		{"no CAA records anywhere allow issuance", func(d *dnsserver.Server) {
			d.SetA("www.example.fi", "192.0.2.1")
		}, def, "", nil},
		{"an issue record naming this CA allows it", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA)
		}, def, "", nil},
		{"the CA's name is matched without regard to case", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", "VARMENNE.Example")
		}, def, "", nil},
		{"a second configured identity is ours too", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", "ca.varmenne.example")
		}, def, "", nil},
		{"an issue record for another CA refuses", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", "letsencrypt.org")
		}, def, acme.CAA, []string{"names another CA", `"letsencrypt.org"`, "at www.example.fi", ourCA}},
		{"one record naming this CA among others allows it", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", "letsencrypt.org")
			d.SetCAA("www.example.fi", 0, "issue", ourCA)
		}, def, "", nil},
		{`issue ";" refuses every CA`, func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ";")
		}, def, acme.CAA, []string{"authorizes no CA"}},
		{"the issue tag is matched without regard to case", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "ISSUE", "letsencrypt.org")
		}, def, acme.CAA, nil},
		{"whitespace around the issuer name is allowed", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", "  varmenne.example ; ")
		}, def, "", nil},
		{"a malformed issuer name refuses", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", "varmenne.example/x")
		}, def, acme.CAA, []string{"malformed"}},
		{"only an iodef record leaves issuance open", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "iodef", "mailto:security@example.fi")
		}, def, "", nil},
		{"a critical iodef is understood and allows issuance", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 128, "iodef", "mailto:security@example.fi")
		}, def, "", nil},

		// Unknown tags and the critical flag.
		{"an unknown non-critical tag is ignored", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "futuretag", "whatever")
			d.SetCAA("www.example.fi", 0, "issue", ourCA)
		}, def, "", nil},
		{"an unknown critical tag refuses even beside an issue for us", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 128, "futuretag", "whatever")
			d.SetCAA("www.example.fi", 0, "issue", ourCA)
		}, def, acme.CAA, []string{"critical flag", `"futuretag"`}},
		{"an unknown critical tag refuses alone", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 128, "tbs", "x")
		}, def, acme.CAA, []string{"critical flag"}},
		{"other flag bits are not the critical flag", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 1, "futuretag", "x")
		}, def, "", nil},

		// Climbing the tree.
		{"a record at the parent applies to the name", func(d *dnsserver.Server) {
			d.SetA("www.example.fi", "192.0.2.1")
			d.SetCAA("example.fi", 0, "issue", "letsencrypt.org")
		}, def, acme.CAA, []string{"at example.fi"}},
		{"the climb goes through names that do not exist", func(d *dnsserver.Server) {
			d.SetCAA("example.fi", 0, "issue", "letsencrypt.org")
		}, call{"a.b.c.example.fi", ourAcct, "http-01"}, acme.CAA, []string{"at example.fi"}},
		{"the climb reaches the top-level domain", func(d *dnsserver.Server) {
			d.SetCAA("fi", 0, "issue", "letsencrypt.org")
		}, def, acme.CAA, []string{"at fi"}},
		{"the closest record set wins over the parent's", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA)
			d.SetCAA("example.fi", 0, "issue", "letsencrypt.org")
		}, def, "", nil},
		{"a closer record set refusing wins over a parent allowing", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", "letsencrypt.org")
			d.SetCAA("example.fi", 0, "issue", ourCA)
		}, def, acme.CAA, nil},
		{"a CNAME's target records are the name's", func(d *dnsserver.Server) {
			d.SetCNAME("www.example.fi", "cdn.vendor.example")
			d.SetCAA("cdn.vendor.example", 0, "issue", "letsencrypt.org")
			d.SetCAA("example.fi", 0, "issue", ourCA)
		}, def, acme.CAA, []string{"following CNAME to cdn.vendor.example"}},
		{"an alias without records climbs from the name, not its target", func(d *dnsserver.Server) {
			d.SetCNAME("www.example.fi", "cdn.vendor.example")
			d.SetA("cdn.vendor.example", "192.0.2.1")
			d.SetCAA("vendor.example", 0, "issue", "letsencrypt.org")
		}, def, "", nil},

		// Wildcards.
		{"issuewild governs a wildcard", func(d *dnsserver.Server) {
			d.SetCAA("example.fi", 0, "issue", "letsencrypt.org")
			d.SetCAA("example.fi", 0, "issuewild", ourCA)
		}, call{"*.example.fi", ourAcct, "dns-01"}, "", nil},
		{`issuewild ";" refuses a wildcard though issue allows us`, func(d *dnsserver.Server) {
			d.SetCAA("example.fi", 0, "issue", ourCA)
			d.SetCAA("example.fi", 0, "issuewild", ";")
		}, call{"*.example.fi", ourAcct, "dns-01"}, acme.CAA, []string{"issuewild", "authorizes no CA"}},
		{`issuewild ";" leaves the base name to issue`, func(d *dnsserver.Server) {
			d.SetCAA("example.fi", 0, "issue", ourCA)
			d.SetCAA("example.fi", 0, "issuewild", ";")
		}, call{"example.fi", ourAcct, "dns-01"}, "", nil},
		{"issuewild is ignored for a name that is not a wildcard", func(d *dnsserver.Server) {
			d.SetCAA("example.fi", 0, "issue", "letsencrypt.org")
			d.SetCAA("example.fi", 0, "issuewild", ourCA)
		}, call{"www.example.fi", ourAcct, "http-01"}, acme.CAA, nil},
		{"without issuewild a wildcard follows issue", func(d *dnsserver.Server) {
			d.SetCAA("example.fi", 0, "issue", ourCA)
		}, call{"*.example.fi", ourAcct, "dns-01"}, "", nil},
		{"without issuewild an issue for another CA refuses a wildcard", func(d *dnsserver.Server) {
			d.SetCAA("example.fi", 0, "issue", "letsencrypt.org")
		}, call{"*.example.fi", ourAcct, "dns-01"}, acme.CAA, []string{"for *.example.fi"}},
		{"a wildcard's records are looked up at its base", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", "letsencrypt.org")
		}, call{"*.www.example.fi", ourAcct, "dns-01"}, acme.CAA, []string{"at www.example.fi"}},

		// accounturi (RFC 8657 section 3).
		{"accounturi of the requesting account allows it", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; accounturi="+ourAcct)
		}, def, "", nil},
		{"accounturi of another account refuses", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; accounturi="+otherAcct)
		}, def, acme.CAA, []string{"limited to another ACME account"}},
		{"accounturi is compared exactly", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; accounturi="+ourAcct+"/")
		}, def, acme.CAA, nil},
		{"one of two accounturi records matching allows it", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; accounturi="+otherAcct)
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; accounturi="+ourAcct)
		}, def, "", nil},
		{"accounturi twice in one record refuses", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; accounturi="+ourAcct+"; accounturi="+ourAcct)
		}, def, acme.CAA, []string{"repeats the parameter accounturi"}},
		{"accounturi with no account URL known refuses", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; accounturi="+ourAcct)
		}, call{"www.example.fi", "", "http-01"}, acme.CAA, nil},
		{"accounturi on another CA's record does not help", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", "letsencrypt.org; accounturi="+ourAcct)
		}, def, acme.CAA, []string{"names another CA"}},
		{"accounturi on issuewild binds a wildcard", func(d *dnsserver.Server) {
			d.SetCAA("example.fi", 0, "issuewild", ourCA+"; accounturi="+otherAcct)
		}, call{"*.example.fi", ourAcct, "dns-01"}, acme.CAA, []string{"issuewild", "another ACME account"}},

		// validationmethods (RFC 8657 section 4).
		{"validationmethods holding the method allows it", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; validationmethods=dns-01,http-01")
		}, def, "", nil},
		{"validationmethods without the method refuses", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; validationmethods=dns-01")
		}, def, acme.CAA, []string{"does not allow the validation method http-01"}},
		{"validationmethods tls-alpn-01 allows tls-alpn-01", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; validationmethods=tls-alpn-01")
		}, call{"www.example.fi", ourAcct, "tls-alpn-01"}, "", nil},
		{"validationmethods can name dns-persist-01", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; validationmethods=dns-persist-01")
		}, call{"www.example.fi", ourAcct, "dns-persist-01"}, "", nil},
		{"validationmethods dns-persist-01 refuses dns-01", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; validationmethods=dns-persist-01")
		}, call{"www.example.fi", ourAcct, "dns-01"}, acme.CAA, []string{"does not allow the validation method dns-01"}},
		{"validationmethods can name dns-account-01", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; validationmethods=dns-account-01")
		}, call{"www.example.fi", ourAcct, "dns-account-01"}, "", nil},
		{"a malformed validationmethods list refuses", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; validationmethods=http-01,,dns-01")
		}, def, acme.CAA, []string{"malformed validationmethods"}},
		{"accounturi and validationmethods must both match", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; accounturi="+ourAcct+"; validationmethods=dns-01")
		}, def, acme.CAA, nil},
		{"unknown parameters are ignored", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; policy=ev; x-y=z")
		}, def, "", nil},
		{"a parameter without a value sign is malformed", func(d *dnsserver.Server) {
			d.SetCAA("www.example.fi", 0, "issue", ourCA+"; accounturi")
		}, def, acme.CAA, []string{"malformed"}},

		// Lookup failures fail closed.
		{"SERVFAIL at the name refuses", func(d *dnsserver.Server) {
			d.SetServfail("www.example.fi")
		}, def, acme.CAA, []string{"SERVFAIL", "could not be checked"}},
		{"SERVFAIL while climbing refuses", func(d *dnsserver.Server) {
			d.SetA("www.example.fi", "192.0.2.1")
			d.SetServfail("example.fi")
		}, def, acme.CAA, []string{"SERVFAIL"}},
		{"SERVFAIL at a CNAME target refuses", func(d *dnsserver.Server) {
			d.SetCNAME("www.example.fi", "cdn.vendor.example")
			d.SetServfail("cdn.vendor.example")
		}, def, acme.CAA, []string{"SERVFAIL"}},

		{"an IP address is malformed", nil, call{"192.0.2.1", ourAcct, "http-01"}, acme.Malformed, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dns := startDNS(t)
			if tt.setup != nil {
				tt.setup(dns)
			}
			v, _ := newValidator(t, dns, Config{CAAIdentities: []string{ourCA, "CA.Varmenne.Example."}})
			checkErr(t, v.CAA(context.Background(), tt.call.name, tt.call.account, tt.call.method), tt.kind, tt.details...)
		})
	}
}

func TestCAATimeoutRefuses(t *testing.T) {
	v, err := New(Config{Resolver: silentDNS(t), Timeout: 300 * time.Millisecond, CAAIdentities: []string{ourCA}})
	if err != nil {
		t.Fatal(err)
	}
	checkErr(t, v.CAA(context.Background(), "www.example.fi", ourAcct, "http-01"), acme.CAA, "no answer within the validation deadline")
}

func TestCAAWithoutIdentitiesRefusesAnyIssueRecord(t *testing.T) {
	dns := startDNS(t)
	dns.SetCAA("www.example.fi", 0, "issue", ourCA)
	dns.SetA("free.example.fi", "192.0.2.1")
	v, _ := newValidator(t, dns, Config{})
	checkErr(t, v.CAA(context.Background(), "www.example.fi", ourAcct, "http-01"), acme.CAA, "no CAA identity configured")
	checkErr(t, v.CAA(context.Background(), "free.example.fi", ourAcct, "http-01"), "")
}

func TestCAAIdentitiesAreChecked(t *testing.T) {
	v, err := New(Config{CAAIdentities: []string{"CA.Varmenne.Example.", "b.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.CAAIdentities(); len(got) != 2 || got[0] != "ca.varmenne.example" || got[1] != "b.example" {
		t.Errorf("identities %q, want them lower case without the dot", got)
	}
	for _, bad := range []string{"", "ca example", "https://ca.example", "*.ca.example"} {
		if _, err := New(Config{CAAIdentities: []string{bad}}); err == nil {
			t.Errorf("identity %q accepted", bad)
		}
	}
}
