// Package names owns the syntax of dns identifiers and the test whether a name lies
// within an organisation's domains. It answers from the name alone: it never resolves
// names, and which domains an organisation holds is decided elsewhere (the register and
// the EAB binding).
package names

import (
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"

	"github.com/varmenne/varmenne/acme"
)

// maxNameLength is the longest name in presentation form without the trailing dot
// (RFC 1035's 255 octets on the wire, less the length octets).
const maxNameLength = 253

// Normalize lower-cases a dns identifier value (ASCII only; no other changes).
// strings.ToLower would also fold non-ASCII letters, some into ASCII (the Kelvin
// sign K becomes k), hiding a name that Check must refuse.
func Normalize(name string) string {
	b := []byte(name)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Check validates the syntax of a dns identifier (already normalized; ASCII letters
// are compared without regard to case all the same). It returns nil or an
// *acme.Error: malformed for syntax (the order is malformed), rejectedIdentifier for
// names the CA refuses by policy: a wildcard over a public suffix, or a name that is
// one.
func Check(name string) error {
	name = Normalize(name)
	shown := show(name)
	if name == "" {
		return acme.Errorf(acme.Malformed, "the dns identifier is empty")
	}
	if isIPLiteral(name) {
		return acme.Errorf(acme.Malformed,
			"%s is an IP address, not a DNS name; request it as an \"ip\" identifier beside the server's DNS name", shown)
	}
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			return acme.Errorf(acme.Malformed,
				"%s contains non-ASCII characters; use the punycode (xn--) form of the name", shown)
		}
	}
	if len(name) > maxNameLength {
		return acme.Errorf(acme.Malformed,
			"%s is %d bytes long; a DNS name may have at most %d", shown, len(name), maxNameLength)
	}
	if strings.HasSuffix(name, ".") {
		return acme.Errorf(acme.Malformed, "%s ends with a dot; remove the trailing dot", shown)
	}

	base, wildcard := strings.CutPrefix(name, "*.")
	if strings.Contains(base, "*") {
		return acme.Errorf(acme.Malformed,
			"%s has a misplaced wildcard; only a single leftmost \"*.\" label is allowed, as in *.example.fi", shown)
	}
	labels := strings.Split(base, ".")
	// A wildcard's "*" counts as a label, so that "*.fi" meets the public-suffix
	// refusal below rather than this one.
	if !wildcard && len(labels) < 2 {
		return acme.Errorf(acme.Malformed,
			"%s needs at least two labels; request a fully qualified name such as host.example.fi", shown)
	}
	for _, label := range labels {
		if detail := checkLabel(label); detail != "" {
			return acme.Errorf(acme.Malformed, "%s: %s", shown, detail)
		}
	}
	if allDigits(labels[len(labels)-1]) {
		// Also catches the IPv4 spellings netip does not parse, such as 127.1.
		return acme.Errorf(acme.Malformed,
			"%s ends in an all-numeric label, which no top-level domain is; an IP address goes in an \"ip\" identifier", shown)
	}

	if isPublicSuffix(base) {
		if wildcard {
			return acme.Errorf(acme.RejectedIdentifier,
				"%s would cover every name under the public suffix %s; request a wildcard under your own domain",
				shown, base)
		}
		return acme.Errorf(acme.RejectedIdentifier,
			"%s is a public suffix, not a domain a certificate can be issued for", shown)
	}
	return nil
}

// checkLabel returns why one label is refused, or "".
func checkLabel(label string) string {
	switch {
	case label == "":
		return "empty label; remove the extra dot"
	case len(label) > 63:
		return fmt.Sprintf("label %s is %d bytes long; a label may have at most 63", show(label), len(label))
	}
	for i := 0; i < len(label); i++ {
		switch c := label[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
		case c == '_':
			return fmt.Sprintf("label %s contains an underscore, which host names may not hold", show(label))
		default:
			return fmt.Sprintf("label %s contains %q; labels hold only letters, digits and hyphens",
				show(label), c)
		}
	}
	// "??--" labels are reserved (RFC 5890 R-LDH); of them only IDNA A-labels are names.
	if len(label) >= 4 && label[2:4] == "--" {
		if !strings.HasPrefix(label, "xn--") {
			return fmt.Sprintf("label %s has \"--\" in the third and fourth positions, which is reserved "+
				"for xn-- (punycode) labels", show(label))
		}
		// A label must decode and encode back to itself, so that one name has one
		// spelling: "xn--abc-" decodes to plain "abc" and is refused. This runs before
		// the hyphen rule so that such labels get the punycode detail.
		u, err := idna.Lookup.ToUnicode(label)
		if err != nil {
			return fmt.Sprintf("label %s is not valid punycode; encode the name with an IDNA tool", show(label))
		}
		if back, err := idna.Lookup.ToASCII(u); err != nil || back != label {
			return fmt.Sprintf("label %s is not the canonical punycode form of a name; "+
				"encode the name with an IDNA tool", show(label))
		}
	}
	if label[0] == '-' || label[len(label)-1] == '-' {
		return fmt.Sprintf("label %s starts or ends with a hyphen", show(label))
	}
	return ""
}

// isIPLiteral reports whether name, less a wildcard label, brackets or a trailing dot,
// is an IPv4 or IPv6 address.
func isIPLiteral(name string) bool {
	name = strings.TrimPrefix(name, "*.")
	name = strings.TrimSuffix(name, ".")
	if inner, ok := strings.CutPrefix(name, "["); ok {
		name = strings.TrimSuffix(inner, "]")
	}
	_, err := netip.ParseAddr(name)
	return err == nil
}

// isPublicSuffix reports whether name is a suffix in the ICANN section of the Public
// Suffix List, or a single label: the list's implicit "*" rule makes every unlisted
// top-level domain a suffix too.
func isPublicSuffix(name string) bool {
	if !strings.Contains(name, ".") {
		return true
	}
	suffix, icann := publicsuffix.PublicSuffix(name)
	return icann && suffix == name
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// show quotes a name for a detail, cut short so a 10 kB identifier is not echoed whole.
func show(s string) string {
	const limit = 80
	if len(s) > limit {
		return fmt.Sprintf("%q…", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}

// Within reports whether name (possibly "*.x") equals or lies under one of domains.
// The comparison ignores ASCII case and a trailing dot on a domain.
func Within(name string, domains []string) bool {
	// A wildcard covers names below its base, so the base decides.
	name = strings.TrimPrefix(Normalize(name), "*.")
	for _, d := range domains {
		d = strings.TrimSuffix(Normalize(d), ".")
		if d == "" {
			continue
		}
		if name == d || strings.HasSuffix(name, "."+d) {
			return true
		}
	}
	return false
}
