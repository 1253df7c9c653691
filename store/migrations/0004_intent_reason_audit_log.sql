-- 0004: why an issuance intent failed, and the append-only audit log.
--
-- reason says why a failed intent was never signed (a lint refusal, a request that
-- ended before signing); '' for pending and issued intents.
ALTER TABLE issuance_intents ADD COLUMN reason TEXT NOT NULL DEFAULT '';

-- The audit log is append-only and hash-chained: each event's hash covers its own
-- fields and prev_hash, the hash of the event before it ('' for the first), so a
-- changed, removed or reordered event breaks the chain (audit.Verify). seq starts
-- at 1 and has no gaps.
CREATE TABLE audit_log (
	seq       {{BIGINT}} NOT NULL,
	at        {{BIGINT}} NOT NULL,
	actor     TEXT NOT NULL,
	action    TEXT NOT NULL,
	object    TEXT NOT NULL,
	outcome   TEXT NOT NULL,
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL,
	CONSTRAINT audit_log_seq_key PRIMARY KEY (seq)
);
