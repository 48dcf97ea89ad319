package mysql

import (
	"bytes"
	"fmt"
	"strings"
)

// counter reads a mariadb-dump/mysqldump stream as it passes and counts
// the rows of every table's INSERT statements, so the row counts are those
// of the dump itself (its snapshot), not of a second look at a server that
// has moved on. It relies on the dump's layout, which every mysqldump
// since 4.0 shares:
//
//	-- Dumping data for table `t`       (comments are on: the default)
//	LOCK TABLES `t` WRITE;
//	INSERT INTO `t` VALUES (...),(...);  (one or more; rows may sit on their own lines)
//	UNLOCK TABLES;                       (also for an empty table)
//	...
//	-- Dump completed                    (only when the dump ran to its end)
//
// Only INSERTs inside a data section count, so an INSERT in a trigger or
// routine body never does. Inside a statement, strings ('...' with
// backslash escapes) and identifiers (`...`) are skipped, so a "(" or ";"
// in data is not mistaken for syntax; a row is a "(" at depth 0 after
// VALUES (a column list comes before VALUES).
type counter struct {
	mode      int
	line      []byte // the current line's first bytes (lineMode)
	cur       string // quoted name of the table whose data section we are in
	rows      map[string]int64
	order     []string
	completed bool
	err       error

	// insert statement state
	sq, bq, esc bool
	depth       int
	sawValues   bool
}

const (
	lineMode   = iota // collecting the start of a line
	skipMode          // skipping to the end of a line
	insertMode        // inside an INSERT statement
)

// maxPrefix bounds what is kept of a line to classify it: enough for
// "INSERT INTO " and any quoted name (64 characters, escaped).
const maxPrefix = 1024

func newCounter() *counter { return &counter{rows: map[string]int64{}} }

func (c *counter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && c.err == nil {
		switch c.mode {
		case lineMode:
			i := bytes.IndexByte(p, '\n')
			take := len(p)
			if i >= 0 {
				take = i
			}
			if room := maxPrefix - len(c.line); take > room {
				take = room
			}
			c.line = append(c.line, p[:take]...)
			p = p[take:]
			if len(p) > 0 && p[0] == '\n' {
				p = p[1:]
				c.classify(true)
			} else if len(c.line) >= maxPrefix {
				c.classify(false)
			}
		case skipMode:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				return n, nil
			}
			p = p[i+1:]
			c.mode = lineMode
		case insertMode:
			p = c.insert(p)
		}
	}
	return n, nil
}

// classify looks at the start of a line; complete says the whole line
// (without its newline) is in c.line.
func (c *counter) classify(complete bool) {
	line := string(c.line)
	c.line = c.line[:0]
	next := skipMode
	if complete {
		next = lineMode
	}
	switch {
	case strings.HasPrefix(line, "-- Dumping data for table "):
		q := strings.TrimSpace(strings.TrimPrefix(line, "-- Dumping data for table "))
		if _, dup := c.rows[q]; dup {
			c.err = fmt.Errorf("table %s is dumped twice", q)
			return
		}
		c.cur = q
		c.rows[q] = 0
		c.order = append(c.order, q)
	case strings.HasPrefix(line, "UNLOCK TABLES;"):
		c.cur = ""
	case strings.HasPrefix(line, "-- Dump completed"):
		c.completed = true
	case strings.HasPrefix(line, "INSERT INTO ") && c.cur != "":
		prefix := "INSERT INTO " + c.cur + " "
		if !strings.HasPrefix(line, prefix) {
			c.err = fmt.Errorf("unexpected INSERT in the data of table %s: %.80q", c.cur, line)
			return
		}
		c.sq, c.bq, c.esc, c.depth, c.sawValues = false, false, false, 0, false
		c.mode = insertMode
		rest := []byte(line[len(prefix):])
		if complete {
			rest = append(rest, '\n')
		}
		c.insert(rest)
		if c.mode != insertMode && complete {
			c.mode = lineMode // the statement ended on this line
		}
		return
	}
	c.mode = next
}

// insert consumes an INSERT statement's bytes up to and including its
// final ";" and returns what follows (the mode is then skipMode).
func (c *counter) insert(p []byte) []byte {
	for i, b := range p {
		switch {
		case c.esc:
			c.esc = false
		case c.sq:
			switch b {
			case '\\':
				c.esc = true
			case '\'':
				c.sq = false
			}
		case c.bq:
			if b == '`' {
				c.bq = false
			}
		case b == '\'':
			c.sq = true
		case b == '`':
			c.bq = true
		case b == '(':
			if c.depth == 0 && c.sawValues {
				c.rows[c.cur]++
			}
			c.depth++
		case b == ')':
			c.depth--
		case c.depth == 0 && (b == 'V' || b == 'v'):
			c.sawValues = true
		case c.depth == 0 && b == ';':
			c.mode = skipMode
			return p[i+1:]
		}
	}
	return nil
}

// check reports whether the stream was a whole dump.
func (c *counter) check() error {
	if c.err != nil {
		return c.err
	}
	if c.mode == insertMode {
		return fmt.Errorf("the dump ends inside an INSERT of table %s", c.cur)
	}
	if !c.completed {
		return fmt.Errorf(`the dump has no "-- Dump completed" trailer: it stopped early`)
	}
	return nil
}

// unquote turns `a“b` into a`b.
func unquote(q string) (string, error) {
	if len(q) < 2 || q[0] != '`' || q[len(q)-1] != '`' {
		return "", fmt.Errorf("bad quoted name %q", q)
	}
	return strings.ReplaceAll(q[1:len(q)-1], "``", "`"), nil
}
