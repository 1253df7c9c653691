package main

import (
	"github.com/varmenne/varmenne/admin"
	"github.com/varmenne/varmenne/signer"
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
	for _, iss := range []struct {
		issuer *signer.Issuer
		ocsp   *filekey.Responder
	}{{pki.Production, pki.ProductionOCSP}, {pki.Test, pki.TestOCSP}} {
		f := admin.IssuerFacts{Name: iss.issuer.Name, Key: "file key in the data directory (development)"}
		if k, ok := iss.issuer.Key.(*pkcs11.Key); ok {
			f.Key = "HSM token " + cfg.keys.Token + ", key label " + k.Info().Label
		}
		if iss.ocsp != nil && iss.ocsp.Cert != nil {
			f.OCSPNotBefore, f.OCSPNotAfter = iss.ocsp.Cert.NotBefore, iss.ocsp.Cert.NotAfter
		}
		ca.Issuers = append(ca.Issuers, f)
	}
	return ca
}
