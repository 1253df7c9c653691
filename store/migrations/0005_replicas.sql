-- 0005: replay nonces that replicas of the server share. (The CRL publisher's
-- lease is in crl_state, migration 0002.)
--
-- A nonce row exists from issue until redeemed or expired; redeeming deletes it, so
-- the row's deletion by exactly one statement is what makes a nonce single-use across
-- every replica. Expired rows are deleted by a periodic cleanup.
CREATE TABLE nonces (
	value   TEXT NOT NULL,
	expires {{BIGINT}} NOT NULL,
	CONSTRAINT nonces_value_key PRIMARY KEY (value)
);
CREATE INDEX nonces_expires_idx ON nonces (expires);
