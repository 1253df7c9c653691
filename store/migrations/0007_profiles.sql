-- 0007: certificate profiles for EAB keys and test-only organisations.
--
-- eab_keys.profiles is a JSON array of the profile names the key's account may
-- order; '[]' means every profile the organisation may use. organisations.test_only
-- (0 or 1) limits an organisation to test profiles.
ALTER TABLE eab_keys ADD COLUMN profiles TEXT NOT NULL DEFAULT '[]';
ALTER TABLE organisations ADD COLUMN test_only INTEGER NOT NULL DEFAULT 0;
