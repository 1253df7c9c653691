package server

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/authority"
	"github.com/varmenne/varmenne/acme/jws"
	"github.com/varmenne/varmenne/store"
)

// decode parses a JSON payload into v; a wrong shape is the client's malformed request.
func decode(payload []byte, v any) error { return acme.DecodePayload(payload, v) }

func (s *Server) newAccount(w http.ResponseWriter, r *http.Request, req *request) error {
	var in acme.NewAccountRequest
	if err := decode(req.payload, &in); err != nil {
		return err
	}
	acct, created, err := s.auth.NewAccount(r.Context(), in, req.jwk, req.url)
	if err != nil {
		return err
	}
	w.Header().Set("Location", s.url(accountPath+acct.ID))
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	s.writeJSON(w, status, s.accountJSON(acct))
	return nil
}

func (s *Server) accountJSON(acct *store.Account) acme.Account {
	return acme.Account{
		Status:  acme.Status(acct.Status),
		Contact: acct.Contacts,
		Orders:  s.url(accountPath + acct.ID + "/orders"),
	}
}

// ownAccount refuses a request to another account's URL.
func ownAccount(r *http.Request, req *request) error {
	if mux.Vars(r)["id"] != req.account.ID {
		return acme.Errorf(acme.Unauthorized, "the JWS kid is not the account this URL names")
	}
	return nil
}

func (s *Server) account(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := ownAccount(r, req); err != nil {
		return err
	}
	acct, err := s.auth.UpdateAccount(r.Context(), req.account, req.payload)
	if err != nil {
		return err
	}
	w.Header().Set("Location", s.url(accountPath+acct.ID))
	s.writeJSON(w, http.StatusOK, s.accountJSON(acct))
	return nil
}

func (s *Server) orders(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := ownAccount(r, req); err != nil {
		return err
	}
	if err := postAsGet(req); err != nil {
		return err
	}
	ids, err := s.auth.Orders(r.Context(), req.account)
	if err != nil {
		return err
	}
	list := acme.OrdersList{Orders: make([]string, 0, len(ids))}
	for _, id := range ids {
		list.Orders = append(list.Orders, s.url(orderPath+id))
	}
	s.writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) newOrder(w http.ResponseWriter, r *http.Request, req *request) error {
	var in acme.NewOrderRequest
	if err := decode(req.payload, &in); err != nil {
		return err
	}
	o, err := s.auth.NewOrder(r.Context(), req.account, in)
	if err != nil {
		return err
	}
	w.Header().Set("Location", s.url(orderPath+o.ID))
	s.writeJSON(w, http.StatusCreated, s.orderJSON(o))
	return nil
}

func (s *Server) orderJSON(o *store.Order) acme.Order {
	out := acme.Order{
		Status:   acme.Status(o.Status),
		Expires:  o.Expires.UTC(),
		Profile:  o.Profile,
		Finalize: s.url(orderPath + o.ID + "/finalize"),
	}
	for _, n := range o.Names {
		out.Identifiers = append(out.Identifiers, acme.IdentifierOf(n))
	}
	for _, id := range o.AuthzIDs {
		out.Authorizations = append(out.Authorizations, s.url(authzPath+id))
	}
	if !o.NotBefore.IsZero() {
		nb := o.NotBefore.UTC()
		out.NotBefore = &nb
	}
	if !o.NotAfter.IsZero() {
		na := o.NotAfter.UTC()
		out.NotAfter = &na
	}
	if o.CertSerial != "" && o.Status == string(acme.StatusValid) {
		out.Certificate = s.url(certPath + o.CertSerial)
	}
	out.Error = storedProblem(o.Error)
	out.Replaces = o.Replaces
	return out
}

func storedProblem(b []byte) *acme.Problem {
	if len(b) == 0 {
		return nil
	}
	var p acme.Problem
	if json.Unmarshal(b, &p) != nil {
		return nil
	}
	return &p
}

// writeOrder answers with the order, telling clients when to look again while it works.
func (s *Server) writeOrder(w http.ResponseWriter, o *store.Order) {
	w.Header().Set("Location", s.url(orderPath+o.ID))
	if o.Status == string(acme.StatusProcessing) {
		w.Header().Set("Retry-After", "1")
	}
	s.writeJSON(w, http.StatusOK, s.orderJSON(o))
}

