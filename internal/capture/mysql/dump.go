package mysql

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strconv"
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// DumpOptions tune Dump.
type DumpOptions struct {
	// LockNonTransactional makes a database that has non-transactional
	// tables (MyISAM, Aria, MEMORY...) dump under --lock-tables instead of
	// --single-transaction: every table of the database is read-locked
	// for the whole dump, so the copy is consistent, but the app cannot
	// write to any of them until the dump ends. Without it, such tables
	// are dumped without locks (their rows may be from any moment of the
	// dump) and each is named in Info.Warnings. A database of InnoDB
	// tables only is always dumped under --single-transaction.
	LockNonTransactional bool
}

// table is one entry of information_schema.TABLES.
type table struct {
	name, kind, engine string
	transactional      bool
}

// schema is what inspect learns about a database.
type schema struct {
	exists      bool
	tables      []table
	size        int64
	fingerprint [32]byte
}

// inspect reads the database's tables and a fingerprint of its schema
// (tables, columns, indexes, triggers, routines, events, views): any DDL
// between two calls changes it.
func (c *conn) inspect(ctx context.Context, database string) (*schema, error) {
	db := hexLiteral(database)
	where := func(col string) string { return fmt.Sprintf("CAST(%s AS BINARY) = %s", col, db) }
	sql := strings.Join([]string{
		"SELECT 'D', COUNT(*) FROM information_schema.SCHEMATA WHERE " + where("SCHEMA_NAME"),
		"SELECT 'S', IFNULL(SUM(IFNULL(DATA_LENGTH,0)+IFNULL(INDEX_LENGTH,0)),0) FROM information_schema.TABLES WHERE " + where("TABLE_SCHEMA"),
		"SELECT 'T', HEX(t.TABLE_NAME), REPLACE(t.TABLE_TYPE,' ','_'), IFNULL(t.ENGINE,'-'), IFNULL(e.TRANSACTIONS,'-'), IFNULL(t.CREATE_TIME,'-')" +
			" FROM information_schema.TABLES t LEFT JOIN information_schema.ENGINES e ON e.ENGINE = t.ENGINE" +
			" WHERE " + where("t.TABLE_SCHEMA") + " ORDER BY 2",
		"SELECT 'C', HEX(TABLE_NAME), HEX(COLUMN_NAME), ORDINAL_POSITION, HEX(COLUMN_TYPE), IS_NULLABLE, HEX(IFNULL(COLUMN_DEFAULT,'-null-')), HEX(EXTRA), IFNULL(COLLATION_NAME,'-')" +
			" FROM information_schema.COLUMNS WHERE " + where("TABLE_SCHEMA") + " ORDER BY 2, 4",
		"SELECT 'I', HEX(TABLE_NAME), HEX(INDEX_NAME), SEQ_IN_INDEX, HEX(IFNULL(COLUMN_NAME,'')), NON_UNIQUE" +
			" FROM information_schema.STATISTICS WHERE " + where("TABLE_SCHEMA") + " ORDER BY 2, 3, 4",
		"SELECT 'G', HEX(TRIGGER_NAME), EVENT_MANIPULATION, ACTION_TIMING, MD5(ACTION_STATEMENT)" +
			" FROM information_schema.TRIGGERS WHERE " + where("TRIGGER_SCHEMA") + " ORDER BY 2",
		"SELECT 'V', HEX(TABLE_NAME), MD5(VIEW_DEFINITION) FROM information_schema.VIEWS WHERE " + where("TABLE_SCHEMA") + " ORDER BY 2",
		"SELECT 'R', HEX(ROUTINE_NAME), ROUTINE_TYPE, IFNULL(LAST_ALTERED,'-') FROM information_schema.ROUTINES WHERE " + where("ROUTINE_SCHEMA") + " ORDER BY 2, 3",
		"SELECT 'E', HEX(EVENT_NAME), IFNULL(LAST_ALTERED,'-') FROM information_schema.EVENTS WHERE " + where("EVENT_SCHEMA") + " ORDER BY 2",
	}, ";\n") + ";\n"
	out, err := c.query(ctx, "inspect database "+strconv.Quote(database), sql)
	if err != nil {
		return nil, err
	}
	sc := &schema{}
	h := sha256.New()
	for _, r := range rows(out) {
		switch r[0] {
		case "D":
			sc.exists = len(r) == 2 && r[1] != "0"
			continue
		case "S":
			if len(r) == 2 {
				sc.size, _ = strconv.ParseInt(r[1], 10, 64)
			}
			continue
		case "T":
			if len(r) != 6 {
				return nil, fmt.Errorf("mysql inspect %q: unexpected row %q", database, r)
			}
			name, err := unhex(r[1])
			if err != nil {
				return nil, fmt.Errorf("mysql inspect %q: %w", database, err)
			}
			sc.tables = append(sc.tables, table{name: name, kind: strings.ReplaceAll(r[2], "_", " "), engine: r[3], transactional: r[4] == "YES"})
		}
		fmt.Fprintf(h, "%q\n", r)
	}
	copy(sc.fingerprint[:], h.Sum(nil))
	return sc, nil
}

