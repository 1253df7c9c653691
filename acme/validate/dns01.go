package validate

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/varmenne/varmenne/acme"
	"golang.org/x/net/dns/dnsmessage"
)

// maxEchoValues is how many of the TXT values found a problem detail quotes.
const maxEchoValues = 3

// DNS01 looks up the TXT records at _acme-challenge.<name> through the configured
// resolver, following CNAMEs (organisations often delegate the label to their IT
// vendor's zone), and requires one of them to be the base64url SHA-256 digest of
// keyAuth (RFC 8555 section 8.4). A wildcard name "*.x" is proven at x.
//
// It returns nil or an *acme.Error: dns when the lookup fails (SERVFAIL, timeout) or
// finds no TXT record, incorrectResponse when the records hold other values, which
// the detail quotes, short and escaped.
func (v *Validator) DNS01(ctx context.Context, name, keyAuth string) error {
	host, err := checkHost("dns-01", strings.TrimPrefix(strings.ToLower(name), "*."))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	release, err := v.slot(ctx)
	if err != nil {
		return err
	}
	defer release()

	return v.txtProof(ctx, "dns-01", "_acme-challenge."+host, DNS01Value(keyAuth))
}

// txtProof requires one of the TXT records at label, CNAMEs followed, to be want;
// dns-01 and dns-account-01 differ only in the label.
func (v *Validator) txtProof(ctx context.Context, method, label, want string) error {
	set, err := v.lookup(ctx, label, dnsmessage.TypeTXT)
	if err != nil {
		return acme.Errorf(acme.DNS, "%s; %s needs an answer for the TXT record at %s", err, method, label)
	}
	if len(set.records) == 0 {
		what := "no TXT record"
		if set.nxdomain {
			what = "no such name (NXDOMAIN)"
		}
		return acme.Errorf(acme.DNS, "%s at %s%s; publish the TXT record %q there", what, label, set.via(), want)
	}
	var found []string
	for _, rr := range set.records {
		// A long value arrives in several 255-byte strings; together they are one value.
		value := strings.Join(rr.(*dnsmessage.TXTResource).TXT, "")
		if value == want {
			return nil
		}
		found = append(found, value)
	}
	return acme.Errorf(acme.IncorrectResponse, "the TXT records at %s%s hold %s, not %q",
		label, set.via(), echoList(found), want)
}

// DNS01Value is the TXT record value that proves the key authorization (RFC 8555
// section 8.4): the base64url SHA-256 digest of it.
func DNS01Value(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// checkHost lower-cases a name to validate and refuses what no challenge can prove:
// IP addresses, wildcards and names DNS cannot carry.
func checkHost(method, name string) (string, error) {
	host := strings.ToLower(strings.TrimSuffix(name, "."))
	switch {
	case isIPLiteral(host):
		return "", acme.Errorf(acme.Malformed, "%s validates DNS names; %s is an IP address", method, echo(host))
	case strings.HasPrefix(host, "*."):
		return "", acme.Errorf(acme.Malformed, "%s cannot prove control of the wildcard name %s", method, echo(host))
	case !validHostname(host):
		return "", acme.Errorf(acme.Malformed, "%s is not a valid DNS name", echo(host))
	}
	return host, nil
}

// echoList quotes the first few of values, each short and escaped.
func echoList(values []string) string {
	var parts []string
	for i, s := range values {
		if i == maxEchoValues {
			parts = append(parts, fmt.Sprintf("and %d more", len(values)-maxEchoValues))
			break
		}
		parts = append(parts, echo(s))
	}
	return strings.Join(parts, ", ")
}
