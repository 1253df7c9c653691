// Package signer turns an approved request into a signed, verified certificate: the
// profile's template, the SOTE long serial, the issuance intent recorded before the
// issuer key signs, the zlint check of a throw-away pre-signature (a lint error
// means the issuer key is never called), and the check of the signature against the
// issuer afterwards.
//
// It owns no HTTP and no ACME state: it never imports acme/server, and it does not
// store the certificate — the caller stores it together with the order's state change.
package signer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/varmenne/varmenne/audit"
	sotserial "github.com/varmenne/varmenne/policy/serial"
	"github.com/varmenne/varmenne/store"
)

// DefaultPolicyOID is the certificate policy arc of SOTE organisation certificates.
var DefaultPolicyOID = asn1.ObjectIdentifier{1, 2, 246, 517, 1, 10, 203}

// ErrInvalidRequest marks a refusal caused by the request itself (names, validity),
// as opposed to a fault of the signer; the caller may answer it as a client error.
var ErrInvalidRequest = errors.New("signer: invalid request")

// ErrUnsigned marks a failure after the intent was recorded and before the issuer key
// was asked to sign: no certificate with that serial exists, so the caller may
// abandon the intent (the serial stays used) and let the key be tried again. Any
// other failure after the intent may have reached the key and must leave it for
// the reconciler. An issuer key (signer/pkcs11) wraps it in a Sign error that
// happened before the token was asked to sign; the CA then closes the intent.
var ErrUnsigned = errors.New("signer: issuer key not used")

// ErrOutlastsIssuer (with ErrInvalidRequest) refuses a certificate that would end
// after its issuer, or begin before it: the issuer cannot vouch for it then. A CA
// whose issuer nears its end rolls over to a new issuer generation; until then the
// client may ask for an earlier notAfter.
var ErrOutlastsIssuer = errors.New("the certificate would outlast its issuer")

// maxSerialTries bounds the redraws after a serial collision; with 72 random bits a
// second collision means something other than chance is wrong.
const maxSerialTries = 3

// maxCNLen is ub-common-name from RFC 5280.
const maxCNLen = 64

// Profile is what a certificate type puts into every certificate it issues.
type Profile struct {
	Name        string
	Validity    time.Duration // maximum; 365 days for sote-server
	Backdate    time.Duration // notBefore = now - Backdate
	ExtKeyUsage []x509.ExtKeyUsage
	// NoExtKeyUsage lets a profile issue without an EKU extension. A leaf without
	// EKUs is good for any purpose, so a profile must ask for it explicitly: SOTE
	// system signature certificates sign documents, and SOTE names no EKU for them.
	NoExtKeyUsage bool
	// KeyUsage is the (critical) key usage of every certificate. Zero means the TLS
	// server usage: digitalSignature, plus keyEncipherment for RSA keys.
	KeyUsage x509.KeyUsage
	// MaxStartDelay is how far in the future a requested notBefore may lie; zero
	// refuses a notBefore after now.
	MaxStartDelay time.Duration
	PolicyOIDs    []asn1.ObjectIdentifier // nil: DefaultPolicyOID
	CRLURL        string                  // CRL distribution point URL for this issuer
	IssuerURL     string                  // AIA caIssuers URL
	OCSPURL       string                  // optional
	// Linter checks every certificate before the issuer key signs it; nil means
	// DefaultLinter (SOTE). Linting cannot be switched off.
	Linter *Linter
}

// Request is an approved certificate request.
type Request struct {
	OrderID   string
	PublicKey crypto.PublicKey
	Names     []string  // DNS names and IP addresses (RFC 8738 canonical text) for the SANs; the first DNS name becomes CN
	Subject   pkix.Name // C, O, OU as the caller decides; CN is set to the first DNS name by the signer
	NotBefore time.Time // zero: now - Backdate
	NotAfter  time.Time // zero: the longest the profile allows
	// Store, when set, is the caller's step to commit together with the
	// certificate.sign.end event (a CA with an auditor): storing the certificate.
	// When it or that transaction fails, the signature is recorded alone as
	// without it, and Issued.Stored is false: the caller stores the certificate
	// itself.
	Store func(tx *store.Tx, issued *Issued) error
}

