package notify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/varmenne/varmenne/test/smtpserver"
)

var notice = Notice{Serial: "0a1b2c", Names: []string{"www.apteekki.example", "api.apteekki.example"}, Organisation: "1.2.246.10.1",
	Reason: "keyCompromise", RevokedAt: time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC), RequestedAt: time.Date(2026, 1, 31, 11, 58, 0, 0, time.UTC),
	InvalidityDate: time.Date(2026, 1, 30, 8, 0, 0, 0, time.UTC), RequestedBy: "Maija Meikäläinen, Apteekki Oy"}

// read parses a received message as a mail reader would.
func read(t *testing.T, data []byte) (*mail.Message, string, string) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("the message is not RFC 5322: %v\n%s", err, data)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatal(err)
	}
	return m, subject, string(body)
}

func TestSendAndCompose(t *testing.T) {
	srv := smtpserver.StartT(t, nil)
	c := Config{Server: srv.Addr(), From: "Varmenne <varmenne@ca.example>"}
	to := []string{"admin@apteekki.example", "it@vendor.example"}
	msg, err := Compose(notice, c.From, to, time.Date(2026, 1, 31, 12, 0, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.Send(context.Background(), to, msg)
	if err != nil || n != 2 {
		t.Fatalf("send: %d accepted, %v", n, err)
	}
	got := srv.Messages()
	if len(got) != 1 || got[0].From != "varmenne@ca.example" || !slices.Equal(got[0].To, to) {
		t.Fatalf("received %+v", got)
	}
	m, subject, body := read(t, got[0].Data)
	if subject != "Varmenne peruttu / Certificate revoked: 0a1b2c (www.apteekki.example, api.apteekki.example)" {
		t.Errorf("subject %q", subject)
	}
	if d, err := m.Header.Date(); err != nil || !d.Equal(time.Date(2026, 1, 31, 12, 0, 5, 0, time.UTC)) {
		t.Errorf("Date %v, %v", d, err)
	}
	if l, err := m.Header.AddressList("To"); err != nil || len(l) != 2 || l[1].Address != "it@vendor.example" {
		t.Errorf("To %v, %v", l, err)
	}
	if f, err := mail.ParseAddress(m.Header.Get("From")); err != nil || f.Address != "varmenne@ca.example" {
		t.Errorf("From %v, %v", f, err)
	}
	if id := m.Header.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@ca.example>") {
		t.Errorf("Message-ID %q", id)
	}
	for _, want := range []string{"0a1b2c", "www.apteekki.example, api.apteekki.example", "keyCompromise", "2026-01-31 12:00:00 UTC",
		"2026-01-30 08:00:00 UTC", "Maija Meikäläinen, Apteekki Oy", "Peruminen on lopullinen", "cannot be reinstated"} {
		if !strings.Contains(body, want) {
			t.Errorf("the body lacks %q:\n%s", want, body)
		}
	}
}

func TestSubjectEncodingAndManyNames(t *testing.T) {
	n := notice
	n.Names = []string{"a.example", "b.example", "c.example", "d.example", "e.example"}
	n.Serial = "ää" // not a serial; makes the subject need encoding
	msg, err := Compose(n, "varmenne@ca.example", []string{"x@y.example"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, subject, _ := read(t, msg)
	if subject != "Varmenne peruttu / Certificate revoked: ää (a.example, b.example, c.example, +2)" {
		t.Errorf("subject %q", subject)
	}
	head, body, _ := strings.Cut(string(msg), "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		for _, w := range strings.Fields(line) {
			if strings.HasPrefix(w, "=?") && len(w) > 75 {
				t.Errorf("encoded word of %d characters (RFC 2047: at most 75): %q", len(w), w)
			}
		}
	}
	for _, line := range strings.Split(body, "\r\n") {
		if len(line) > 76 {
			t.Errorf("quoted-printable line of %d characters: %q", len(line), line)
		}
	}
}

func TestStartTLSAndAuth(t *testing.T) {
	cert, pool := selfSigned(t)
	srv := smtpserver.StartT(t, func(s *smtpserver.Server) {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.Password = "s3cret"
	})
	c := Config{Server: srv.Addr(), From: "varmenne@ca.example", StartTLS: true, Username: "varmenne", Password: "s3cret", RootCAs: pool}
	if _, err := c.Send(context.Background(), []string{"x@y.example"}, []byte("Subject: t\r\n\r\nt\r\n")); err != nil {
		t.Fatal(err)
	}
	if m := srv.Messages(); len(m) != 1 || !m[0].TLS || m[0].User != "varmenne" {
		t.Errorf("received %+v: want one message after STARTTLS, authenticated", m)
	}
	c.Password = "wrong"
	if _, err := c.Send(context.Background(), []string{"x@y.example"}, []byte("Subject: t\r\n\r\nt\r\n")); err == nil || !Permanent(err) {
		t.Errorf("wrong password: %v, want a permanent refusal", err)
	}
	c.RootCAs = x509.NewCertPool()
	if _, err := c.Send(context.Background(), []string{"x@y.example"}, []byte("x")); err == nil {
		t.Error("a server certificate nobody trusts was accepted")
	}
	plain := smtpserver.StartT(t, nil)
	c = Config{Server: plain.Addr(), From: "varmenne@ca.example", StartTLS: true}
	if _, err := c.Send(context.Background(), []string{"x@y.example"}, []byte("x")); err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Errorf("server without STARTTLS: %v", err)
	}
	if len(plain.Messages()) != 0 {
		t.Error("a message went in clear although STARTTLS was required")
	}
}

func TestRefusals(t *testing.T) {
	rcpt := smtpserver.StartT(t, func(s *smtpserver.Server) { s.RefuseRcpt = "550 5.1.1 no such user" })
	data := smtpserver.StartT(t, func(s *smtpserver.Server) { s.RefuseData = "554 5.7.1 rejected as spam" })
	busy := smtpserver.StartT(t, func(s *smtpserver.Server) { s.RefuseRcpt = "451 4.3.0 try again later" })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name, server, detail string
		permanent            bool
	}{
		{"every recipient refused (5xx)", rcpt.Addr(), "no such user", true},
		{"message refused (5xx)", data.Addr(), "rejected as spam", true},
		{"recipient deferred (4xx)", busy.Addr(), "try again later", false},
		{"server down", down, "connect to", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Server: tc.server, From: "varmenne@ca.example", Timeout: 10 * time.Second}
			_, err := c.Send(context.Background(), []string{"x@y.example"}, []byte("Subject: t\r\n\r\nt\r\n"))
			if err == nil || !strings.Contains(err.Error(), tc.detail) || Permanent(err) != tc.permanent {
				t.Errorf("%v: want an error saying %q, permanent %v", err, tc.detail, tc.permanent)
			}
		})
	}
	for _, s := range []*smtpserver.Server{rcpt, data, busy} {
		if len(s.Messages()) != 0 {
			t.Errorf("a refused message was kept: %+v", s.Messages())
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		c      Config
		detail string // "": valid
	}{
		{"loopback without STARTTLS", Config{Server: "127.0.0.1:25", From: "v@ca.example"}, ""},
		{"localhost without STARTTLS", Config{Server: "localhost:25", From: "v@ca.example"}, ""},
		{"IPv6 loopback", Config{Server: "[::1]:25", From: "v@ca.example"}, ""},
		{"remote with STARTTLS and a password", Config{Server: "mail.example.fi:587", From: "Varmenne <v@ca.example>", StartTLS: true, Username: "u", Password: "p"}, ""},
		{"remote without STARTTLS", Config{Server: "mail.example.fi:25", From: "v@ca.example"}, "give --smtp-starttls"},
		{"no port", Config{Server: "mail.example.fi", From: "v@ca.example", StartTLS: true}, "give HOST:PORT"},
		{"sender not an address", Config{Server: "127.0.0.1:25", From: "varmenne"}, "--smtp-from"},
		{"user without password", Config{Server: "127.0.0.1:25", From: "v@ca.example", Username: "u"}, "give both or neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if (err == nil) != (tc.detail == "") || (err != nil && !strings.Contains(err.Error(), tc.detail)) {
				t.Errorf("%v, want %q", err, tc.detail)
			}
			if err != nil && tc.c.Password != "" && strings.Contains(err.Error(), tc.c.Password) {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

func TestRecipients(t *testing.T) {
	for _, tc := range []struct {
		name      string
		contacts  []string
		technical string
		want      []string
	}{
		{"contacts and technical contact", []string{"mailto:admin@apteekki.example"}, "IT-toimittaja Oy <it@vendor.example>", []string{"admin@apteekki.example", "it@vendor.example"}},
		{"domain case folded, local part kept", []string{"mailto:Admin@Apteekki.Example", "MAILTO:Admin@apteekki.example", "mailto:admin@apteekki.example"}, "",
			[]string{"Admin@Apteekki.Example", "admin@apteekki.example"}},
		{"technical contact same as a contact", []string{"mailto:it@vendor.example"}, "it@VENDOR.example", []string{"it@vendor.example"}},
		{"technical contact is a name only", nil, "Pekka Toimittaja", nil},
		{"technical contact is a list", nil, "a@vendor.example, Pekka <b@vendor.example>", []string{"a@vendor.example", "b@vendor.example"}},
		{"not mailto", []string{"tel:+358401234567", "https://example.fi"}, "", nil},
		{"invalid addresses", []string{"mailto:", "mailto:no-at-sign", "mailto:a@b\r\nBcc: evil@example.com", "mailto:x@localhost"}, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Recipients(tc.contacts, tc.technical); !slices.Equal(got, tc.want) {
				t.Errorf("%q, want %q", got, tc.want)
			}
		})
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtp test"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}
