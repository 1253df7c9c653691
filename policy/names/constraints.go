package names

import "strings"

// Constraints are DNS name constraints in the manner of RFC 5280 section 4.2.1.10:
// a domain permits or excludes itself and every name below it. Excluded wins over
// permitted. A wildcard "*.b" is judged by what it covers: it lies within a
// permitted domain when b does, and it is excluded when b is within an excluded
// domain or when an excluded domain is one of the names it covers (one label
// directly under b).
//
// This is the rule set of the smallstep policy engine's DNS constraints; it is kept
// here because that engine's module brings some twenty others (protobuf, a template
// engine, a second JOSE library) into a certificate authority for a suffix match.
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
