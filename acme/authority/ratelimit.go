package authority

import (
	"context"
	"fmt"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/store"
)

// RateLimits are how many requests the authority accepts in fixed windows, counted
// in the database so that every replica sees the same counts. A limit of 0 is off;
// the zero RateLimits is no limits at all (serve starts with DefaultRateLimits).
type RateLimits struct {
	NewOrdersPerAccount             int // per account per hour
	CertificatesPerOrganisation     int // per organisation per week, counted at finalize
	NewAccountsPerOrganisation      int // per organisation per day
	FailedValidationsPerName        int // per account and name per hour
	PendingAuthorizationsPerAccount int // pending authorizations an account holds at once
}

// DefaultRateLimits stop runaway clients without getting in the way of an
// organisation's real use: a SOTE organisation has at most some hundreds of services,
// each renewing a few times a year.
var DefaultRateLimits = RateLimits{
	NewOrdersPerAccount:             1000,
	CertificatesPerOrganisation:     5000,
	NewAccountsPerOrganisation:      100,
	FailedValidationsPerName:        5,
	PendingAuthorizationsPerAccount: 1000,
}

// The names of the limits, as refusals and the README name them, and their windows.
const (
	LimitNewOrders             = "new-orders-per-account"
	LimitCertificates          = "certificates-per-organisation"
	LimitNewAccounts           = "new-accounts-per-organisation"
	LimitFailedValidations     = "failed-validations-per-account-and-name"
	LimitPendingAuthorizations = "pending-authorizations-per-account"
)

var limitWindows = map[string]time.Duration{
	LimitNewOrders:         time.Hour,
	LimitCertificates:      7 * 24 * time.Hour,
	LimitNewAccounts:       24 * time.Hour,
	LimitFailedValidations: time.Hour,
}

// Validate refuses negative limits.
func (l RateLimits) Validate() error {
	for name, v := range map[string]int{
		LimitNewOrders: l.NewOrdersPerAccount, LimitCertificates: l.CertificatesPerOrganisation,
		LimitNewAccounts: l.NewAccountsPerOrganisation, LimitFailedValidations: l.FailedValidationsPerName,
		LimitPendingAuthorizations: l.PendingAuthorizationsPerAccount,
	} {
		if v < 0 {
			return fmt.Errorf("rate limit %s is %d; use a positive count, or 0 to switch it off", name, v)
		}
	}
	return nil
}

// RateLimitStore keeps the shared counters (store.SQL).
type RateLimitStore interface {
	TakeRateLimit(ctx context.Context, name, subject string, max int, window time.Duration, now time.Time) (store.RateLimitUse, error)
	RateLimitCount(ctx context.Context, name, subject string, max int, window time.Duration, now time.Time) (store.RateLimitUse, error)
	DeleteExpiredRateLimits(ctx context.Context, now time.Time) (int64, error)
	PendingAuthorizations(ctx context.Context, accountID string, now time.Time) (int, time.Time, error)
}

// take counts one use of limit by subject (what names it in the detail), or refuses
// with rateLimited when the window is full. max 0: the limit is off.
func (a *Authority) take(ctx context.Context, limit string, max int, subject, what string) error {
	if max <= 0 {
		return nil
	}
	now := a.now()
	use, err := a.store.TakeRateLimit(ctx, limit, subject, max, limitWindows[limit], now)
	if err != nil {
		return a.internal(ctx, "check the rate limits", err)
	}
	if use.Allowed {
		return nil
	}
	return a.rateLimited(ctx, limit, fmt.Sprintf("%s: %d of at most %d %s", what, use.Count, max, windowWord(limit)), use.Reset, now)
}

// rateLimited is the refusal of a full limit: it names the limit, the count and when
// the client may try again, in the detail and in Retry-After.
func (a *Authority) rateLimited(ctx context.Context, limit, counted string, reset, now time.Time) error {
	wait := max(reset.Sub(now), time.Second)
	a.log.InfoContext(ctx, "rate limited", "limit", limit, "counted", counted, "reset", reset)
	a.cfg.Metrics.RateLimited(limit)
	e := acme.Errorf(acme.RateLimited, "rate limit %s reached: %s; it resets at %s (retry after %s)",
		limit, counted, reset.UTC().Format(time.RFC3339), wait.Round(time.Second))
	e.RetryAfter = wait
	return e
}

func windowWord(limit string) string {
	switch limitWindows[limit] {
	case time.Hour:
		return "this hour"
	case 24 * time.Hour:
		return "today (UTC)"
	default:
		return "this week (weeks start Monday 00:00 UTC)"
	}
}

