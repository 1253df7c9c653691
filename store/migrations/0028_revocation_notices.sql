-- 0028: complete revocation records and the notice to the holder (issue 18).
-- A revocation records the door that received the request and who was at it
-- (received_by; '' for revocations recorded before this migration).
--
-- revocation_notices is the outbox of the e-mail that tells a certificate's
-- holder it was revoked: the revocation inserts its row in the same transaction,
-- so a notice is never lost to a crash and a revocation made by the command line
-- is sent by a running server. A sender claims a due row with a conditional
-- UPDATE (lease_until), so one replica sends it; done_at is set (and outcome
-- says how it ended) after the last try. Rows are never deleted.
ALTER TABLE revocations ADD COLUMN received_by TEXT NOT NULL DEFAULT '';

CREATE TABLE revocation_notices (
	serial       TEXT NOT NULL,
	created_at   {{BIGINT}} NOT NULL,
	attempts     INTEGER NOT NULL,
	next_attempt {{BIGINT}} NOT NULL,
	lease_holder TEXT NOT NULL,
	lease_until  {{BIGINT}} NOT NULL,
	done_at      {{BIGINT}} NOT NULL,
	outcome      TEXT NOT NULL,
	CONSTRAINT revocation_notices_serial_key PRIMARY KEY (serial)
);
CREATE INDEX revocation_notices_due_idx ON revocation_notices (done_at, next_attempt);
