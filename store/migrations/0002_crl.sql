-- 0002: revocations as CRLs and OCSP read them, and the state of CRL publication.
--
-- The revocations table is rebuilt (SQLite cannot drop a foreign key in place):
-- * the foreign key to certificates goes, because a serial with only a pending
--   issuance intent (signed perhaps, never stored) must be revocable and listed;
-- * each row carries what a CRL needs without a join: the issuer, the organisation
--   whose certificate it is, and the certificate's notAfter (until when, plus a
--   lookback margin, the CRL lists it; 0 means unknown: listed for ever);
-- * requested_at (when it was asked for) and invalidity_date (0: not given).
-- The copy goes through a plain table so that the constraint names are free again
-- before the new table takes them (PostgreSQL keeps them on a renamed table).

CREATE TABLE revocations_0001 AS
	SELECT serial, revoked_at, reason, requested_by, identified_by, performed_by, note FROM revocations;
DROP TABLE revocations;

-- Revocations are final and never deleted.
CREATE TABLE revocations (
	serial          TEXT NOT NULL,
	issuer          TEXT NOT NULL,
	org_oid         TEXT NOT NULL,
	not_after       {{BIGINT}} NOT NULL,
	revoked_at      {{BIGINT}} NOT NULL,
	requested_at    {{BIGINT}} NOT NULL,
	reason          INTEGER NOT NULL,
	invalidity_date {{BIGINT}} NOT NULL,
	requested_by    TEXT NOT NULL,
	identified_by   TEXT NOT NULL,
	performed_by    TEXT NOT NULL,
	note            TEXT NOT NULL,
	CONSTRAINT revocations_serial_key PRIMARY KEY (serial)
);
CREATE INDEX revocations_issuer_not_after_idx ON revocations (issuer, not_after);
CREATE INDEX revocations_org_oid_idx ON revocations (org_oid);

INSERT INTO revocations (serial, issuer, org_oid, not_after, revoked_at, requested_at, reason, invalidity_date,
	requested_by, identified_by, performed_by, note)
	SELECT r.serial, c.issuer, c.org_oid, c.not_after, r.revoked_at, r.revoked_at, r.reason, 0,
		r.requested_by, r.identified_by, r.performed_by, r.note
	FROM revocations_0001 r JOIN certificates c ON c.serial = r.serial;
DROP TABLE revocations_0001;

CREATE INDEX certificates_org_oid_idx ON certificates (org_oid, not_after);

-- One row per issuer: the last CRL published and the publisher's lease.
-- number is the CRLNumber of the last published CRL (0: none yet); the store only
-- ever moves it up, in a conditional UPDATE, so it strictly increases across
-- restarts and replicas. A BIGINT lasts 2^63 publications: at one a second, far
-- longer than any issuer, and always below the 2^159 RFC 5280 allows.
-- revocations is the count of the issuer's revocations the CRL covers: rows are
-- never deleted, so a larger count means a revocation the CRL lacks.
CREATE TABLE crl_state (
	issuer       TEXT NOT NULL,
	number       {{BIGINT}} NOT NULL,
	this_update  {{BIGINT}} NOT NULL,
	next_update  {{BIGINT}} NOT NULL,
	der          {{BLOB}},
	entries      {{BIGINT}} NOT NULL,
	revocations  {{BIGINT}} NOT NULL,
	published_by TEXT NOT NULL,
	lease_holder TEXT NOT NULL,
	lease_until  {{BIGINT}} NOT NULL,
	CONSTRAINT crl_state_issuer_key PRIMARY KEY (issuer),
	CONSTRAINT crl_state_number_check CHECK (number >= 0)
);
