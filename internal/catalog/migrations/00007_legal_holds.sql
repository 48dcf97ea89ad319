-- Legal holds on whole apps: while held, none of the app's points is
-- deleted (point holds live in the vault, as markers).

-- +goose Up
CREATE TABLE legal_holds (
	app        TEXT PRIMARY KEY,
	reason     TEXT NOT NULL,
	held_by    TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE legal_holds;
