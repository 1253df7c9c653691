-- 0003: finding an account's valid authorization for a name to reuse.
--
-- NewOrder looks up, per name, the account's valid authorization for that name (and
-- wildcard flag); without this index the lookup scans every authorization the
-- account ever had.

CREATE INDEX authorizations_reuse_idx ON authorizations (account_id, name, wildcard, status);
