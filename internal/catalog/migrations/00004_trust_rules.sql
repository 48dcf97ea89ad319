-- Workload-identity federation: trust rules map external OIDC tokens (a CI
-- job's token) to a service identity. doc is the rule as JSON.

-- +goose Up
CREATE TABLE trust_rules (
	name       TEXT PRIMARY KEY,
	doc        TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE trust_rules;
