package postgres

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/testenv"
)

// testServer is the server of LIFEBOAT_TEST_PG_DSN (a superuser).
func testServer(t *testing.T) Server {
	t.Helper()
	dsn := testenv.Require(t, "LIFEBOAT_TEST_PG_DSN")["LIFEBOAT_TEST_PG_DSN"]
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("LIFEBOAT_TEST_PG_DSN: %v", err)
	}
	port, _ := strconv.Atoi(u.Port())
	pw, _ := u.User.Password()
	s := Server{Host: u.Hostname(), Port: port, User: u.User.Username(), Password: pw, SSLMode: u.Query().Get("sslmode")}
	if s.SSLMode == "" {
		s.SSLMode = "prefer"
	}
	return s
}

func mustConnect(t *testing.T, s Server, db string) *pgx.Conn {
	t.Helper()
	conn, err := connect(context.Background(), s, db)
	if err != nil {
		t.Fatalf("connect %s: %v", db, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func mustExec(t *testing.T, conn *pgx.Conn, sqls ...string) {
	t.Helper()
	for _, q := range sqls {
		if _, err := conn.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// dbName returns a fresh database name, dropped when the test ends.
func dbName(t *testing.T, s Server) string {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "lbpg_" + strings.ToLower(strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	name += "_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, err := connectAdmin(ctx, s)
		if err != nil {
			t.Logf("drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	return name
}

// newDB creates a fresh database.
func newDB(t *testing.T, s Server) string {
	t.Helper()
	name := dbName(t, s)
	admin := mustConnect(t, s, "postgres")
	mustExec(t, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return name
}

// state is every table's row count and checksum, the large objects'
// checksum and the sequences' positions: what a faithful restore keeps.
func state(t *testing.T, conn *pgx.Conn) map[string]string {
	t.Helper()
	ctx := context.Background()
	tables, err := listTables(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	st := map[string]string{}
	for _, tb := range tables {
		var n int64
		var sum *string
		q := fmt.Sprintf("SELECT count(*), md5(string_agg(x::text, ',' ORDER BY x::text COLLATE \"C\")) FROM %s x", tb)
		if err := conn.QueryRow(ctx, q).Scan(&n, &sum); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		st[tb] = fmt.Sprintf("%d rows md5 %v", n, deref(sum))
	}
	var los int64
	var losum *string
	if err := conn.QueryRow(ctx, `SELECT count(*), md5(string_agg(oid::text || ':' || md5(lo_get(oid)), ',' ORDER BY oid))
		FROM pg_largeobject_metadata`).Scan(&los, &losum); err != nil {
		t.Fatal(err)
	}
	st["large objects"] = fmt.Sprintf("%d md5 %v", los, deref(losum))
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', schemaname, sequencename), coalesce(last_value, 0) FROM pg_sequences`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			t.Fatal(err)
		}
		st["sequence "+name] = strconv.FormatInt(v, 10)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return st
}

func deref(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

func diffStates(got, want map[string]string) []string {
	var d []string
	for k, w := range want {
		if g := got[k]; g != w {
			d = append(d, fmt.Sprintf("%s: got %q, want %q", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("%s: got %q, not in the source", k, g))
		}
	}
	sort.Strings(d)
	return d
}

// dumpAll runs Dump and reads the whole stream.
func dumpAll(t *testing.T, s Server, db string) ([]byte, *lifeboat.DatabaseInfo) {
	t.Helper()
	r, info, err := Dump(context.Background(), s, db)
	if err != nil {
		t.Fatalf("Dump %s: %v", db, err)
	}
	b, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("read dump of %s: %v", db, err)
	}
	return b, info
}

func wantCode(t *testing.T, what string, err error, code lifeboat.Code, contains ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %s", what, code)
		return
	}
	t.Logf("%s: %v", what, err)
	if got := lifeboat.ErrorCode(err); got != code {
		t.Errorf("%s: code %s, want %s (%v)", what, got, code, err)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Errorf("%s: %q does not contain %q", what, err, c)
		}
	}
}

// freePort returns a TCP port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// startCluster starts a throwaway cluster of its own: trust for the
// postgres superuser, scram-sha-256 for every other role over TCP.
func startCluster(t *testing.T) (s Server, socketDir string) {
	t.Helper()
	bins, _ := filepath.Glob(libDirs + "/initdb")
	if len(bins) == 0 {
		testenv.Skip(t, "needs initdb (apt-get install postgresql)")
	}
	sort.Slice(bins, func(i, j int) bool { return versionLess(bins[i], bins[j]) })
	bin := filepath.Dir(bins[len(bins)-1])
	dir, err := os.MkdirTemp("", "lbpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	wrap := func(name string, args ...string) *exec.Cmd {
		return exec.Command(filepath.Join(bin, name), args...)
	}
	if os.Getuid() == 0 {
		pg, err := user.Lookup("postgres")
		if err != nil {
			testenv.Skip(t, "running as root needs a postgres user to run initdb as")
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		wrap = func(name string, args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...)
		}
	}
	run := func(cmd *exec.Cmd) {
		t.Helper()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
	}
	data := filepath.Join(dir, "data")
	run(wrap("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"))
	hba := "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(hba), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	run(wrap("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "30", "-o",
		fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off", port, dir),
		"start"))
	t.Cleanup(func() { wrap("pg_ctl", "-D", data, "-m", "immediate", "stop").Run() })
	return Server{Host: "127.0.0.1", Port: port, User: "postgres", SSLMode: "disable"}, dir
}

// children returns the command lines and environments of this process's
// child processes.
func children(t *testing.T) (cmdlines, environs map[int]string) {
	t.Helper()
	cmdlines, environs = map[int]string{}, map[int]string{}
	self := strconv.Itoa(os.Getpid())
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		status, err := os.ReadFile(d + "/status")
		if err != nil {
			continue
		}
		ppid := ""
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, "PPid:"); ok {
				ppid = strings.TrimSpace(v)
			}
		}
		if ppid != self {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		c, _ := os.ReadFile(d + "/cmdline")
		e, _ := os.ReadFile(d + "/environ")
		cmdlines[pid] = string(bytes.ReplaceAll(c, []byte{0}, []byte{' '}))
		environs[pid] = string(bytes.ReplaceAll(e, []byte{0}, []byte{'\n'}))
	}
	return cmdlines, environs
}
