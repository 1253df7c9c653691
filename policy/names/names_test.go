package names

import (
	"strings"
	"testing"

	"github.com/varmenne/varmenne/acme"
)

func TestNormalize(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"upper-case ASCII lowered", "WWW.Example.FI", "www.example.fi"},
		{"already lower unchanged", "www.example.fi", "www.example.fi"},
		{"digits and hyphens unchanged", "A-1.B-2.FI", "a-1.b-2.fi"},
		{"non-ASCII letters left alone", "ÄÖ.Example.FI", "ÄÖ.example.fi"},
		{"Kelvin sign not folded to k", "\u212a.example.fi", "\u212a.example.fi"},
		{"wildcard kept", "*.EXAMPLE.fi", "*.example.fi"},
		{"trailing dot kept", "Example.fi.", "example.fi."},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Normalize(tt.in); got != tt.want {
				t.Fatalf("Normalize(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

// row is one Check case: kind "" means accepted; detail is a fragment the refusal
// must carry.
type row struct {
	name   string
	in     string
	kind   acme.ErrorKind
	detail string
}

func runCheck(t *testing.T, rows []row) {
	t.Helper()
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			err := Check(r.in)
			if r.kind == "" {
				if err != nil {
					t.Fatalf("Check(%q) refused a good name: %v", r.in, err)
				}
				return
			}
			ae, ok := acme.AsError(err)
			if !ok || ae.Kind != r.kind {
				t.Fatalf("Check(%q) = %v; want kind %s", r.in, err, r.kind)
			}
			if !strings.Contains(ae.Detail, r.detail) {
				t.Fatalf("detail %q does not contain %q", ae.Detail, r.detail)
			}
		})
	}
}

const (
	good      acme.ErrorKind = ""
	malformed                = acme.Malformed
	rejected                 = acme.RejectedIdentifier
)

// label returns a label of n letters.
func label(n int) string { return strings.Repeat("a", n) }

// nameOfLength returns a name under example.fi of exactly n bytes, in labels of at most 63.
func nameOfLength(n int) string {
	const tail = ".example.fi"
	var parts []string
	rest := n - len(tail)
	for rest > 0 {
		l := min(rest, 63)
		if rest-l == 1 { // a lone byte left would need a dot of its own
			l--
		}
		parts = append(parts, label(l))
		rest -= l + 1
	}
	return strings.Join(parts, ".") + tail
}

func TestCheckLength(t *testing.T) {
	for _, n := range []int{253, 254} {
		if got := len(nameOfLength(n)); got != n {
			t.Fatalf("nameOfLength(%d) has %d bytes", n, got)
		}
	}
	runCheck(t, []row{
		{"253 bytes accepted", nameOfLength(253), good, ""},
		{"254 bytes refused", nameOfLength(254), malformed, "is 254 bytes long; a DNS name may have at most 253"},
		{"long name not echoed whole", nameOfLength(1000), malformed, "…"},
		{"63-byte label accepted", label(63) + ".example.fi", good, ""},
		{"64-byte label refused", label(64) + ".example.fi", malformed, "is 64 bytes long; a label may have at most 63"},
		{"one-byte labels accepted", "a.b.fi", good, ""},
		{"empty name refused", "", malformed, "empty"},
	})
}

func TestCheckLabels(t *testing.T) {
	runCheck(t, []row{
		{"plain name accepted", "www.example.fi", good, ""},
		{"digits and hyphen accepted", "host-1.2nd.example.fi", good, ""},
		{"all-numeric inner label accepted", "123.example.fi", good, ""},
		{"upper case accepted", "WWW.Example.FI", good, ""},
		{"empty inner label refused", "www..example.fi", malformed, "empty label"},
		{"leading dot refused", ".example.fi", malformed, "empty label"},
		{"trailing dot refused", "example.fi.", malformed, "remove the trailing dot"},
		{"underscore refused", "_acme-challenge.example.fi", malformed, "underscore"},
		{"underscore mid-label refused", "my_host.example.fi", malformed, "underscore"},
		{"leading hyphen refused", "-www.example.fi", malformed, "starts or ends with a hyphen"},
		{"trailing hyphen refused", "www-.example.fi", malformed, "starts or ends with a hyphen"},
		{"space refused", "my host.example.fi", malformed, "only letters, digits and hyphens"},
		{"slash refused", "a/b.example.fi", malformed, "only letters, digits and hyphens"},
		{"at sign refused", "user@example.fi", malformed, "only letters, digits and hyphens"},
		{"single label refused", "localhost", malformed, "at least two labels"},
		{"bare TLD refused", "fi", malformed, "at least two labels"},
		{"all-numeric TLD refused", "example.123", malformed, "all-numeric"},
		{"short IPv4 spelling refused", "127.1", malformed, "an IP address goes in an \"ip\" identifier"},
		{"digits-and-letters TLD accepted", "example.x1", good, ""},
	})
}

func TestCheckIPLiterals(t *testing.T) {
	const detail = "request it as an \"ip\" identifier"
	runCheck(t, []row{
		{"IPv4 loopback", "127.0.0.1", malformed, detail},
		{"IPv4 private", "10.0.0.1", malformed, detail},
		{"IPv4 with trailing dot", "10.0.0.1.", malformed, detail},
		{"IPv6 loopback", "::1", malformed, detail},
		{"bracketed IPv6", "[::1]", malformed, detail},
		{"IPv6 with zone", "fe80::1%eth0", malformed, detail},
		{"IPv4-mapped IPv6", "::ffff:10.0.0.1", malformed, detail},
		{"wildcard over IPv4", "*.10.0.0.1", malformed, detail},
		{"name that merely starts with digits accepted", "10.example.fi", good, ""},
	})
}

