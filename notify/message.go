package notify

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
)

// Notice is what the holder is told of a revocation.
type Notice struct {
	Serial         string // lower-case hex
	Names          []string
	Organisation   string
	Reason         string // RFC 5280 name
	RevokedAt      time.Time
	RequestedAt    time.Time
	InvalidityDate time.Time // zero: not given
	RequestedBy    string
}

// subjectNames is how many names the subject lists before "+N".
const subjectNames = 3

// Compose is the message (RFC 5322, plain text in UTF-8, Finnish and English)
// from from to the recipients, dated date.
func Compose(n Notice, from string, to []string, date time.Time) ([]byte, error) {
	sender, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("notify: sender %q: %w", from, err)
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	_, domain, _ := strings.Cut(sender.Address, "@")
	rcpts := make([]string, len(to))
	for i, a := range to {
		rcpts[i] = (&mail.Address{Address: a}).String()
	}
	names := n.Names
	if len(names) > subjectNames {
		names = append(names[:subjectNames:subjectNames], fmt.Sprintf("+%d", len(n.Names)-subjectNames))
	}
	subject := fmt.Sprintf("Varmenne peruttu / Certificate revoked: %s", n.Serial)
	if len(names) > 0 {
		subject += " (" + strings.Join(names, ", ") + ")"
	}

	var b bytes.Buffer
	header := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	header("Date", date.Format(time.RFC1123Z))
	header("From", sender.String())
	header("To", strings.Join(rcpts, ",\r\n "))
	header("Subject", fold(mime.QEncoding.Encode("utf-8", subject)))
	header("Message-ID", "<"+hex.EncodeToString(id)+"@"+domain+">")
	header("Auto-Submitted", "auto-generated")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(body(n), "\n", "\r\n"))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// fold puts each encoded word of a header after the first on a line of its own
// (RFC 5322 folding), so no line outgrows 78 characters.
func fold(encoded string) string { return strings.ReplaceAll(encoded, " =?", "\r\n =?") }

func body(n Notice) string {
	stamp := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }
	names := strings.Join(n.Names, ", ")
	if names == "" {
		names = "-"
	}
	var b strings.Builder
	line := func(fi, en, value string) { fmt.Fprintf(&b, "%s / %s: %s\n", fi, en, value) }
	b.WriteString("Varmenne on peruttu. / A certificate has been revoked.\n\n")
	line("Sarjanumero", "Serial number", n.Serial)
	line("Nimet", "Names", names)
	if n.Organisation != "" {
		line("Organisaatio", "Organisation", n.Organisation)
	}
	line("Syy", "Reason", n.Reason)
	line("Peruttu", "Revoked at", stamp(n.RevokedAt))
	if !n.InvalidityDate.IsZero() {
		line("Avain vaarantunut viimeistään", "Invalid since (key compromised)", stamp(n.InvalidityDate))
	}
	line("Pyytäjä", "Requested by", n.RequestedBy)
	if !n.RequestedAt.IsZero() {
		line("Pyydetty", "Requested at", stamp(n.RequestedAt))
	}
	b.WriteString(`
Peruminen on lopullinen: perutun varmenteen voimassaoloa ei voi palauttaa.
Jos tarvitset varmenteen, tilaa uusi; jos avain on vaarantunut, tee uusi avain.

Revocation is final: a revoked certificate cannot be reinstated. If you need a
certificate, order a new one; if the key was compromised, make a new key.

Saat tämän viestin, koska osoitteesi on varmenteen tilanneen ACME-tilin
yhteystieto tai organisaation teknisen yhteyshenkilön osoite.
You receive this message because your address is a contact of the ACME
account that ordered the certificate, or your organisation's technical contact.
`)
	return b.String()
}
