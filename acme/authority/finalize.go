package authority

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/jws"
	"github.com/varmenne/varmenne/internal/metrics"
	"github.com/varmenne/varmenne/policy"
	"github.com/varmenne/varmenne/policy/keys"
	"github.com/varmenne/varmenne/policy/names"
	"github.com/varmenne/varmenne/revocation"
	"github.com/varmenne/varmenne/signer"
	"github.com/varmenne/varmenne/store"
)

// issueTimeout bounds signing and storing a certificate once an order is processing.
const issueTimeout = time.Minute

// Finalize asks the standing check (standing.go), checks the CSR against the order
// and issues. The order leaves "ready" once:
// the store's conditional transition decides which of concurrent requests issues.
func (a *Authority) Finalize(ctx context.Context, acct *store.Account, orderID string, payload []byte) (*store.Order, error) {
	o, err := a.Order(ctx, acct, orderID)
	if err != nil {
		return nil, err
	}
	// The standing is asked again here, not only at newOrder: an organisation
	// suspended, an EAB key revoked or a register entry ended after the order was
	// made stops it before it is signed.
	prof := a.profiles[o.Profile]
	org, eab, err := a.standing(ctx, stepFinalize, acct, prof)
	if err != nil {
		return nil, err
	}
	if o.Status != string(acme.StatusReady) {
		return nil, notReady(o)
	}
	var req acme.FinalizeRequest
	if err := acme.DecodePayload(payload, &req); err != nil {
		return nil, err
	}
	csr, err := parseCSR(req.CSR)
	if err != nil {
		return nil, err
	}
	if prof == nil {
		return nil, acme.Errorf(acme.InvalidProfile, "the order's profile %q is no longer offered; create a new order with one of %s", o.Profile, strings.Join(a.profileNames(), ", "))
	}
	keyHash, err := signer.KeyHash(csr.PublicKey)
	if err != nil {
		return nil, acme.Errorf(acme.BadCSR, "the CSR's public key cannot be encoded")
	}
	ids := make([]acme.Identifier, len(o.Names))
	for i, n := range o.Names {
		ids[i] = acme.IdentifierOf(n)
	}
	if err := a.checkCSR(ctx, csr, ids, keyHash); err != nil {
		return nil, err
	}
	// Then the profile's chain judges what its configuration decides: the SOTE rules,
	// such as the profile's key types and a key certified before (keys) and the
	// dates (validity).
	preq := &policy.Request{
		Profile: prof.Name, Org: org, AccountID: acct.ID, EABKID: acct.EABKID,
		Identifiers: ids, NotBefore: o.NotBefore, NotAfter: o.NotAfter, CSR: csr,
		AllowedDomains: allowedDomains(org, eab), AllowedNetworks: allowedNetworks(org, eab), KeyHash: keyHash,
	}
	if err := prof.Policy.CheckCSR(ctx, preq); err != nil {
		return nil, policyRefusal(err)
	}
	if err := a.recheckCAA(ctx, acct, o); err != nil {
		return nil, err
	}
	if err := a.limitCertificate(ctx, o); err != nil {
		return nil, err
	}

	if err := a.store.BeginFinalize(ctx, o.ID); err != nil {
		if errors.Is(err, store.ErrConflict) {
			if cur, rerr := a.Order(ctx, acct, o.ID); rerr == nil {
				return nil, notReady(cur)
			}
		}
		return nil, a.internal(ctx, "start finalizing the order", err)
	}
	// The order is processing now: finish even if the client goes away, so that a
	// disconnect neither fails the order nor leaves a signed certificate unstored.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), issueTimeout)
	defer cancel()
	// A requested start that has passed by now becomes the issuance time (less the
	// backdate): the certificate is valid within what was asked, never backdated.
	notBefore := o.NotBefore
	if !notBefore.After(a.now()) {
		notBefore = time.Time{}
	}
	certificate := func(issued *signer.Issued) store.Certificate {
		return store.Certificate{
			Serial:    issued.Serial,
			Issuer:    issued.Issuer, // the generation that signed it, even if another became active meanwhile
			DER:       issued.DER,
			Names:     o.Names,
			KeyHash:   issued.KeyHash,
			NotBefore: issued.Cert.NotBefore,
			NotAfter:  issued.Cert.NotAfter,
			OrgOID:    o.OrgOID,
			AccountID: acct.ID,
			OrderID:   o.ID,
			Profile:   o.Profile,
			CreatedAt: a.now(),
		}
	}
	issued, err := prof.CA.Issue(ctx, signer.Request{
		OrderID:   o.ID,
		PublicKey: csr.PublicKey,
		Names:     o.Names,
		Subject:   subjectFor(org),
		NotBefore: notBefore,
		NotAfter:  o.NotAfter,
		// The certificate is stored in the transaction of its certificate.sign.end
		// event when it can be; otherwise below.
		Store: func(tx *store.Tx, issued *signer.Issued) error { return tx.FinishIssuance(certificate(issued)) },
	})
	if err != nil {
		a.cfg.Metrics.Finalized(prof.Name, prof.CA.Issuer().Name, finalizeOutcome(err))
		return nil, a.failOrder(ctx, o.ID, "issue the certificate", err)
	}
	if !issued.Stored {
		if err := a.store.FinishIssuance(ctx, certificate(issued)); err != nil {
			// Signed but not stored: the intent with this serial stays for the reconciler.
			a.log.ErrorContext(ctx, "certificate signed but not stored", "serial", issued.Serial, "order", o.ID, "err", err)
			a.cfg.Metrics.Finalized(prof.Name, prof.CA.Issuer().Name, finalizeOutcome(err))
			return nil, a.failOrder(ctx, o.ID, "store the certificate", err)
		}
	}
	a.cfg.Metrics.Finalized(prof.Name, prof.CA.Issuer().Name, metrics.Issued)
	a.log.InfoContext(ctx, "certificate issued", "serial", issued.Serial, "order", o.ID, "account", acct.ID, "org", o.OrgOID, "names", o.Names)
	// FinishIssuance moved the order from processing to valid with this serial in
	// its transaction and changed nothing else of it: the answer is the order read
	// at the start with that transition, not a read of it again.
	done := *o
	done.Status = string(acme.StatusValid)
	done.CertSerial = store.NormalSerial(issued.Serial)
	done.Error = nil
	return &done, nil
}

