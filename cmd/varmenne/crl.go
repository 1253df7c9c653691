package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/varmenne/varmenne/crl"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/store"
)

// revocationFlags are serve's flags for the revocation status service.
type revocationFlags struct {
	listen   string
	validity crlValidity
}

func addRevocationFlags(fs *flag.FlagSet) *revocationFlags {
	f := &revocationFlags{validity: crlValidity(crl.MaxValidity)}
	fs.StringVar(&f.listen, "public-listen", "127.0.0.1:14080",
		"address of the plain-HTTP listener for CRLs, OCSP and issuer certificates (what --public-url reaches)")
	fs.Var(&f.validity, "crl-validity", "nextUpdate − thisUpdate of CRLs and OCSP answers (at most 8h, the SOTE rule)")
	return f
}

// crlValidity is a duration flag that refuses more than the SOTE maximum when it is
// parsed, so a bad value stops the start before anything is made.
type crlValidity time.Duration

func (v *crlValidity) String() string { return time.Duration(*v).String() }
func (v *crlValidity) Set(s string) error {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return fmt.Errorf("not a duration such as 8h")
	case d <= 0 || d > crl.MaxValidity:
		return fmt.Errorf("%s: a CRL may be valid for at most %s (SOTE); give 8h or less", d, crl.MaxValidity)
	case d < 2*time.Minute:
		return fmt.Errorf("%s: too short to replace a CRL in time; give at least 2m", d)
	}
	*v = crlValidity(d)
	return nil
}

// revocationIssuers are the issuers whose status is published, with the URLs their
// certificates name.
func revocationIssuers(pki *filekey.DevPKI, publicURL string) []crl.Issuer {
	var out []crl.Issuer
	for _, g := range pki.Generations { // every generation: an earlier one answers for its certificates
		is := crl.Issuer{Name: g.Issuer.Name, Cert: g.Issuer.Cert, Key: g.Issuer.Key, CRLURL: crlURL(publicURL, g.Issuer.Name)}
		if r := g.OCSP; r != nil {
			is.OCSP = &crl.Responder{Cert: r.Cert, Key: r.Key}
		}
		out = append(out, is)
	}
	return out
}

// The plain-HTTP URLs certificates carry (CRL DP, AIA OCSP); crl.Handler serves them.
func crlURL(publicURL, issuer string) string {
	return strings.TrimSuffix(publicURL, "/") + "/crl/" + issuer + ".crl"
}
func ocspURL(publicURL, issuer string) string {
	return strings.TrimSuffix(publicURL, "/") + "/ocsp/" + issuer
}

// startRevocationStatus publishes the issuers' CRLs (one at once, then within a poll
// of every revocation and at least hourly) and answers OCSP, on the public
// listener. stop ends both and gives up the publisher's lease.
func startRevocationStatus(ctx context.Context, f *revocationFlags, st *store.SQL, pki *filekey.DevPKI, publicURL string,
	log *slog.Logger) (addr string, stop func(), err error) {
	validity := time.Duration(f.validity)
	issuers := revocationIssuers(pki, publicURL)
	pub, err := crl.NewPublisher(crl.Config{Validity: validity, Interval: min(time.Hour, validity/2), Log: log}, st, issuers)
	if err != nil {
		return "", nil, err
	}
	refresh := min(time.Hour, validity/4)
	responder, err := crl.NewOCSP(crl.OCSPConfig{Validity: validity, Refresh: refresh, UnknownRefresh: min(time.Minute, refresh), Log: log},
		st, issuers)
	if err != nil {
		return "", nil, err
	}
	pub.OnRevocation(responder.Invalidate)

	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return "", nil, fmt.Errorf("cannot listen on %s for CRLs and OCSP: %w; choose another --public-listen", f.listen, err)
	}
	// The first CRLs before anything is served; a failure is logged as an alert and
	// retried by the loop, while the last CRL in the database is served.
	_ = pub.Tick(ctx)

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); pub.Run(runCtx) }()
	srv := &http.Server{
		Handler:           crl.Handler(pub, responder, log),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      2 * time.Minute, // a large CRL to a slow relying party
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("public listener stopped", "error", err, "alert", true)
		}
	}()
	stop = func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = srv.Shutdown(sctx)
		cancel()
		wg.Wait()
	}
	return ln.Addr().String(), stop, nil
}

// crlShow prints what was last published for each issuer; it reads the database,
// so it works beside a running server.
func crlShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("crl show", stderr)
	data := dataFlag(fs)
	db := dbFlag(fs)
	issuer := fs.String("issuer", "", "issuer name: production, test, or a later generation such as production-2 (default: every generation)")
	out := fs.String("out", "", "also write the issuer's current CRL (DER) to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out != "" && *issuer == "" {
		return errors.New("crl show: --out needs --issuer, to say whose CRL to write")
	}
	st, err := db.open(ctx, *data, existing)
	if err != nil {
		return fmt.Errorf("crl show: %w", err)
	}
	defer st.Close()
	names := []string{*issuer}
	if *issuer == "" {
		gens, err := st.IssuerGenerations(ctx)
		if err != nil {
			return fmt.Errorf("crl show: %w", err)
		}
		names = nil
		for _, g := range gens {
			names = append(names, g.Name)
		}
		if len(names) == 0 {
			names = filekey.Hierarchies // a database from before the generations
		}
	}
	now := time.Now()
	for i, name := range names {
		s, err := st.GetPublishedCRL(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("crl show: no CRL of issuer %q was published; start \"varmenne serve\" (varmenne issuer list names the issuers)", name)
		}
		if err != nil {
			return fmt.Errorf("crl show: %w", err)
		}
		recorded, err := st.RevocationCount(ctx, name)
		if err != nil {
			return fmt.Errorf("crl show: %w", err)
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		state := "valid"
		if !s.FinalUntil.IsZero() && !s.NextUpdate.Before(s.FinalUntil) {
			state = "valid; FINAL: the issuer is retired and publishes no other CRL"
		}
		if !now.Before(s.NextUpdate) {
			state = "EXPIRED: relying parties reject certificates now; is varmenne serve running?"
		}
		covered := "all covered"
		if s.Revocations < recorded {
			covered = fmt.Sprintf("%d not yet on it: a running server publishes them within seconds", recorded-s.Revocations)
		}
		fmt.Fprintf(stdout, "issuer:       %s\nnumber:       %d\nthisUpdate:   %s\nnextUpdate:   %s (%s)\nentries:      %d\nrevocations:  %d recorded, %s\nbytes:        %d\npublished by: %s\n",
			name, s.Number, s.ThisUpdate.Format(time.RFC3339), s.NextUpdate.Format(time.RFC3339), state,
			s.Entries, recorded, covered, len(s.DER), s.PublishedBy)
		if *out != "" {
			if err := os.WriteFile(*out, s.DER, 0o644); err != nil {
				return fmt.Errorf("crl show: %w", err)
			}
		}
	}
	return nil
}
