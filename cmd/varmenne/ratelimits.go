package main

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/varmenne/varmenne/acme/authority"
)

// addRateLimitFlags adds serve's --limit-* flags, each defaulting to
// authority.DefaultRateLimits; 0 switches a limit off.
func addRateLimitFlags(fs *flag.FlagSet) *authority.RateLimits {
	l := authority.DefaultRateLimits
	fs.Var((*limitCount)(&l.NewOrdersPerAccount), "limit-new-orders-per-account",
		"new orders one account may create per hour (0: no limit)")
	fs.Var((*limitCount)(&l.CertificatesPerOrganisation), "limit-certificates-per-organisation",
		"certificates one organisation may get per week, counted at finalize (0: no limit)")
	fs.Var((*limitCount)(&l.NewAccountsPerOrganisation), "limit-new-accounts-per-organisation",
		"new accounts one organisation may create per day (0: no limit)")
	fs.Var((*limitCount)(&l.FailedValidationsPerName), "limit-failed-validations",
		"failed validations per account and name per hour before further validations are refused (0: no limit)")
	fs.Var((*limitCount)(&l.PendingAuthorizationsPerAccount), "limit-pending-authorizations",
		"pending authorizations one account may hold at once (0: no limit)")
	return &l
}

// limitCount is a rate limit flag: a count, 0 for no limit, never negative.
type limitCount int

func (c *limitCount) String() string { return strconv.Itoa(int(*c)) }
func (c *limitCount) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a count: give a whole number, or 0 for no limit", s)
	}
	*c = limitCount(n)
	return nil
}
