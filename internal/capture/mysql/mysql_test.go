package mysql

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/testenv"
)

func testServer(t *testing.T) Server {
	t.Helper()
	env := testenv.Require(t, "LIFEBOAT_TEST_MYSQL_HOST", "LIFEBOAT_TEST_MYSQL_PORT",
		"LIFEBOAT_TEST_MYSQL_USER", "LIFEBOAT_TEST_MYSQL_PASSWORD")
	port, err := strconv.Atoi(env["LIFEBOAT_TEST_MYSQL_PORT"])
	if err != nil {
		t.Fatalf("LIFEBOAT_TEST_MYSQL_PORT: %v", err)
	}
	return Server{Host: env["LIFEBOAT_TEST_MYSQL_HOST"], Port: port,
		User: env["LIFEBOAT_TEST_MYSQL_USER"], Password: env["LIFEBOAT_TEST_MYSQL_PASSWORD"]}
}

// mustQuery runs sql (several statements allowed) and returns its rows.
func mustQuery(t testing.TB, s Server, sql string) [][]string {
	t.Helper()
	c, err := newConn(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	out, err := c.query(context.Background(), "test", sql)
	if err != nil {
		t.Fatalf("%v\nSQL: %.300s", err, sql)
	}
	return rows(out)
}

// newDB creates an empty database, dropped when the test ends.
func newDB(t *testing.T, s Server, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s_%d_%s", prefix, time.Now().UnixNano()%1e9, strings.ToLower(rand.Text()[:6]))
	mustQuery(t, s, "CREATE DATABASE "+quoteIdent(name)+" CHARACTER SET utf8mb4")
	t.Cleanup(func() { mustQuery(t, s, "DROP DATABASE IF EXISTS "+quoteIdent(name)) })
	return name
}

// dropLater drops a database a test makes Restore create.
func dropLater(t *testing.T, s Server, name string) {
	t.Cleanup(func() { mustQuery(t, s, "DROP DATABASE IF EXISTS "+quoteIdent(name)) })
}

func code(err error) lifeboat.Code {
	if err == nil {
		return ""
	}
	return lifeboat.ErrorCode(err)
}

// contents describes a database: for every table its row count and an md5
// over its rows in primary-key order, plus its triggers, routines and
// events.
func contents(t *testing.T, s Server, db string) map[string]string {
	t.Helper()
	got := map[string]string{}
	q := quoteIdent(db)
	for _, r := range mustQuery(t, s, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '"+db+"' AND TABLE_TYPE = 'BASE TABLE'") {
		tb := q + "." + quoteIdent(r[0])
		var cols []string
		for _, c := range mustQuery(t, s, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '"+db+"' AND TABLE_NAME = '"+r[0]+"' ORDER BY ORDINAL_POSITION") {
			cols = append(cols, "HEX(IFNULL("+quoteIdent(c[0])+",'<null>'))")
		}
		res := mustQuery(t, s, "SET SESSION group_concat_max_len = 1<<30; SELECT COUNT(*), MD5(IFNULL(GROUP_CONCAT(MD5(CONCAT_WS(',',"+
			strings.Join(cols, ",")+")) ORDER BY 1 SEPARATOR ''),'')) FROM "+tb+"; CHECKSUM TABLE "+tb)
		got["table "+r[0]] = strings.Join(res[0], " ") + " checksum " + res[1][1]
	}
	for _, r := range mustQuery(t, s, "SELECT TRIGGER_NAME, MD5(ACTION_STATEMENT) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '"+db+"'") {
		got["trigger "+r[0]] = r[1]
	}
	for _, r := range mustQuery(t, s, "SELECT ROUTINE_NAME, ROUTINE_TYPE, MD5(ROUTINE_DEFINITION) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '"+db+"'") {
		got["routine "+r[0]] = r[1] + " " + r[2]
	}
	for _, r := range mustQuery(t, s, "SELECT EVENT_NAME, MD5(EVENT_DEFINITION) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '"+db+"'") {
		got["event "+r[0]] = r[1]
	}
	for _, r := range mustQuery(t, s, "SELECT TABLE_NAME, MD5(REPLACE(VIEW_DEFINITION, '"+db+"', 'DB')) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '"+db+"'") {
		got["view "+r[0]] = r[1]
	}
	return got
}

// watchChildren samples /proc for descendants of this process until stop
// is called, and fails the test if any holds secret in its command line or
// environment, or if its option file is readable by others. It returns how
// many distinct children it saw.
// procStat returns a process's parent pid and start time (0 if it is
// gone).
func procStat(pid int) (ppid int, started string) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil || bytes.LastIndexByte(st, ')') < 0 {
		return 0, ""
	}
	f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
	if len(f) < 20 {
		return 0, ""
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[19]
}

func watchChildren(t *testing.T, secret string) (stop func() int) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]bool{}
	var problems []string
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		me := os.Getpid()
		myExe, _ := os.Readlink("/proc/self/exe")
		for {
			select {
			case <-done:
				return
			default:
			}
			parents := map[int]int{}
			ents, _ := os.ReadDir("/proc")
			for _, e := range ents {
				pid, err := strconv.Atoi(e.Name())
				if err != nil {
					continue
				}
				if ppid, _ := procStat(pid); ppid > 0 {
					parents[pid] = ppid
				}
			}
			for pid := range parents {
				desc := false
				for p, n := parents[pid], 0; p > 1 && n < 20; p, n = parents[p], n+1 {
					if p == me {
						desc = true
						break
					}
				}
				if !desc {
					continue
				}
				_, started := procStat(pid)
				// A child between its fork and its exec is still a copy of
				// this process, environment included: not yet the tool.
				if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe == myExe {
					continue
				}
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				environ, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
				if ppid, again := procStat(pid); len(cmdline) == 0 || ppid != parents[pid] || again != started {
					continue // gone, or its pid taken by another process (a busy machine)
				}
				mu.Lock()
				seen[fmt.Sprintf("%d %s", pid, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))] = true
				if bytes.Contains(cmdline, []byte(secret)) || bytes.Contains(environ, []byte(secret)) {
					problems = append(problems, fmt.Sprintf("pid %d holds the password in its cmdline or environ", pid))
				}
				for _, arg := range strings.Split(string(cmdline), "\x00") {
					if f, ok := strings.CutPrefix(arg, "--defaults-file="); ok {
						if fi, err := os.Stat(f); err == nil && fi.Mode().Perm() != 0o600 {
							problems = append(problems, fmt.Sprintf("%s has mode %v", f, fi.Mode().Perm()))
						}
						if fi, err := os.Stat(filepath.Dir(f)); err == nil && fi.Mode().Perm() != 0o700 {
							problems = append(problems, fmt.Sprintf("%s has mode %v", filepath.Dir(f), fi.Mode().Perm()))
						}
					}
				}
				mu.Unlock()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return func() int {
		close(done)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Error(p)
		}
		return len(seen)
	}
}