// failOrder moves a processing order to invalid with the refusal the client sees.
func (a *Authority) failOrder(ctx context.Context, orderID, what string, cause error) error {
	refusal := cause
	if errors.Is(cause, store.ErrKeyInUse) {
		refusal = keyReused()
	} else if errors.Is(cause, signer.ErrInvalidRequest) {
		refusal = signerRefusal(cause)
	} else if _, ok := acme.AsError(cause); !ok {
		refusal = a.internal(ctx, what, cause)
	}
	if err := a.store.FailOrder(context.WithoutCancel(ctx), orderID, problemJSON(refusal)); err != nil {
		a.log.ErrorContext(ctx, "marking the order invalid failed", "order", orderID, "err", err)
	}
	return refusal
}

// finalizeOutcome is how the metrics count a processing order that ended invalid:
// refused as asked (failOrder's client refusals: the key certified meanwhile, the
// dates), or failed.
func finalizeOutcome(err error) string {
	if errors.Is(err, store.ErrKeyInUse) || errors.Is(err, signer.ErrInvalidRequest) {
		return metrics.Refused
	}
	return metrics.Failed
}

// signerRefusal is the client's answer to a request the signer refuses as asked
// (signer.ErrInvalidRequest: its dates, or an issuer that ends first).
func signerRefusal(err error) error {
	return acme.Errorf(acme.Malformed, "the certificate cannot be issued as asked: %s", strings.TrimPrefix(err.Error(), signer.ErrInvalidRequest.Error()+": "))
}

func keyReused() error {
	return acme.Errorf(acme.BadCSR, "this public key was certified before; SOTE certificates are never issued twice for one key: generate a new key pair")
}

func notReady(o *store.Order) error {
	switch o.Status {
	case string(acme.StatusPending):
		return acme.Errorf(acme.OrderNotReady, "the order is pending: every authorization must be valid before finalize")
	case string(acme.StatusProcessing), string(acme.StatusValid):
		return acme.Errorf(acme.OrderNotReady, "the order is already %s; poll it instead of finalizing again", o.Status)
	default:
		return acme.Errorf(acme.OrderNotReady, "the order is %s and cannot be finalized; create a new order", o.Status)
	}
}

