package main

import (
	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/internal/metrics"
	"github.com/varmenne/varmenne/signer/filekey"
	"github.com/varmenne/varmenne/signer/pkcs11"
)

// consoleCA is what serve knows of its keys, OCSP responders and register that
// the store does not hold, for the console's health page.
func consoleCA(cfg *serveConfig, pki *filekey.DevPKI) admin.CA {
	var ca admin.CA
	if cfg.register.source != "" {
		ca.RegisterMaxStale = cfg.register.maxStale
	}
	if cfg.keys.Enabled() {
		ca.HSM = &admin.HSMFacts{Module: cfg.keys.Module, Token: cfg.keys.Token, Sessions: cfg.keys.Sessions}
		if ca.HSM.Sessions == 0 {
			ca.HSM.Sessions = pkcs11.DefaultSessions
		}
	}
	for _, g := range pki.Generations {
		f := admin.IssuerFacts{Name: g.Issuer.Name, Key: "file key in the data directory (development)"}
		if k, ok := metrics.UnwrapKey(g.Issuer.Key).(*pkcs11.Key); ok { // timed by the metrics (metrics.go)
			f.Key = "HSM token " + cfg.keys.Token + ", key label " + k.Info().Label
		}
		if g.OCSP != nil && g.OCSP.Cert != nil {
			f.OCSPNotBefore, f.OCSPNotAfter = g.OCSP.Cert.NotBefore, g.OCSP.Cert.NotAfter
		}
		ca.Issuers = append(ca.Issuers, f)
	}
	return ca
}
