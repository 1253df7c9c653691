-- 0022: the operations core (issue 15). Operators can be disabled (their
-- credentials stop working at once, on every replica) and their bearer tokens
-- carry an expiry (0: none, for tokens made before this migration). settings
-- keeps facts about the CA that every door must see alike: "production" is set
-- the first time a server starts with its issuer keys in an HSM, and from then
-- on the development shortcuts (one operator approving their own EAB request)
-- are refused, by the server and the CLI alike. An EAB request carries the
-- networks it narrows the key to, as the key does.
ALTER TABLE operators ADD COLUMN disabled_at {{BIGINT}} NOT NULL DEFAULT 0;
ALTER TABLE operators ADD COLUMN disabled_by TEXT NOT NULL DEFAULT '';
ALTER TABLE operators ADD COLUMN token_expires_at {{BIGINT}} NOT NULL DEFAULT 0;
CREATE TABLE settings (
	name   TEXT NOT NULL,
	value  TEXT NOT NULL,
	set_at {{BIGINT}} NOT NULL,
	CONSTRAINT settings_name_key PRIMARY KEY (name)
);
ALTER TABLE eab_requests ADD COLUMN networks TEXT NOT NULL DEFAULT '[]';
