package validate

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/test/dnsserver"
)

func TestDNSPersist01(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	future := strconv.FormatInt(now.Add(90*24*time.Hour).Unix(), 10)
	past := strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)
	good := ourCA + "; accounturi=" + ourAcct
	const at = "_validation-persist.www.example.fi"
	tests := []struct {
		name     string
		setup    func(d *dnsserver.Server)
		ask      string
		wildcard bool
		kind     acme.ErrorKind
		details  []string
	}{
		{"a record naming this CA and account succeeds", func(d *dnsserver.Server) {
			d.SetTXT(at, good)
		}, "www.example.fi", false, "", nil},
		{"a persistUntil in the future succeeds", func(d *dnsserver.Server) {
			d.SetTXT(at, good+"; persistUntil="+future)
		}, "www.example.fi", false, "", nil},
		{"the CA is matched without regard to case and whitespace", func(d *dnsserver.Server) {
			d.SetTXT(at, "  VARMENNE.example ;accounturi="+ourAcct+" ; persistuntil="+future)
		}, "www.example.fi", false, "", nil},
		{"unknown parameters are ignored", func(d *dnsserver.Server) {
			d.SetTXT(at, good+"; x-vendor=abc; policy=other")
		}, "www.example.fi", false, "", nil},
		{"another CA's record beside ours does not hinder", func(d *dnsserver.Server) {
			d.SetTXT(at, "letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/1", good)
		}, "www.example.fi", false, "", nil},
		{"a CNAME delegated to a vendor's zone is followed", func(d *dnsserver.Server) {
			d.SetCNAME(at, "www-example-fi.persist.vendor.example")
			d.SetTXT("www-example-fi.persist.vendor.example", good)
		}, "www.example.fi", false, "", nil},
		{"a wildcard with policy=wildcard succeeds at the base name", func(d *dnsserver.Server) {
			d.SetTXT("_validation-persist.example.fi", good+"; policy=Wildcard")
		}, "example.fi", true, "", nil},

		{"a record naming another account is refused and says so", func(d *dnsserver.Server) {
			d.SetTXT(at, ourCA+"; accounturi="+otherAcct)
		}, "www.example.fi", false, acme.Unauthorized, []string{"names another account", otherAcct, at}},
		{"a record naming another CA is refused and says so", func(d *dnsserver.Server) {
			d.SetTXT(at, "otherca.example; accounturi="+ourAcct)
		}, "www.example.fi", false, acme.Unauthorized, []string{"names another CA (otherca.example"}},
		{"a record past its persistUntil is refused and says when it passed", func(d *dnsserver.Server) {
			d.SetTXT(at, good+"; persistUntil="+past)
		}, "www.example.fi", false, acme.Unauthorized, []string{"persistUntil passed on 2026-12-07T11:00:00Z"}},
		{"persistUntil equal to now has passed", func(d *dnsserver.Server) {
			d.SetTXT(at, good+"; persistUntil="+strconv.FormatInt(now.Unix(), 10))
		}, "www.example.fi", false, acme.Unauthorized, []string{"persistUntil passed"}},
		{"a wildcard without policy=wildcard is refused", func(d *dnsserver.Server) {
			d.SetTXT("_validation-persist.example.fi", good)
		}, "example.fi", true, acme.Unauthorized, []string{"policy=wildcard"}},
		{"a record without accounturi is refused", func(d *dnsserver.Server) {
			d.SetTXT(at, ourCA)
		}, "www.example.fi", false, acme.Unauthorized, []string{"no accounturi"}},
		{"an account URL with a trailing slash is another account", func(d *dnsserver.Server) {
			d.SetTXT(at, good+"/")
		}, "www.example.fi", false, acme.Unauthorized, []string{"names another account"}},
		{"the refusal of our record is shown, not other CAs' records", func(d *dnsserver.Server) {
			d.SetTXT(at, "letsencrypt.org; accounturi=x", ourCA+"; accounturi="+otherAcct)
		}, "www.example.fi", false, acme.Unauthorized, []string{"names another account"}},

		{"a malformed record is an incorrect response", func(d *dnsserver.Server) {
			d.SetTXT(at, ourCA+"; accounturi")
		}, "www.example.fi", false, acme.IncorrectResponse, []string{"malformed"}},
		{"an issuer name with an underscore is malformed", func(d *dnsserver.Server) {
			d.SetTXT(at, "bad_ca.example; accounturi="+ourAcct)
		}, "www.example.fi", false, acme.IncorrectResponse, []string{"malformed"}},
		{"a record naming no CA is malformed", func(d *dnsserver.Server) {
			d.SetTXT(at, "; accounturi="+ourAcct)
		}, "www.example.fi", false, acme.IncorrectResponse, []string{"names no CA"}},
		{"a persistUntil that is no number is malformed", func(d *dnsserver.Server) {
			d.SetTXT(at, good+"; persistUntil=2027-01-01")
		}, "www.example.fi", false, acme.IncorrectResponse, []string{`persistUntil="2027-01-01" is not a Unix time`}},
		{"a repeated accounturi is malformed", func(d *dnsserver.Server) {
			d.SetTXT(at, good+"; accounturi="+ourAcct)
		}, "www.example.fi", false, acme.IncorrectResponse, []string{"repeats the parameter accounturi"}},
		{"a repeated persistUntil is malformed", func(d *dnsserver.Server) {
			d.SetTXT(at, good+"; persistUntil="+future+"; persistUntil="+past)
		}, "www.example.fi", false, acme.IncorrectResponse, []string{"repeats the parameter persistUntil"}},
		{"a record longer than the limit is refused", func(d *dnsserver.Server) {
			d.SetTXT(at, good+"; x="+strings.Repeat("a", MaxPersistRecordLen))
		}, "www.example.fi", false, acme.IncorrectResponse, []string{"longer than 1024 bytes"}},
		{"too many records are refused as a whole", func(d *dnsserver.Server) {
			var vals []string
			for i := range MaxPersistRecords {
				vals = append(vals, "ca"+strconv.Itoa(i)+".example; accounturi=x")
			}
			d.SetTXT(at, append(vals, good)...)
		}, "www.example.fi", false, acme.IncorrectResponse, []string{"holds 11 TXT records", "at most 10"}},

		{"no record is a dns problem showing what to publish", nil, "www.example.fi", false, acme.DNS,
			[]string{"NXDOMAIN", at, `"` + ourCA + "; accounturi=" + ourAcct + `"`}},
		{"the record at the parent does not prove a host", func(d *dnsserver.Server) {
			d.SetTXT("_validation-persist.example.fi", good)
		}, "www.example.fi", false, acme.DNS, []string{at}},
		{"SERVFAIL is a dns problem", func(d *dnsserver.Server) {
			d.SetServfail(at)
		}, "www.example.fi", false, acme.DNS, []string{"SERVFAIL"}},
		{"an IP address is malformed", nil, "192.0.2.1", false, acme.Malformed, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dns := startDNS(t)
			if tt.setup != nil {
				tt.setup(dns)
			}
			v, dials := newValidator(t, dns, Config{CAAIdentities: []string{ourCA}})
			rec, err := v.DNSPersist01(context.Background(), tt.ask, tt.wildcard, ourAcct, now)
			checkErr(t, err, tt.kind, tt.details...)
			if tt.kind == "" && (rec == nil || rec.Value == "") {
				t.Errorf("success without the record that proved it: %+v", rec)
			}
			if got := dials.list(); len(got) != 0 {
				t.Errorf("dns-persist-01 opened connections to %v", got)
			}
		})
	}
}