// IntentRecorder is the one store method the signer needs. RecordIntent returns
// store.ErrDuplicate when the serial exists and store.ErrKeyInUse when the key was
// certified before.
type IntentRecorder interface {
	RecordIntent(ctx context.Context, in store.IssuanceIntent) error
}

// IntentFailer is the store method the signer uses, when its recorder has it, to
// close an intent whose certificate was never signed (a lint failure, a request
// cancelled before signing) with the reason, so the key is free for another try
// and the reason stays on record.
type IntentFailer interface {
	FailIntent(ctx context.Context, serial, reason string) error
}

// ContextSigner is an issuer key that can honour a request's deadline, as
// signer/pkcs11 keys do. crypto.Signer has no context, so the CA hands the
// request's context to keys that implement this.
type ContextSigner interface {
	crypto.Signer
	SignContext(ctx context.Context, rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

// boundSigner gives a ContextSigner's Sign the context of one request.
type boundSigner struct {
	ctx context.Context
	ContextSigner
}

func (b boundSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return b.ContextSigner.SignContext(b.ctx, rand, digest, opts)
}

// Auditor records the issuer key's use in the audit log (audit.Recorder is one).
// Change writes an event in the transaction of the intent's change of state that it
// records, so the two commit together or not at all; Audit writes an event that
// changes no state.
type Auditor interface {
	Audit(ctx context.Context, e audit.Event, outcome string) error
	Change(ctx context.Context, e audit.Event, outcome string, change func(tx *store.Tx) error) error
}

// Issued is a signed certificate whose signature verified against the issuer.
type Issued struct {
	DER     []byte
	Cert    *x509.Certificate
	Serial  string // lower-case hex
	KeyHash string // lower-case hex SHA-256 of the SubjectPublicKeyInfo DER
	Issuer  string // the name of the issuer (generation) that signed it
	// Stored: Request.Store committed with the certificate.sign.end event.
	Stored bool
}

// CA issues certificates of one profile from one issuer. It is safe for concurrent
// use when its recorder, clock and random source are.
type CA struct {
	issuer  *Issuer
	profile Profile
	rec     IntentRecorder
	now     func() time.Time
	random  io.Reader
	auditor Auditor
}

// WithAuditor makes the CA record each step of the issuer key's use with its audit
// event: certificate.sign.begin with the intent marked asked (store.KeyAsked)
// before the key is asked to sign — if that cannot be written the key is not asked
// — and certificate.sign.end with the intent marked signed (store.KeySigned) and its
// certificate kept, after. A server always has one; without one the intent records
// only the serial (tests). It returns c.
func (c *CA) WithAuditor(a Auditor) *CA {
	c.auditor = a
	return c
}

// New returns a CA. now nil means time.Now; random (used for serials) nil means
// crypto/rand.Reader.
func New(issuer *Issuer, profile Profile, rec IntentRecorder, now func() time.Time, random io.Reader) *CA {
	if now == nil {
		now = time.Now
	}
	if random == nil {
		random = rand.Reader
	}
	return &CA{issuer: issuer, profile: profile, rec: rec, now: now, random: random}
}

// Issuer is the issuer the CA signs with.
func (c *CA) Issuer() *Issuer { return c.issuer }

// Issue checks the request against the profile, draws a long serial, lints,
// records the issuance intent, signs, and verifies the signature against the issuer
// certificate.
//
// The intent carries the TBS of a throw-away pre-signature; zlint checks that
// pre-signed certificate, and the real certificate's TBS must equal it byte for
// byte. A lint error or fatal means the issuer key is not called: the error wraps
// ErrLint and ErrUnsigned, and the intent is closed with the findings as its
// reason when the recorder is an IntentFailer. With an auditor the intent is
// recorded after the lint, in the transaction that marks it asked with its
// certificate.sign.begin event (one durable commit before the key is asked);
// without one it is recorded before the lint. A refused intent means the issuer key is not
// asked to sign: store.ErrDuplicate draws a new serial (up to 3 tries), any other
// error — store.ErrKeyInUse among them — is returned wrapped. Request problems wrap
// ErrInvalidRequest; a failure after the intent that never reached the key wraps
// ErrUnsigned. No certificate is returned unless its signature verifies.
func (c *CA) Issue(ctx context.Context, req Request) (*Issued, error) {
	if err := c.checkSetup(); err != nil {
		return nil, err
	}
	if req.PublicKey == nil {
		return nil, errors.New("signer: request has no public key")
	}
	spki, err := x509.MarshalPKIXPublicKey(req.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("signer: subject public key: %w", err)
	}
	keyHash, err := KeyHash(req.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := checkNames(req.Names); err != nil {
		return nil, err
	}
	now := c.now()
	notBefore, notAfter, err := c.validity(now, req)
	if err != nil {
		return nil, err
	}
	tmpl, err := c.template(req, spki, notBefore, notAfter)
	if err != nil {
		return nil, err
	}

	linter := c.profile.Linter
	if linter == nil {
		linter = DefaultLinter()
	}
	var serial, lintTBS, algID []byte
	for try := 1; ; try++ {
		if serial, err = NewSerial(now, c.random); err != nil {
			return nil, err
		}
		// Every serial is checked against the SOTE long format before it is recorded.
		if err := sotserial.Check(serial, now); err != nil {
			return nil, fmt.Errorf("signer: drawn serial %x: %w", serial, err)
		}
		tmpl.SerialNumber = new(big.Int).SetBytes(serial)
		var preDER []byte
		if preDER, lintTBS, algID, err = c.preSign(tmpl, req.PublicKey); err != nil {
			return nil, err
		}
		intent := store.IssuanceIntent{
			Serial:    hex.EncodeToString(serial),
			OrderID:   req.OrderID,
			Issuer:    c.issuer.Name,
			Names:     append([]string(nil), req.Names...),
			KeyHash:   keyHash,
			LintTBS:   lintTBS,
			CreatedAt: now,
		}
		if c.auditor == nil {
			err = c.recordThenLint(ctx, intent, linter, preDER)
		} else {
			err = c.lintThenBegin(ctx, intent, linter, preDER, req)
		}
		if err == nil {
			break
		}
		if errors.Is(err, store.ErrDuplicate) && try < maxSerialTries {
			continue
		}
		return nil, err
	}
	serialHex := hex.EncodeToString(serial)
	issued, err := c.sign(ctx, serial, lintTBS, algID, keyHash)
	if err != nil {
		c.signFailed(ctx, serial, err)
		return nil, err
	}
	if c.auditor != nil {
		sum := sha256.Sum256(issued.DER)
		end := audit.SignEnd{Serial: serialHex, SHA256: hex.EncodeToString(sum[:])}
		if req.Store != nil {
			// One durable commit for the signature's record and the caller's step.
			err := c.auditor.Change(context.WithoutCancel(ctx), end, audit.OK, func(tx *store.Tx) error {
				if err := tx.IntentSigned(serialHex, issued.DER); err != nil {
					return err
				}
				return req.Store(tx, issued)
			})
			if err == nil {
				issued.Stored = true
				return issued, nil
			}
			// Refused or failed: the signature is recorded alone below, and the
			// caller stores the certificate itself (and meets a refusal again).
		}
		// The certificate exists: a database that is back within seconds must not
		// leave it recorded as "asked" only.
		err := store.RetrySigned(context.WithoutCancel(ctx), func(ctx context.Context) error {
			return c.auditor.Change(ctx, end, audit.OK, func(tx *store.Tx) error { return tx.IntentSigned(serialHex, issued.DER) })
		}, nil)
		if err != nil {
			// The intent stays asked: its serial is revocable, and no certificate
			// leaves the signer without its sign.end event.
			return nil, fmt.Errorf("signer: serial %x signed, but its audit event and intent not written: %w", serial, err)
		}
	}
	return issued, nil
}

// recordThenLint is the way to the key of a CA without an auditor (tests): the
// intent is recorded, then the pre-signed certificate linted. A lint failure or a
// request that ended closes the intent with the reason.
func (c *CA) recordThenLint(ctx context.Context, intent store.IssuanceIntent, linter *Linter, preDER []byte) error {
	if err := c.rec.RecordIntent(ctx, intent); err != nil {
		return fmt.Errorf("signer: recording the issuance intent for serial %s: %w", intent.Serial, err)
	}
	// The intent is durable. A certificate that fails lint never reaches the key.
	if err := linter.Lint(preDER); err != nil {
		c.failIntent(ctx, intent.Serial, err.Error())
		return fmt.Errorf("signer: serial %s: %w: %w", intent.Serial, ErrUnsigned, err)
	}
	// A cancelled request should still not reach the key.
	if err := ctx.Err(); err != nil {
		c.failIntent(ctx, intent.Serial, "request ended before signing: "+err.Error())
		return fmt.Errorf("signer: serial %s: %w: %w", intent.Serial, ErrUnsigned, err)
	}
	return nil
}

// lintThenBegin is the way to the key of a CA with an auditor (every server): the
// pre-signed certificate is linted, then the intent with its lint TBS is recorded,
// marked asked and its certificate.sign.begin event written, in one durable
// transaction, which commits before the key is asked. A certificate that fails
// lint, a request that ended and an issuer generation retired meanwhile never
// reach the key; their intent is recorded closed, with the reason. A serial
// already taken (store.ErrDuplicate) leaves nothing behind and is drawn again.
func (c *CA) lintThenBegin(ctx context.Context, intent store.IssuanceIntent, linter *Linter, preDER []byte, req Request) error {
	if err := linter.Lint(preDER); err != nil {
		return c.unsigned(ctx, intent, err.Error(), err)
	}
	if err := ctx.Err(); err != nil {
		return c.unsigned(ctx, intent, "request ended before signing: "+err.Error(), err)
	}
	begin := audit.SignBegin{Serial: intent.Serial, Order: req.OrderID, Profile: c.profile.Name,
		Issuer: c.issuer.Name, Names: req.Names}
	err := c.auditor.Change(ctx, begin, "pending", func(tx *store.Tx) error {
		if err := tx.RecordIntent(intent); err != nil {
			return fmt.Errorf("signer: recording the issuance intent for serial %s: %w", intent.Serial, err)
		}
		return tx.BeginSigning(intent.Serial)
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrDuplicate), errors.Is(err, store.ErrKeyInUse):
		return err
	case errors.Is(err, store.ErrIssuerRetired):
		// A replica that has not yet followed the database to the active
		// generation: the retired key is never asked.
		return c.unsigned(ctx, intent, "issuer "+c.issuer.Name+" is retired: its key signs no certificate",
			fmt.Errorf("issuer %s is retired: %w", c.issuer.Name, err))
	default:
		return c.unsigned(ctx, intent, "audit log not written before signing", fmt.Errorf("audit log: %w", err))
	}
}

// unsigned records the intent of a certificate the key was never asked to sign,
// closed with reason, best effort (the error returned is cause's either way), and
// returns cause wrapped with ErrUnsigned.
func (c *CA) unsigned(ctx context.Context, intent store.IssuanceIntent, reason string, cause error) error {
	if c.rec.RecordIntent(context.WithoutCancel(ctx), intent) == nil {
		c.failIntent(ctx, intent.Serial, reason)
	}
	return fmt.Errorf("signer: serial %s: %w: %w", intent.Serial, ErrUnsigned, cause)
}

// signFailed records a signature that failed. A key that reports it never signed
// (an HSM with no session to give) frees the intent, with its sign.end event when
// the CA has an auditor; any other failure may have reached the key, so the intent
// stays asked for the reconciliation and only the event is written, best effort.
func (c *CA) signFailed(ctx context.Context, serial []byte, err error) {
	ctx = context.WithoutCancel(ctx)
	serialHex := hex.EncodeToString(serial)
	end := audit.SignEnd{Serial: serialHex}
	if errors.Is(err, ErrUnsigned) {
		reason := "issuer key not used: " + err.Error()
		if c.auditor == nil {
			c.failIntent(ctx, serialHex, reason)
			return
		}
		_ = c.auditor.Change(ctx, end, "failed: the issuer key did not sign", func(tx *store.Tx) error {
			return tx.FailIntent(serialHex, reason)
		})
		return
	}
	if c.auditor != nil {
		_ = c.auditor.Audit(ctx, end, "failed: signing or verifying the signature failed")
	}
}

// sign has the issuer key sign the recorded TBS itself, lintTBS, under the
// signature algorithm algID (the pre-signed certificate's), and checks the result:
// the certificate is byte for byte the one linted, and its signature must verify
// against the issuer certificate.
func (c *CA) sign(ctx context.Context, serial, lintTBS, algID []byte, keyHash string) (*Issued, error) {
	var key crypto.Signer = c.issuer.Key
	if cs, ok := key.(ContextSigner); ok {
		key = boundSigner{ctx: ctx, ContextSigner: cs}
	}
	_, hash, err := signatureParams(c.issuer.Key.Public())
	if err != nil {
		return nil, fmt.Errorf("signer: issuer %q: %w", c.issuer.Name, err)
	}
	sig, err := crypto.SignMessage(key, rand.Reader, lintTBS, hash)
	if err != nil {
		return nil, fmt.Errorf("signer: signing serial %x with issuer %q: %w", serial, c.issuer.Name, err)
	}
	der, err := asn1.Marshal(struct {
		TBS       asn1.RawValue
		Algorithm asn1.RawValue
		Signature asn1.BitString
	}{asn1.RawValue{FullBytes: lintTBS}, asn1.RawValue{FullBytes: algID}, asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}})
	if err != nil {
		return nil, fmt.Errorf("signer: encoding signed serial %x: %w", serial, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("signer: parsing signed serial %x: %w", serial, err)
	}
	if !bytes.Equal(cert.RawTBSCertificate, lintTBS) {
		return nil, fmt.Errorf("signer: serial %x: signed TBS differs from the recorded TBS", serial)
	}
	if err := cert.CheckSignatureFrom(c.issuer.Cert); err != nil {
		return nil, fmt.Errorf("signer: serial %x: signature does not verify against issuer %q: %w", serial, c.issuer.Name, err)
	}
	return &Issued{DER: der, Cert: cert, Serial: hex.EncodeToString(serial), KeyHash: keyHash, Issuer: c.issuer.Name}, nil
}

// failIntent closes the intent of a certificate that was never signed. It is best
// effort: an intent left pending is still visible to the reconciler.
func (c *CA) failIntent(ctx context.Context, serial string, reason string) {
	if f, ok := c.rec.(IntentFailer); ok {
		_ = f.FailIntent(context.WithoutCancel(ctx), serial, reason)
	}
}

func (c *CA) checkSetup() error {
	if c.issuer == nil || c.issuer.Cert == nil || c.issuer.Key == nil {
		return errors.New("signer: CA has no issuer certificate or key")
	}
	if c.rec == nil {
		return errors.New("signer: CA has no intent recorder")
	}
	if c.profile.Validity <= 0 {
		return fmt.Errorf("signer: profile %q has no validity", c.profile.Name)
	}
	// A leaf without EKUs is good for any purpose; a profile must say what it is for,
	// or say explicitly that it issues without EKUs (NoExtKeyUsage, system signature).
	if len(c.profile.ExtKeyUsage) == 0 && !c.profile.NoExtKeyUsage {
		return fmt.Errorf("signer: profile %q has no extended key usage", c.profile.Name)
	}
	if len(c.profile.ExtKeyUsage) > 0 && c.profile.NoExtKeyUsage {
		return fmt.Errorf("signer: profile %q lists extended key usages and NoExtKeyUsage", c.profile.Name)
	}
	return nil
}

func checkNames(names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("%w: no names", ErrInvalidRequest)
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "" {
			return fmt.Errorf("%w: empty name", ErrInvalidRequest)
		}
		if seen[strings.ToLower(n)] {
			return fmt.Errorf("%w: name %q appears twice", ErrInvalidRequest, n)
		}
		seen[strings.ToLower(n)] = true
	}
	dnsNames, _ := splitNames(names)
	if len(dnsNames) == 0 {
		return fmt.Errorf("%w: no DNS name; the common name is the first DNS name", ErrInvalidRequest)
	}
	if len(dnsNames[0]) > maxCNLen {
		return fmt.Errorf("%w: first name %q is longer than the %d characters a common name holds", ErrInvalidRequest, dnsNames[0], maxCNLen)
	}
	return nil
}

// splitNames sorts an order's names into DNS names and the addresses of its IP
// identifiers (RFC 8738), each in the order given.
func splitNames(names []string) (dnsNames []string, ips []net.IP) {
	for _, n := range names {
		if ip, err := netip.ParseAddr(n); err == nil {
			ips = append(ips, net.IP(ip.AsSlice()))
			continue
		}
		dnsNames = append(dnsNames, n)
	}
	return dnsNames, ips
}

// validity works out notBefore and notAfter at the second resolution a certificate
// stores. RFC 5280 counts both ends of the period, so the longest certificate ends
// one second before notBefore+Validity.
func (c *CA) validity(now time.Time, req Request) (notBefore, notAfter time.Time, err error) {
	now = now.UTC().Truncate(time.Second)
	earliest := now.Add(-c.profile.Backdate)
	notBefore = earliest
	if !req.NotBefore.IsZero() {
		notBefore = req.NotBefore.UTC().Truncate(time.Second)
		// Either way means a clock or a caller is wrong; refuse rather than sign it.
		if notBefore.Before(earliest) {
			return time.Time{}, time.Time{}, fmt.Errorf("%w: notBefore %s is backdated beyond %s", ErrInvalidRequest, notBefore.Format(time.RFC3339), c.profile.Backdate)
		}
		if notBefore.After(now.Add(c.profile.MaxStartDelay)) {
			return time.Time{}, time.Time{}, fmt.Errorf("%w: notBefore %s is further in the future than profile %q allows (%s)", ErrInvalidRequest, notBefore.Format(time.RFC3339), c.profile.Name, c.profile.MaxStartDelay)
		}
	}
	latest := notBefore.Add(c.profile.Validity - time.Second)
	notAfter = latest
	if !req.NotAfter.IsZero() {
		notAfter = req.NotAfter.UTC().Truncate(time.Second)
		if !notAfter.After(notBefore) {
			return time.Time{}, time.Time{}, fmt.Errorf("%w: notAfter %s is not after notBefore %s", ErrInvalidRequest, notAfter.Format(time.RFC3339), notBefore.Format(time.RFC3339))
		}
		if notAfter.After(latest) {
			return time.Time{}, time.Time{}, fmt.Errorf("%w: validity %s to %s is longer than profile %q allows (%s)", ErrInvalidRequest, notBefore.Format(time.RFC3339), notAfter.Format(time.RFC3339), c.profile.Name, c.profile.Validity)
		}
	}
	ic := c.issuer.Cert
	if notBefore.Before(ic.NotBefore) || notAfter.After(ic.NotAfter) {
		return time.Time{}, time.Time{}, fmt.Errorf("%w: %w: a certificate from %s to %s falls outside issuer %q, which is valid from %s to %s; ask for a notAfter no later than %s",
			ErrInvalidRequest, ErrOutlastsIssuer, notBefore.Format(time.RFC3339), notAfter.Format(time.RFC3339), c.issuer.Name,
			ic.NotBefore.UTC().Format(time.RFC3339), ic.NotAfter.UTC().Format(time.RFC3339), ic.NotAfter.UTC().Format(time.RFC3339))
	}
	return notBefore, notAfter, nil
}

// Validity is the notBefore and notAfter the CA would give req now, or why it
// would refuse it (ErrInvalidRequest; ErrOutlastsIssuer too when the issuer ends
// first). newOrder asks it so that an order the issuer cannot sign is refused before
// any validation work.
func (c *CA) Validity(req Request) (notBefore, notAfter time.Time, err error) {
	return c.validity(c.now(), req)
}

// CheckIssuerLife refuses a profile whose longest certificate — one starting as
// late as MaxStartDelay allows, for the whole Validity — would end after the
// issuer does: the start of a server that would refuse such orders later stops
// instead, with what to do.
func (c *CA) CheckIssuerLife(now time.Time) error {
	end := c.issuer.Cert.NotAfter
	longest := now.Add(c.profile.MaxStartDelay).Add(c.profile.Validity - time.Second)
	if !longest.After(end) {
		return nil
	}
	days := func(d time.Duration) int { return int(d / (24 * time.Hour)) }
	fits := days(end.Sub(now) - c.profile.MaxStartDelay)
	return fmt.Errorf("profile %q issues certificates of up to %d days starting up to %d days ahead, but issuer %q ends on %s, %d days from now: "+
		"roll over to a new issuer generation, or lower the profile's max_validity_days (and max_start_delay) in --config so that they fit (at most %d days with this max_start_delay)",
		c.profile.Name, days(c.profile.Validity), days(c.profile.MaxStartDelay), c.issuer.Name, end.UTC().Format(time.DateOnly), days(end.Sub(now)), max(fits, 0))
}

var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

func (c *CA) template(req Request, spki []byte, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	sigAlg, _, err := signatureParams(c.issuer.Key.Public())
	if err != nil {
		return nil, fmt.Errorf("signer: issuer %q: %w", c.issuer.Name, err)
	}
	ski, err := subjectKeyID(spki)
	if err != nil {
		return nil, err
	}
	dnsNames, ips := splitNames(req.Names)
	subject := req.Subject
	subject.CommonName = dnsNames[0]
	// A CN in ExtraNames would make a second CN beside the first DNS name.
	subject.ExtraNames = nil
	for _, atv := range req.Subject.ExtraNames {
		if !atv.Type.Equal(oidCommonName) {
			subject.ExtraNames = append(subject.ExtraNames, atv)
		}
	}
	ku := c.profile.KeyUsage
	if ku == 0 {
		ku = x509.KeyUsageDigitalSignature
		if _, ok := req.PublicKey.(*rsa.PublicKey); ok {
			ku |= x509.KeyUsageKeyEncipherment
		}
	}
	rawSubject, err := encodeSubject(subject)
	if err != nil {
		return nil, fmt.Errorf("%w: subject: %w", ErrInvalidRequest, err)
	}
	oids := c.profile.PolicyOIDs
	if oids == nil {
		oids = []asn1.ObjectIdentifier{DefaultPolicyOID}
	}
	policies := make([]x509.OID, 0, len(oids))
	for _, o := range oids {
		p, err := x509.OIDFromASN1OID(o)
		if err != nil {
			return nil, fmt.Errorf("signer: profile %q: policy %s: %w", c.profile.Name, o, err)
		}
		policies = append(policies, p)
	}
	t := &x509.Certificate{
		SignatureAlgorithm:    sigAlg,
		Subject:               subject,
		RawSubject:            rawSubject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
		KeyUsage:              ku, // Go marshals key usage as critical
		ExtKeyUsage:           append([]x509.ExtKeyUsage(nil), c.profile.ExtKeyUsage...),
		BasicConstraintsValid: true, // CA:false, marshalled critical
		SubjectKeyId:          ski,
		AuthorityKeyId:        c.issuer.Cert.SubjectKeyId,
		Policies:              policies,
	}
	if c.profile.CRLURL != "" {
		t.CRLDistributionPoints = []string{c.profile.CRLURL}
	}
	if c.profile.IssuerURL != "" {
		t.IssuingCertificateURL = []string{c.profile.IssuerURL}
	}
	if c.profile.OCSPURL != "" {
		t.OCSPServer = []string{c.profile.OCSPURL}
	}
	return t, nil
}

// preSign signs the template with a throw-away key under a copy of the issuer
// certificate that carries the throw-away public key. Issuer name, AKI and signature
// algorithm stay the issuer's, so the TBS is the one the real key will sign.
//
// It returns the pre-signed certificate, which is linted, its TBS, which is
// recorded and which the issuer key signs, and its signature AlgorithmIdentifier
// (DER), the issuer's.
func (c *CA) preSign(tmpl *x509.Certificate, pub crypto.PublicKey) (der, tbs, algID []byte, err error) {
	key, err := throwawayKey(c.issuer.Key.Public())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("signer: issuer %q: %w", c.issuer.Name, err)
	}
	parent := *c.issuer.Cert
	parent.PublicKey = key.Public()
	der, err = x509.CreateCertificate(rand.Reader, tmpl, &parent, pub, key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("signer: building the certificate: %w", err)
	}
	var pre struct {
		TBS       asn1.RawValue
		Algorithm asn1.RawValue
		Signature asn1.BitString
	}
	if rest, err := asn1.Unmarshal(der, &pre); err != nil || len(rest) != 0 {
		return nil, nil, nil, fmt.Errorf("signer: parsing the pre-signed certificate: %v", err)
	}
	return der, pre.TBS.FullBytes, pre.Algorithm.FullBytes, nil
}
