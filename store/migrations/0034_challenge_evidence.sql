-- 0034: what proved control, kept with the challenge (issue 21).
--
-- A dns-persist-01 validation reads a record the organisation published once and
-- may be relied on for many orders; which record (its owner name after CNAMEs and
-- its value, with persistUntil) is kept beside the method (type) and the time
-- (validated), so the authorisation shows what it rests on. '' for the other
-- methods, whose proof is the challenge's own token.
ALTER TABLE challenges ADD COLUMN evidence TEXT NOT NULL DEFAULT '';
