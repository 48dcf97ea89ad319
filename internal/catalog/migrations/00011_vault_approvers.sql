-- A vault's own approvers group: the group whose members approve the
-- vault's destructive requests (NULL: the server's "approvers" group).

-- +goose Up
ALTER TABLE vaults ADD COLUMN approvers TEXT;

-- +goose Down
ALTER TABLE vaults DROP COLUMN approvers;