// parseCSR decodes base64url (unpadded, RFC 8555 7.4) DER and checks the signature.
func parseCSR(b64 string) (*x509.CertificateRequest, error) {
	if b64 == "" {
		return nil, acme.Errorf(acme.Malformed, "the finalize request has no csr")
	}
	if strings.ContainsAny(b64, "=+/ \n") {
		return nil, acme.Errorf(acme.Malformed, "csr must be unpadded base64url (RFC 8555 section 7.4)")
	}
	der, err := base64.RawURLEncoding.DecodeString(b64)
	if err != nil {
		return nil, acme.Errorf(acme.Malformed, "csr is not valid base64url")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, acme.Errorf(acme.BadCSR, "the CSR is not a DER-encoded PKCS#10 certification request")
	}
	switch csr.SignatureAlgorithm {
	case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA,
		x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512,
		x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS:
	default:
		return nil, acme.Errorf(acme.BadCSR, "the CSR is signed with %v; use SHA-256 or stronger", csr.SignatureAlgorithm)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, acme.Errorf(acme.BadCSR, "the CSR signature does not verify: %v", err)
	}
	return csr, nil
}

// checkCSR is what every CSR must pass whatever its profile, so it is not a plugin a
// configuration could leave out: the names RFC 8555 section 7.4 requires (exactly the
// order's), a key of an accepted kind and size that is not weak (small factors,
// Fermat-close primes, ROCA, Debian's 2008 keys in Config.WeakKeys, a point off its
// curve), and a key nobody reported
// compromised (blocked at a keyCompromise revocation or by an operator).
func (a *Authority) checkCSR(ctx context.Context, csr *x509.CertificateRequest, ids []acme.Identifier, keyHash string) error {
	orderNames := make([]string, len(ids))
	for i, id := range ids {
		orderNames[i] = names.Canonical(id)
	}
	if err := names.CheckCSRNames(csr, orderNames); err != nil {
		return err
	}
	if err := keys.CheckCertificateKey(csr.PublicKey, a.cfg.WeakKeys); err != nil {
		return err
	}
	blocked, err := a.store.KeyBlocked(ctx, keyHash)
	if err != nil {
		return a.internal(ctx, "look up blocked keys", err)
	}
	if blocked {
		return acme.Errorf(acme.BadCSR, "this public key was reported compromised and may not be certified; generate a new key pair")
	}
	// RFC 8555 11.1: a certificate's key is not an account key, the client's own
	// or anyone's; a key that signs for an account must not also be certified.
	if tp, err := jws.Thumbprint(&jose.JSONWebKey{Key: csr.PublicKey}); err == nil {
		_, err := a.store.GetAccountByThumbprint(ctx, tp)
		switch {
		case err == nil:
			return acme.Errorf(acme.BadCSR, "this public key is an ACME account's key; an account key may not be certified (RFC 8555 section 11.1): generate a separate key pair for the certificate")
		case !isNotFound(err):
			return a.internal(ctx, "look up account keys", err)
		}
	}
	return nil
}

// subjectFor is the subject every certificate of the organisation carries, whatever
// its profile: C=FI, O=the organisation's name, OU=its long name from the register;
// the signer adds CN=the order's first name (for a system signature certificate, the
// system's DNS name). What the CSR asks for in its subject, key usages or EKUs is
// ignored: the profile decides.
func subjectFor(org *store.Organisation) pkix.Name {
	s := pkix.Name{Country: []string{"FI"}, Organization: []string{org.Name}}
	if org.LongName != "" {
		s.OrganizationalUnit = []string{org.LongName}
	}
	return s
}

// Certificate returns the certificate with the given serial if the account may fetch
// it: by the rule that says who may revoke it (revocation.AccountMay), so its own,
// or one of its organisation whose every name its EAB key covers, or any of its
// organisation when the key is not narrowed. A certificate the account may not fetch
// does not exist for it (404). The standing check is not asked: a holder may always
// fetch what it has, also while its organisation is suspended.
func (a *Authority) Certificate(ctx context.Context, acct *store.Account, serial string) (*store.Certificate, error) {
	c, err := a.store.GetCertificate(ctx, serial)
	if isNotFound(err) {
		return nil, notFound("certificate")
	}
	if err != nil {
		return nil, a.internal(ctx, "read the certificate", err)
	}
	var org *store.Organisation
	var eab *store.EABKey
	if c.AccountID != acct.ID && c.OrgOID == acct.OrgOID {
		if org, eab, err = a.accountContext(ctx, acct); err != nil {
			return nil, err
		}
	}
	if revocation.AccountMay(acct, org, eab, c) != nil {
		return nil, notFound("certificate")
	}
	return c, nil
}
