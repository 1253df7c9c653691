-- 0024: changes to operators need two administrators in production (issue 16, the
-- practice statement's dual control of system-level changes). An administrator
-- asks for a change (add, disable, remove, give a new credential); another
-- administrator approves it, and only then is it applied, in the approving
-- transaction with its audit record.
CREATE TABLE operator_changes (
	id           TEXT NOT NULL,
	kind         TEXT NOT NULL,
	operator     TEXT NOT NULL,
	role         TEXT NOT NULL,
	token        {{BIGINT}} NOT NULL,
	reason       TEXT NOT NULL,
	requested_by TEXT NOT NULL,
	requested_at {{BIGINT}} NOT NULL,
	status       TEXT NOT NULL,
	decided_by   TEXT NOT NULL,
	decided_at   {{BIGINT}} NOT NULL,
	CONSTRAINT operator_changes_id_key PRIMARY KEY (id)
);
CREATE INDEX operator_changes_status_idx ON operator_changes (status);
