package authority

// ACME Renewal Information (RFC 9773): the suggested renewal window of each
// certificate, and newOrder's "replaces".
//
// The default window is centred on two thirds of the certificate's lifetime and a
// sixth of it wide: it opens at 7/12 of the lifetime and closes at 3/4, so a client
// that renews anywhere in it still has a quarter of the lifetime (about three months
// of a one-year certificate) to retry before expiry. A revoked certificate's window
// is in the past, and so is a window an operator moved (varmenne renew-early): an
// ARI-capable client then renews at its next check.
//
// An order may replace a certificate of its own organisation, not only of its own
// account: an organisation moves a service between ACME clients and hosts, and any
// account of the organisation may already revoke its certificates. The order must
// share at least one name with the certificate. The store enforces that a
// certificate is replaced by at most one order that reaches finalize.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/policy/names"
	"github.com/varmenne/varmenne/revocation"
	"github.com/varmenne/varmenne/store"
)

// RenewalStore is what renewal information needs beyond certificates and revocations.
type RenewalStore interface {
	GetRenewalWindow(ctx context.Context, serial string) (*store.RenewalWindow, error)
}

// RenewalInfoRetryAfter is how long a client should wait before asking for a
// certificate's renewal information again.
const RenewalInfoRetryAfter = 6 * time.Hour

// pastWindow is the window given when renewal is due at once: it ended just now.
const pastWindow = time.Hour

// RenewalInfo is the suggested renewal window of one certificate.
type RenewalInfo struct {
	Start, End time.Time
	Serial     string // lower-case hex
	Reason     string // why the window was moved into the past; "" for the default window
}

// CertID is a certificate's RFC 9773 identifier: base64url of its Authority Key
// Identifier's keyIdentifier, ".", base64url of its serial's DER content octets.
func CertID(cert *x509.Certificate) (string, error) {
	serial, err := serialContent(cert)
	if err != nil {
		return "", err
	}
	if len(cert.AuthorityKeyId) == 0 {
		return "", errors.New("the certificate has no authority key identifier")
	}
	return base64.RawURLEncoding.EncodeToString(cert.AuthorityKeyId) + "." + base64.RawURLEncoding.EncodeToString(serial), nil
}

// serialContent is the DER INTEGER content octets of the certificate's serial.
func serialContent(cert *x509.Certificate) ([]byte, error) {
	der, err := asn1.Marshal(cert.SerialNumber)
	if err != nil {
		return nil, err
	}
	var raw asn1.RawValue
	if _, err := asn1.Unmarshal(der, &raw); err != nil {
		return nil, err
	}
	return raw.Bytes, nil
}

// certID is a parsed CertID.
type certID struct {
	keyID  []byte
	serial []byte // DER INTEGER content octets
}

func (c certID) serialHex() string { return hex.EncodeToString(c.serial) }

// parseCertID reads a CertID; every refusal is malformed and says what is wrong.
func parseCertID(s string) (certID, error) {
	const form = "a CertID is base64url(authority key identifier) \".\" base64url(serial number), without padding (RFC 9773 section 4.1)"
	aki, serial, ok := strings.Cut(s, ".")
	if !ok || strings.Contains(serial, ".") {
		return certID{}, acme.Errorf(acme.Malformed, "%q is not a CertID: %s", truncate(s, 64), form)
	}
	enc := base64.RawURLEncoding.Strict()
	var c certID
	var err error
	if c.keyID, err = enc.DecodeString(aki); err != nil || len(c.keyID) == 0 {
		return certID{}, acme.Errorf(acme.Malformed, "the key identifier part %q of the CertID is not base64url: %s", truncate(aki, 64), form)
	}
	if c.serial, err = enc.DecodeString(serial); err != nil || len(c.serial) == 0 {
		return certID{}, acme.Errorf(acme.Malformed, "the serial part %q of the CertID is not base64url: %s", truncate(serial, 64), form)
	}
	switch {
	case c.serial[0]&0x80 != 0:
		return certID{}, acme.Errorf(acme.Malformed, "the serial part of the CertID is negative; certificate serials are positive")
	case len(c.serial) > 1 && c.serial[0] == 0 && c.serial[1]&0x80 == 0:
		return certID{}, acme.Errorf(acme.Malformed, "the serial part of the CertID has a leading zero byte; give the DER encoding of the serial, which has none")
	case len(c.serial) > 20:
		return certID{}, acme.Errorf(acme.Malformed, "the serial part of the CertID has %d bytes; certificate serials have at most 20", len(c.serial))
	}
	return c, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// certificateByID finds the certificate a CertID names: its serial is stored here
// and its authority key identifier is the one in the CertID. nil when none is.
func (a *Authority) certificateByID(ctx context.Context, id certID) (*store.Certificate, error) {
	c, err := a.store.GetCertificate(ctx, id.serialHex())
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, a.internal(ctx, "look up the certificate", err)
	}
	cert, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return nil, a.internal(ctx, "read the stored certificate", err)
	}
	content, err := serialContent(cert)
	if err != nil || !bytes.Equal(content, id.serial) || !bytes.Equal(cert.AuthorityKeyId, id.keyID) {
		return nil, nil
	}
	return c, nil
}

