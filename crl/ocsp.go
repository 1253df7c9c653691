package crl

import (
	"bytes"
	"context"
	"crypto"
	_ "crypto/sha1" // OCSP CertIDs are mostly SHA-1
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"

	"github.com/varmenne/varmenne/store"
)

// StatusReader is what the OCSP responder needs of the store.
type StatusReader interface {
	SerialStatus(ctx context.Context, serial string) (*store.SerialStatus, error)
}

// OCSPConfig tunes the responder; zero values take the defaults.
type OCSPConfig struct {
	// Validity is nextUpdate − thisUpdate of a response. Default 8 h.
	Validity time.Duration
	// Refresh is the age at which a cached good or revoked answer is signed anew,
	// well before its nextUpdate. Default 1 h.
	Refresh time.Duration
	// UnknownRefresh is how long an "unknown" answer is reused: a certificate
	// issued meanwhile is known after this. Default 1 min.
	UnknownRefresh time.Duration
	// MaxCached bounds the cached answers per issuer; a full cache drops one
	// answer for each it adds. Only serials the issuer has are cached, so no one
	// can push real answers out with made-up serials. Default 100 000.
	MaxCached int
	Now       func() time.Time
	Log       *slog.Logger
}

// ErrUnknownIssuer: the URL names no issuer this responder answers for.
var ErrUnknownIssuer = errors.New("crl: unknown issuer")

// OCSP answers RFC 6960 requests for the certificates of its issuers: good,
// revoked (time and reason) or unknown, signed by each issuer's delegated
// responder. Answers are cached per serial; Invalidate drops an issuer's cache
// when its revocations change, so a revocation shows on the next poll.
type OCSP struct {
	cfg     OCSPConfig
	st      StatusReader
	issuers map[string]*ocspIssuer
}

type ocspIssuer struct {
	Issuer
	keyBits []byte // the issuer's subjectPublicKey, which CertID.issuerKeyHash hashes

	mu    sync.Mutex
	gen   uint64 // incremented by Invalidate: an answer signed before it is not cached
	cache map[string]*Response
}

// Response is a signed OCSP response and when it should be refreshed.
type Response struct {
	DER        []byte
	Status     int // ocsp.Good, ocsp.Revoked or ocsp.Unknown
	ThisUpdate time.Time
	NextUpdate time.Time
	RefreshAt  time.Time // HTTP caches may keep it until then
}

