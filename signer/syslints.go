package signer

import "maps"

// systemSignatureIgnoredLints are the lints that do not fit SOTE system signature
// certificates beyond SOTEIgnoredLints, with the reason for each.
//
// zlint takes a leaf without an EKU extension for a TLS server certificate (no EKU
// means any purpose) and holds it to the CA/Browser Forum's TLS rules. A system
// signature certificate carries no EKU by default because SOTE names none for it;
// those TLS rules do not describe it. (A profile can configure an EKU such as RFC
// 9336 documentSigning instead; then zlint no longer takes it for TLS.)
var systemSignatureIgnoredLints = map[string]string{
	"e_sub_cert_eku_missing": "SOTE names no EKU for system signature certificates; " +
		"zlint takes a leaf without EKU for a TLS server certificate",
	"e_tls_server_cert_valid_time_longer_than_398_days": "system signature certificates are valid 2 years by the SOTE rules and are not TLS certificates",
	"e_cabf_ecc_allowed_key_usages": "system signature certificates need nonRepudiation (contentCommitment) to sign documents; " +
		"the CA/B Forum TLS rule allowing ECC keys only digitalSignature and keyAgreement does not apply",
}

// SystemSignatureIgnoredLints is SOTEIgnoredLints plus the lints that do not apply to
// system signature certificates: they sign documents, not TLS connections.
func SystemSignatureIgnoredLints() map[string]string {
	m := maps.Clone(SOTEIgnoredLints)
	maps.Copy(m, systemSignatureIgnoredLints)
	return m
}
