-- 0030: issuer generations, their rollover and their retirement (practice
-- statement 6.6 and 6.8.1; issue 18).
--
-- Each hierarchy (production, test) has issuer generations: the first is named
-- as the hierarchy ("production"), later ones "production-2", "production-3", …
-- A server registers every generation it loaded; a key ceremony registers the one
-- it made. Exactly one generation of a hierarchy is active — it signs the new
-- certificates — which the partial unique index holds; an operator moves
-- "active" to another generation, and the old one keeps signing its CRLs and
-- OCSP answers as a standby generation.
--
-- Retirement is asked for by one administrator (retire_requested_*) and carried
-- out by another (retired_by, retired_at, the CHECK): in that transaction every
-- valid certificate of the generation is revoked, state becomes 'retired' and
-- crl_state.final_until is set. Only a standby generation is retired. A retired
-- generation's issuer key is never asked to sign a certificate again
-- (BeginSigning refuses), and its next CRL is its last: valid until final_until,
-- after the last certificate's expiry, the one exception to the 8-hour rule.
CREATE TABLE issuer_generations (
	name                TEXT NOT NULL,
	hierarchy           TEXT NOT NULL,
	generation          INTEGER NOT NULL,
	subject             TEXT NOT NULL,
	cert_sha256         TEXT NOT NULL,
	not_before          {{BIGINT}} NOT NULL,
	not_after           {{BIGINT}} NOT NULL,
	registered_at       {{BIGINT}} NOT NULL,
	state               TEXT NOT NULL,
	state_since         {{BIGINT}} NOT NULL,
	state_by            TEXT NOT NULL,
	retire_reason       TEXT NOT NULL,
	retire_requested_by TEXT NOT NULL,
	retire_requested_at {{BIGINT}} NOT NULL,
	retired_by          TEXT NOT NULL,
	retired_at          {{BIGINT}} NOT NULL,
	CONSTRAINT issuer_generations_name_key PRIMARY KEY (name),
	CONSTRAINT issuer_generations_number_key UNIQUE (hierarchy, generation),
	CONSTRAINT issuer_generations_cert_key UNIQUE (cert_sha256),
	CONSTRAINT issuer_generations_state_check CHECK (state IN ('standby', 'active', 'retired')),
	CONSTRAINT issuer_generations_generation_check CHECK (generation >= 1),
	CONSTRAINT issuer_generations_dual_check CHECK (
		(state <> 'retired' AND retired_by = '')
		OR (state = 'retired' AND retire_requested_by <> '' AND retired_by <> '' AND retired_by <> retire_requested_by))
);
CREATE UNIQUE INDEX issuer_generations_active_idx ON issuer_generations (hierarchy) WHERE state = 'active';

-- final_until: 0, or the nextUpdate of the retired issuer's final CRL (set by the
-- retirement, read by the publisher, which then publishes once more and stops).
ALTER TABLE crl_state ADD COLUMN final_until {{BIGINT}} NOT NULL DEFAULT 0;
