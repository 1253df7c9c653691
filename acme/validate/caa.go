package validate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/varmenne/varmenne/acme"
	"golang.org/x/net/dns/dnsmessage"
)

// maxEchoRecords is how many CAA records a refusal quotes.
const maxEchoRecords = 4

// caaCritical is the Issuer Critical Flag (RFC 8659 section 4.1): bit 0, the value 128.
const caaCritical = 0x80

// CAA decides whether the CAA records of name allow this CA to issue for it (RFC
// 8659), for the ACME account accountURI that proved control with method (RFC 8657).
// name may be a wildcard "*.x"; its records are looked up at x, and "issuewild"
// properties take precedence over "issue" ones for it.
//
// The relevant record set is the first found climbing from the name towards the top
// level. No records anywhere allow issuance; a lookup that fails (SERVFAIL, timeout)
// refuses it, because "could not look" is not "nothing there". Every refusal is an
// *acme.Error of kind caa saying which records refused and why.
func (v *Validator) CAA(ctx context.Context, name, accountURI, method string) error {
	shown := strings.ToLower(strings.TrimSuffix(name, "."))
	base, wildcard := strings.CutPrefix(shown, "*.")
	if isIPLiteral(base) || !validHostname(base) {
		return acme.Errorf(acme.Malformed, "CAA is checked for DNS names; %s is not one", echo(name))
	}
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	release, err := v.slot(ctx)
	if err != nil {
		return err
	}
	defer release()

	set, err := v.relevantCAA(ctx, base)
	var le *lookupError
	if errors.As(err, &le) && le.bogus {
		return acme.Errorf(acme.DNS, "%s; CAA is checked only on answers that pass DNSSEC validation, so issuance for %s is refused until the zone's signatures are repaired", err, shown)
	}
	if err != nil {
		return acme.Errorf(acme.CAA, "the CAA records of %s could not be checked: %s; issuance needs a definite answer, so it is refused until the lookup succeeds",
			shown, err)
	}
	if set == nil {
		return nil
	}

	var issue, issuewild []caaRecord
	for _, rr := range set.records {
		rec, ok := parseCAA(rr)
		if !ok {
			return acme.Errorf(acme.CAA, "a CAA record at %s cannot be parsed; fix or remove it", set.owner)
		}
		switch rec.tag {
		case "issue":
			issue = append(issue, rec)
		case "issuewild":
			issuewild = append(issuewild, rec)
		case "iodef":
			// Where the domain wants reports; nothing to decide.
		default:
			if rec.flags&caaCritical != 0 {
				return acme.Errorf(acme.CAA, "the CAA record %s at %s has the critical flag on the tag %s, which this CA does not understand; RFC 8659 forbids issuance",
					rec, set.owner, echo(rec.tag))
			}
		}
	}
	relevant, property := issue, "issue"
	if wildcard && len(issuewild) > 0 {
		relevant, property = issuewild, "issuewild"
	}
	if len(relevant) == 0 {
		return nil // only other properties: no restriction on who issues
	}
	var why []string
	for _, rec := range relevant {
		reason := v.caaRefusal(rec.value, accountURI, method)
		if reason == "" {
			return nil
		}
		if len(why) < maxEchoRecords {
			why = append(why, fmt.Sprintf("%s %s", rec, reason))
		}
	}
	if len(relevant) > maxEchoRecords {
		why = append(why, fmt.Sprintf("and %d more", len(relevant)-maxEchoRecords))
	}
	return acme.Errorf(acme.CAA, "the CAA %s records at %s%s do not allow this CA (%s) to issue for %s: %s",
		property, set.owner, set.via(), v.identities(), shown, strings.Join(why, "; "))
}

// relevantCAA climbs from name towards the top-level domain (the root is not asked)
// and returns the first non-empty CAA record set, or nil when there is none.
func (v *Validator) relevantCAA(ctx context.Context, name string) (*rrset, error) {
	for n := name; ; {
		set, err := v.lookup(ctx, n, typeCAA)
		if err != nil {
			return nil, err
		}
		if len(set.records) > 0 {
			set.owner = n // where the search found it, even when an alias holds the records
			return set, nil
		}
		_, parent, ok := strings.Cut(n, ".")
		if !ok {
			return nil, nil
		}
		n = parent
	}
}

// caaRecord is one CAA resource record.
type caaRecord struct {
	flags uint8
	tag   string // lower case: tags match without regard to case
	value string
}

func (r caaRecord) String() string {
	return fmt.Sprintf("%d %s %s", r.flags, r.tag, echo(r.value))
}

