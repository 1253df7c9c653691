package policy

import (
	"strconv"

	"github.com/varmenne/varmenne/acme"
)

// Refusals collects the refused identifiers of one request, so a multi-name order
// is refused as a whole with one subproblem per refused identifier.
type Refusals struct {
	kind acme.ErrorKind
	subs []acme.Subproblem
}

// Add records that id is refused for detail, with a problem kind for it alone.
// The whole refusal takes the most serious kind: malformed (the request is broken)
// over unsupportedIdentifier over any policy kind.
func (r *Refusals) Add(id acme.Identifier, kind acme.ErrorKind, detail string) {
	r.subs = append(r.subs, acme.Subproblem{Type: kind.URN(), Detail: detail, Identifier: &id})
	switch {
	case r.kind == "":
		r.kind = kind
	case kind == acme.Malformed:
		r.kind = kind
	case kind == acme.UnsupportedIdentifier && r.kind != acme.Malformed:
		r.kind = kind
	}
}

// Len is the number of refused identifiers.
func (r *Refusals) Len() int { return len(r.subs) }

// Err is nil when nothing was refused, else the *acme.Error: its detail is the one
// subproblem's, or points at the subproblems when there are several.
func (r *Refusals) Err() error {
	if len(r.subs) == 0 {
		return nil
	}
	detail := r.subs[0].Detail
	if len(r.subs) > 1 {
		detail = "the request was refused for " + strconv.Itoa(len(r.subs)) + " identifiers; see the subproblems"
	}
	return &acme.Error{Kind: r.kind, Detail: detail, Subproblems: r.subs}
}
