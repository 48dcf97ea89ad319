package postgres

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// lockWait bounds how long pg_dump and the snapshot transaction wait for a
// table lock: DDL queued behind the snapshot's locks would otherwise make
// pg_dump wait for a transaction that ends only when pg_dump does.
const lockWait = "1min"

// Dump starts a consistent dump of database and returns the stream of
// pg_dump's custom format, uncompressed (-Fc -Z0: it dedups well in the
// vault, which compresses), and the database's description: versions, size
// and the row count of every user table, all in the dump's own snapshot.
//
// The stream's Read returns pg_dump's failure instead of io.EOF, and Close
// waits for pg_dump, returns the same failure (with the last lines of its
// stderr, never a password) and ends the snapshot transaction. Closing
// before the end kills pg_dump and returns an error. pg_dump is killed when
// ctx ends.
func Dump(ctx context.Context, s Server, database string) (io.ReadCloser, *lifeboat.DatabaseInfo, error) {
	conn, err := connect(ctx, s, database)
	if err != nil {
		return nil, nil, err
	}
	var cr *creds
	done := false
	defer func() {
		if !done {
			conn.Close(context.WithoutCancel(ctx))
			if cr != nil {
				cr.close()
			}
		}
	}()
	where := fmt.Sprintf("%s database %s", s.where(), database)
	version, num, err := serverVersion(ctx, conn)
	if err != nil {
		return nil, nil, s.queryError(ctx, "server version", err)
	}
	path, toolVer, err := checkedTool(ctx, "pg_dump", num)
	if err != nil {
		return nil, nil, err
	}
	// The snapshot transaction lives as long as the dump: no server-side
	// timeout may end it; row security off, as in pg_dump (a role subject
	// to a policy fails rather than counting a subset).
	for _, q := range []string{
		"SET idle_in_transaction_session_timeout = 0",
		"SET statement_timeout = 0",
		"SET lock_timeout = '" + lockWait + "'",
		"SET row_security = off",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return nil, nil, s.queryError(ctx, q, err)
		}
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, s.queryError(ctx, "begin snapshot transaction", err)
	}
	var snapshot string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&snapshot); err != nil {
		return nil, nil, s.queryError(ctx, "export snapshot", err)
	}
	info := &lifeboat.DatabaseInfo{Engine: lifeboat.KindPostgres, ServerVersion: version, ToolVersion: toolVer, Database: database}
	if err := tx.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&info.SizeBytes); err != nil {
		return nil, nil, s.queryError(ctx, "database size", err)
	}
	tables, err := listTables(ctx, tx)
	if err != nil {
		return nil, nil, s.queryError(ctx, "list tables", err)
	}
	// Lock every table before pg_dump starts, so none can be dropped or
	// altered between the snapshot and pg_dump's own locks; the counts
	// below then never queue behind DDL waiting for pg_dump.
	for i := 0; i < len(tables); i += 500 {
		batch := tables[i:min(i+500, len(tables))]
		if _, err := tx.Exec(ctx, "LOCK TABLE "+strings.Join(batch, ", ")+" IN ACCESS SHARE MODE"); err != nil {
			return nil, nil, s.queryError(ctx, "lock tables (DDL during the backup? run it again)", err)
		}
	}

	cr, err = newCreds(s)
	if err != nil {
		return nil, nil, err
	}
	cmd := cr.command(ctx, s, path,
		"--format=custom", "--compress=0", "--snapshot="+snapshot,
		"--lock-wait-timeout="+lockWait, "--no-password",
		"--dbname="+s.conninfo(database))
	r, err := startStream(ctx, s, "pg_dump of "+where, cmd, func() {
		bg := context.WithoutCancel(ctx)
		tx.Rollback(bg) // read only: nothing to keep
		conn.Close(bg)
		cr.close()
	})
	done = true // r (or startStream's failure) owns conn, tx and cr now
	if err != nil {
		return nil, nil, err
	}

	// Counts in the same transaction: the same instant as the dump.
	for _, t := range tables {
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
			err = s.queryError(ctx, "count rows of "+t, err)
			r.Close()
			return nil, nil, err
		}
		info.Tables = append(info.Tables, lifeboat.TableCount{Name: t, Rows: n})
	}
	return r, info, nil
}

