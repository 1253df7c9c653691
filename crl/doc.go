// Package crl publishes revocation status so any relying party can check it: it
// numbers, builds, checks, signs and publishes one full CRL per issuer, answers OCSP
// requests with a delegated responder, and serves both, with the issuer
// certificates, over plain HTTP.
//
// It decides nothing about who may revoke what (package revocation does)
// and never writes a revocation: it reads revocations from the store and
// records only what it published. The CRL number's order is enforced by the
// database, not by this process, so replicas and restarts cannot publish a number
// twice or backwards.
package crl
