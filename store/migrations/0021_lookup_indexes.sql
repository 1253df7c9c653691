-- 0021: indexes for the lookups that still read whole tables.
--
-- The sweep of work a crashed replica left (orders and challenges stuck in
-- processing) reads only processing rows; the certificate of an order, the
-- certificates of an issuer (renew-early --issuer) and the intents without a
-- certificate (varmenne intents list, revoke --org) are found without reading every
-- issuance. Partial indexes keep the indexes of the sweep as small as the work left.
CREATE INDEX orders_processing_idx ON orders (processing_since) WHERE status = 'processing';
CREATE INDEX challenges_processing_idx ON challenges (processing_since) WHERE status = 'processing';
CREATE INDEX certificates_order_id_idx ON certificates (order_id);
CREATE INDEX certificates_issuer_idx ON certificates (issuer, not_after);
CREATE INDEX issuance_intents_unissued_idx ON issuance_intents (created_at, serial) WHERE status <> 'issued';
CREATE INDEX issuance_intents_pending_order_idx ON issuance_intents (order_id) WHERE status = 'pending';
