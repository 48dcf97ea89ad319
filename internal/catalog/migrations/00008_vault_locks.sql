-- Vault locks: a minimum retention for a vault's points, in governance
-- mode (changes need two-person approval) or compliance mode (nobody can
-- weaken it once it is in force).

-- +goose Up
CREATE TABLE vault_locks (
	vault      TEXT PRIMARY KEY,
	doc        TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE vault_locks;