func (s *Server) order(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := postAsGet(req); err != nil {
		return err
	}
	o, err := s.auth.Order(r.Context(), req.account, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	s.writeOrder(w, o)
	return nil
}

func (s *Server) finalize(w http.ResponseWriter, r *http.Request, req *request) error {
	o, err := s.auth.Finalize(r.Context(), req.account, mux.Vars(r)["id"], req.payload)
	if err != nil {
		return err
	}
	s.writeOrder(w, o)
	return nil
}

func (s *Server) authzJSON(az *store.Authorization) acme.Authorization {
	out := acme.Authorization{
		Identifier: acme.IdentifierOf(az.Name),
		Status:     acme.Status(az.Status),
		Expires:    az.Expires.UTC(),
		Wildcard:   az.Wildcard,
		Challenges: []acme.Challenge{},
	}
	for i := range az.Challenges {
		out.Challenges = append(out.Challenges, s.challengeJSON(&az.Challenges[i]))
	}
	return out
}

func (s *Server) challengeJSON(ch *store.Challenge) acme.Challenge {
	out := acme.Challenge{
		Type:   ch.Type,
		URL:    s.url(challengePath + ch.ID),
		Status: acme.Status(ch.Status),
		Token:  ch.Token,
		Error:  storedProblem(ch.Error),
	}
	if !ch.Validated.IsZero() {
		v := ch.Validated.UTC()
		out.Validated = &v
	}
	if ch.Type == acme.ChallengeDNSPersist01 {
		out.IssuerDomainNames = s.cfg.CAAIdentities
	}
	return out
}

func validating(az *store.Authorization) bool {
	for _, ch := range az.Challenges {
		if ch.Status == string(acme.StatusProcessing) {
			return true
		}
	}
	return false
}

func (s *Server) authorization(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := postAsGet(req); err != nil {
		return err
	}
	az, err := s.auth.Authorization(r.Context(), req.account, mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	if validating(az) {
		w.Header().Set("Retry-After", "1")
	}
	s.writeJSON(w, http.StatusOK, s.authzJSON(az))
	return nil
}

func (s *Server) challenge(w http.ResponseWriter, r *http.Request, req *request) error {
	id := mux.Vars(r)["id"]
	var (
		ch  *store.Challenge
		az  *store.Authorization
		err error
	)
	switch p := strings.TrimSpace(string(req.payload)); {
	case p == "":
		ch, az, err = s.auth.Challenge(r.Context(), req.account, id)
	case strings.HasPrefix(p, "{"):
		var obj map[string]json.RawMessage
		if err := decode(req.payload, &obj); err != nil {
			return err
		}
		ch, az, err = s.auth.RespondChallenge(r.Context(), req.account, id)
	default:
		return acme.Errorf(acme.Malformed, "a challenge response is the JSON object {}")
	}
	if err != nil {
		return err
	}
	w.Header().Add("Link", `<`+s.url(authzPath+az.ID)+`>;rel="up"`)
	if ch.Status == string(acme.StatusProcessing) {
		w.Header().Set("Retry-After", "1")
	}
	s.writeJSON(w, http.StatusOK, s.challengeJSON(ch))
	return nil
}

// certificate serves a certificate (RFC 8555 7.4.2): the PEM chain by default, the
// leaf alone as DER for Accept: application/pkix-cert, the leaf and chain as a
// certs-only PKCS#7 for Accept: application/pkcs7-mime. When the issuer has alternate
// chains configured, each is served at {cert}/alt/{n} and every answer links the
// others with rel="alternate".
func (s *Server) certificate(w http.ResponseWriter, r *http.Request, req *request) error {
	if err := postAsGet(req); err != nil {
		return err
	}
	serial := mux.Vars(r)["serial"]
	c, err := s.auth.Certificate(r.Context(), req.account, serial)
	if err != nil {
		return err
	}
	iss := s.auth.IssuerNamed(c.Issuer) // the chain of the issuer that signed it
	alt := 0                            // 0: the default chain; n: alternate n
	if a, ok := mux.Vars(r)["alt"]; ok {
		if n, err := strconv.Atoi(a); err == nil && n >= 1 && n <= len(iss.Alternates) {
			alt = n
		} else {
			return acme.Errorf(acme.Malformed, "certificate %s has no alternate chain %q (it has %d)", serial, a, len(iss.Alternates))
		}
	}
	for n := 0; n <= len(iss.Alternates); n++ {
		if n == alt {
			continue
		}
		u := s.url(certPath + serial)
		if n > 0 {
			u += "/alt/" + strconv.Itoa(n)
		}
		w.Header().Add("Link", `<`+u+`>;rel="alternate"`)
	}
	chain := append([]*x509.Certificate{iss.Cert}, iss.Chain...)
	if alt > 0 {
		chain = iss.Alternates[alt-1]
	}
	accept := r.Header.Get("Accept")
	switch {
	case strings.Contains(accept, "application/pkix-cert"):
		w.Header().Set("Content-Type", "application/pkix-cert")
		_, _ = w.Write(c.DER)
	case strings.Contains(accept, "application/pkcs7-mime"):
		ders := [][]byte{c.DER}
		for _, ca := range chain {
			ders = append(ders, ca.Raw)
		}
		p7, err := degenerateSignedData(ders)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/pkcs7-mime")
		_, _ = w.Write(p7)
	default:
		var buf bytes.Buffer
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.DER})
		for _, ca := range chain {
			_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
		}
		w.Header().Set("Content-Type", "application/pem-certificate-chain")
		_, _ = w.Write(buf.Bytes())
	}
	return nil
}

func (s *Server) revokeCert(w http.ResponseWriter, r *http.Request, req *request) error {
	var in acme.RevokeRequest
	if err := decode(req.payload, &in); err != nil {
		return err
	}
	if err := s.auth.Revoke(r.Context(), authority.RevokeCaller{Account: req.account, Key: req.jwk, ReceivedAt: req.received}, in); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// keyChange verifies the inner JWS (RFC 8555 7.3.5): signed by the new key, for the same
// url, naming the account and its old key.
func (s *Server) keyChange(w http.ResponseWriter, r *http.Request, req *request) error {
	inner, err := jws.ParseKeyChange(req.payload)
	if err != nil {
		return err
	}
	payload, err := inner.Verify(inner.JWK)
	if err != nil {
		return err
	}
	if inner.URL != req.url {
		return acme.Errorf(acme.Malformed, "the inner JWS url %q differs from the outer url %q", inner.URL, req.url)
	}
	var kc acme.KeyChangeInner
	if err := decode(payload, &kc); err != nil {
		return err
	}
	acct, err := s.auth.ChangeKey(r.Context(), req.account, s.url(accountPath+req.account.ID), kc, inner.JWK)
	if err != nil {
		return err
	}
	w.Header().Set("Location", s.url(accountPath+acct.ID))
	s.writeJSON(w, http.StatusOK, s.accountJSON(acct))
	return nil
}
