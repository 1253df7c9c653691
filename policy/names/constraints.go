package names

import "strings"

// Constraints are DNS name constraints in the manner of RFC 5280 section 4.2.1.10:
// a domain permits or excludes itself and every name below it. Excluded wins over
// permitted. A wildcard "*.b" is judged by what it covers: it lies within a
// permitted domain when b does, and it is excluded when b is within an excluded
// domain or when an excluded domain is one of the names it covers (one label
// directly under b).
//
// The smallstep policy engine was tried for this and does not fit: measured with
// github.com/smallstep/certificates v0.28.4, a permitted "example.fi" allows only that
// name and "*.example.fi" only one label below it (b.a.example.fi refused), and neither
// allows the wildcard name "*.a.example.fi". An organisation's approved domain is a
// whole subtree here, as in RFC 5280, so the rule is kept in these few lines; the
// engine's module would also bring some twenty others (protobuf, a template engine, a
// second JOSE library) into the certificate authority.
type Constraints struct {
	Permitted []string // empty: nothing is permitted
	Excluded  []string
}

// Reasons a name is not allowed.
const (
	Allowed = iota
	NotPermitted
	Excluded
)

// Verdict is the outcome of Check: Reason and, when excluded, the constraint that
// excluded the name.
type Verdict struct {
	Reason     int
	Constraint string
}

// Check judges a normalized, syntactically valid name (possibly "*.x").
func (c Constraints) Check(name string) Verdict {
	name = Normalize(name)
	base, wildcard := strings.CutPrefix(name, "*.")
	for _, e := range c.Excluded {
		e = strings.TrimSuffix(Normalize(e), ".")
		if e == "" {
			continue
		}
		if Within(base, []string{e}) {
			return Verdict{Reason: Excluded, Constraint: e}
		}
		if wildcard {
			if _, parent, ok := strings.Cut(e, "."); ok && parent == base {
				return Verdict{Reason: Excluded, Constraint: e}
			}
		}
	}
	if !Within(name, c.Permitted) {
		return Verdict{Reason: NotPermitted}
	}
	return Verdict{Reason: Allowed}
}
