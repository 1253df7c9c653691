-- 0027: the register copy's age, one figure for every replica.
--
-- Each load of THL's SOTE organisation register (a server's refresh from its
-- --register-source, or "varmenne org import") writes the register into the
-- organisations table and, in the same transaction, this one row: where it came
-- from, when, and how many records it had. The standing check judges the copy's
-- age from it, /readyz and the console show it.
CREATE TABLE register_load (
	id        INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	source    TEXT NOT NULL,
	loaded_at {{BIGINT}} NOT NULL,
	records   INTEGER NOT NULL
);