func TestRoundTrip(t *testing.T) {
	s := testServer(t)
	src := newDB(t, s, "lbsrc")
	q := quoteIdent(src)
	var sql strings.Builder
	fmt.Fprintf(&sql, "USE %s;\n", q)
	for i := range 25 {
		fmt.Fprintf(&sql, "CREATE TABLE t%02d (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB;\n", i)
		if i > 0 {
			fmt.Fprintf(&sql, "INSERT INTO t%02d SELECT seq, CONCAT('row ', seq) FROM seq_1_to_%d;\n", i, i*37)
		}
	}
	sql.WriteString("CREATE TABLE uni (id INT PRIMARY KEY, s TEXT, c CHAR(3)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;\n")
	sql.WriteString("INSERT INTO uni VALUES (1,'héllo wörld — ünïcödé ✓','日本語'),(2,'emoji 🚀🦀 and \\\\ backslash, \\' quote, \\n newline, tab\\t','ß'),(3,'',NULL),(4,'x); DROP TABLE uni; --','(;)');\n")
	sql.WriteString("CREATE TABLE bl (id INT PRIMARY KEY, b LONGBLOB, h BINARY(4)) ENGINE=InnoDB;\n")
	blob := make([]byte, 200000)
	rand.Read(blob)
	fmt.Fprintf(&sql, "INSERT INTO bl VALUES (1, X'%x', X'00FF0A27'), (2, X'', NULL), (3, X'%x', X'5C000D0A');\n", blob, "\x00\n\r'\"\\;()`")
	sql.WriteString("CREATE TABLE `odd ``name`` ✓` (`c)ol` INT INVISIBLE, `values` INT, id INT AUTO_INCREMENT PRIMARY KEY) ENGINE=InnoDB;\n")
	sql.WriteString("INSERT INTO `odd ``name`` ✓` (`c)ol`, `values`) VALUES (1,2),(3,4);\n")
	sql.WriteString("CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(100)) ENGINE=InnoDB;\n")
	sql.WriteString("CREATE VIEW v_uni AS SELECT id, c FROM uni;\n")
	sql.WriteString("DELIMITER ;;\n")
	sql.WriteString("CREATE TRIGGER t01_ins AFTER INSERT ON t01 FOR EACH ROW BEGIN\nINSERT INTO audit (what) VALUES (CONCAT('t01 ', NEW.id));\nEND;;\n")
	sql.WriteString("CREATE PROCEDURE add_rows(IN n INT) BEGIN\nINSERT INTO `audit` VALUES (NULL, CONCAT('proc ', n)),(NULL,'(');\nEND;;\n")
	sql.WriteString("CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;;\n")
	sql.WriteString("CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM audit WHERE id < 0;;\n")
	sql.WriteString("DELIMITER ;\n")
	sql.WriteString("INSERT INTO t01 VALUES (1000, 'fires the trigger'); CALL add_rows(3);\n")
	mustQuery(t, s, sql.String())

	ctx := context.Background()
	stop := watchChildren(t, s.Password)
	t0 := time.Now()
	rc, info, err := Dump(ctx, s, src, DumpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dump, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("dump: %d bytes in %v", len(dump), time.Since(t0))
	if !bytes.HasPrefix(dump, []byte(sandboxLine)) {
		t.Logf("note: the dump has no sandbox line (older dump tool)")
	}
	if info.Engine != "mysql" || info.Database != src || !strings.Contains(info.ServerVersion, ".") ||
		!strings.Contains(info.ToolVersion, "Ver") || info.SizeBytes <= 0 || len(info.Warnings) != 0 {
		t.Errorf("info = %+v", info)
	}
	counts := map[string]int64{}
	for _, tc := range info.Tables {
		counts[tc.Name] = tc.Rows
	}
	want := map[string]int64{"t00": 0, "t05": 5 * 37, "t24": 24 * 37, "t01": 37 + 1, "uni": 4, "bl": 3, "odd `name` ✓": 2, "audit": 3}
	for name, n := range want {
		if counts[name] != n {
			t.Errorf("info rows of %q = %d, want %d", name, counts[name], n)
		}
	}
	if len(info.Tables) != 25+4 {
		t.Errorf("info has %d tables, want %d: %+v", len(info.Tables), 29, info.Tables)
	}

	dst := src + "_r"
	dropLater(t, s, dst)
	if err := Restore(ctx, s, dst, bytes.NewReader(dump), RestoreOptions{Create: true}); err != nil {
		t.Fatal(err)
	}
	if n := stop(); n < 3 {
		t.Errorf("saw only %d child processes: the sampler did not watch the dump and the restore", n)
	}
	got, wantC := contents(t, s, dst), contents(t, s, src)
	if len(wantC) < 25+4+5 {
		t.Errorf("source description has only %d entries: %v", len(wantC), wantC)
	}
	for k, v := range wantC {
		if got[k] != v {
			t.Errorf("restored %s = %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := wantC[k]; !ok {
			t.Errorf("restored has extra %s", k)
		}
	}
	if err := Verify(ctx, s, dst, info); err != nil {
		t.Errorf("Verify: %v", err)
	}

	// Verify sees a changed count and an extra table.
	mustQuery(t, s, "DELETE FROM "+quoteIdent(dst)+".t07 WHERE id = 3")
	err = Verify(ctx, s, dst, info)
	if code(err) != lifeboat.ECorrupt || !strings.Contains(err.Error(), "t07 has 258 rows, the dump had 259") {
		t.Errorf("Verify after a delete: %v", err)
	}
	mustQuery(t, s, "INSERT INTO "+quoteIdent(dst)+".t07 VALUES (3,'back'); CREATE TABLE "+quoteIdent(dst)+".extra (i INT)")
	if err := Verify(ctx, s, dst, info); code(err) != lifeboat.ECorrupt || !strings.Contains(err.Error(), "table extra was not in the dump") {
		t.Errorf("Verify with an extra table: %v", err)
	}

	// The target must not exist with Create, must exist without it.
	if err := Restore(ctx, s, dst, bytes.NewReader(dump), RestoreOptions{Create: true}); code(err) != lifeboat.EExists {
		t.Errorf("Restore Create over an existing database: %v", err)
	}
	if err := Restore(ctx, s, dst+"_nope", bytes.NewReader(dump), RestoreOptions{}); code(err) != lifeboat.ENotFound {
		t.Errorf("Restore into a missing database: %v", err)
	}
	// Without Create, into an existing (empty) database.
	dst2 := newDB(t, s, "lbdst")
	if err := Restore(ctx, s, dst2, bytes.NewReader(dump), RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Verify(ctx, s, dst2, info); err != nil {
		t.Errorf("Verify of the second restore: %v", err)
	}
}

// TestRestoreFailure checks that a broken dump fails, leaves no database
// behind when Restore created it, and that a dump cannot run client
// commands on this machine.
func TestRestoreFailure(t *testing.T) {
	s := testServer(t)
	ctx := context.Background()
	marker := filepath.Join(t.TempDir(), "pwned")
	name := fmt.Sprintf("lbbad_%d", time.Now().UnixNano()%1e9)
	dropLater(t, s, name)
	bad := sandboxLine + "\nCREATE TABLE a (i INT);\n\\! touch " + marker + "\nsystem touch " + marker + "\nINSERT INTO a VALUES (1);\nTHIS IS NOT SQL;\n"
	err := Restore(ctx, s, name, strings.NewReader(bad), RestoreOptions{Create: true})
	if err == nil || !strings.Contains(err.Error(), "ERROR") {
		t.Errorf("Restore of a broken dump: %v", err)
	}
	if _, serr := os.Stat(marker); serr == nil {
		t.Error("the dump ran a client command")
	}
	if r := mustQuery(t, s, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '"+name+"'"); r[0][0] != "0" {
		t.Error("a failed Restore with Create left its database behind")
	}
	// A reader that fails stops the restore.
	rerr := errors.New("vault read failed")
	err = Restore(ctx, s, name, io.MultiReader(strings.NewReader("CREATE TABLE a (i INT);\n"), iotestErr{rerr}), RestoreOptions{Create: true})
	if !errors.Is(err, rerr) {
		t.Errorf("Restore from a failing reader: %v", err)
	}
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

// writer runs a client that commits two-row transactions into db.ledger
// (and a row into the MyISAM table m_log) until stop is called.
func startWriter(t *testing.T, s Server, db string) (commits func() int64, stop func()) {
	t.Helper()
	c, err := newConn(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := c.command(ctx, c.client, "--batch", "--database="+db)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	go func() { // each transaction reports its number once committed
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v, err := strconv.ParseInt(sc.Text(), 10, 64); err == nil {
				n.Store(v)
			}
		}
	}()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w := bufio.NewWriter(in)
		for k := 1; ; k++ {
			select {
			case <-done:
				w.Flush()
				in.Close()
				return
			default:
			}
			fmt.Fprintf(w, "START TRANSACTION; INSERT INTO ledger (txn, leg, pad) VALUES (%d, 1, REPEAT('a', 100)); INSERT INTO ledger (txn, leg, pad) VALUES (%d, 2, REPEAT('b', 100)); COMMIT; INSERT INTO m_log VALUES (%d); SELECT %d;\n", k, k, k, k)
			if k%20 == 0 {
				w.Flush()
				time.Sleep(time.Millisecond)
			}
		}
	}()
	return n.Load, func() {
		close(done)
		wg.Wait()
		cmd.Wait()
		cancel()
		c.close()
	}
}

func TestDumpDuringWrites(t *testing.T) {
	s := testServer(t)
	ctx := context.Background()
	src := newDB(t, s, "lbw")
	q := quoteIdent(src)
	mustQuery(t, s, "USE "+q+"; CREATE TABLE a_pad (id INT PRIMARY KEY, pad VARCHAR(255)) ENGINE=InnoDB;"+
		"INSERT INTO a_pad SELECT seq, REPEAT('p', 200) FROM seq_1_to_30000;"+
		"CREATE TABLE ledger (id INT AUTO_INCREMENT PRIMARY KEY, txn INT, leg INT, pad VARCHAR(200)) ENGINE=InnoDB;"+
		"CREATE TABLE m_log (k INT) ENGINE=MyISAM;")
	commits, stopWriter := startWriter(t, s, src)
	defer stopWriter()
	for commits() < 50 {
		time.Sleep(10 * time.Millisecond)
	}

	for _, lock := range []bool{false, true} {
		t.Run(fmt.Sprintf("lock=%v", lock), func(t *testing.T) {
			before := commits()
			rc, info, err := Dump(ctx, s, src, DumpOptions{LockNonTransactional: lock})
			if err != nil {
				t.Fatal(err)
			}
			// Read slowly, so the writer commits while the dump runs.
			var dump bytes.Buffer
			buf := make([]byte, 4096)
			deadline := time.Now().Add(700 * time.Millisecond)
			for time.Now().Before(deadline) {
				n, err := rc.Read(buf)
				dump.Write(buf[:n])
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if _, err := io.Copy(&dump, rc); err != nil {
				t.Fatal(err)
			}
			if err := rc.Close(); err != nil {
				t.Fatal(err)
			}
			during := commits() - before
			if !lock && during < 10 {
				t.Errorf("only %d commits during the dump", during)
			}
			t.Logf("%d commits during the dump; warnings %q", during, info.Warnings)
			wantWarn := "table m_log is MyISAM: not part of the consistent snapshot"
			if lock {
				if len(info.Warnings) != 0 {
					t.Errorf("warnings with LockNonTransactional: %q", info.Warnings)
				}
			} else if len(info.Warnings) != 1 || info.Warnings[0] != wantWarn {
				t.Errorf("warnings = %q, want [%q]", info.Warnings, wantWarn)
			}

			dst := fmt.Sprintf("%s_r%v", src, lock)
			dropLater(t, s, dst)
			if err := Restore(ctx, s, dst, &dump, RestoreOptions{Create: true}); err != nil {
				t.Fatal(err)
			}
			r := mustQuery(t, s, "SELECT COUNT(*) FROM (SELECT txn FROM "+quoteIdent(dst)+".ledger GROUP BY txn HAVING COUNT(*) <> 2) x")
			if r[0][0] != "0" {
				t.Errorf("%s transactions restored in half", r[0][0])
			}
			var ledger int64 = -1
			for _, tc := range info.Tables {
				if tc.Name == "ledger" {
					ledger = tc.Rows
				}
			}
			r = mustQuery(t, s, "SELECT COUNT(*) FROM "+quoteIdent(dst)+".ledger")
			if r[0][0] != strconv.FormatInt(ledger, 10) || ledger%2 != 0 || ledger < 100 {
				t.Errorf("restored ledger has %s rows, info says %d", r[0][0], ledger)
			}
			if err := Verify(ctx, s, dst, info); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestDDLDuringDump(t *testing.T) {
	s := testServer(t)
	ctx := context.Background()
	for _, tc := range []struct{ name, ddl string }{
		{"alter", "ALTER TABLE z_t ADD COLUMN c INT"},
		{"drop", "DROP TABLE z_t"},
		{"rename", "RENAME TABLE z_t TO z_u"},
		{"create", "CREATE TABLE b_new (i INT)"},
		{"index", "CREATE INDEX zi ON z_t (i)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := newDB(t, s, "lbddl")
			mustQuery(t, s, "USE "+quoteIdent(db)+"; CREATE TABLE a_pad (id INT PRIMARY KEY, pad VARCHAR(255)) ENGINE=InnoDB;"+
				"INSERT INTO a_pad SELECT seq, REPEAT('p', 200) FROM seq_1_to_20000;"+
				"CREATE TABLE z_t (i INT) ENGINE=InnoDB; INSERT INTO z_t VALUES (1),(2);")
			rc, _, err := Dump(ctx, s, db, DumpOptions{})
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4096)
			if _, err := io.ReadFull(rc, buf); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			mustQuery(t, s, "SET SESSION lock_wait_timeout = 10; USE "+quoteIdent(db)+"; "+tc.ddl)
			_, rerr := io.Copy(io.Discard, rc)
			cerr := rc.Close()
			if rerr == nil || cerr == nil {
				t.Fatalf("DDL during the dump: read error %v, Close error %v; want both", rerr, cerr)
			}
			if code(rerr) != lifeboat.EUnavailable || !strings.Contains(rerr.Error(), "changed under it") {
				t.Errorf("error = %v (%s)", rerr, code(rerr))
			}
			t.Logf("%s: %v", tc.name, rerr)
		})
	}
}

func TestErrors(t *testing.T) {
	s := testServer(t)
	ctx := context.Background()

	if v, err := Ping(ctx, s); err != nil || !strings.Contains(v, "MariaDB") && !strings.Contains(v, ".") {
		t.Fatalf("Ping = %q, %v", v, err)
	}

	wrong := s
	wrong.Password = "not-" + s.Password
	_, err := Ping(ctx, wrong)
	if code(err) != lifeboat.EAuth || strings.Contains(err.Error(), wrong.Password) {
		t.Errorf("Ping, wrong password: %v (%s)", err, code(err))
	}
	if _, _, err := Dump(ctx, wrong, "mysql", DumpOptions{}); code(err) != lifeboat.EAuth {
		t.Errorf("Dump, wrong password: %v", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := s
	down.Host, down.Port = "127.0.0.1", l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr := fmt.Sprintf("127.0.0.1:%d", down.Port)
	if _, err := Ping(ctx, down); code(err) != lifeboat.EUnavailable || !strings.Contains(err.Error(), addr) {
		t.Errorf("Ping, unreachable: %v", err)
	}
	if _, _, err := Dump(ctx, down, "x", DumpOptions{}); code(err) != lifeboat.EUnavailable || !strings.Contains(err.Error(), addr) {
		t.Errorf("Dump, unreachable: %v", err)
	}
	if err := Restore(ctx, down, "x", strings.NewReader(""), RestoreOptions{Create: true}); code(err) != lifeboat.EUnavailable {
		t.Errorf("Restore, unreachable: %v", err)
	}

	if _, _, err := Dump(ctx, s, "lb_no_such_db", DumpOptions{}); code(err) != lifeboat.ENotFound || !strings.Contains(err.Error(), "lb_no_such_db") {
		t.Errorf("Dump, unknown database: %v", err)
	}
	if err := Verify(ctx, s, "lb_no_such_db", &lifeboat.DatabaseInfo{}); code(err) != lifeboat.ENotFound {
		t.Errorf("Verify, unknown database: %v", err)
	}

	// A password with quotes, backslashes, # and spaces survives the
	// option file.
	odd := `a"b'c#d\e f;g$h` + "`i"
	mustQuery(t, s, "CREATE OR REPLACE USER 'lbodd'@'%' IDENTIFIED BY '"+strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(odd)+"'")
	t.Cleanup(func() { mustQuery(t, s, "DROP USER IF EXISTS 'lbodd'@'%'") })
	oddS := s
	oddS.User, oddS.Password = "lbodd", odd
	if _, err := Ping(ctx, oddS); err != nil {
		t.Errorf("Ping with an odd password: %v", err)
	}

	// Cancelling ctx stops the dump.
	cctx, cancel := context.WithCancel(ctx)
	rc, _, err := Dump(cctx, s, "mysql", DumpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, rc); err == nil {
		t.Error("Dump after cancel: no error")
	}
	rc.Close()
}

func TestMissingTool(t *testing.T) {
	s := Server{Host: "127.0.0.1", Port: 1, User: "u", Password: "p"}
	ctx := context.Background()
	real := lookPath
	t.Cleanup(func() { lookPath = real })

	lookPath = func(string) (string, error) { return "", exec.ErrNotFound }
	_, err := Ping(ctx, s)
	if code(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "mariadb or mysql") || !strings.Contains(err.Error(), "mariadb-client") {
		t.Errorf("Ping without a client: %v", err)
	}
	lookPath = func(name string) (string, error) {
		if name == "mariadb" {
			return real(name)
		}
		return "", exec.ErrNotFound
	}
	_, _, err = Dump(ctx, s, "db", DumpOptions{})
	if code(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "mariadb-dump or mysqldump") {
		t.Errorf("Dump without a dump tool: %v", err)
	}
	if err := Restore(ctx, s, "db", strings.NewReader(""), RestoreOptions{}); code(err) != lifeboat.EUnavailable && code(err) != lifeboat.EInvalid {
		t.Errorf("Restore: %v", err)
	}
}

// TestDumpGlobals: accounts, a role and their grants are dumped as SQL that
// recreates them once they are dropped; the password itself never appears
// (only the hash the server stores).
func TestDumpGlobals(t *testing.T) {
	s := testServer(t)
	db := newDB(t, s, "lbglob")
	suffix := strings.ToLower(rand.Text()[:6])
	user, role := "lb_app_"+suffix, "lb_role_"+suffix
	odd := "lb_o'dd_" + suffix
	password := "glob-pw-" + suffix
	slash := `lb_bs\x_` + suffix // a backslash: quoted for the default sql_mode, which the dump sets
	drop := func() {
		mustQuery(t, s, fmt.Sprintf("DROP USER IF EXISTS '%s'@'10.0.0.%%'; DROP USER IF EXISTS '%s'@'%%'; DROP ROLE IF EXISTS %s; DROP USER IF EXISTS '%s'@'%%';", user, strings.ReplaceAll(odd, "'", "''"), role, strings.ReplaceAll(slash, `\`, `\\`)))
	}
	t.Cleanup(drop)
	mustQuery(t, s, fmt.Sprintf(`CREATE ROLE %[1]s; GRANT SELECT ON %[2]s.* TO %[1]s;
CREATE USER '%[3]s'@'10.0.0.%%' IDENTIFIED BY '%[4]s'; GRANT INSERT, UPDATE ON %[2]s.* TO '%[3]s'@'10.0.0.%%'; GRANT %[1]s TO '%[3]s'@'10.0.0.%%';
CREATE USER '%[5]s'@'%%'; CREATE USER '%[6]s'@'%%'; GRANT SELECT ON %[2]s.* TO '%[6]s'@'%%';`, role, quoteIdent(db), user, password, strings.ReplaceAll(odd, "'", "''"), strings.ReplaceAll(slash, `\`, `\\`)))
	rc, err := DumpGlobals(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	dump, _ := io.ReadAll(rc)
	rc.Close()
	text := string(dump)
	for _, want := range []string{"CREATE ROLE IF NOT EXISTS '" + role + "';", "CREATE USER IF NOT EXISTS `" + user + "`@`10.0.0.%` IDENTIFIED BY PASSWORD '*",
		"GRANT INSERT, UPDATE ON `" + db + "`.* TO `" + user + "`@`10.0.0.%`;", "GRANT `" + role + "` TO `" + user + "`@`10.0.0.%`;", "GRANT SELECT ON `" + db + "`.* TO `" + role + "`;",
		"GRANT SELECT ON `" + db + "`.* TO `" + slash + "`@`%`;"} {
		if !strings.Contains(text, want) {
			t.Errorf("globals lack %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, password) || strings.Contains(text, "mariadb.sys") {
		t.Errorf("globals show a password or a system account:\n%s", text)
	}
	// Dropped, then recreated from the dump.
	drop()
	mustQuery(t, s, text)
	got := mustQuery(t, s, fmt.Sprintf("SHOW GRANTS FOR '%s'@'10.0.0.%%'", user))
	all := fmt.Sprint(got)
	if !strings.Contains(all, "GRANT INSERT, UPDATE ON `"+db+"`") || !strings.Contains(all, role) {
		t.Errorf("recreated account's grants: %v", got)
	}
	if n := mustQuery(t, s, fmt.Sprintf("SELECT COUNT(*) FROM mysql.user WHERE User = '%s'", strings.ReplaceAll(odd, "'", "''"))); n[0][0] != "1" {
		t.Errorf("the account with a quote in its name was not recreated")
	}
	// Applying it again changes nothing and fails nothing.
	mustQuery(t, s, text)
}

// Accounts created and dropped by other sessions while the accounts are
// dumped (listed, then shown one by one) are left out of the dump, not
// the dump failed ("no such grant").
func TestDumpGlobalsDuringAccountChurn(t *testing.T) {
	s := testServer(t)
	suffix := strings.ToLower(rand.Text()[:6])
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Each account lives for one round, never to come back under its
			// name: a dump lists one that is gone by its SHOWs.
			mustQuery(t, s, fmt.Sprintf("CREATE USER '%[1]s_%[2]d'@'%%'; GRANT USAGE ON *.* TO '%[1]s_%[2]d'@'%%'; DROP USER IF EXISTS '%[1]s_%[3]d'@'%%';", "lb_churn_"+suffix, i, i-1))
			time.Sleep(5 * time.Millisecond)
		}
	}()
	defer func() {
		close(stop)
		<-done
		for _, r := range mustQuery(t, s, fmt.Sprintf("SELECT User FROM mysql.user WHERE User LIKE 'lb\\_churn\\_%s\\_%%'", suffix)) {
			mustQuery(t, s, fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", r[0]))
		}
	}()
	for range 15 {
		rc, err := DumpGlobals(context.Background(), s)
		if err != nil {
			t.Fatalf("dump during account churn: %v", err)
		}
		rc.Close()
	}
}

func TestErrorLines(t *testing.T) {
	gone := func(n int) bool { return n == 1141 }
	for stderr, want := range map[string]struct {
		n  int
		ok bool
	}{
		"ERROR 1141 (42000) at line 4: There is no such grant defined for user 'x' on host '%'\n":                           {1, true},
		"ERROR 1141 (42000) at line 4: no such grant\nERROR 1141 (42000) at line 9: no such grant\n":                        {2, true},
		"ERROR 1141 (42000) at line 4: no such grant\nERROR 2013 (HY000) at line 9: Lost connection to server during query": {2, false},
		"mysql: [Warning] something\nERROR 1141 (42000) at line 4: no such grant":                                           {1, true},
		"mysql: [Warning] something\n": {0, true},
		"":                             {0, true},
	} {
		if lines, ok := errorLines(stderr, gone); len(lines) != want.n || ok != want.ok {
			t.Errorf("errorLines(%q) = %q %v, want %d lines, %v", stderr, lines, ok, want.n, want.ok)
		}
	}
}

// TestTLSModes against the test server, which offers no TLS: the default
// falls back to plain, prefer too, verify refuses to go on without TLS.
func TestTLSModes(t *testing.T) {
	s := testServer(t)
	ctx := context.Background()
	for _, mode := range []string{TLSAuto, TLSDisable, TLSPrefer} {
		s.TLS = mode
		if _, err := Ping(ctx, s); err != nil {
			t.Errorf("TLS mode %q against a server without TLS: %v", mode, err)
		}
	}
	s.TLS = TLSVerify
	if _, err := Ping(ctx, s); code(err) != lifeboat.EUnavailable || !strings.Contains(err.Error(), "does not support") {
		t.Errorf("TLS mode verify against a server without TLS: %v", err)
	}
	s.TLS = "sometimes"
	if _, err := Ping(ctx, s); code(err) != lifeboat.EInvalid {
		t.Errorf("an unknown TLS mode: %v", err)
	}
}
