-- 0033: indexes for the operators' console.
--
-- The audit page filters by actor and by action and pages on the sequence number
-- (keyset); the health page counts the certificates issued per day and those
-- expiring per day over 30 days, neither of which may read the whole table.
CREATE INDEX audit_log_actor_idx ON audit_log (actor, seq);
CREATE INDEX audit_log_action_idx ON audit_log (action, seq);
CREATE INDEX certificates_created_at_idx ON certificates (created_at);
CREATE INDEX certificates_not_after_idx ON certificates (not_after);
