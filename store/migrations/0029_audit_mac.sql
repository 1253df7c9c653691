-- 0029: the audit log is keyed.
--
-- mac is the HMAC-SHA256 of the event's sequence number and hash under the audit
-- key, a key the database does not hold (DATA/audit-key, audit.Key): written in
-- the append's transaction, it is what someone who can write the database cannot
-- recompute. '' marks an event written before the log had a key (every event
-- before this migration); once an event carries a MAC every later one must, so
-- "audit verify" says from which event on the log is keyed.
ALTER TABLE audit_log ADD COLUMN mac TEXT NOT NULL DEFAULT '';
