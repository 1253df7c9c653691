package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/varmenne/varmenne/audit"
	"github.com/varmenne/varmenne/internal/owneronly"
	"github.com/varmenne/varmenne/notify"
	"github.com/varmenne/varmenne/store"
)

// noticeFlags are serve's --smtp-* flags: the SMTP server through which the
// holder of a revoked certificate is told (notify).
type noticeFlags struct {
	server, from, username, passwordFile string
	startTLS                             bool
	mail                                 *notify.Config // set by validate; nil: no notices
}

func addNoticeFlags(fs *flag.FlagSet) *noticeFlags {
	f := &noticeFlags{}
	fs.StringVar(&f.server, "smtp-server", "", "HOST:PORT of the SMTP server that mails the holder of a revoked certificate a notice (default: none, no notice is sent)")
	fs.StringVar(&f.from, "smtp-from", "", "the address the revocation notices come from, e.g. \"Varmenne <varmenne@ca.example>\" (required with --smtp-server)")
	fs.BoolVar(&f.startTLS, "smtp-starttls", false, "upgrade the SMTP connection with STARTTLS (required unless --smtp-server is on loopback)")
	fs.StringVar(&f.username, "smtp-username", "", "user name for SMTP AUTH PLAIN (with --smtp-password-file)")
	fs.StringVar(&f.passwordFile, "smtp-password-file", "", "file holding the SMTP password, readable by its owner only (mode 0600)")
	return f
}

// validate checks the flags and reads the password file.
func (f *noticeFlags) validate() error {
	if f.server == "" {
		if f.from != "" || f.username != "" || f.passwordFile != "" || f.startTLS {
			return fmt.Errorf("--smtp-from, --smtp-starttls, --smtp-username and --smtp-password-file need --smtp-server")
		}
		return nil
	}
	if f.from == "" {
		return fmt.Errorf("--smtp-from is required with --smtp-server: the address the revocation notices come from")
	}
	c := &notify.Config{Server: f.server, From: f.from, StartTLS: f.startTLS, Username: f.username}
	if f.passwordFile != "" {
		if err := owneronly.Check(f.passwordFile); err != nil {
			return fmt.Errorf("--smtp-password-file: %w", err)
		}
		b, err := os.ReadFile(f.passwordFile)
		if err != nil {
			return fmt.Errorf("--smtp-password-file: %w", err)
		}
		if c.Password = strings.TrimRight(string(b), "\r\n"); c.Password == "" {
			return fmt.Errorf("--smtp-password-file %s is empty", f.passwordFile)
		}
	}
	if err := c.Validate(); err != nil {
		return err
	}
	f.mail = c
	return nil
}

// startNotices sends the revocation notices in the background until ctx ends,
// or says once that none are sent.
func startNotices(ctx context.Context, f *noticeFlags, st *store.SQL, log *slog.Logger) {
	if f.mail == nil {
		log.Warn("no SMTP server (--smtp-server): the holders of revoked certificates are not told by e-mail")
		return
	}
	s := &notify.Sender{Mail: *f.mail, St: st, Log: audit.New(st, nil), Logger: log.With("component", "notify")}
	log.Info("revocation notices go by e-mail", "smtp_server", f.mail.Server, "from", f.mail.From, "starttls", f.mail.StartTLS,
		"auth", f.mail.Username != "")
	go s.Run(ctx)
}
