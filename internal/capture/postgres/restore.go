package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// RestoreOptions say how a dump goes into a database.
type RestoreOptions struct {
	Create  bool // create the database first (it must not exist); else it must exist
	Clean   bool // drop the dump's objects before recreating them (--clean --if-exists)
	NoOwner bool // --no-owner --no-privileges
}

// Restore runs pg_restore into database with the dump (Dump's custom
// format) read from r as its stdin. It stops at the first error
// (--exit-on-error) and always runs as one transaction
// (--single-transaction), Clean included: the drops and the new objects
// commit together, so a failed restore leaves the database as it was
// (DESIGN.md invariant 7). The cost: every object restored or dropped is
// locked until the end, so a database with more tables than the server's
// lock table holds needs a larger max_locks_per_transaction.
//
// With Create the database is made first (CREATE DATABASE ... TEMPLATE
// template0: the server's default encoding and locale, owned by s.User) and
// dropped again if the restore fails; it must not exist (EExists).
// Without Create it must exist (ENotFound). Database-level settings and
// comments of the source are not restored (pg_restore restores them only
// into a database of the source's own name). Unless NoOwner, the roles
// owning the objects must exist (restore DumpGlobals first).
//
// If reading r fails (a corrupt or truncated stream), pg_restore is killed
// before it could see an end of input, so nothing is committed, and the
// error is r's, with its code.
func Restore(ctx context.Context, s Server, database string, r io.Reader, o RestoreOptions) (err error) {
	if database == "" {
		return lifeboat.Errorf(lifeboat.EInvalid, "%s: restore: no database named", s.where())
	}
	where := fmt.Sprintf("%s database %s", s.where(), database)
	var path string
	if o.Create {
		admin, cerr := connectAdmin(ctx, s)
		if cerr != nil {
			return cerr
		}
		defer admin.Close(context.WithoutCancel(ctx))
		_, num, verr := serverVersion(ctx, admin)
		if verr != nil {
			return s.queryError(ctx, "server version", verr)
		}
		var terr error
		if path, terr = tool("pg_restore", num); terr != nil {
			return terr
		}
		if _, cerr := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{database}.Sanitize()+" TEMPLATE template0"); cerr != nil {
			var pe *pgconn.PgError
			if errors.As(cerr, &pe) && pe.Code == "42P04" {
				return &lifeboat.Error{Code: lifeboat.EExists, Message: where + ": already exists (restore without create, or choose another name)", Err: cerr}
			}
			return s.queryError(ctx, "create database "+database, cerr)
		}
		// The named result err: a failed restore drops what it created.
		defer func() {
			if err == nil {
				return
			}
			drop := "DROP DATABASE IF EXISTS " + pgx.Identifier{database}.Sanitize()
			if num >= 130000 {
				drop += " WITH (FORCE)"
			}
			if _, derr := admin.Exec(context.WithoutCancel(ctx), drop); derr != nil {
				err = &lifeboat.Error{Code: lifeboat.ErrorCode(err),
					Message: fmt.Sprintf("%v (and dropping the database created for it: %s)", err, s.redact(derr.Error())), Err: err}
			}
		}()
	} else {
		conn, cerr := connect(ctx, s, database)
		if cerr != nil {
			return cerr
		}
		_, num, verr := serverVersion(ctx, conn)
		conn.Close(context.WithoutCancel(ctx))
		if verr != nil {
			return s.queryError(ctx, "server version", verr)
		}
		var terr error
		if path, terr = tool("pg_restore", num); terr != nil {
			return terr
		}
	}

	cr, err := newCreds(s)
	if err != nil {
		return err
	}
	defer cr.close()
	args := []string{"--format=custom", "--exit-on-error", "--single-transaction", "--no-password",
		"--dbname=" + s.conninfo(database)}
	if o.Clean {
		args = append(args, "--clean", "--if-exists")
	}
	if o.NoOwner {
		args = append(args, "--no-owner", "--no-privileges")
	}
	cmd := cr.command(ctx, s, path, args...)
	stderr := &tail{max: 16 << 10}
	cmd.Stderr = stderr
	cmd.Stdout = stderr // pg_restore writes nothing there when given --dbname
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return lifeboat.Errorf(lifeboat.EInternal, "pg_restore into %s: %v", where, err)
	}
	if err := cmd.Start(); err != nil {
		return lifeboat.Errorf(lifeboat.EInternal, "pg_restore into %s: start: %v", where, err)
	}
	feed := newFeeder(cmd, stdin)
	go feed.run(r)
	werr := cmd.Wait()
	srcErr := feed.wait(ctx)
	switch {
	case srcErr != nil:
		return &lifeboat.Error{Code: lifeboat.ErrorCode(srcErr), Message: fmt.Sprintf("pg_restore into %s: reading the dump: %v", where, srcErr), Err: srcErr}
	case werr != nil:
		return childError(ctx, s, "pg_restore into "+where, stderr.String(), werr)
	}
	return nil
}

// feeder copies the dump into pg_restore's stdin. A read error kills
// pg_restore before its stdin is closed: a clean end of input is only ever
// given for a dump read to its end.
type feeder struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
	err   error // from the source, not from writing to a pg_restore that stopped
}

func newFeeder(cmd *exec.Cmd, stdin io.WriteCloser) *feeder {
	return &feeder{cmd: cmd, stdin: stdin, done: make(chan struct{})}
}

func (f *feeder) run(r io.Reader) {
	defer close(f.done)
	defer f.stdin.Close()
	buf := make([]byte, 256<<10)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, werr := f.stdin.Write(buf[:n]); werr != nil {
				return // pg_restore stopped reading: its exit status tells why
			}
		}
		if rerr == io.EOF {
			return
		}
		if rerr != nil {
			f.err = rerr
			f.cmd.Process.Kill()
			return
		}
	}
}

// wait returns the source's error once the copy ended; if ctx ended, it
// does not wait for a source blocked in Read.
func (f *feeder) wait(ctx context.Context) error {
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return nil
	}
}