// NewOCSP makes a responder for the issuers that have a Responder.
func NewOCSP(cfg OCSPConfig, st StatusReader, issuers []Issuer) (*OCSP, error) {
	if cfg.Validity == 0 {
		cfg.Validity = MaxValidity
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = time.Hour
	}
	if cfg.UnknownRefresh == 0 {
		cfg.UnknownRefresh = time.Minute
	}
	if cfg.MaxCached == 0 {
		cfg.MaxCached = 100_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Refresh >= cfg.Validity || cfg.UnknownRefresh > cfg.Refresh {
		return nil, fmt.Errorf("crl: OCSP refresh %s (unknown: %s) must be shorter than the validity %s", cfg.Refresh, cfg.UnknownRefresh, cfg.Validity)
	}
	o := &OCSP{cfg: cfg, st: st, issuers: map[string]*ocspIssuer{}}
	for _, is := range issuers {
		if is.OCSP == nil {
			continue
		}
		if err := checkResponder(is); err != nil {
			return nil, err
		}
		bits, err := subjectPublicKeyBits(is.Cert)
		if err != nil {
			return nil, fmt.Errorf("crl: issuer %q: %w", is.Name, err)
		}
		o.issuers[is.Name] = &ocspIssuer{Issuer: is, keyBits: bits, cache: map[string]*Response{}}
	}
	return o, nil
}

var oidOCSPNoCheck = []int{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

// checkResponder refuses a responder certificate relying parties would reject.
func checkResponder(is Issuer) error {
	c := is.OCSP.Cert
	if c == nil || is.OCSP.Key == nil {
		return fmt.Errorf("crl: issuer %q: OCSP responder needs a certificate and a key", is.Name)
	}
	if err := c.CheckSignatureFrom(is.Cert); err != nil {
		return fmt.Errorf("crl: issuer %q: OCSP responder certificate %q is not signed by the issuer: %w", is.Name, c.Subject, err)
	}
	hasEKU := false
	for _, u := range c.ExtKeyUsage {
		hasEKU = hasEKU || u == x509.ExtKeyUsageOCSPSigning
	}
	if !hasEKU {
		return fmt.Errorf("crl: issuer %q: OCSP responder certificate %q lacks id-kp-OCSPSigning", is.Name, c.Subject)
	}
	if pub, ok := is.OCSP.Key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(c.PublicKey) {
		return fmt.Errorf("crl: issuer %q: OCSP responder key does not match its certificate %q", is.Name, c.Subject)
	}
	return nil
}

func subjectPublicKeyBits(c *x509.Certificate) ([]byte, error) {
	in := cryptobyte.String(c.RawSubjectPublicKeyInfo)
	var spki cryptobyte.String
	var bits []byte
	var unused uint8
	if !in.ReadASN1(&spki, cbasn1.SEQUENCE) || !spki.SkipASN1(cbasn1.SEQUENCE) ||
		!spki.ReadASN1(&spki, cbasn1.BIT_STRING) || !spki.ReadUint8(&unused) || unused != 0 {
		return nil, errors.New("malformed subject public key info")
	}
	bits = spki
	return bits, nil
}

// Invalidate drops the issuer's cached answers: its revocations changed.
func (o *OCSP) Invalidate(issuer string) {
	is, ok := o.issuers[issuer]
	if !ok {
		return
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.gen++
	clear(is.cache)
}

// hashes an OCSP CertID may use, with the request's OIDs x/crypto/ocsp maps.
var certIDHashes = []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512}

// Respond answers one DER OCSP request for the named issuer. A request that cannot
// be parsed, or one about another issuer, gets the matching OCSP error response
// (unsigned, as RFC 6960 has it), not a Go error; ErrUnknownIssuer when the name
// is not an issuer with a responder; a store failure gets "tryLater".
func (o *OCSP) Respond(ctx context.Context, issuer string, request []byte) (*Response, error) {
	is, ok := o.issuers[issuer]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownIssuer, issuer)
	}
	req, err := ocsp.ParseRequest(request)
	if err != nil {
		return &Response{DER: ocsp.MalformedRequestErrorResponse}, nil
	}
	known := false
	for _, h := range certIDHashes {
		known = known || h == req.HashAlgorithm
	}
	if !known || req.SerialNumber == nil || req.SerialNumber.Sign() <= 0 {
		return &Response{DER: ocsp.MalformedRequestErrorResponse}, nil
	}
	if !bytes.Equal(req.IssuerNameHash, digest(req.HashAlgorithm, is.Cert.RawSubject)) ||
		!bytes.Equal(req.IssuerKeyHash, digest(req.HashAlgorithm, is.keyBits)) {
		// Not this issuer's certificate: this responder is not authoritative.
		return &Response{DER: ocsp.UnauthorizedErrorResponse}, nil
	}
	serial := hex.EncodeToString(req.SerialNumber.Bytes())
	now := o.cfg.Now()
	key := serial + "/" + req.HashAlgorithm.String()

	is.mu.Lock()
	if r, ok := is.cache[key]; ok && now.Before(r.RefreshAt) && !now.Before(r.ThisUpdate) {
		is.mu.Unlock()
		return r, nil
	}
	gen := is.gen
	is.mu.Unlock()

	st, err := o.st.SerialStatus(ctx, serial)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		o.cfg.Log.Error("OCSP status lookup failed", "issuer", issuer, "serial", serial, "error", err)
		return &Response{DER: ocsp.TryLaterErrorResponse}, nil
	}
	thisUpdate := now.UTC().Truncate(time.Second)
	tmpl := ocsp.Response{
		Status:       ocsp.Unknown,
		SerialNumber: req.SerialNumber,
		ThisUpdate:   thisUpdate,
		NextUpdate:   thisUpdate.Add(o.cfg.Validity),
		Certificate:  is.OCSP.Cert,
		IssuerHash:   req.HashAlgorithm,
	}
	refresh := o.cfg.UnknownRefresh
	switch {
	case st == nil || st.Issuer != issuer:
		// Never issued by this issuer (or only by another of ours): this responder
		// is not authoritative for it (RFC 6960 2.3), and says so unsigned, so a
		// flood of made-up serials costs no signature and fills no cache.
		return &Response{DER: ocsp.UnauthorizedErrorResponse}, nil
	case st.Revocation != nil:
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, st.Revocation.RevokedAt.UTC().Truncate(time.Second), st.Revocation.Reason
		refresh = o.cfg.Refresh
	case st.Certified:
		tmpl.Status = ocsp.Good
		refresh = o.cfg.Refresh
		// An intent without a stored certificate stays unknown: the CA cannot vouch
		// for a certificate it does not hold.
	}
	der, err := ocsp.CreateResponse(is.Cert, is.OCSP.Cert, tmpl, is.OCSP.Key)
	if err != nil {
		o.cfg.Log.Error("OCSP signing failed", "issuer", issuer, "serial", serial, "error", err, "alert", true)
		return &Response{DER: ocsp.InternalErrorErrorResponse}, nil
	}
	r := &Response{DER: der, Status: tmpl.Status, ThisUpdate: tmpl.ThisUpdate, NextUpdate: tmpl.NextUpdate,
		RefreshAt: tmpl.ThisUpdate.Add(refresh)}

	is.mu.Lock()
	defer is.mu.Unlock()
	if is.gen == gen { // no revocation since the lookup: safe to reuse
		if _, ok := is.cache[key]; !ok && len(is.cache) >= o.cfg.MaxCached {
			for k := range is.cache { // one answer out for this one in
				delete(is.cache, k)
				break
			}
		}
		is.cache[key] = r
	}
	return r, nil
}

func digest(h crypto.Hash, b []byte) []byte {
	d := h.New()
	d.Write(b)
	return d.Sum(nil)
}
