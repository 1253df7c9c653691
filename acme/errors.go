// Package acme holds the RFC 8555 vocabulary shared by every part of the server:
// wire objects, statuses, and the typed errors that acme/server renders as RFC 7807
// problem documents. It has no behaviour of its own and imports nothing of the project.
package acme

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrorKind is the last part of an ACME problem type, urn:ietf:params:acme:error:<kind>.
type ErrorKind string

// The problem types of RFC 8555 section 6.7 and draft-ietf-acme-profiles.
const (
	AccountDoesNotExist     ErrorKind = "accountDoesNotExist"
	AlreadyReplaced         ErrorKind = "alreadyReplaced"
	AlreadyRevoked          ErrorKind = "alreadyRevoked"
	BadCSR                  ErrorKind = "badCSR"
	BadNonce                ErrorKind = "badNonce"
	BadPublicKey            ErrorKind = "badPublicKey"
	BadRevocationReason     ErrorKind = "badRevocationReason"
	BadSignatureAlgorithm   ErrorKind = "badSignatureAlgorithm"
	CAA                     ErrorKind = "caa"
	Compound                ErrorKind = "compound"
	Connection              ErrorKind = "connection"
	DNS                     ErrorKind = "dns"
	ExternalAccountRequired ErrorKind = "externalAccountRequired"
	IncorrectResponse       ErrorKind = "incorrectResponse"
	InvalidContact          ErrorKind = "invalidContact"
	InvalidProfile          ErrorKind = "invalidProfile"
	Malformed               ErrorKind = "malformed"
	OrderNotReady           ErrorKind = "orderNotReady"
	RateLimited             ErrorKind = "rateLimited"
	RejectedIdentifier      ErrorKind = "rejectedIdentifier"
	ServerInternal          ErrorKind = "serverInternal"
	TLS                     ErrorKind = "tls"
	Unauthorized            ErrorKind = "unauthorized"
	UnsupportedContact      ErrorKind = "unsupportedContact"
	UnsupportedIdentifier   ErrorKind = "unsupportedIdentifier"
	UserActionRequired      ErrorKind = "userActionRequired"
)

const errorNamespace = "urn:ietf:params:acme:error:"

// URN is the full problem type of the kind.
func (k ErrorKind) URN() string { return errorNamespace + string(k) }

// defaultStatus is the HTTP status a problem of each kind is answered with unless the
// error says otherwise.
var defaultStatus = map[ErrorKind]int{
	AccountDoesNotExist:     http.StatusBadRequest,
	AlreadyReplaced:         http.StatusConflict,
	AlreadyRevoked:          http.StatusBadRequest,
	BadCSR:                  http.StatusBadRequest,
	BadNonce:                http.StatusBadRequest,
	BadPublicKey:            http.StatusBadRequest,
	BadRevocationReason:     http.StatusBadRequest,
	BadSignatureAlgorithm:   http.StatusBadRequest,
	CAA:                     http.StatusForbidden,
	Compound:                http.StatusForbidden,
	Connection:              http.StatusBadRequest,
	DNS:                     http.StatusBadRequest,
	ExternalAccountRequired: http.StatusForbidden,
	IncorrectResponse:       http.StatusForbidden,
	InvalidContact:          http.StatusBadRequest,
	InvalidProfile:          http.StatusBadRequest,
	Malformed:               http.StatusBadRequest,
	OrderNotReady:           http.StatusForbidden,
	RateLimited:             http.StatusTooManyRequests,
	RejectedIdentifier:      http.StatusBadRequest,
	ServerInternal:          http.StatusInternalServerError,
	TLS:                     http.StatusBadRequest,
	Unauthorized:            http.StatusForbidden,
	UnsupportedContact:      http.StatusBadRequest,
	UnsupportedIdentifier:   http.StatusBadRequest,
	UserActionRequired:      http.StatusForbidden,
}

// Subproblem is one identifier's part of a refusal (RFC 8555 section 6.7.1).
type Subproblem struct {
	Type       string      `json:"type"`
	Detail     string      `json:"detail,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
}

// Error is the typed error every layer below acme/server returns for a refusal the
// client should see. Detail speaks to the person at the client; it must never carry
// internal error text.
type Error struct {
	Kind        ErrorKind
	Detail      string
	Status      int           // 0: the kind's default status
	Subproblems []Subproblem  // one per refused identifier
	Algorithms  []string      // for badSignatureAlgorithm: what the server accepts
	Location    string        // for a key-change conflict: the account that holds the key
	RetryAfter  time.Duration // for rateLimited: when the client may try again (Retry-After)
}

// Errorf makes an *Error of the given kind with a formatted detail.
func Errorf(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return string(e.Kind) + ": " + e.Detail }

// WithStatus returns e with an explicit HTTP status (e.g. 405, 413, 415, 409).
func (e *Error) WithStatus(status int) *Error { e.Status = status; return e }

// HTTPStatus is the status the problem is answered with.
func (e *Error) HTTPStatus() int {
	if e.Status != 0 {
		return e.Status
	}
	if s, ok := defaultStatus[e.Kind]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Problem is an RFC 7807 problem document as it goes on the wire.
type Problem struct {
	Type        string       `json:"type"`
	Detail      string       `json:"detail,omitempty"`
	Status      int          `json:"status,omitempty"`
	Subproblems []Subproblem `json:"subproblems,omitempty"`
	Algorithms  []string     `json:"algorithms,omitempty"`
}

// Problem renders e as a problem document.
func (e *Error) Problem() *Problem {
	return &Problem{
		Type:        e.Kind.URN(),
		Detail:      e.Detail,
		Status:      e.HTTPStatus(),
		Subproblems: e.Subproblems,
		Algorithms:  e.Algorithms,
	}
}

// AsError finds an *Error in err's chain.
func AsError(err error) (*Error, bool) {
	var ae *Error
	if errors.As(err, &ae) {
		return ae, true
	}
	return nil, false
}

// IsKind reports whether err carries an *Error of the kind.
func IsKind(err error, kind ErrorKind) bool {
	ae, ok := AsError(err)
	return ok && ae.Kind == kind
}
