-- 0020: approved networks for ip identifiers (RFC 8738).
--
-- organisations.networks is a JSON array of CIDR prefixes whose addresses the
-- organisation's accounts may name beside a DNS name; '[]' means none, so IP
-- identifiers are refused. eab_keys.networks narrows them for the key's account:
-- '[]' means all of the organisation's networks.
ALTER TABLE organisations ADD COLUMN networks TEXT NOT NULL DEFAULT '[]';
ALTER TABLE eab_keys ADD COLUMN networks TEXT NOT NULL DEFAULT '[]';