func TestDNSPersist01Record(t *testing.T) {
	// The record returned is what the authorisation and the audit log keep.
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	dns := startDNS(t)
	value := ourCA + "; accounturi=" + ourAcct + "; persistUntil=1830297600; policy=wildcard"
	dns.SetCNAME("_validation-persist.example.fi", "p.vendor.example")
	dns.SetTXT("p.vendor.example", "otherca.example; accounturi=x", value)
	v, _ := newValidator(t, dns, Config{CAAIdentities: []string{ourCA}})
	rec, err := v.DNSPersist01(context.Background(), "example.fi", true, ourAcct, now)
	if err != nil {
		t.Fatal(err)
	}
	want := PersistRecord{Owner: "p.vendor.example", Value: value, PersistUntil: time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC), Wildcard: true}
	if *rec != want {
		t.Errorf("record %+v, want %+v", *rec, want)
	}
}

func TestDNSPersist01NeedsACAAIdentity(t *testing.T) {
	dns := startDNS(t)
	dns.SetTXT("_validation-persist.www.example.fi", ourCA+"; accounturi="+ourAcct)
	v, _ := newValidator(t, dns, Config{})
	_, err := v.DNSPersist01(context.Background(), "www.example.fi", false, ourAcct, time.Now())
	checkErr(t, err, acme.Unauthorized, "no CAA identity")
}

func TestDNSAccountLabel(t *testing.T) {
	// The example of draft-ietf-acme-dns-account-label; recomputed independently with
	// Python: base64.b32encode(hashlib.sha256(url).digest()[:10]).lower().
	if got, want := DNSAccountLabel("https://example.com/acme/acct/ExampleAccount"), "_ujmmovf2vn55tgye"; got != want {
		t.Errorf("DNSAccountLabel = %q, want %q", got, want)
	}
	if DNSAccountLabel(ourAcct) == DNSAccountLabel(otherAcct) {
		t.Error("two accounts share a label")
	}
}

