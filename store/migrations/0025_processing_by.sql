-- 0025: which serving process put a challenge or an order into processing (issue
-- 17: a crash costs seconds). Each serving process holds a liveness lock named by
-- an instance id it makes at start (store/liveness.go); the sweeper fails at once
-- what a process whose lock can be taken left processing, and keeps the
-- time-based sweep of 0008 for rows with no instance ('': before this migration,
-- or written by a process that holds no instance).
--
-- crl_state.lease_holder and lease_until are no longer used: the right to publish
-- an issuer's CRLs is a lock that dies with its holder. They stay (migrations only
-- add).
ALTER TABLE challenges ADD COLUMN processing_by TEXT NOT NULL DEFAULT '';
ALTER TABLE orders ADD COLUMN processing_by TEXT NOT NULL DEFAULT '';
