-- 0035: the reusable-authorization lookup of every new order reads one entry.
--
-- FindReusableAuthorization asks for an account's valid, unexpired authorization of
-- one name. The index of 0003 ended at status, so SQLite's planner (no statistics)
-- preferred authorizations_account_status_idx (account_id, status, expires), whose
-- range on expires also serves the ORDER BY, and read every valid authorization of
-- the account to find the name: a new order cost more the more names the account
-- had validated (0.7 ms of CPU per certificate for an account with 2 000). With
-- expires as its last column the reuse index answers the equalities and the range
-- at once. authorizations_account_id_idx (account_id) is the first column of both
-- other indexes and only made every insert write one more b-tree.
DROP INDEX authorizations_reuse_idx;
CREATE INDEX authorizations_reuse_idx ON authorizations (account_id, name, wildcard, status, expires);
DROP INDEX authorizations_account_id_idx;