func TestCheckPunycode(t *testing.T) {
	runCheck(t, []row{
		{"valid xn-- label accepted", "xn--mnchen-3ya.example.fi", good, ""},
		{"valid xn-- TLD accepted", "example.xn--p1ai", good, ""},
		{"xn-- with sharp s accepted", "xn--strae-oqa.example.fi", good, ""},
		{"non-ASCII refused", "münchen.example.fi", malformed, "use the punycode (xn--) form"},
		{"Kelvin sign refused", "\u212aelvin.example.fi", malformed, "use the punycode (xn--) form"},
		{"invalid punycode refused", "xn--a.example.fi", malformed, "not valid punycode"},
		// Whether idna refuses these at decoding or at the round trip depends on the
		// x/net version; either way the name is malformed and the detail says punycode.
		{"empty punycode refused", "xn--.example.fi", malformed, "not the canonical punycode form"},
		{"punycode of plain ASCII refused", "xn--abc-.example.fi", malformed, "punycode"},
		{"punycode of a digit refused", "xn--0-.example.fi", malformed, "punycode"},
		{"punycode of upper case refused", "xn--ggg.example.fi", malformed, "punycode"},
		{"disallowed code point refused", "xn--a-ecp.example.fi", malformed, "not valid punycode"},
		{"other R-LDH label refused", "ab--c.example.fi", malformed, "reserved for xn-- (punycode) labels"},
		{"R-LDH in the TLD refused", "example.zz--a", malformed, "reserved"},
		{"double hyphen elsewhere accepted", "a--b.example.fi", good, ""},
		{"double hyphen at 4-5 accepted", "abc--d.example.fi", good, ""},
	})
}

func TestCheckWildcards(t *testing.T) {
	const misplaced = "only a single leftmost \"*.\" label"
	const suffix = "public suffix"
	runCheck(t, []row{
		{"wildcard under a domain accepted", "*.example.fi", good, ""},
		{"wildcard under a subdomain accepted", "*.www.example.fi", good, ""},
		{"wildcard under a co.uk domain accepted", "*.example.co.uk", good, ""},
		{"double wildcard refused", "*.*.a.fi", malformed, misplaced},
		{"inner wildcard refused", "a.*.fi", malformed, misplaced},
		{"partial wildcard label refused", "*a.fi", malformed, misplaced},
		{"wildcard suffix in label refused", "a*.example.fi", malformed, misplaced},
		{"bare star refused", "*", malformed, misplaced},
		{"trailing wildcard refused", "example.*", malformed, misplaced},
		{"wildcard over .fi rejected", "*.fi", rejected, suffix},
		{"wildcard over .com rejected", "*.com", rejected, suffix},
		{"wildcard over co.uk rejected", "*.co.uk", rejected, suffix},
		{"wildcard over an unlisted TLD rejected", "*.internal", rejected, suffix},
		{"wildcard over a listed wildcard suffix rejected", "*.com.bd", rejected, suffix},
		// Only the ICANN section counts; private suffixes are left to the domain lists.
		{"wildcard over a private suffix accepted", "*.github.io", good, ""},
		{"name that is a public suffix rejected", "co.uk", rejected, suffix},
		{"name under a public suffix accepted", "example.co.uk", good, ""},
	})
}

func TestCheckKinds(t *testing.T) {
	// Every refusal is a typed *acme.Error, never an untyped error.
	for _, in := range []string{"", "a..fi", "*.fi", "127.0.0.1", "ä.fi", "xn--a.fi"} {
		t.Run(in, func(t *testing.T) {
			if _, ok := acme.AsError(Check(in)); !ok {
				t.Fatalf("Check(%q) did not return an *acme.Error", in)
			}
		})
	}
}

func TestWithin(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		domains []string
		want    bool
	}{
		{"the domain itself", "example.fi", []string{"example.fi"}, true},
		{"a subdomain", "a.example.fi", []string{"example.fi"}, true},
		{"a deeper subdomain", "x.y.example.fi", []string{"example.fi"}, true},
		{"a wildcard under the domain", "*.example.fi", []string{"example.fi"}, true},
		{"a wildcard under a subdomain", "*.a.example.fi", []string{"a.example.fi"}, true},
		{"a longer label ending the same", "badexample.fi", []string{"example.fi"}, false},
		{"a parent of the domain", "example.fi", []string{"a.example.fi"}, false},
		{"a wildcard over the parent", "*.example.fi", []string{"a.example.fi"}, false},
		{"another domain", "example.com", []string{"example.fi"}, false},
		{"the domain as a label prefix", "example.fi.evil.com", []string{"example.fi"}, false},
		{"the second of several domains", "www.example.org", []string{"example.fi", "example.org"}, true},
		{"name in upper case", "WWW.EXAMPLE.FI", []string{"example.fi"}, true},
		{"domain in upper case", "www.example.fi", []string{"Example.FI"}, true},
		{"domain with a trailing dot", "www.example.fi", []string{"example.fi."}, true},
		{"an empty domain matches nothing", "example.fi", []string{""}, false},
		{"no domains", "example.fi", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Within(tt.in, tt.domains); got != tt.want {
				t.Fatalf("Within(%q, %q) = %v; want %v", tt.in, tt.domains, got, tt.want)
			}
		})
	}
}
