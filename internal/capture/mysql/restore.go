package mysql

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// RestoreOptions tune Restore.
type RestoreOptions struct {
	// Create makes Restore create the database first; it must not exist.
	// Without it, the database must exist.
	Create bool
}

// sandboxLine is the first line of dumps by MariaDB's dump tool since
// 10.11.8 (and the matching releases of other series). It
// switches a MariaDB client into sandbox mode (no client commands that
// touch the file system); MySQL and older MariaDB clients stop at it.
const sandboxLine = `/*M!999999\- enable the sandbox mode */`

// Restore pipes the dump r into the client, into database.
//
// The sandbox line is always removed and the client always runs with
// --binary-mode, which (non-interactively) turns off every client command
// but DELIMITER and \C: the same protection the sandbox line asks for
// (a dump can never run \! or \. on this machine), from any client version,
// MySQL's included. --binary-mode also keeps "\r\n" and NUL bytes in data
// as they are.
//
// If Create made the database and the restore fails, the database is
// dropped again, so a failed restore leaves nothing behind.
func Restore(ctx context.Context, s Server, database string, r io.Reader, o RestoreOptions) (err error) {
	c, err := newConn(ctx, s)
	if err != nil {
		return err
	}
	defer c.close()
	what := fmt.Sprintf("restore into %q", database)
	if o.Create {
		if _, err := c.query(ctx, what, "CREATE DATABASE "+quoteIdent(database)+";\n"); err != nil {
			if lifeboat.ErrorCode(err) == lifeboat.EExists {
				return lifeboat.Errorf(lifeboat.EExists, "mysql database %q already exists on %s", database, s.addr())
			}
			return err
		}
		defer func() {
			if err != nil {
				dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
				defer cancel()
				c.query(dctx, "drop "+strconv.Quote(database), "DROP DATABASE IF EXISTS "+quoteIdent(database)+";\n")
			}
		}()
	} else {
		sc, err := c.inspect(ctx, database)
		if err != nil {
			return err
		}
		if !sc.exists {
			return lifeboat.Errorf(lifeboat.ENotFound, "mysql database %q not found on %s", database, s.addr())
		}
	}

	cmd := c.command(ctx, c.client, "--batch", "--binary-mode", "--default-character-set=utf8mb4",
		"--max-allowed-packet=1G", "--database="+database)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("mysql %s: %w", what, err)
	}
	stderr := &tailBuffer{max: 16 << 10}
	cmd.Stderr = stderr
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return c.fail(ctx, what, "", err)
	}
	src := &readErr{r: withoutSandboxLine(r)}
	io.Copy(stdin, src) // a write error means the client exited: Wait says why
	stdin.Close()
	if src.err != nil {
		// The dump could not be read: stop the client before it
		// reaches the end of a partial input.
		cmd.Process.Kill()
		cmd.Wait()
		return fmt.Errorf("mysql %s: read dump: %w", what, src.err)
	}
	if werr := cmd.Wait(); werr != nil {
		return c.fail(ctx, what, stderr.String(), werr)
	}
	return nil
}

// readErr remembers the error of its reader, other than io.EOF.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// withoutSandboxLine returns r without a first line that is the sandbox
// line (trailing blanks allowed).
func withoutSandboxLine(r io.Reader) io.Reader {
	br := bufio.NewReaderSize(r, 4096)
	head, _ := br.Peek(len(sandboxLine) + 8)
	if !bytes.HasPrefix(head, []byte(sandboxLine)) {
		return br
	}
	rest := head[len(sandboxLine):]
	i := bytes.IndexByte(rest, '\n')
	if i < 0 {
		if len(strings.TrimSpace(string(rest))) != 0 || len(head) == len(sandboxLine)+8 {
			return br // not the line alone; leave it to the client
		}
		i = len(rest) - 1 // the whole input is the line
	} else if len(strings.TrimSpace(string(rest[:i]))) != 0 {
		return br
	}
	br.Discard(len(sandboxLine) + i + 1)
	return br
}

// Verify checks that database holds the tables want names, each with the
// row count want recorded (counted in one consistent snapshot), and no
// other table. Differences are ECorrupt errors naming them.
func Verify(ctx context.Context, s Server, database string, want *lifeboat.DatabaseInfo) error {
	if want == nil {
		return lifeboat.Errorf(lifeboat.EInvalid, "mysql verify %q: nothing to compare with", database)
	}
	c, err := newConn(ctx, s)
	if err != nil {
		return err
	}
	defer c.close()
	sc, err := c.inspect(ctx, database)
	if err != nil {
		return err
	}
	if !sc.exists {
		return lifeboat.Errorf(lifeboat.ENotFound, "mysql database %q not found on %s", database, s.addr())
	}
	got, err := c.counts(ctx, database, sc.tables)
	if err != nil {
		return err
	}
	var diffs []string
	wantSet := map[string]bool{}
	for _, t := range want.Tables {
		wantSet[t.Name] = true
		n, ok := got[t.Name]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("table %s is missing", t.Name))
		case n != t.Rows:
			diffs = append(diffs, fmt.Sprintf("table %s has %d rows, the dump had %d", t.Name, n, t.Rows))
		}
	}
	var extra []string
	for name := range got {
		if !wantSet[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		diffs = append(diffs, fmt.Sprintf("table %s was not in the dump", name))
	}
	if len(diffs) > 0 {
		more := ""
		if len(diffs) > 5 {
			more = fmt.Sprintf(" (and %d more)", len(diffs)-5)
			diffs = diffs[:5]
		}
		return lifeboat.Errorf(lifeboat.ECorrupt, "mysql verify %q on %s: %s%s", database, s.addr(), strings.Join(diffs, "; "), more)
	}
	return nil
}

// counts returns the row count of every table with data, all read in one
// consistent snapshot.
func (c *conn) counts(ctx context.Context, database string, tables []table) (map[string]int64, error) {
	got := map[string]int64{}
	var sel []string
	for _, t := range tables {
		if t.hasData() {
			sel = append(sel, fmt.Sprintf("SELECT HEX(%s), COUNT(*) FROM %s.%s",
				hexLiteral(t.name), quoteIdent(database), quoteIdent(t.name)))
		}
	}
	if len(sel) == 0 {
		return got, nil
	}
	sql := "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;\nSTART TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY;\n" +
		strings.Join(sel, "\nUNION ALL ") + ";\nCOMMIT;\n"
	out, err := c.query(ctx, fmt.Sprintf("count rows of %q", database), sql)
	if err != nil {
		return nil, err
	}
	for _, r := range rows(out) {
		if len(r) != 2 {
			return nil, fmt.Errorf("mysql count rows of %q: unexpected row %q", database, r)
		}
		name, err := unhex(r[0])
		if err != nil {
			return nil, err
		}
		n, err := strconv.ParseInt(r[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("mysql count rows of %q: %w", database, err)
		}
		got[name] = n
	}
	return got, nil
}
