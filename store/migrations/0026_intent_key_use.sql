-- How far the issuer key got with an intent, so that `varmenne intents list` can say
-- what a crash left behind. key_use is 'none' when the intent is recorded (the key
-- was never asked: its serial was never signed), 'asked' once the
-- certificate.sign.begin event is written with it (the key may have signed), and
-- 'signed' once the signature verified, written with certificate.sign.end; each
-- step commits with its audit event. A signed intent keeps its certificate (der, and
-- cert_sha256 as the audit event names it) until FinishIssuance stores the
-- certificate and clears der. Intents recorded before this migration are 'unknown'.
ALTER TABLE issuance_intents ADD COLUMN key_use TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE issuance_intents ADD COLUMN cert_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE issuance_intents ADD COLUMN der {{BLOB}};
