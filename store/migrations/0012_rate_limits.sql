-- 0012: rate limits that replicas of the server share.
--
-- A row counts the uses of one limit (name) by one subject (an account, an
-- organisation, an account and a name) in one fixed window starting at window_start
-- (unix microseconds UTC). TakeRateLimit adds a use with one conditional upsert, so
-- of any number of concurrent callers on any number of replicas at most the limit
-- are counted per window. Rows past their window are deleted by a periodic cleanup.
CREATE TABLE rate_limits (
	name         TEXT NOT NULL,
	subject      TEXT NOT NULL,
	window_start {{BIGINT}} NOT NULL,
	used         {{BIGINT}} NOT NULL,
	expires      {{BIGINT}} NOT NULL,
	CONSTRAINT rate_limits_name_subject_window_start_key PRIMARY KEY (name, subject, window_start)
);
CREATE INDEX rate_limits_expires_idx ON rate_limits (expires);

-- The pending authorizations of an account are counted at every new order.
CREATE INDEX authorizations_account_status_idx ON authorizations (account_id, status, expires);