// hasData reports whether mysqldump writes a data section for the table.
func (t table) hasData() bool { return t.kind == "BASE TABLE" || t.kind == "SYSTEM VERSIONED" }

// Dump streams a logical dump of database (mariadb-dump, or mysqldump)
// and describes it. The stream is consistent under --single-transaction
// for transactional tables; see DumpOptions for the others.
//
// The returned info is filled in as the stream is read: its Tables (row
// counts taken from the dump's own INSERTs) are complete once a Read has
// returned io.EOF, which happens only after the dump tool exited cleanly,
// the dump's trailer was seen, every table was dumped, and the schema was
// found unchanged since the dump began. Any failure — including DDL during
// the dump — comes out of Read (instead of io.EOF) and Close instead.
// Read and Close must not be called concurrently; cancel ctx to stop a
// blocked Read.
func Dump(ctx context.Context, s Server, database string, o DumpOptions) (io.ReadCloser, *lifeboat.DatabaseInfo, error) {
	dumpTool, err := tool("mariadb-dump", "mysqldump")
	if err != nil {
		return nil, nil, err
	}
	c, err := newConn(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.close()
		}
	}()
	version, err := c.query(ctx, "dump", "SELECT VERSION();\n")
	if err != nil {
		return nil, nil, err
	}
	before, err := c.inspect(ctx, database)
	if err != nil {
		return nil, nil, err
	}
	if !before.exists {
		return nil, nil, lifeboat.Errorf(lifeboat.ENotFound, "mysql database %q not found on %s", database, s.addr())
	}
	info := &lifeboat.DatabaseInfo{
		Engine:        lifeboat.KindMySQL,
		ServerVersion: strings.TrimSpace(string(version)),
		ToolVersion:   toolVersion(ctx, c.dir, dumpTool),
		Database:      database,
		SizeBytes:     before.size,
		Tables:        []lifeboat.TableCount{},
	}
	var nonTx []table
	for _, t := range before.tables {
		if t.hasData() && !t.transactional {
			nonTx = append(nonTx, t)
		}
	}
	mode := "--single-transaction"
	if len(nonTx) > 0 && o.LockNonTransactional {
		mode = "--lock-tables"
	} else {
		for _, t := range nonTx {
			info.Warnings = append(info.Warnings, fmt.Sprintf("table %s is %s: not part of the consistent snapshot", t.name, t.engine))
		}
	}
	cmd := c.command(ctx, dumpTool, mode,
		"--routines", "--triggers", "--events", "--hex-blob",
		"--default-character-set=utf8mb4",
		"--quick", "--comments", "--skip-dump-date", "--max-allowed-packet=1G",
		"--", database)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("mysql dump: %w", err)
	}
	stderr := &tailBuffer{max: 16 << 10}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, c.fail(ctx, "dump", "", err)
	}
	ok = true
	return &dumpReader{ctx: ctx, c: c, cmd: cmd, stdout: stdout, stderr: stderr, count: newCounter(),
		database: database, before: before, info: info}, info, nil
}

