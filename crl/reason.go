package crl

import (
	"fmt"
	"strconv"
	"strings"
)

// RFC 5280 CRLReason codes.
const (
	Unspecified          = 0
	KeyCompromise        = 1
	CACompromise         = 2
	AffiliationChanged   = 3
	Superseded           = 4
	CessationOfOperation = 5
	CertificateHold      = 6
	RemoveFromCRL        = 8
	PrivilegeWithdrawn   = 9
	AACompromise         = 10
)

var reasonNames = map[int]string{
	Unspecified:          "unspecified",
	KeyCompromise:        "keyCompromise",
	CACompromise:         "cACompromise",
	AffiliationChanged:   "affiliationChanged",
	Superseded:           "superseded",
	CessationOfOperation: "cessationOfOperation",
	CertificateHold:      "certificateHold",
	RemoveFromCRL:        "removeFromCRL",
	PrivilegeWithdrawn:   "privilegeWithdrawn",
	AACompromise:         "aACompromise",
}

// subscriberReasons are the reasons a subscriber's certificate may be revoked for.
// certificateHold and removeFromCRL would make revocation reversible, which SOTE
// forbids; cACompromise and aACompromise concern the CA, not one certificate.
var subscriberReasons = []int{Unspecified, KeyCompromise, AffiliationChanged, Superseded, CessationOfOperation, PrivilegeWithdrawn}

// ReasonName is the RFC 5280 name of a reason code, or "reason N" for an unknown one.
func ReasonName(code int) string {
	if n, ok := reasonNames[code]; ok {
		return n
	}
	return "reason " + strconv.Itoa(code)
}

// ParseReason reads a subscriber revocation reason given as an RFC 5280 name
// (keyCompromise, any case) or its number, and refuses the reasons SOTE does not
// allow, saying which it does.
func ParseReason(s string) (int, error) {
	s = strings.TrimSpace(s)
	code := -1
	if n, err := strconv.Atoi(s); err == nil {
		code = n
	} else {
		for c, name := range reasonNames {
			if strings.EqualFold(name, s) {
				code = c
			}
		}
	}
	for _, ok := range subscriberReasons {
		if code == ok {
			return code, nil
		}
	}
	allowed := make([]string, len(subscriberReasons))
	for i, c := range subscriberReasons {
		allowed[i] = fmt.Sprintf("%s (%d)", reasonNames[c], c)
	}
	why := "it is not an RFC 5280 reason"
	switch code {
	case CertificateHold, RemoveFromCRL:
		why = "SOTE revocation is final"
	case CACompromise, AACompromise:
		why = "it concerns the CA, not one certificate"
	}
	return 0, fmt.Errorf("revocation reason %q is not accepted: %s; use one of %s", s, why, strings.Join(allowed, ", "))
}
