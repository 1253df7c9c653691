-- 0001: the initial schema.
--
-- Written once for every dialect: {{BLOB}}, {{BIGINT}} and {{SERIAL}} are replaced by
-- the dialect's types. Every unique constraint is named <table>_<columns>_key (columns
-- joined by "_"), the name the store looks for when it turns a violation into a
-- sentinel error (SQLite reports "table.column", PostgreSQL the constraint name).
--
-- Times are unix microseconds UTC, 0 meaning "not set". Lists are JSON arrays.
-- Serials and key hashes are lower-case hex.

CREATE TABLE organisations (
	oid        TEXT NOT NULL,
	name       TEXT NOT NULL,
	long_name  TEXT NOT NULL,
	domains    TEXT NOT NULL,
	created_at {{BIGINT}} NOT NULL,
	CONSTRAINT organisations_oid_key PRIMARY KEY (oid)
);

-- account_id is a back-reference written in the same transaction that inserts the
-- account, before the account row exists, so it carries no foreign key.
CREATE TABLE eab_keys (
	kid        TEXT NOT NULL,
	org_oid    TEXT NOT NULL REFERENCES organisations (oid),
	hmac_key   {{BLOB}} NOT NULL,
	domains    TEXT NOT NULL,
	status     TEXT NOT NULL,
	account_id TEXT NOT NULL DEFAULT '',
	created_at {{BIGINT}} NOT NULL,
	bound_at   {{BIGINT}} NOT NULL DEFAULT 0,
	CONSTRAINT eab_keys_kid_key PRIMARY KEY (kid)
);
CREATE INDEX eab_keys_org_oid_idx ON eab_keys (org_oid);

CREATE TABLE accounts (
	id         TEXT NOT NULL,
	thumbprint TEXT NOT NULL,
	jwk        {{BLOB}} NOT NULL,
	org_oid    TEXT NOT NULL REFERENCES organisations (oid),
	eab_kid    TEXT NOT NULL REFERENCES eab_keys (kid),
	contacts   TEXT NOT NULL,
	status     TEXT NOT NULL,
	created_at {{BIGINT}} NOT NULL,
	CONSTRAINT accounts_id_key PRIMARY KEY (id),
	CONSTRAINT accounts_thumbprint_key UNIQUE (thumbprint)
);
CREATE INDEX accounts_org_oid_idx ON accounts (org_oid);

-- seq records insertion order, which the account's orders list follows.
CREATE TABLE orders (
	seq         {{SERIAL}},
	id          TEXT NOT NULL,
	account_id  TEXT NOT NULL REFERENCES accounts (id),
	org_oid     TEXT NOT NULL REFERENCES organisations (oid),
	status      TEXT NOT NULL,
	expires     {{BIGINT}} NOT NULL,
	names       TEXT NOT NULL,
	profile     TEXT NOT NULL,
	not_before  {{BIGINT}} NOT NULL,
	not_after   {{BIGINT}} NOT NULL,
	error       {{BLOB}},
	cert_serial TEXT NOT NULL DEFAULT '',
	created_at  {{BIGINT}} NOT NULL,
	CONSTRAINT orders_id_key UNIQUE (id)
);
CREATE INDEX orders_account_id_idx ON orders (account_id, seq);

CREATE TABLE authorizations (
	id         TEXT NOT NULL,
	account_id TEXT NOT NULL REFERENCES accounts (id),
	name       TEXT NOT NULL,
	wildcard   INTEGER NOT NULL,
	status     TEXT NOT NULL,
	expires    {{BIGINT}} NOT NULL,
	created_at {{BIGINT}} NOT NULL,
	CONSTRAINT authorizations_id_key PRIMARY KEY (id)
);
CREATE INDEX authorizations_account_id_idx ON authorizations (account_id);

-- The partial unique index lets at most one challenge of an authorization be
-- processing, even when two transactions start different challenges at once.
CREATE TABLE challenges (
	id        TEXT NOT NULL,
	authz_id  TEXT NOT NULL REFERENCES authorizations (id),
	pos       INTEGER NOT NULL,
	type      TEXT NOT NULL,
	token     TEXT NOT NULL,
	status    TEXT NOT NULL,
	validated {{BIGINT}} NOT NULL,
	error     {{BLOB}},
	CONSTRAINT challenges_id_key PRIMARY KEY (id)
);
CREATE INDEX challenges_authz_id_idx ON challenges (authz_id, pos);
CREATE UNIQUE INDEX challenges_authz_id_key ON challenges (authz_id) WHERE status = 'processing';

-- An authorization may serve several orders (reuse), hence the link table.
CREATE TABLE order_authzs (
	order_id TEXT NOT NULL REFERENCES orders (id),
	authz_id TEXT NOT NULL REFERENCES authorizations (id),
	pos      INTEGER NOT NULL,
	CONSTRAINT order_authzs_order_id_pos_key PRIMARY KEY (order_id, pos)
);
CREATE INDEX order_authzs_authz_id_idx ON order_authzs (authz_id);

-- A key is held by at most one intent that is not failed: the partial unique index
-- stops two finalizations of the same key racing to the issuer.
CREATE TABLE issuance_intents (
	serial     TEXT NOT NULL,
	order_id   TEXT NOT NULL REFERENCES orders (id),
	issuer     TEXT NOT NULL,
	names      TEXT NOT NULL,
	key_hash   TEXT NOT NULL,
	lint_tbs   {{BLOB}},
	status     TEXT NOT NULL,
	created_at {{BIGINT}} NOT NULL,
	CONSTRAINT issuance_intents_serial_key PRIMARY KEY (serial)
);
CREATE UNIQUE INDEX issuance_intents_key_hash_key ON issuance_intents (key_hash) WHERE status <> 'failed';

CREATE TABLE certificates (
	serial     TEXT NOT NULL,
	issuer     TEXT NOT NULL,
	der        {{BLOB}} NOT NULL,
	names      TEXT NOT NULL,
	key_hash   TEXT NOT NULL,
	not_before {{BIGINT}} NOT NULL,
	not_after  {{BIGINT}} NOT NULL,
	org_oid    TEXT NOT NULL,
	account_id TEXT NOT NULL,
	order_id   TEXT NOT NULL,
	profile    TEXT NOT NULL,
	created_at {{BIGINT}} NOT NULL,
	CONSTRAINT certificates_serial_key PRIMARY KEY (serial),
	CONSTRAINT certificates_key_hash_key UNIQUE (key_hash)
);

-- Revocations are final and never deleted.
CREATE TABLE revocations (
	serial        TEXT NOT NULL REFERENCES certificates (serial),
	revoked_at    {{BIGINT}} NOT NULL,
	reason        INTEGER NOT NULL,
	requested_by  TEXT NOT NULL,
	identified_by TEXT NOT NULL,
	performed_by  TEXT NOT NULL,
	note          TEXT NOT NULL,
	CONSTRAINT revocations_serial_key PRIMARY KEY (serial)
);

CREATE TABLE blocked_keys (
	key_hash   TEXT NOT NULL,
	reason     TEXT NOT NULL,
	source     TEXT NOT NULL,
	created_at {{BIGINT}} NOT NULL,
	CONSTRAINT blocked_keys_key_hash_key PRIMARY KEY (key_hash)
);
