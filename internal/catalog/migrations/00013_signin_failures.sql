-- Failed sign-ins (passwords, ID tokens, browser sign-ins, current
-- passwords), by key ("name:ann", "addr:192.0.2.1"), for the rate limit:
-- in the catalog, so that several servers share one count.

-- +goose Up
CREATE TABLE signin_failures (
	key TEXT NOT NULL,
	at  BIGINT NOT NULL
);
CREATE INDEX signin_failures_key_at ON signin_failures (key, at);

-- +goose Down
DROP TABLE signin_failures;
