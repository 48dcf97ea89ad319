// Package catalog is the control plane's state: vaults, hosts, apps,
// policies, jobs and their leases, the cache of points, principals and
// tokens, the audit events and sealed secrets. It runs on SQLite (embedded,
// pure Go: modernc.org/sqlite) or PostgreSQL (pgx), with the same embedded
// goose migrations and the same SQL: queries are written with `?` and
// rebound to `$n` for PostgreSQL; times are Unix nanoseconds; documents are
// JSON text. catalogtest holds the conformance suite both run.
//
// Every exported method of DB opens its own transaction; methods of Tx run
// inside one, so a change and its audit event commit together
// (Tx.Audit). Time comes from DB.Now, never from a caller.
//
// Job leases: a job row carries lease_owner, lease_until and a fence number
// that grows with every claim. Heartbeat and Finish name the fence they hold;
// a write with a stale fence changes nothing and returns ErrLeaseLost.
//
// catalog imports lifeboat and its migrations only; it never imports vault.
package catalog
