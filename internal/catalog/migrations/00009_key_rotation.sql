-- When a vault's key-encryption key was last rotated (NULL: never, since
-- the vault was created), for key-age warnings.

-- +goose Up
ALTER TABLE vaults ADD COLUMN key_rotated_at BIGINT;

-- +goose Down
ALTER TABLE vaults DROP COLUMN key_rotated_at;
