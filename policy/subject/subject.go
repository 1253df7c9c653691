// Package subject holds the rule for what an organisation's names must be to go
// into a certificate subject: every SOTE profile writes the organisation's name as
// O and its long name as OU, as UTF8String (RFC 5280 upper bounds: 64 characters
// each). The rule is checked where a name enters (an operator adding an
// organisation, a register import), so no finalize ever fails on it.
package subject

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxName is RFC 5280's ub-organization-name and ub-organizational-unit-name.
const MaxName = 64

// CheckName refuses a name that cannot be a subject attribute: blank, longer than
// MaxName characters, not UTF-8, or holding a control or other non-printing
// character. field names it in the refusal ("name (certificate O)").
func CheckName(field, v string) error {
	switch n := utf8.RuneCountInString(v); {
	case !utf8.ValidString(v):
		return fmt.Errorf("the %s is not valid UTF-8", field)
	case strings.TrimSpace(v) == "":
		return fmt.Errorf("the %s is blank", field)
	case n > MaxName:
		return fmt.Errorf("the %s %q has %d characters; a certificate subject takes at most %d (RFC 5280): give a shorter one", field, v, n, MaxName)
	}
	for _, r := range v {
		if !unicode.IsPrint(r) && r != ' ' {
			return fmt.Errorf("the %s %q holds the character %U, which a certificate subject must not carry", field, v, r)
		}
	}
	return nil
}
