-- Identity and access: users sign in with a password (an Argon2id hash,
-- PHC string), groups hold members (users, service identities, other
-- groups), and assignments give a principal a role on a scope.

-- +goose Up
ALTER TABLE principals ADD COLUMN password_hash TEXT NOT NULL DEFAULT '';

CREATE TABLE group_members (
	grp      TEXT NOT NULL REFERENCES principals(name),
	member   TEXT NOT NULL REFERENCES principals(name),
	added_at BIGINT NOT NULL,
	PRIMARY KEY (grp, member)
);

CREATE TABLE assignments (
	id         TEXT PRIMARY KEY,
	principal  TEXT NOT NULL REFERENCES principals(name),
	role       TEXT NOT NULL,
	scope      TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	created_by TEXT NOT NULL,
	UNIQUE (principal, role, scope)
);

CREATE INDEX tokens_principal ON tokens (principal);

-- +goose Down
DROP INDEX tokens_principal;
DROP TABLE assignments;
DROP TABLE group_members;
ALTER TABLE principals DROP COLUMN password_hash;
