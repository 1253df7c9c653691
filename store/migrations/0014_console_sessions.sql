-- 0014: console sessions in the database (issue 6 follow-up), so a restart does
-- not log operators out and any replica on the same database accepts a session.
--
-- id_hash is the lower-case hex SHA-256 of the session cookie's value; the value
-- itself is never stored. method is how the operator logged in: "token", or
-- "cert:" and the client certificate's fingerprint. A session ends at expires_at
-- (its absolute lifetime) or idle_micros after last_seen, whichever is first.
CREATE TABLE console_sessions (
	id_hash     TEXT NOT NULL,
	operator    TEXT NOT NULL,
	method      TEXT NOT NULL,
	created_at  {{BIGINT}} NOT NULL,
	last_seen   {{BIGINT}} NOT NULL,
	idle_micros {{BIGINT}} NOT NULL,
	expires_at  {{BIGINT}} NOT NULL,
	CONSTRAINT console_sessions_id_hash_key PRIMARY KEY (id_hash)
);
CREATE INDEX console_sessions_operator_idx ON console_sessions (operator);
CREATE INDEX console_sessions_expires_at_idx ON console_sessions (expires_at);
