-- Compliance-mode vault locks: the retain-until date set in the storage
-- (S3 object lock) on everything each point needs, so that a point is
-- retained once, not at every scheduler tick.

-- +goose Up
CREATE TABLE point_retention (
	vault    TEXT NOT NULL,
	point    TEXT NOT NULL,
	until_ns BIGINT NOT NULL,
	PRIMARY KEY (vault, point)
);

-- +goose Down
DROP TABLE point_retention;
