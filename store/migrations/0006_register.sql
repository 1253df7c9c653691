-- 0006: THL SOTE organisation register data and certificates of conformity.
--
-- The organisation's register data as of the last "varmenne org import" that listed
-- it: business id, sector ('public', 'private', '' unknown), Kanta intermediary flag
-- (0 or 1), register status and begin/expiration dates (0: open), parent OID, when an
-- import last listed it and when one first no longer did (0: never / still listed).
ALTER TABLE organisations ADD COLUMN abbreviation TEXT NOT NULL DEFAULT '';
ALTER TABLE organisations ADD COLUMN business_id TEXT NOT NULL DEFAULT '';
ALTER TABLE organisations ADD COLUMN sector TEXT NOT NULL DEFAULT '';
ALTER TABLE organisations ADD COLUMN intermediary INTEGER NOT NULL DEFAULT 0;
ALTER TABLE organisations ADD COLUMN register_status TEXT NOT NULL DEFAULT '';
ALTER TABLE organisations ADD COLUMN register_begin {{BIGINT}} NOT NULL DEFAULT 0;
ALTER TABLE organisations ADD COLUMN register_end {{BIGINT}} NOT NULL DEFAULT 0;
ALTER TABLE organisations ADD COLUMN parent_oid TEXT NOT NULL DEFAULT '';
ALTER TABLE organisations ADD COLUMN register_synced_at {{BIGINT}} NOT NULL DEFAULT 0;
ALTER TABLE organisations ADD COLUMN register_left_at {{BIGINT}} NOT NULL DEFAULT 0;

-- A certificate of conformity of an information system, on file for an organisation.
-- A renewed certificate of the same system is a new row (another expiry).
CREATE TABLE conformity_certificates (
	org_oid    TEXT NOT NULL REFERENCES organisations (oid),
	system     TEXT NOT NULL,
	expires    {{BIGINT}} NOT NULL,
	added_by   TEXT NOT NULL,
	created_at {{BIGINT}} NOT NULL,
	CONSTRAINT conformity_certificates_org_oid_system_expires_key PRIMARY KEY (org_oid, system, expires)
);
