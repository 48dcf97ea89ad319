-- Database servers that components may capture from and restore into
-- (DESIGN.md invariant 6: registered, not free-form). The password is a
-- sealed secret ("dbserver/NAME/password"), never in this table.

-- +goose Up
CREATE TABLE db_servers (
	name       TEXT PRIMARY KEY,
	engine     TEXT NOT NULL,
	doc        TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE db_servers;