// RenewalInfo answers GET {renewalInfo}/{CertID}: the window of a certificate this
// CA issued; 404 for a CertID that names none.
func (a *Authority) RenewalInfo(ctx context.Context, id string) (*RenewalInfo, error) {
	cid, err := parseCertID(id)
	if err != nil {
		return nil, err
	}
	c, err := a.certificateByID(ctx, cid)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, acme.Errorf(acme.Malformed, "no certificate with CertID %s was issued here", truncate(id, 96)).WithStatus(404)
	}
	now := a.now().UTC()
	info := &RenewalInfo{Serial: c.Serial}
	rev, err := a.store.GetRevocation(ctx, c.Serial)
	switch {
	case err == nil:
		info.Start, info.End, info.Reason = now.Add(-pastWindow), now, "revoked ("+revocation.Name(rev.Reason)+")"
		return info, nil
	case !isNotFound(err):
		return nil, a.internal(ctx, "look up the revocation", err)
	}
	w, err := a.store.GetRenewalWindow(ctx, c.Serial)
	switch {
	case err == nil:
		info.Start, info.End, info.Reason = w.Start.UTC(), w.End.UTC(), w.Reason
		return info, nil
	case !isNotFound(err):
		return nil, a.internal(ctx, "look up the renewal window", err)
	}
	info.Start, info.End = DefaultRenewalWindow(c.NotBefore, c.NotAfter)
	return info, nil
}

// DefaultRenewalWindow opens at 7/12 of the lifetime and closes at 3/4 of it: centred
// on two thirds, a sixth of the lifetime wide. Times are truncated to the second.
func DefaultRenewalWindow(notBefore, notAfter time.Time) (start, end time.Time) {
	life := notAfter.Sub(notBefore)
	return notBefore.Add(life * 7 / 12).UTC().Truncate(time.Second), notBefore.Add(life * 3 / 4).UTC().Truncate(time.Second)
}

// replacement checks newOrder's "replaces" and returns the serial of the certificate
// it names ("" when the order replaces nothing): a certificate this CA issued to the
// account's organisation, sharing at least one name with the order's names
// (normalised). Whether it was already replaced is the store's to say, as it creates
// the order.
func (a *Authority) replacement(ctx context.Context, acct *store.Account, replaces string, orderNames []string) (string, error) {
	if replaces == "" {
		return "", nil
	}
	cid, err := parseCertID(replaces)
	if err != nil {
		return "", err
	}
	c, err := a.certificateByID(ctx, cid)
	if err != nil {
		return "", err
	}
	if c == nil {
		return "", acme.Errorf(acme.Malformed, "replaces %s names no certificate issued here; give the CertID of the certificate this order renews, or leave replaces out", truncate(replaces, 96))
	}
	if c.OrgOID != acct.OrgOID {
		return "", acme.Errorf(acme.Unauthorized, "the certificate named in replaces belongs to another organisation; an order may replace only certificates of its own organisation (%s)", acct.OrgOID)
	}
	shared := false
	for _, n := range c.Names {
		shared = shared || slices.Contains(orderNames, names.Normalize(n))
	}
	if !shared {
		return "", acme.Errorf(acme.Malformed, "the order shares no name with the certificate it replaces (%s); a replacement must keep at least one of its names",
			strings.Join(c.Names, ", "))
	}
	return c.Serial, nil
}

// replacementRefusal is the client's answer when the store refused the order for its
// "replaces"; nil when the store refused it for something else.
func replacementRefusal(err error, replaces string) error {
	if errors.Is(err, store.ErrAlreadyReplaced) {
		return acme.Errorf(acme.AlreadyReplaced, "the certificate %s is already replaced by another order that was finalized or is being finalized; order without replaces, or replace the newer certificate",
			truncate(replaces, 96))
	}
	return nil
}
