// Package mysql captures and restores MySQL and MariaDB databases with the
// servers' own client tools (mariadb-dump or mysqldump, mariadb or mysql;
// Debian package mariadb-client), streamed, so no driver is linked in.
//
// Secrets: credentials reach a child only through an option file (0600, in
// a private 0700 temporary directory removed afterwards) given as
// --defaults-file, the only option file the child then reads: /etc/mysql
// and ~/.my.cnf can neither override nor leak into it. Children run with
// a minimal environment (PATH, HOME=that directory, LC_ALL=C), so
// MYSQL_PWD and friends never reach them, and are killed when ctx ends.
// Error text from the tools is searched for the password and redacted.
//
// Consistency (DESIGN.md, "Consistent database capture"):
//
//	inspect: tables + engines, schema fingerprint F1 (information_schema)
//	mariadb-dump --single-transaction ...   (one InnoDB snapshot)
//	  while streaming, count each table's rows in the dump's own INSERTs
//	exit status 0, "-- Dump completed" trailer, every table dumped?
//	inspect again: fingerprint F2 == F1?
//	only then does Read return io.EOF; otherwise an error
//
// Non-transactional tables (MyISAM, Aria, MEMORY...: engines whose
// information_schema.ENGINES.TRANSACTIONS is not YES) are outside the
// snapshot: each is named in DatabaseInfo.Warnings, or, with
// DumpOptions.LockNonTransactional, the dump runs under --lock-tables
// (consistent, but the database's tables are read-locked for the whole
// dump).
//
// DDL during the dump: mariadb-dump reads each table's CREATE statement
// from the live dictionary, not from its snapshot, and MariaDB 10.11 lets
// it succeed silently when a table not yet dumped is altered (the CREATE
// shows the new column, the rows come from before it: a torn copy that
// would not even restore). A dropped table makes it fail (1146). Both are
// caught: the tool's failure, or a fingerprint of tables, columns, indexes,
// triggers, views, routines and events that differs after the dump from
// before it, fails the read with EUnavailable ("run the backup again").
// DDL on a table the dump has already read waits for the dump (metadata
// lock) and may be caught too: failing is the safe side.
//
// Row counts are those of the dump itself, counted from its INSERT
// statements as they stream past: for InnoDB tables exactly the snapshot's
// rows, with no second query that could see a later state (MariaDB cannot
// share a snapshot between sessions). Verify counts in one consistent
// snapshot of the restored database.
//
// Restore strips MariaDB's sandbox first line and runs the client with
// --binary-mode (see Restore).
//
// mysql imports lifeboat only; tests use testenv and the
// LIFEBOAT_TEST_MYSQL_* variables (scripts/test-services.sh).
package mysql
