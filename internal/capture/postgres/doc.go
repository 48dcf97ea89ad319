// Package postgres captures and restores PostgreSQL databases: pg_dump's
// custom format, uncompressed (the vault dedups and compresses), taken in
// one snapshot together with the row count of every user table, and put
// back with pg_restore; the server's globals (roles, tablespaces) with
// pg_dumpall --globals-only. SQL of its own (versions, snapshot, counts,
// CREATE DATABASE) goes through pgx.
//
// Consistency (DESIGN.md, "Consistent database capture"):
//
//	pgx: BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY
//	     SELECT pg_export_snapshot()                 -> snapshot id
//	     list user tables; LOCK TABLE ... IN ACCESS SHARE MODE
//	pg_dump -Fc -Z0 --snapshot=id --lock-wait-timeout=1min   (streams)
//	pgx: SELECT count(*) FROM each table            (same snapshot)
//	Dump returns the stream and the DatabaseInfo
//	EOF/Close: wait for pg_dump; ROLLBACK the snapshot transaction
//
// The dump and the counts describe the same instant: a write committed
// while the dump runs is in neither. Tables are locked up front so none can
// be dropped or altered between the snapshot and pg_dump's own locks; DDL
// that arrives meanwhile waits for the dump, and pg_dump's lock wait is
// bounded so it fails (run the backup again) instead of waiting behind DDL
// that waits for it. Counted tables are ordinary tables and partitions
// outside system schemas, not temporary, not an extension's.
//
// Secrets: a password reaches a child only through a PGPASSFILE (0600, in
// a private 0700 temporary directory removed when the child is done):
// never argv, never the environment (no PGPASSWORD). Children get a minimal
// environment (PATH, PGPASSFILE, PGSSLMODE, PGCONNECT_TIMEOUT, LC_ALL=C), so
// nothing of this process's PG* variables leaks in, and are killed when ctx
// ends. Tool output quoted in errors is searched for the password and
// redacted. pgx gets exactly the given password, never one from the
// process's PGPASSWORD or ~/.pgpass.
//
// Tools: pg_dump, pg_restore and pg_dumpall are looked up in BinDir when it
// is set, else in /usr/lib/postgresql/N/bin (newest N first; /usr/bin's
// are Debian's pg_wrapper) and then PATH. A tool older than the server's
// major version is refused with the package to install.
//
// Errors are *lifeboat.Error: EAuth (password, pg_hba), EUnavailable
// (unreachable, naming host:port), ENotFound (unknown database), EExists
// (Create into an existing database), EInvalid (missing or old tool, bad
// settings), ECorrupt (Verify found a difference; unreadable dump),
// EInterrupted (ctx ended).
//
// postgres imports lifeboat and pgx only. Its tests need a real server:
// LIFEBOAT_TEST_PG_DSN (scripts/test-services.sh), a superuser; tests of
// password authentication start a throwaway cluster of their own (initdb
// from /usr/lib/postgresql/N/bin, scram-sha-256). Without them they skip,
// or fail under LIFEBOAT_TEST_NO_SKIP=1 (internal/testenv).
package postgres
