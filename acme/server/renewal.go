package server

import (
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/varmenne/varmenne/acme"
	"github.com/varmenne/varmenne/acme/authority"
)

// renewalInfo answers GET {renewalInfo}/{CertID} (RFC 9773 section 4): the
// certificate's suggested renewal window, and when to ask again. It is a GET
// resource like the directory: no JWS, no nonce.
func (s *Server) renewalInfo(w http.ResponseWriter, r *http.Request) {
	info, err := s.auth.RenewalInfo(r.Context(), mux.Vars(r)["certid"])
	if err != nil {
		s.problem(w, r, err)
		return
	}
	if info.Reason != "" {
		s.log.InfoContext(r.Context(), "renewal window in the past", "serial", info.Serial, "reason", info.Reason)
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(authority.RenewalInfoRetryAfter.Seconds())))
	s.writeJSON(w, http.StatusOK, acme.RenewalInfo{
		SuggestedWindow: acme.RenewalWindow{Start: info.Start, End: info.End},
	})
}
