package admin

import (
	"fmt"
	"time"
)

// Kind is what sort of refusal an Error is. The front ends choose how to show each
// kind (the admin API as an HTTP status and a problem type); the service never
// does.
type Kind int

// Kinds of refusal. The zero Kind is Internal, so an Error made without one never
// passes for the client's fault.
const (
	// Internal: the server failed; the detail says so without the cause, which
	// is in the log.
	Internal Kind = iota
	// Unauthenticated: no credential, or one that belongs to no operator.
	Unauthenticated
	// Forbidden: the operator's role does not allow it, or the form is not theirs.
	Forbidden
	// DualControl: an administrator would approve their own EAB request.
	DualControl
	// NotFound: the request, key, organisation or certificate does not exist.
	NotFound
	// Conflict: the object's state does not allow it (already decided, suspended,
	// revoked…).
	Conflict
	// Gone: the EAB key was handed over already and is never shown again.
	Gone
	// Malformed: the input is missing, too long or not what the rule takes.
	Malformed
	// RateLimited: too many logins were refused from the request's source or for
	// its credential; the credential was not checked. RetryAfter says when to try
	// again.
	RateLimited
)

var kindNames = [...]string{Internal: "Internal", Unauthenticated: "Unauthenticated", Forbidden: "Forbidden",
	DualControl: "DualControl", NotFound: "NotFound", Conflict: "Conflict", Gone: "Gone", Malformed: "Malformed",
	RateLimited: "RateLimited"}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Error is a refusal the operator sees: its kind and a detail saying what to do.
type Error struct {
	Kind   Kind
	Detail string
	// RetryAfter, when positive, is how long until the refusal ends (RateLimited).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Detail }

func errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}
