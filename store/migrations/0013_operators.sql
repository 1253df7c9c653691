-- 0013: the operator side (issue 6): operators and their credentials, EAB requests
-- with dual-control approval, the EAB key lifecycle, suspended organisations.
--
-- An operator authenticates with a client certificate from the operator CA
-- (cert_fingerprint: lower-case hex SHA-256 of its DER) or a bearer token
-- (token_hash: lower-case hex SHA-256 of the token's secret); '' when it has none.
CREATE TABLE operators (
	name             TEXT NOT NULL,
	role             TEXT NOT NULL,
	token_hash       TEXT NOT NULL DEFAULT '',
	cert_fingerprint TEXT NOT NULL DEFAULT '',
	created_by       TEXT NOT NULL,
	created_at       {{BIGINT}} NOT NULL,
	CONSTRAINT operators_name_key PRIMARY KEY (name)
);
CREATE INDEX operators_cert_fingerprint_idx ON operators (cert_fingerprint);

-- An EAB request: asked for by a registrar (or the e-service) after a person
-- registered; status requested → approved | rejected | expired. kid is the key
-- made at approval.
CREATE TABLE eab_requests (
	id                TEXT NOT NULL,
	org_oid           TEXT NOT NULL REFERENCES organisations (oid),
	requested_by      TEXT NOT NULL,
	person            TEXT NOT NULL,
	identified_by     TEXT NOT NULL,
	technical_contact TEXT NOT NULL,
	domains           TEXT NOT NULL,
	profiles          TEXT NOT NULL,
	status            TEXT NOT NULL,
	created_at        {{BIGINT}} NOT NULL,
	expires_at        {{BIGINT}} NOT NULL,
	decided_by        TEXT NOT NULL DEFAULT '',
	decided_at        {{BIGINT}} NOT NULL DEFAULT 0,
	reason            TEXT NOT NULL DEFAULT '',
	kid               TEXT NOT NULL DEFAULT '',
	CONSTRAINT eab_requests_id_key PRIMARY KEY (id)
);
CREATE INDEX eab_requests_status_idx ON eab_requests (status, expires_at);
CREATE INDEX eab_requests_org_oid_idx ON eab_requests (org_oid);

-- The key's lifecycle: expires_at (0: never, keys of "varmenne eab create"),
-- who asked for and approved it, when its HMAC key was handed over (revealed_at,
-- once), and its revocation.
ALTER TABLE eab_keys ADD COLUMN expires_at {{BIGINT}} NOT NULL DEFAULT 0;
ALTER TABLE eab_keys ADD COLUMN request_id TEXT NOT NULL DEFAULT '';
ALTER TABLE eab_keys ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';
ALTER TABLE eab_keys ADD COLUMN approved_by TEXT NOT NULL DEFAULT '';
ALTER TABLE eab_keys ADD COLUMN revealed_at {{BIGINT}} NOT NULL DEFAULT 0;
ALTER TABLE eab_keys ADD COLUMN revoked_by TEXT NOT NULL DEFAULT '';
ALTER TABLE eab_keys ADD COLUMN revoke_reason TEXT NOT NULL DEFAULT '';
CREATE INDEX eab_keys_status_idx ON eab_keys (status, expires_at);

-- A suspended organisation's accounts get no new orders (suspended_at 0: active).
ALTER TABLE organisations ADD COLUMN suspended_at {{BIGINT}} NOT NULL DEFAULT 0;
ALTER TABLE organisations ADD COLUMN suspended_by TEXT NOT NULL DEFAULT '';
ALTER TABLE organisations ADD COLUMN suspend_reason TEXT NOT NULL DEFAULT '';
