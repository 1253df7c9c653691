package admin

import (
	"errors"
	"net/http"
)

// Problem types.
const (
	TypeUnauthenticated = "unauthenticated"
	TypeForbidden       = "forbidden"
	TypeDualControl     = "dualControl"
	TypeNotFound        = "notFound"
	TypeConflict        = "conflict"
	TypeGone            = "gone"
	TypeMalformed       = "malformed"
	TypeInternal        = "serverInternal"
)

// problemOf is how the HTTP side shows a refusal of kind k: its status and the last
// part of its problem type.
func problemOf(k Kind) (status int, typ string) {
	switch k {
	case Unauthenticated:
		return http.StatusUnauthorized, TypeUnauthenticated
	case Forbidden:
		return http.StatusForbidden, TypeForbidden
	case DualControl:
		return http.StatusForbidden, TypeDualControl
	case NotFound:
		return http.StatusNotFound, TypeNotFound
	case Conflict:
		return http.StatusConflict, TypeConflict
	case Gone:
		return http.StatusGone, TypeGone
	case Malformed:
		return http.StatusBadRequest, TypeMalformed
	}
	return http.StatusInternalServerError, TypeInternal
}

// httpError is a refusal of the HTTP side itself that no Kind describes: a body
// too large or of the wrong type, no such endpoint or method.
type httpError struct {
	status    int
	typ, text string
}

func (e *httpError) Error() string { return e.text }

// refusal is how err is shown: a status, a problem type and a detail; ok false
// means err is no refusal (an internal error).
func refusal(err error) (status int, typ, detail string, ok bool) {
	var he *httpError
	if errors.As(err, &he) {
		return he.status, he.typ, he.text, true
	}
	var e *Error
	if errors.As(err, &e) {
		status, typ = problemOf(e.Kind)
		return status, typ, e.Detail, true
	}
	return 0, "", "", false
}
