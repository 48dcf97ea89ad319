package mysql

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// systemAccounts are the server's own accounts, which every installation
// makes for itself: never dumped.
var systemAccounts = map[string]bool{"mariadb.sys": true, "mysql.sys": true, "mysql.session": true, "mysql.infoschema": true, "PUBLIC": true}

// installAccount reports the local administrator accounts an installation
// creates (root, and MariaDB's unix-socket mysql@localhost): another server
// has its own, with proxy grants only they can give.
func installAccount(user, host string) bool {
	local := host == "localhost" || host == "127.0.0.1" || host == "::1"
	return local && (user == "root" || user == "mysql")
}

// DumpGlobals returns the server's accounts, roles and grants as SQL that
// another server of the same engine can apply: CREATE ROLE IF NOT EXISTS,
// CREATE USER IF NOT EXISTS (with the password hashes the server stores,
// never a password), then every GRANT. The server's own accounts (root and
// mysql on localhost, mariadb.sys...) are left out. Accounts that already exist where
// it is applied are left as they are, but their grants are added.
func DumpGlobals(ctx context.Context, s Server) (io.ReadCloser, error) {
	c, err := newConn(ctx, s)
	if err != nil {
		return nil, err
	}
	defer c.close()
	// MariaDB marks roles in mysql.user; MySQL has no such column.
	out, err := c.query(ctx, "list accounts", `SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'mysql' AND TABLE_NAME = 'user' AND COLUMN_NAME = 'is_role';`+"\n")
	if err != nil {
		return nil, err
	}
	isRole := "'N'"
	if strings.TrimSpace(string(out)) == "1" {
		isRole = "is_role"
	}
	listing := "SELECT HEX(User), HEX(Host), " + isRole + " FROM mysql.user ORDER BY User, Host;\n"
	out, err = c.query(ctx, "list accounts", listing)
	if err != nil {
		return nil, err
	}
	listed := rows(out)
	var roles strings.Builder
	// The SHOWs, one statement a line, each with the account it is of (its
	// listing row), to tell which failed.
	type show struct{ sql, account string }
	var users, grants []show
	for _, r := range listed {
		if len(r) != 3 {
			return nil, lifeboat.Errorf(lifeboat.EUnavailable, "mysql list accounts on %s: unexpected answer", s.addr())
		}
		user, err1 := unhex(r[0])
		host, err2 := unhex(r[1])
		if err1 != nil || err2 != nil {
			return nil, lifeboat.Errorf(lifeboat.EUnavailable, "mysql list accounts on %s: unexpected answer", s.addr())
		}
		if systemAccounts[user] || user == "" || installAccount(user, host) {
			continue
		}
		account := quoteString(user) + "@" + quoteString(host)
		key := r[0] + "\t" + r[1]
		if r[2] == "Y" {
			fmt.Fprintf(&roles, "CREATE ROLE IF NOT EXISTS %s;\n", quoteString(user))
			grants = append(grants, show{fmt.Sprintf("SELECT '-- grants of role %s';", commentSafe(user)), ""}, show{"SHOW GRANTS FOR " + quoteString(user) + ";", key})
			continue
		}
		users = append(users, show{fmt.Sprintf("SELECT '-- account %s@%s';", commentSafe(user), commentSafe(host)), ""}, show{"SHOW CREATE USER " + account + ";", key})
		grants = append(grants, show{fmt.Sprintf("SELECT '-- grants of %s@%s';", commentSafe(user), commentSafe(host)), ""}, show{"SHOW GRANTS FOR " + account + ";", key})
	}
	// The names are quoted for the default mode (backslashes escape). A
	// name with a line break spans lines: its statement's line is then
	// not one of ours, and its failure fails the dump.
	script := "SET SESSION sql_mode = '';\n"
	lineOf := map[int]string{} // script line -> account
	for i, sh := range append(users, grants...) {
		script += sh.sql + "\n"
		if sh.account != "" && !strings.Contains(sh.sql, "\n") {
			lineOf[i+2] = sh.account
		}
	}
	var sql bytes.Buffer
	fmt.Fprintf(&sql, "-- Users, roles and grants of %s, dumped by Lifeboat.\n-- Apply with the mariadb or mysql client as an account allowed to create users.\n", s.addr())
	sql.WriteString(roles.String())
	if len(users)+len(grants) > 0 {
		// An account dropped since the listing (another session's DROP
		// USER) fails its SHOWs: it is left out, not the dump failed —
		// once a second listing shows every failed SHOW's account gone.
		var failed []string
		out, failed, err = c.queryForce(ctx, "dump accounts", script, accountGone)
		if err != nil {
			return nil, err
		}
		if len(failed) > 0 {
			again, err := c.query(ctx, "list accounts", listing)
			if err != nil {
				return nil, err
			}
			still := map[string]bool{}
			for _, r := range rows(again) {
				if len(r) >= 2 {
					still[r[0]+"\t"+r[1]] = true
				}
			}
			for _, f := range failed {
				m := atLine.FindStringSubmatch(f)
				n := 0
				if m != nil {
					n, _ = strconv.Atoi(m[1])
				}
				if account, ok := lineOf[n]; !ok || still[account] {
					return nil, lifeboat.Errorf(lifeboat.EInternal, "mysql dump accounts on %s: a statement failed for an account that still exists: %s", s.addr(), c.redact(f))
				}
			}
		}
		for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
			line = unescapeBatch(line)
			if strings.HasPrefix(line, "CREATE USER ") {
				line = "CREATE USER IF NOT EXISTS " + strings.TrimPrefix(line, "CREATE USER ")
			}
			if !strings.HasPrefix(line, "-- ") {
				line += ";"
			}
			sql.WriteString(line + "\n")
		}
	}
	return io.NopCloser(&sql), nil
}

// atLine finds the script line of a client error ("ERROR 1141 (42000) at
// line 4: ...").
var atLine = regexp.MustCompile(`^ERROR \d+ \(\w+\) at line (\d+):`)

// accountGone reports the error number of a SHOW GRANTS or SHOW CREATE
// USER for an account that no longer exists (1141: no such grant; 1133:
// no matching row; 1396: the operation failed for the account).
func accountGone(num int) bool { return num == 1141 || num == 1133 || num == 1396 }

// quoteString quotes s as an SQL string literal (sql_mode may not treat
// backslashes as escapes: hex would do, but account names take literals).
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

// commentSafe makes a name safe inside a comment line: printable ASCII other
// than quotes and backslashes as is, anything else a '?'.
func commentSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 0x20 && r < 0x7f && r != '\'' && r != '\\' {
			return r
		}
		return '?'
	}, s)
}

// unescapeBatch undoes the client's batch-mode escapes (\t, \n, \\, \0).
func unescapeBatch(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\\`, `\`, `\t`, "\t", `\n`, "\n", `\0`, "\x00").Replace(s)
}
