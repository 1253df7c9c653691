-- 0011: ACME Renewal Information (RFC 9773).
--
-- order_replaces records which certificate a newOrder "replaces". Its unique
-- constraint on serial is what makes "a certificate is replaced once" hold across
-- replicas: CreateOrder claims the serial in the order's own transaction. A claim
-- held by an order that never reached finalize (pending, ready, or invalid) is taken
-- over by the newer order in that transaction, the older order becoming invalid; a
-- claim held by a processing or valid order stays, and the insert fails
-- (alreadyReplaced). cert_id is the CertID as the client sent it, for the order's
-- "replaces" member.
CREATE TABLE order_replaces (
	order_id   TEXT NOT NULL REFERENCES orders (id),
	serial     TEXT NOT NULL REFERENCES certificates (serial),
	cert_id    TEXT NOT NULL,
	CONSTRAINT order_replaces_order_id_key PRIMARY KEY (order_id),
	CONSTRAINT order_replaces_serial_key UNIQUE (serial)
);

-- renewal_windows holds the suggested renewal windows operators moved (varmenne
-- renew-early), replacing the default window computed from the certificate's
-- lifetime. Times are unix microseconds UTC.
CREATE TABLE renewal_windows (
	serial     TEXT NOT NULL REFERENCES certificates (serial),
	start_at   {{BIGINT}} NOT NULL,
	end_at     {{BIGINT}} NOT NULL,
	reason     TEXT NOT NULL,
	set_by     TEXT NOT NULL,
	set_at     {{BIGINT}} NOT NULL,
	CONSTRAINT renewal_windows_serial_key PRIMARY KEY (serial)
);
