-- 0008: when a challenge or an order became processing (unix microseconds UTC;
-- 0: not processing, or since before this migration).
--
-- The sweeper (SweepStuckChallenges, SweepStuckOrders) fails what has been processing
-- for longer than any live validation or issuance can take: a replica that died, or a
-- database that was down while a result was recorded, would otherwise leave it
-- processing for good (ROBUSTNESS 76).
ALTER TABLE challenges ADD COLUMN processing_since {{BIGINT}} NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN processing_since {{BIGINT}} NOT NULL DEFAULT 0;