func TestDNSAccount01(t *testing.T) {
	good := DNS01Value(keyAuth)
	ours := DNSAccountLabel(ourAcct) + "._acme-challenge.www.example.fi"
	theirs := DNSAccountLabel(otherAcct) + "._acme-challenge.www.example.fi"
	tests := []struct {
		name    string
		setup   func(d *dnsserver.Server)
		ask     string
		kind    acme.ErrorKind
		details []string
	}{
		{"the value at the account's label succeeds", func(d *dnsserver.Server) {
			d.SetTXT(ours, good)
		}, "www.example.fi", "", nil},
		{"another account's record beside ours does not hinder", func(d *dnsserver.Server) {
			d.SetTXT(theirs, "their-value")
			d.SetTXT(ours, good)
		}, "www.example.fi", "", nil},
		{"a wildcard is proven at its base name", func(d *dnsserver.Server) {
			d.SetTXT(DNSAccountLabel(ourAcct)+"._acme-challenge.example.fi", good)
		}, "*.example.fi", "", nil},
		{"a CNAME to a vendor's zone is followed", func(d *dnsserver.Server) {
			d.SetCNAME(ours, "acct.vendor.example")
			d.SetTXT("acct.vendor.example", good)
		}, "www.example.fi", "", nil},
		{"the value at another account's label does not count", func(d *dnsserver.Server) {
			d.SetTXT(theirs, good)
		}, "www.example.fi", acme.DNS, []string{ours}},
		{"the value at the plain dns-01 label does not count", func(d *dnsserver.Server) {
			d.SetTXT("_acme-challenge.www.example.fi", good)
		}, "www.example.fi", acme.DNS, []string{ours}},
		{"a wrong value is an incorrect response", func(d *dnsserver.Server) {
			d.SetTXT(ours, "wrong")
		}, "www.example.fi", acme.IncorrectResponse, []string{`"wrong"`, good}},
		{"SERVFAIL is a dns problem naming the method", func(d *dnsserver.Server) {
			d.SetServfail(ours)
		}, "www.example.fi", acme.DNS, []string{"SERVFAIL", "dns-account-01"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dns := startDNS(t)
			tt.setup(dns)
			v, _ := newValidator(t, dns, Config{})
			checkErr(t, v.DNSAccount01(context.Background(), tt.ask, ourAcct, keyAuth), tt.kind, tt.details...)
		})
	}
}

// FuzzPersistRecord: any TXT value is either refused with a reason or accepted only
// when it names this CA and exactly this account, is unexpired, and allows a
// wildcard when one is asked; parsing never panics.
func FuzzPersistRecord(f *testing.F) {
	for _, seed := range []string{
		ourCA + "; accounturi=" + ourAcct,
		ourCA + "; accounturi=" + ourAcct + "; persistUntil=4102444800; policy=wildcard",
		ourCA + "; accounturi=" + ourAcct + "; persistUntil=1",
		"otherca.example; accounturi=" + ourAcct,
		ourCA + ";;; accounturi=" + ourAcct + "; x=y",
		ourCA + "; accounturi",
		"",
		";",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	v, err := New(Config{CAAIdentities: []string{ourCA}})
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, value string, wildcard bool) {
		rec, reason, _ := v.persistRefusal(value, wildcard, ourAcct, now)
		if reason != "" {
			if rec != nil {
				t.Fatalf("refused %q (%s) but returned a record", value, reason)
			}
			return
		}
		issuer, params, ok := parseIssueValue(value)
		if !ok || !strings.EqualFold(issuer, ourCA) || len(value) > MaxPersistRecordLen {
			t.Fatalf("accepted %q: issuer %q, parsed %v", value, issuer, ok)
		}
		accounts := 0
		for _, p := range params {
			if strings.EqualFold(p.key, "accounturi") {
				accounts++
				if p.value != ourAcct {
					t.Fatalf("accepted %q naming account %q", value, p.value)
				}
			}
		}
		if accounts != 1 {
			t.Fatalf("accepted %q with %d accounturi parameters", value, accounts)
		}
		if !rec.PersistUntil.IsZero() && !now.Before(rec.PersistUntil) {
			t.Fatalf("accepted %q past its persistUntil", value)
		}
		if wildcard && !rec.Wildcard {
			t.Fatalf("accepted %q for a wildcard without policy=wildcard", value)
		}
	})
}
