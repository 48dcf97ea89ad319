-- The audit trail becomes a hash chain: every event carries a sequence
-- number, the hash of the event before it and its own hash, appended under
-- a lock on the one chain-head row (several servers on one PostgreSQL
-- catalog never fork the chain). Events keep the caller's source address
-- and request id. Events written before this migration are chained by the
-- server when it opens the catalog.

-- +goose Up
ALTER TABLE audit ADD COLUMN seq BIGINT;
ALTER TABLE audit ADD COLUMN prev_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN hash TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN request_id TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX audit_seq ON audit (seq);

CREATE TABLE audit_head (
	id   INTEGER PRIMARY KEY,
	seq  BIGINT NOT NULL,
	hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');

-- +goose Down
DROP TABLE audit_head;
DROP INDEX audit_seq;
ALTER TABLE audit DROP COLUMN request_id;
ALTER TABLE audit DROP COLUMN source;
ALTER TABLE audit DROP COLUMN hash;
ALTER TABLE audit DROP COLUMN prev_hash;
ALTER TABLE audit DROP COLUMN seq;
