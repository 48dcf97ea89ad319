-- Two-person approval: a destructive request waits here until a second
-- person approves it (then the server runs it) or it is denied or expires.
-- doc is the request as JSON (method, path, body, its hash, who, why).

-- +goose Up
CREATE TABLE approvals (
	id         TEXT PRIMARY KEY,
	state      TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	doc        TEXT NOT NULL
);

-- +goose Down
DROP TABLE approvals;
