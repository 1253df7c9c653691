// Package mailaddr is the one rule of what e-mail address varmenne writes to or
// keeps as a contact: a plain address (no display name, no list), local part and
// a domain of at least two labels, none of them empty.
package mailaddr

import (
	"errors"
	"net/mail"
	"strings"
)

// Errors of Plain.
var (
	ErrNotAnAddress = errors.New("not a valid e-mail address")
	ErrNoDomain     = errors.New("no valid domain")
)

// Plain checks that addr is one plain e-mail address as written (what
// net/mail.ParseAddress reads back unchanged, without a display name) whose domain
// has at least two non-empty labels.
func Plain(addr string) error {
	p, err := mail.ParseAddress(addr)
	if err != nil || p.Address != addr || p.Name != "" {
		return ErrNotAnAddress
	}
	_, domain, _ := strings.Cut(addr, "@")
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return ErrNoDomain
	}
	return nil
}

// Key is the form two addresses are compared in: the domain is case-insensitive,
// the local part is the receiving server's and kept as it is.
func Key(addr string) string {
	local, domain, _ := strings.Cut(addr, "@")
	return local + "@" + strings.ToLower(domain)
}