// tablesQuery lists the user tables whose rows pg_dump dumps, as quoted
// schema-qualified names: ordinary tables and partitions (a partitioned
// parent holds no rows of its own), not temporary tables, not system
// schemas, not tables that belong to an extension.
const tablesQuery = `
SELECT format('%I.%I', n.nspname, c.relname) AS name
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY format('%I.%I', n.nspname, c.relname) COLLATE "C"`

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func listTables(ctx context.Context, q querier) ([]string, error) {
	rows, err := q.Query(ctx, tablesQuery)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// DumpGlobals returns `pg_dumpall --globals-only` (roles, tablespaces) as
// SQL. A role that is not a superuser cannot read pg_authid: its dump goes
// without role passwords (--no-role-passwords). The stream behaves as
// Dump's.
func DumpGlobals(ctx context.Context, s Server) (io.ReadCloser, error) {
	conn, err := connectAdmin(ctx, s)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, num, err := serverVersion(ctx, conn)
	if err != nil {
		return nil, s.queryError(ctx, "server version", err)
	}
	var super bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		return nil, s.queryError(ctx, "role attributes", err)
	}
	path, _, err := checkedTool(ctx, "pg_dumpall", num)
	if err != nil {
		return nil, err
	}
	cr, err := newCreds(s)
	if err != nil {
		return nil, err
	}
	args := []string{"--globals-only", "--no-password",
		"--dbname=" + s.conninfo(""), "--database=" + conn.Config().Database}
	if !super {
		args = append(args, "--no-role-passwords")
	}
	return startStream(ctx, s, "pg_dumpall --globals-only on "+s.where(), cr.command(ctx, s, path, args...), cr.close)
}

// stream is a child's stdout. The child is waited for at EOF or Close,
// whichever comes first, and cleanup runs after it exited.
type stream struct {
	ctx     context.Context
	s       Server
	what    string
	cmd     *exec.Cmd
	out     io.ReadCloser
	stderr  *tail
	cleanup func()
	eof     atomic.Bool
	once    sync.Once
	err     error
}

var _ io.ReadCloser = (*stream)(nil)

func startStream(ctx context.Context, s Server, what string, cmd *exec.Cmd, cleanup func()) (*stream, error) {
	r := &stream{ctx: ctx, s: s, what: what, cmd: cmd, stderr: &tail{max: 16 << 10}, cleanup: cleanup}
	cmd.Stderr = r.stderr
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		cleanup()
		return nil, lifeboat.Errorf(lifeboat.EInternal, "%s: start: %v", what, err)
	}
	r.out = out
	return r, nil
}

func (r *stream) Read(p []byte) (int, error) {
	n, err := r.out.Read(p)
	if err == io.EOF {
		// The child closed its stdout: it finished or died. Its exit
		// status decides whether this is the end or a failure.
		r.eof.Store(true)
		r.finish()
		if r.err != nil {
			return n, r.err
		}
	}
	return n, err
}

// Close waits for the child (killing it first if the stream was not read
// to its end) and returns its failure.
func (r *stream) Close() error {
	r.finish()
	return r.err
}

func (r *stream) finish() {
	r.once.Do(func() {
		complete := r.eof.Load()
		if !complete {
			r.cmd.Process.Kill()
		}
		err := r.cmd.Wait()
		r.cleanup()
		switch {
		case complete && err != nil:
			r.err = childError(r.ctx, r.s, r.what, r.stderr.String(), err)
		case !complete && r.ctx.Err() != nil:
			r.err = &lifeboat.Error{Code: lifeboat.EInterrupted, Message: fmt.Sprintf("%s: %v", r.what, context.Cause(r.ctx)), Err: r.ctx.Err()}
		case !complete:
			r.err = &lifeboat.Error{Code: lifeboat.EInterrupted, Message: r.what + ": closed before the end of the dump"}
		}
	})
}