// parseCAA reads the wire form: flags, tag length, tag, value (RFC 8659 section 4.1).
func parseCAA(body dnsmessage.ResourceBody) (caaRecord, bool) {
	raw, ok := body.(*dnsmessage.UnknownResource)
	if !ok || len(raw.Data) < 2 {
		return caaRecord{}, false
	}
	n := int(raw.Data[1])
	if n == 0 || len(raw.Data) < 2+n {
		return caaRecord{}, false
	}
	tag := string(raw.Data[2 : 2+n])
	for _, c := range []byte(tag) {
		if !isAlnum(c) {
			return caaRecord{}, false
		}
	}
	return caaRecord{flags: raw.Data[0], tag: strings.ToLower(tag), value: string(raw.Data[2+n:])}, true
}

// caaRefusal returns "" when an issue or issuewild value authorizes this CA for the
// account and method, otherwise why it does not.
func (v *Validator) caaRefusal(value, accountURI, method string) string {
	issuer, params, ok := parseIssueValue(value)
	switch {
	case !ok:
		return "is malformed (RFC 8659 section 4.2), so it authorizes no CA"
	case issuer == "":
		return "authorizes no CA"
	case !slices.Contains(v.cfg.CAAIdentities, strings.ToLower(issuer)):
		return "names another CA"
	}
	seen := map[string]bool{}
	for _, p := range params {
		key := strings.ToLower(p.key)
		if seen[key] && (key == "accounturi" || key == "validationmethods") {
			// RFC 8657: a property with the parameter twice is unsatisfiable.
			return "repeats the parameter " + key
		}
		seen[key] = true
		switch key {
		case "accounturi":
			if accountURI == "" || p.value != accountURI {
				return "is limited to another ACME account"
			}
		case "validationmethods":
			methods := strings.Split(p.value, ",")
			for _, m := range methods {
				if !validMethodLabel(m) {
					return "has a malformed validationmethods list"
				}
			}
			if !slices.Contains(methods, method) {
				return fmt.Sprintf("does not allow the validation method %s", method)
			}
		}
		// Other parameters are the CA's to define (RFC 8659 section 4.2); this CA
		// defines none and ignores them.
	}
	return ""
}

type caaParam struct{ key, value string }

// parseIssueValue parses an issue or issuewild value (RFC 8659 section 4.2):
//
//	issue-value = *WSP [issuer-domain-name *WSP] [";" *WSP [parameters *WSP]]
//
// Empty parameters between semicolons are tolerated; anything else off the grammar
// makes the value malformed.
func parseIssueValue(value string) (issuer string, params []caaParam, ok bool) {
	head, tail, hasParams := strings.Cut(value, ";")
	issuer = strings.Trim(head, " \t")
	if issuer != "" && !validIssuerDomain(issuer) {
		return "", nil, false
	}
	if !hasParams {
		return issuer, nil, true
	}
	for part := range strings.SplitSeq(tail, ";") {
		part = strings.Trim(part, " \t")
		if part == "" {
			continue
		}
		key, val, found := strings.Cut(part, "=")
		key, val = strings.Trim(key, " \t"), strings.Trim(val, " \t")
		if !found || !validParamTag(key) || !validParamValue(val) {
			return "", nil, false
		}
		params = append(params, caaParam{key, val})
	}
	return issuer, params, true
}

// validIssuerDomain: label *("." label), label = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT)).
func validIssuerDomain(s string) bool {
	for label := range strings.SplitSeq(s, ".") {
		if !validParamTag(label) {
			return false
		}
	}
	return true
}

// validParamTag: (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT)), the same shape as a label.
func validParamTag(s string) bool {
	if s == "" || !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for _, c := range []byte(s) {
		if !isAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

// validParamValue: *(%x21-3A / %x3C-7E), printable ASCII less space and ";".
func validParamValue(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x21 || c > 0x7e || c == ';' {
			return false
		}
	}
	return true
}

// validMethodLabel: 1*(ALPHA / DIGIT / "-") (RFC 8657 section 4).
func validMethodLabel(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !isAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// identities lists the CA's CAA identities for a detail.
func (v *Validator) identities() string {
	if len(v.cfg.CAAIdentities) == 0 {
		return "no CAA identity configured"
	}
	return strings.Join(v.cfg.CAAIdentities, ", ")
}

// CAAIdentities are the CA's CAA issuer domain names as configured, normalised.
func (v *Validator) CAAIdentities() []string {
	return append([]string(nil), v.cfg.CAAIdentities...)
}
