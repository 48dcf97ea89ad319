-- The catalog's first schema. One file for SQLite and PostgreSQL: portable
-- types only (TEXT, BIGINT, INTEGER 0/1 for booleans), times as Unix
-- nanoseconds, documents as JSON text, ids as text.

-- +goose Up
CREATE TABLE server_settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

CREATE TABLE vaults (
	name            TEXT PRIMARY KEY,
	region          TEXT NOT NULL,
	location        TEXT NOT NULL,
	is_default      INTEGER NOT NULL DEFAULT 0,
	passphrase      TEXT NOT NULL,          -- sealed under the server master key
	key_exported_at BIGINT,
	created_at      BIGINT NOT NULL,
	retired_at      BIGINT
);

CREATE TABLE hosts (
	name       TEXT PRIMARY KEY,
	kind       TEXT NOT NULL,
	doc        TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

CREATE TABLE apps (
	name        TEXT PRIMARY KEY,
	vault       TEXT NOT NULL REFERENCES vaults(name),
	environment TEXT NOT NULL,
	doc         TEXT NOT NULL,
	created_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL,
	retired_at  BIGINT
);

CREATE TABLE policies (
	name       TEXT PRIMARY KEY,
	doc        TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

-- points is a cache of the vaults' manifests (rebuilt by vault sync).
CREATE TABLE points (
	id         TEXT PRIMARY KEY,
	vault      TEXT NOT NULL,
	app        TEXT NOT NULL,
	time       BIGINT NOT NULL,
	partial    INTEGER NOT NULL DEFAULT 0,
	reason     TEXT NOT NULL DEFAULT '',    -- the reason label: scheduled, manual, pre-deploy, pre-restore...
	doc        TEXT NOT NULL,
	settings   TEXT NOT NULL DEFAULT '{}',  -- key -> keyed hash, never values
	deleted_at BIGINT
);
CREATE INDEX points_app_time ON points (app, time);

CREATE TABLE jobs (
	id              TEXT PRIMARY KEY,
	kind            TEXT NOT NULL,
	app             TEXT NOT NULL DEFAULT '',
	vault           TEXT NOT NULL DEFAULT '',
	state           TEXT NOT NULL,
	requested_by    TEXT NOT NULL DEFAULT '',
	spec            TEXT NOT NULL DEFAULT '{}',
	progress        TEXT NOT NULL DEFAULT '',
	result          TEXT NOT NULL DEFAULT '',
	error           TEXT NOT NULL DEFAULT '',
	attempts        INTEGER NOT NULL DEFAULT 0,
	cancel          INTEGER NOT NULL DEFAULT 0,
	idempotency_key TEXT UNIQUE,
	created_at      BIGINT NOT NULL,
	not_before      BIGINT NOT NULL,
	started_at      BIGINT,
	finished_at     BIGINT,
	lease_owner     TEXT NOT NULL DEFAULT '',
	lease_until     BIGINT NOT NULL DEFAULT 0,
	fence           BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX jobs_state ON jobs (state, not_before);
CREATE INDEX jobs_app ON jobs (app, created_at);

CREATE TABLE job_logs (
	job_id TEXT NOT NULL,
	seq    BIGINT NOT NULL,
	time   BIGINT NOT NULL,
	level  TEXT NOT NULL,
	msg    TEXT NOT NULL,
	PRIMARY KEY (job_id, seq)
);

CREATE TABLE schedule_state (
	app      TEXT PRIMARY KEY,
	policy   TEXT NOT NULL,
	last_run BIGINT NOT NULL,
	next_run BIGINT NOT NULL
);

CREATE TABLE principals (
	name       TEXT PRIMARY KEY,
	kind       TEXT NOT NULL,
	admin      INTEGER NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL
);

CREATE TABLE tokens (
	id           TEXT PRIMARY KEY,
	principal    TEXT NOT NULL REFERENCES principals(name),
	hash         TEXT NOT NULL UNIQUE,   -- SHA-256 of the token; the token itself is never stored
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT,
	last_used_at BIGINT,
	revoked_at   BIGINT
);

CREATE TABLE secrets (
	name   TEXT PRIMARY KEY,
	sealed TEXT NOT NULL
);

CREATE TABLE audit (
	id      TEXT PRIMARY KEY,              -- time-ordered
	time    BIGINT NOT NULL,
	actor   TEXT NOT NULL,
	action  TEXT NOT NULL,
	target  TEXT NOT NULL,
	outcome TEXT NOT NULL,
	detail  TEXT NOT NULL DEFAULT ''
);

-- leases serialise work on shared things (a vault's garbage collection);
-- the fence grows with every grant.
CREATE TABLE leases (
	name  TEXT PRIMARY KEY,
	owner TEXT NOT NULL,
	until BIGINT NOT NULL,
	fence BIGINT NOT NULL
);

CREATE TABLE idempotency (
	key        TEXT PRIMARY KEY,
	request    TEXT NOT NULL,             -- hash of method, path, principal and body
	response   TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE idempotency;
DROP TABLE leases;
DROP TABLE audit;
DROP TABLE secrets;
DROP TABLE tokens;
DROP TABLE principals;
DROP TABLE schedule_state;
DROP TABLE job_logs;
DROP TABLE jobs;
DROP TABLE points;
DROP TABLE policies;
DROP TABLE apps;
DROP TABLE hosts;
DROP TABLE vaults;
DROP TABLE server_settings;
