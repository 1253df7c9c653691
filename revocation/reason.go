// Package revocation is the one place a certificate is revoked, whoever asks: an
// ACME account, the holder of the certificate's key, or an operator. It owns the
// reasons SOTE accepts and who may give each, the rights check by the caller, key
// blocking on keyCompromise, the complete revocation record and its audit event,
// written in one transaction. It never builds CRLs (crl does) and speaks no HTTP.
package revocation

import (
	"fmt"
	"strconv"
	"strings"
)

// Reason is an RFC 5280 CRLReason SOTE accepts, and who may give it.
type Reason struct {
	Code int
	Name string
	// Subscriber: an ACME account or the holder of the certificate's key may give
	// it (revokeCert). Every reason may be given by an operator.
	Subscriber bool
}

// The reasons SOTE accepts. certificateHold (6) and removeFromCRL (8) are refused
// because SOTE revocation is final; cACompromise (2) and aACompromise (10) concern
// the CA, not one certificate.
var (
	Unspecified          = Reason{0, "unspecified", true}
	KeyCompromise        = Reason{1, "keyCompromise", true}
	AffiliationChanged   = Reason{3, "affiliationChanged", true}
	Superseded           = Reason{4, "superseded", true}
	CessationOfOperation = Reason{5, "cessationOfOperation", true}
	PrivilegeWithdrawn   = Reason{9, "privilegeWithdrawn", true}
)

// Reasons lists the accepted reasons by code.
var Reasons = []Reason{Unspecified, KeyCompromise, AffiliationChanged, Superseded, CessationOfOperation, PrivilegeWithdrawn}

// refused names the RFC 5280 reasons SOTE does not accept, and why.
var refused = map[int]struct{ name, why string }{
	2:  {"cACompromise", "it concerns the CA, not one certificate"},
	6:  {"certificateHold", "SOTE revocation is final"},
	8:  {"removeFromCRL", "SOTE revocation is final"},
	10: {"aACompromise", "it concerns the CA, not one certificate"},
}

// ByCode returns the accepted reason with that code; false for any other.
func ByCode(code int) (Reason, bool) {
	for _, r := range Reasons {
		if r.Code == code {
			return r, true
		}
	}
	return Reason{}, false
}

// Name is the RFC 5280 name of any reason code a revocation record holds, or
// "reason N" for one RFC 5280 does not name.
func Name(code int) string {
	if r, ok := ByCode(code); ok {
		return r.Name
	}
	if r, ok := refused[code]; ok {
		return r.name
	}
	return "reason " + strconv.Itoa(code)
}

// Parse reads a reason given as its RFC 5280 name (any case) or number and
// refuses one SOTE does not accept, saying which it does.
func Parse(s string) (Reason, error) {
	s = strings.TrimSpace(s)
	code := -1
	if n, err := strconv.Atoi(s); err == nil {
		code = n
	} else {
		for _, r := range Reasons {
			if strings.EqualFold(r.Name, s) {
				return r, nil
			}
		}
		for c, r := range refused {
			if strings.EqualFold(r.name, s) {
				code = c
			}
		}
	}
	if r, ok := ByCode(code); ok {
		return r, nil
	}
	why := "it is not an RFC 5280 reason"
	if r, ok := refused[code]; ok {
		why = r.why
	}
	return Reason{}, fmt.Errorf("revocation reason %q is not accepted: %s; use one of %s", s, why, Allowed())
}

// Allowed lists the accepted reasons as "unspecified (0), keyCompromise (1), …".
func Allowed() string {
	parts := make([]string, len(Reasons))
	for i, r := range Reasons {
		parts[i] = fmt.Sprintf("%s (%d)", r.Name, r.Code)
	}
	return strings.Join(parts, ", ")
}
