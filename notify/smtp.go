// Package notify tells a revoked certificate's holder by e-mail: it drains the
// store's notice outbox (every revocation queues one in its transaction), finds
// the holder's addresses, sends a plain-text message through an SMTP server and
// records each try as an audit event.
//
// It owns the message and the SMTP conversation. It must never change or undo a
// revocation: a notice that cannot be sent is recorded as failed, and the
// revocation stands.
package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/smtp"
	"net/textproto"
	"strings"

	"github.com/varmenne/varmenne/internal/mailaddr"
	"time"
)

// Config is the SMTP server the notices go through.
type Config struct {
	Server   string // HOST:PORT
	From     string // the sender address, e.g. "Varmenne <varmenne@ca.example>"
	StartTLS bool   // upgrade with STARTTLS before anything else is said; required off loopback
	Username string // "": no authentication
	Password string // never logged
	// RootCAs verifies the server's certificate after STARTTLS; nil: the system's.
	RootCAs *x509.CertPool
	// HelloName is the name this client gives in EHLO; "": "localhost".
	HelloName string
	// Timeout bounds one conversation; zero: one minute.
	Timeout time.Duration
}

// Validate checks the configuration; the error names the flag to fix.
func (c *Config) Validate() error {
	host, port, err := net.SplitHostPort(c.Server)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("--smtp-server %q: give HOST:PORT, e.g. mail.example.fi:587", c.Server)
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return fmt.Errorf("--smtp-from %q is not an e-mail address: give the address the notices come from, e.g. varmenne@ca.example", c.From)
	}
	if !c.StartTLS && !loopback(host) {
		return fmt.Errorf("--smtp-server %s is not on loopback: give --smtp-starttls, so that the notices and any password do not cross the network in clear", c.Server)
	}
	if (c.Username == "") != (c.Password == "") {
		return errors.New("--smtp-username and --smtp-password-file go together: give both or neither")
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// Permanent reports whether err is a refusal the server will repeat (an SMTP
// 5xx reply), so that trying again is useless.
func Permanent(err error) bool {
	var te *textproto.Error
	return errors.As(err, &te) && te.Code >= 500 && te.Code < 600
}

// Send delivers msg from c.From to the recipients in one SMTP conversation. A
// recipient the server refuses for good (5xx) is left out; it returns how many
// were accepted. It fails when none was, or when the conversation fails.
func (c *Config) Send(ctx context.Context, to []string, msg []byte) (int, error) {
	if len(to) == 0 {
		return 0, errors.New("notify: no recipient")
	}
	from, err := mail.ParseAddress(c.From)
	if err != nil {
		return 0, fmt.Errorf("notify: sender %q: %w", c.From, err)
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.Server)
	if err != nil {
		return 0, fmt.Errorf("notify: connect to %s: %w", c.Server, err)
	}
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		conn.Close()
		return 0, err
	}
	host, _, _ := net.SplitHostPort(c.Server)
	sc, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return 0, fmt.Errorf("notify: %s: greeting: %w", c.Server, err)
	}
	defer sc.Close()
	step := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("notify: %s: %s: %w", c.Server, what, err)
		}
		return nil
	}
	hello := c.HelloName
	if hello == "" {
		hello = "localhost"
	}
	if err := step("EHLO", sc.Hello(hello)); err != nil {
		return 0, err
	}
	if c.StartTLS {
		if ok, _ := sc.Extension("STARTTLS"); !ok {
			return 0, fmt.Errorf("notify: %s does not offer STARTTLS, which --smtp-starttls requires", c.Server)
		}
		if err := step("STARTTLS", sc.StartTLS(&tls.Config{ServerName: host, RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12})); err != nil {
			return 0, err
		}
	}
	if c.Username != "" {
		if err := step("AUTH", sc.Auth(smtp.PlainAuth("", c.Username, c.Password, host))); err != nil {
			return 0, err
		}
	}
	if err := step("MAIL FROM", sc.Mail(from.Address)); err != nil {
		return 0, err
	}
	accepted := 0
	var refused error
	for _, r := range to {
		err := sc.Rcpt(r)
		switch {
		case err == nil:
			accepted++
		case Permanent(err):
			refused = step("RCPT TO", err)
		default:
			return 0, step("RCPT TO", err)
		}
	}
	if accepted == 0 {
		return 0, refused
	}
	w, err := sc.Data()
	if err := step("DATA", err); err != nil {
		return 0, err
	}
	if _, err := w.Write(msg); err != nil {
		return 0, step("DATA", err)
	}
	if err := step("end of DATA", w.Close()); err != nil {
		return 0, err
	}
	_ = sc.Quit() // the message is accepted; a lost QUIT changes nothing
	return accepted, nil
}

// Recipients are the holder's addresses: the account's mailto: contacts and the
// technical contact (free text; used when it is, or holds, an address list),
// each validated, without duplicates (the domain compared without case), in
// that order. Nothing else is ever a recipient.
func Recipients(contacts []string, technical string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(a string) {
		if mailaddr.Plain(a) != nil {
			return
		}
		if key := mailaddr.Key(a); !seen[key] {
			seen[key] = true
			out = append(out, a)
		}
	}
	for _, c := range contacts {
		if len(c) > 7 && strings.EqualFold(c[:7], "mailto:") {
			add(c[7:])
		}
	}
	if list, err := mail.ParseAddressList(strings.TrimSpace(technical)); err == nil {
		for _, a := range list {
			add(a.Address)
		}
	}
	return out
}
