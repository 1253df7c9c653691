package metrics

import (
	"context"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/validate"
)

// Validator is what proves control of names and checks CAA (acme/validate's
// *Validator; acme/authority's Validator). Every method returns nil or an
// *acme.Error.
type Validator interface {
	HTTP01(ctx context.Context, name, token, keyAuth string) error
	DNS01(ctx context.Context, name, keyAuth string) error
	TLSALPN01(ctx context.Context, name, keyAuth string) error
	DNSAccount01(ctx context.Context, name, accountURI, keyAuth string) error
	DNSPersist01(ctx context.Context, name string, wildcard bool, accountURI string, now time.Time) (*validate.PersistRecord, error)
	CAA(ctx context.Context, name, accountURI, method string) error
}

// Validations returns v counting, as it answers, every CAA check that does not
// allow issuance and every DNS lookup that failed. The answers are v's, unchanged.
func (m *Metrics) Validations(v Validator) Validator {
	if m == nil {
		return v
	}
	return countingValidator{v: v, m: m}
}

type countingValidator struct {
	v Validator
	m *Metrics
}

func (c countingValidator) HTTP01(ctx context.Context, name, token, keyAuth string) error {
	return c.validated(acme.ChallengeHTTP01, c.v.HTTP01(ctx, name, token, keyAuth))
}

func (c countingValidator) DNS01(ctx context.Context, name, keyAuth string) error {
	return c.validated(acme.ChallengeDNS01, c.v.DNS01(ctx, name, keyAuth))
}

func (c countingValidator) TLSALPN01(ctx context.Context, name, keyAuth string) error {
	return c.validated(acme.ChallengeTLSALPN01, c.v.TLSALPN01(ctx, name, keyAuth))
}

func (c countingValidator) DNSAccount01(ctx context.Context, name, accountURI, keyAuth string) error {
	return c.validated(acme.ChallengeDNSAccount01, c.v.DNSAccount01(ctx, name, accountURI, keyAuth))
}

func (c countingValidator) DNSPersist01(ctx context.Context, name string, wildcard bool, accountURI string, now time.Time) (*validate.PersistRecord, error) {
	rec, err := c.v.DNSPersist01(ctx, name, wildcard, accountURI, now)
	return rec, c.validated(acme.ChallengeDNSPersist01, err)
}

func (c countingValidator) CAA(ctx context.Context, name, accountURI, method string) error {
	err := c.v.CAA(ctx, name, accountURI, method)
	if err != nil {
		kind := problemOf(err)
		c.m.caaFailures.WithLabelValues(kind).Inc()
		if kind == string(acme.DNS) {
			c.m.dnsFailures.WithLabelValues("caa").Inc()
		}
	}
	return err
}

func (c countingValidator) validated(challenge string, err error) error {
	if err != nil && problemOf(err) == string(acme.DNS) {
		c.m.dnsFailures.WithLabelValues(challenge).Inc()
	}
	return err
}

// Validated counts the result of a challenge's validation, CAA included: err nil
// is valid, else its problem type is the outcome.
func (m *Metrics) Validated(challenge string, err error) {
	if m == nil {
		return
	}
	outcome := "valid"
	if err != nil {
		outcome = problemOf(err)
	}
	m.validations.WithLabelValues(challenge, outcome).Inc()
}

// problemOf is the problem type of a validator's error: its ACME kind, or
// serverInternal for an error that is not an *acme.Error.
func problemOf(err error) string {
	if ae, ok := acme.AsError(err); ok {
		return string(ae.Kind)
	}
	return string(acme.ServerInternal)
}