// dumpReader is the dump stream; see Dump.
type dumpReader struct {
	ctx      context.Context
	c        *conn
	cmd      *exec.Cmd
	stdout   io.ReadCloser
	stderr   *tailBuffer
	count    *counter
	database string
	before   *schema
	info     *lifeboat.DatabaseInfo
	done     bool
	err      error
}

func (r *dumpReader) Read(p []byte) (int, error) {
	if r.done {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	n, err := r.stdout.Read(p)
	r.count.Write(p[:n])
	if err == nil {
		return n, nil
	}
	if err != io.EOF {
		r.cmd.Process.Kill()
	}
	r.finish()
	if r.err != nil {
		return n, r.err
	}
	return n, io.EOF
}

// Close stops the dump if it has not ended and returns its error; closing
// before the end is an error too (the stream is not a whole dump).
func (r *dumpReader) Close() error {
	if !r.done {
		r.cmd.Process.Kill()
		r.finish()
		if r.err == nil {
			r.err = lifeboat.Errorf(lifeboat.EInternal, "mysql dump of %q: closed before its end", r.database)
		}
	}
	return r.err
}

// finish waits for the dump tool and checks that the stream is a whole,
// untorn dump; it sets r.err or completes r.info.
func (r *dumpReader) finish() {
	r.done = true
	defer r.c.close()
	werr := r.cmd.Wait()
	what := fmt.Sprintf("dump of %q", r.database)
	if werr != nil {
		err := r.c.fail(r.ctx, what, r.stderr.String(), werr)
		if r.ctx.Err() == nil && ddlError(r.stderr.String()) {
			err = r.torn(lastLines(r.stderr.String(), 2))
		}
		r.err = err
		return
	}
	if err := r.count.check(); err != nil {
		r.err = lifeboat.Errorf(lifeboat.EInternal, "mysql %s on %s: %v", what, r.c.s.addr(), err)
		return
	}
	after, err := r.c.inspect(r.ctx, r.database)
	if err != nil {
		r.err = err
		return
	}
	if !after.exists {
		r.err = r.torn("the database was dropped")
		return
	}
	if after.fingerprint != r.before.fingerprint {
		r.err = r.torn("its schema changed (DDL)")
		return
	}
	kinds := map[string]table{}
	for _, t := range r.before.tables {
		kinds[t.name] = t
	}
	counted := map[string]int64{}
	for q, n := range r.count.rows {
		name, err := unquote(q)
		if err != nil {
			r.err = lifeboat.Errorf(lifeboat.EInternal, "mysql %s: %v", what, err)
			return
		}
		if _, ok := kinds[name]; !ok {
			r.err = r.torn(fmt.Sprintf("table %s was not there when it began", name))
			return
		}
		counted[name] = n
	}
	for _, t := range r.before.tables {
		n, ok := counted[t.name]
		if !t.hasData() {
			continue
		}
		if !ok {
			r.err = r.torn(fmt.Sprintf("table %s is missing from it", t.name))
			return
		}
		r.info.Tables = append(r.info.Tables, lifeboat.TableCount{Name: t.name, Rows: n})
	}
	sort.Slice(r.info.Tables, func(i, j int) bool { return r.info.Tables[i].Name < r.info.Tables[j].Name })
}

// torn is the error of a dump that DDL made inconsistent.
func (r *dumpReader) torn(why string) error {
	return &lifeboat.Error{Code: lifeboat.EUnavailable,
		Message: fmt.Sprintf("mysql dump of %q on %s changed under it: %s; not a consistent copy, run the backup again",
			r.database, r.c.s.addr(), r.c.redact(why)),
		Err: errTorn}
}

var errTorn = errors.New("schema changed during the dump")

// ddlError reports whether a dump tool's error output says a table changed
// or vanished under it: 1412 "Table definition has changed", 1146 "Table
// doesn't exist", 1054 "Unknown column", mysqldump's "Couldn't read status
// information for table".
func ddlError(stderr string) bool {
	for _, s := range []string{"(1412)", "(1146)", "(1054)", "(1049)", "Couldn't read status information", "Table definition has changed"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}
