package validate

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/varmenne/varmenne/acme"
	"golang.org/x/net/dns/dnsmessage"
)

// Bounds of dns-persist-01: a name publishes one record per CA it uses, so a handful
// is normal; many more are stale records or an attempt to make the CA parse a lot.
const (
	// MaxPersistRecords is how many TXT records at _validation-persist.<name> are
	// read; a set with more is refused as a whole rather than read in part, so which
	// records count never depends on the order a resolver returns them in.
	MaxPersistRecords = 10
	// MaxPersistRecordLen bounds one record's value (its strings joined).
	MaxPersistRecordLen = 1024
)

// PersistLabel is the label under which dns-persist-01 records live
// (draft-ietf-acme-dns-persist).
const PersistLabel = "_validation-persist"

// PersistRecord is the dns-persist-01 record that proved control, for the
// authorisation's and the audit log's record of the validation.
type PersistRecord struct {
	Owner        string    // the name the record was found at, after CNAMEs
	Value        string    // the TXT value as published
	PersistUntil time.Time // zero when the record sets no persistUntil
	Wildcard     bool      // the record carries policy=wildcard
}

// DNSPersist01 proves control of name (an authorisation's base name; wildcard says
// whether a wildcard "*.name" is asked) with a persistent TXT record at
// _validation-persist.<name>, CNAMEs followed (draft-ietf-acme-dns-persist). The
// record has the CAA issue-value syntax (RFC 8659 section 4.2):
//
//	<issuer-domain-name>; accounturi=<account URL>[; persistUntil=<unix time>][; policy=wildcard]
//
// One record must name one of this CA's CAA identities, accountURI exactly, a
// persistUntil (if any) after now, and policy=wildcard when a wildcard is asked.
// Unknown parameters are ignored. now is the authority's clock.
//
// It returns the record that proved control, or an *acme.Error: dns when the lookup
// fails or finds nothing, unauthorized when the records name another account or CA,
// have expired or do not allow wildcards, incorrectResponse when they cannot be
// parsed or there are more than MaxPersistRecords. The detail says which check
// failed for which record.
func (v *Validator) DNSPersist01(ctx context.Context, name string, wildcard bool, accountURI string, now time.Time) (*PersistRecord, error) {
	host, err := checkHost("dns-persist-01", strings.TrimPrefix(strings.ToLower(name), "*."))
	if err != nil {
		return nil, err
	}
	if accountURI == "" {
		return nil, acme.Errorf(acme.ServerInternal, "dns-persist-01 cannot be checked: the CA does not know its account URLs")
	}
	if len(v.cfg.CAAIdentities) == 0 {
		return nil, acme.Errorf(acme.Unauthorized, "dns-persist-01 is not usable at this CA: it has no CAA identity for a record to name")
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	release, err := v.slot(ctx)
	if err != nil {
		return nil, err
	}
	defer release()

	label := PersistLabel + "." + host
	example := fmt.Sprintf("%s; accounturi=%s", v.cfg.CAAIdentities[0], accountURI)
	set, err := v.lookup(ctx, label, dnsmessage.TypeTXT)
	if err != nil {
		return nil, acme.Errorf(acme.DNS, "%s; dns-persist-01 needs an answer for the TXT record at %s", err, label)
	}
	if len(set.records) == 0 {
		what := "no TXT record"
		if set.nxdomain {
			what = "no such name (NXDOMAIN)"
		}
		return nil, acme.Errorf(acme.DNS, "%s at %s%s; publish the TXT record %q there", what, label, set.via(), example)
	}
	if len(set.records) > MaxPersistRecords {
		return nil, acme.Errorf(acme.IncorrectResponse, "%s%s holds %d TXT records; dns-persist-01 reads at most %d, so remove the stale ones",
			label, set.via(), len(set.records), MaxPersistRecords)
	}
	var why []string
	ours := false     // some record names this CA: then records of other CAs are noise
	malformed := true // every refusal shown is of a record that does not parse
	for _, rr := range set.records {
		value := strings.Join(rr.(*dnsmessage.TXTResource).TXT, "")
		rec, reason, forUs := v.persistRefusal(value, wildcard, accountURI, now)
		if reason == "" {
			rec.Owner = set.owner
			return rec, nil
		}
		if forUs && !ours {
			ours, why, malformed = true, nil, true
		}
		if forUs || !ours {
			why = append(why, echo(value)+" "+reason)
			malformed = malformed && strings.HasPrefix(reason, refusedMalformed)
		}
	}
	kind := acme.Unauthorized
	if malformed {
		kind = acme.IncorrectResponse
	}
	shown := why
	if len(why) > maxEchoRecords {
		shown = append(why[:maxEchoRecords:maxEchoRecords], fmt.Sprintf("and %d more", len(why)-maxEchoRecords))
	}
	return nil, acme.Errorf(kind, "no TXT record at %s%s authorizes this account: %s", label, set.via(), strings.Join(shown, "; "))
}

// refusedMalformed starts the reason of a record that cannot be parsed.
const refusedMalformed = "is malformed"

// persistRefusal checks one record value. It returns the record and "" when the value
// authorizes the account, otherwise why not, and whether the value names this CA (a
// record for another CA is expected beside ours and matters only when ours is
// missing).
func (v *Validator) persistRefusal(value string, wildcard bool, accountURI string, now time.Time) (rec *PersistRecord, reason string, forUs bool) {
	if len(value) > MaxPersistRecordLen {
		return nil, fmt.Sprintf("%s: it is longer than %d bytes", refusedMalformed, MaxPersistRecordLen), false
	}
	issuer, params, ok := parseIssueValue(value)
	switch {
	case !ok:
		return nil, refusedMalformed + " (the syntax is that of a CAA issue value, RFC 8659 section 4.2)", false
	case issuer == "":
		return nil, refusedMalformed + ": it names no CA", false
	case !slices.Contains(v.cfg.CAAIdentities, strings.ToLower(issuer)):
		return nil, fmt.Sprintf("names another CA (%s, not %s)", issuer, v.identities()), false
	}
	rec = &PersistRecord{Value: value}
	var account string
	seen := map[string]bool{}
	for _, p := range params {
		key := strings.ToLower(p.key)
		switch key {
		case "accounturi", "persistuntil", "policy":
			if seen[key] {
				return nil, fmt.Sprintf("%s: it repeats the parameter %s", refusedMalformed, p.key), true
			}
			seen[key] = true
		}
		switch key {
		case "accounturi":
			account = p.value
		case "persistuntil":
			secs, err := strconv.ParseInt(p.value, 10, 64)
			if err != nil || secs <= 0 || strings.HasPrefix(p.value, "+") {
				return nil, fmt.Sprintf("%s: persistUntil=%s is not a Unix time in seconds", refusedMalformed, echo(p.value)), true
			}
			rec.PersistUntil = time.Unix(secs, 0).UTC()
		case "policy":
			// Values are compared without regard to case; an unknown policy is ignored,
			// and so grants nothing.
			rec.Wildcard = strings.EqualFold(p.value, "wildcard")
		}
	}
	switch {
	case account == "":
		return nil, "has no accounturi parameter naming the ACME account", true
	case account != accountURI:
		return nil, fmt.Sprintf("names another account (%s, not %s)", echo(account), accountURI), true
	case !rec.PersistUntil.IsZero() && !now.Before(rec.PersistUntil):
		return nil, "has expired: persistUntil passed on " + rec.PersistUntil.Format(time.RFC3339), true
	case wildcard && !rec.Wildcard:
		return nil, "does not allow wildcard names: a wildcard needs policy=wildcard in the record", true
	}
	return rec, "", true
}

// DNSAccountLabel is the label dns-account-01 puts in front of _acme-challenge for the
// account (draft-ietf-acme-dns-account-label): "_" and the lower-case base32 of the
// first 10 bytes of the SHA-256 digest of the account URL, 16 characters.
func DNSAccountLabel(accountURI string) string {
	sum := sha256.Sum256([]byte(accountURI))
	return "_" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:10]))
}

// DNSAccount01 proves control of name as dns-01 does, with the TXT record at
// <DNSAccountLabel(accountURI)>._acme-challenge.<name>, so that several accounts can
// each hold their own record (or CNAME delegation) for one name. The value is
// DNS01Value(keyAuth). A wildcard "*.x" is proven at x.
func (v *Validator) DNSAccount01(ctx context.Context, name, accountURI, keyAuth string) error {
	host, err := checkHost("dns-account-01", strings.TrimPrefix(strings.ToLower(name), "*."))
	if err != nil {
		return err
	}
	if accountURI == "" {
		return acme.Errorf(acme.ServerInternal, "dns-account-01 cannot be checked: the CA does not know its account URLs")
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	release, err := v.slot(ctx)
	if err != nil {
		return err
	}
	defer release()
	return v.txtProof(ctx, "dns-account-01", DNSAccountLabel(accountURI)+"._acme-challenge."+host, DNS01Value(keyAuth))
}