// limitNewOrder counts a new order of the account.
func (a *Authority) limitNewOrder(ctx context.Context, acct *store.Account) error {
	return a.take(ctx, LimitNewOrders, a.cfg.RateLimits.NewOrdersPerAccount, acct.ID,
		"new orders of account "+acct.ID)
}

// limitPendingAuthorizations refuses an order whose adding new pending
// authorizations would leave the account with more than the limit. The count is read
// before the order is created: concurrent orders of one account may overshoot by
// their own authorizations.
func (a *Authority) limitPendingAuthorizations(ctx context.Context, acct *store.Account, adding int, now time.Time) error {
	limit := a.cfg.RateLimits.PendingAuthorizationsPerAccount
	if limit <= 0 || adding == 0 {
		return nil
	}
	n, first, err := a.store.PendingAuthorizations(ctx, acct.ID, now)
	if err != nil {
		return a.internal(ctx, "check the rate limits", err)
	}
	if n+adding <= limit {
		return nil
	}
	return a.rateLimited(ctx, LimitPendingAuthorizations,
		fmt.Sprintf("account %s holds %d pending authorizations and this order would add %d, at most %d are allowed; complete or deactivate pending authorizations",
			acct.ID, n, adding, limit), first, now)
}

// limitCertificate counts a certificate of the order's organisation at finalize.
func (a *Authority) limitCertificate(ctx context.Context, o *store.Order) error {
	return a.take(ctx, LimitCertificates, a.cfg.RateLimits.CertificatesPerOrganisation, o.OrgOID,
		"certificates of organisation "+o.OrgOID)
}

// limitNewAccount counts a new account of the organisation.
func (a *Authority) limitNewAccount(ctx context.Context, orgOID string) error {
	return a.take(ctx, LimitNewAccounts, a.cfg.RateLimits.NewAccountsPerOrganisation, orgOID,
		"new accounts of organisation "+orgOID)
}

// failedValidationSubject names the account and the name as the certificate holds
// it (a wildcard with its "*.").
func failedValidationSubject(acct *store.Account, az *store.Authorization) (string, string) {
	name := az.Name
	if az.Wildcard {
		name = "*." + name
	}
	return acct.ID + " " + name, name
}

// limitFailedValidations refuses to start a validation of a name the account failed
// to prove too often this hour.
func (a *Authority) limitFailedValidations(ctx context.Context, acct *store.Account, az *store.Authorization) error {
	limit := a.cfg.RateLimits.FailedValidationsPerName
	if limit <= 0 {
		return nil
	}
	subject, name := failedValidationSubject(acct, az)
	now := a.now()
	use, err := a.store.RateLimitCount(ctx, LimitFailedValidations, subject, limit, limitWindows[LimitFailedValidations], now)
	if err != nil {
		return a.internal(ctx, "check the rate limits", err)
	}
	if use.Allowed {
		return nil
	}
	return a.rateLimited(ctx, LimitFailedValidations,
		fmt.Sprintf("account %s failed to validate %s %d times this hour, at most %d failures are allowed; fix the cause before trying again",
			acct.ID, name, use.Count, limit), use.Reset, now)
}

// countFailedValidation counts a validation that failed for a reason the client can
// fix (not an internal error of the server).
func (a *Authority) countFailedValidation(ctx context.Context, acct *store.Account, az *store.Authorization, verr error) {
	limit := a.cfg.RateLimits.FailedValidationsPerName
	if limit <= 0 || acme.IsKind(verr, acme.ServerInternal) {
		return
	}
	if _, ok := acme.AsError(verr); !ok {
		return
	}
	subject, _ := failedValidationSubject(acct, az)
	if _, err := a.store.TakeRateLimit(ctx, LimitFailedValidations, subject, limit, limitWindows[LimitFailedValidations], a.now()); err != nil {
		a.log.ErrorContext(ctx, "counting a failed validation failed", "authz", az.ID, "err", err)
	}
}

// deleteExpiredRateLimits removes ended windows; every replica's sweeper may run it.
func (a *Authority) deleteExpiredRateLimits(ctx context.Context) {
	if n, err := a.store.DeleteExpiredRateLimits(ctx, a.now()); err != nil && ctx.Err() == nil {
		a.log.ErrorContext(ctx, "deleting ended rate limit windows failed", "err", err)
	} else if n > 0 {
		a.log.DebugContext(ctx, "ended rate limit windows deleted", "windows", n)
	}
}
