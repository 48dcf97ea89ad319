package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/testenv"
)

// mariadbSQL runs SQL on the test MariaDB (password through a 0600 file).
func mariadbSQL(t *testing.T, env map[string]string, sql string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "my.cnf")
	os.WriteFile(f, []byte("[client]\nhost="+env["LIFEBOAT_TEST_MYSQL_HOST"]+"\nport="+env["LIFEBOAT_TEST_MYSQL_PORT"]+
		"\ndefault-character-set=utf8mb4\nuser="+env["LIFEBOAT_TEST_MYSQL_USER"]+"\npassword=\""+env["LIFEBOAT_TEST_MYSQL_PASSWORD"]+"\"\n"), 0o600)
	out, err := exec.Command("mariadb", "--defaults-file="+f, "-N", "-B", "-e", sql).CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestMySQLComponent: a MariaDB database backed up through the server and
// restored into a new database and into the original one, counts verified,
// the password never shown.
func TestMySQLComponent(t *testing.T) {
	env := testenv.Require(t, "LIFEBOAT_TEST_MYSQL_HOST", "LIFEBOAT_TEST_MYSQL_PORT", "LIFEBOAT_TEST_MYSQL_USER", "LIFEBOAT_TEST_MYSQL_PASSWORD")
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	db := "lbsrv_" + randomHex(4)
	mariadbSQL(t, env, "CREATE DATABASE "+db+"; CREATE TABLE "+db+".orders (id INT PRIMARY KEY AUTO_INCREMENT, item VARCHAR(50)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;"+
		" INSERT INTO "+db+".orders (item) VALUES ('tea'), ('café'), ('🍵');")
	t.Cleanup(func() { mariadbSQL(t, env, "DROP DATABASE IF EXISTS "+db+"; DROP DATABASE IF EXISTS "+db+"_copy") })
	pwFile := filepath.Join(t.TempDir(), "my.password")
	os.WriteFile(pwFile, []byte(env["LIFEBOAT_TEST_MYSQL_PASSWORD"]+"\n"), 0o600)
	port, _ := strconv.Atoi(env["LIFEBOAT_TEST_MYSQL_PORT"])
	doc := f.doc()
	doc.DatabaseServers = []lifeboat.DBServer{{Name: "my", Engine: "mysql", Host: env["LIFEBOAT_TEST_MYSQL_HOST"], Port: port, User: env["LIFEBOAT_TEST_MYSQL_USER"], PasswordFile: pwFile}}
	doc.Apps[0].Components = append(doc.Apps[0].Components, lifeboat.Component{Name: "orders", Kind: "mysql", Server: "my", Database: db, Globals: true})
	// A wrong password is refused at registration.
	bad := filepath.Join(t.TempDir(), "bad.password")
	os.WriteFile(bad, []byte("wrong-password"), 0o600)
	badDoc := doc
	badDoc.DatabaseServers = []lifeboat.DBServer{{Name: "my", Engine: "mysql", Host: doc.DatabaseServers[0].Host, Port: port, User: doc.DatabaseServers[0].User, PasswordFile: bad}}
	if err := ts.do(t, "POST", "/api/v1/apply", ApplyRequest{Document: badDoc}, nil); codeOf(err) != lifeboat.EAuth {
		t.Fatalf("wrong password: %v", err)
	}
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	p := result[BackupResult](t, ts.backup(t, "shop")).Point
	mariadbSQL(t, env, "INSERT INTO "+db+".orders (item) VALUES ('after the backup')")
	// Into a new database: the point's rows, verified.
	var rj lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: p, Components: []string{"orders"}, To: "db:my/" + db + "_copy"}, &rj)
	if d := ts.waitJob(t, rj.ID); d.State != lifeboat.JobSucceeded {
		t.Fatalf("restore to a new database: %s", d.Error)
	}
	if n := mariadbSQL(t, env, "SELECT count(*) FROM "+db+"_copy.orders"); n != "3" {
		t.Errorf("new database has %s rows, want 3", n)
	}
	if err := ts.do(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: p, Components: []string{"orders"}, To: "db:my/" + db + "_copy"}, nil); codeOf(err) != lifeboat.EExists {
		t.Errorf("restore into an existing database: %v", err)
	}
	if got := mariadbSQL(t, env, "SELECT item FROM "+db+"_copy.orders WHERE id = 3"); got != "🍵" {
		t.Errorf("unicode row: %q", got)
	}
	// Into the original one: refused without confirmation, then done.
	if err := ts.do(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: p, Components: []string{"orders"}, To: "original"}, nil); codeOf(err) != lifeboat.EInvalid {
		t.Errorf("unconfirmed restore over a live database: %v", err)
	}
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: p, Components: []string{"orders"}, To: "original", Confirm: true}, &rj)
	d := ts.waitJob(t, rj.ID)
	if d.State != lifeboat.JobSucceeded {
		t.Fatalf("restore to the original database: %s", d.Error)
	}
	if n := mariadbSQL(t, env, "SELECT count(*) FROM "+db+".orders"); n != "3" {
		t.Errorf("original database has %s rows after the restore, want 3", n)
	}
	if rr := result[RestoreResult](t, d); rr.SafetyPoint == "" {
		t.Error("no safety point before replacing the database")
	}
	// The accounts and grants beside the dump (hashes, not the password).
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: p, Components: []string{"orders"}, To: filepath.Join(f.restoreRoot, "dumps")}, &rj)
	if d := ts.waitJob(t, rj.ID); d.State != lifeboat.JobSucceeded {
		t.Fatalf("restore of the dump to a directory: %s", d.Error)
	}
	if b, err := os.ReadFile(filepath.Join(f.restoreRoot, "dumps", "orders", "globals.sql")); err != nil || !strings.Contains(string(b), "CREATE USER IF NOT EXISTS `"+env["LIFEBOAT_TEST_MYSQL_USER"]+"`") || strings.Contains(string(b), env["LIFEBOAT_TEST_MYSQL_PASSWORD"]) {
		t.Errorf("globals: %v %.300s", err, b)
	}
	// The point records the database.
	var pv PointView
	ts.must(t, "GET", "/api/v1/apps/shop/points/"+p, nil, &pv)
	_, body := ts.rawDo(t, "GET", "/api/v1/db-servers", ts.token, "")
	if strings.Contains(body, env["LIFEBOAT_TEST_MYSQL_PASSWORD"]) || strings.Contains(ts.logs.String(), env["LIFEBOAT_TEST_MYSQL_PASSWORD"]) {
		t.Error("the database password is shown")
	}
}

// TestPostgresComponent: a PostgreSQL database backed up through the server
// while it is written to, restored into a new database (verified) and into
// the original one.
func TestPostgresComponent(t *testing.T) {
	dsn := testenv.Require(t, "LIFEBOAT_TEST_PG_DSN")["LIFEBOAT_TEST_PG_DSN"]
	u, _ := url.Parse(dsn)
	port, _ := strconv.Atoi(u.Port())
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	db := "lbsrvpg_" + randomHex(4)
	if _, err := admin.Exec("CREATE DATABASE " + db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)")
		admin.Exec("DROP DATABASE IF EXISTS " + db + "_copy WITH (FORCE)")
		admin.Exec("DROP DATABASE IF EXISTS " + db + "_safety WITH (FORCE)")
	})
	su := *u
	su.Path = "/" + db
	src, err := sql.Open("pgx", su.String())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Exec(`CREATE TABLE orders (id serial PRIMARY KEY, item text, blob bytea); INSERT INTO orders (item, blob) VALUES ('tea', '\x00ff'), ('café', NULL), ('🍵', '\xdeadbeef')`); err != nil {
		t.Fatal(err)
	}
	// The restore to the original database fails once, after its restore,
	// and is retried.
	var failOriginal atomic.Bool
	ts := newRetryServer(t, func(j *lifeboat.Job, comp string) error {
		if comp == "" && j.Attempts == 1 && failOriginal.Swap(false) {
			return lifeboat.Errorf(lifeboat.EUnavailable, "storage went away")
		}
		return nil
	})
	f := newFixture(t)
	doc := f.doc()
	doc.DatabaseServers = []lifeboat.DBServer{{Name: "pg", Engine: "postgres", Host: u.Hostname(), Port: port, User: u.User.Username(), SSLMode: "disable"}}
	doc.Apps[0].Components = append(doc.Apps[0].Components, lifeboat.Component{Name: "orders", Kind: "postgres", Server: "pg", Database: db, Globals: true})
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	p := result[BackupResult](t, ts.backup(t, "shop")).Point
	src.Exec(`INSERT INTO orders (item) VALUES ('after the backup')`)
	var rj lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: p, Components: []string{"orders"}, To: "db:pg/" + db + "_copy"}, &rj)
	if d := ts.waitJob(t, rj.ID); d.State != lifeboat.JobSucceeded {
		t.Fatalf("restore to a new database: %s", d.Error)
	}
	cu := *u
	cu.Path = "/" + db + "_copy"
	cp, err := sql.Open("pgx", cu.String())
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	var n int
	var item string
	var blob []byte
	cp.QueryRow(`SELECT count(*) FROM orders`).Scan(&n)
	cp.QueryRow(`SELECT item, blob FROM orders WHERE id = 3`).Scan(&item, &blob)
	if n != 3 || item != "🍵" || string(blob) != "\xde\xad\xbe\xef" {
		t.Errorf("new database: %d rows, %q %x", n, item, blob)
	}
	if err := ts.do(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: p, Components: []string{"orders"}, To: "db:pg/" + db + "_copy"}, nil); codeOf(err) != lifeboat.EExists {
		t.Errorf("restore into an existing database: %v", err)
	}
	failOriginal.Store(true)
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: p, Components: []string{"orders"}, To: "original", Confirm: true}, &rj)
	d := ts.waitJob(t, rj.ID)
	if d.State != lifeboat.JobSucceeded || d.Attempts != 2 {
		t.Fatalf("restore to the original database: %s after %d attempts: %s", d.State, d.Attempts, d.Error)
	}
	src.QueryRow(`SELECT count(*) FROM orders`).Scan(&n)
	if n != 3 {
		t.Errorf("original database has %d rows after the restore, want 3", n)
	}
	// The retry's safety point holds what the first attempt restored (and
	// anything written since); the job names the first attempt's, which
	// holds the 4 rows there before.
	rr := result[RestoreResult](t, d)
	if sps := safetyPoints(t, ts); len(sps) != 2 || rr.SafetyPoint != sps[0] {
		t.Fatalf("safety points %v; the result names %q", sps, rr.SafetyPoint)
	}
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: rr.SafetyPoint, Components: []string{"orders"}, To: "db:pg/" + db + "_safety"}, &rj)
	if d := ts.waitJob(t, rj.ID); d.State != lifeboat.JobSucceeded {
		t.Fatalf("restore of the safety point: %s", d.Error)
	}
	su.Path = "/" + db + "_safety"
	sp, err := sql.Open("pgx", su.String())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if sp.QueryRow(`SELECT count(*) FROM orders`).Scan(&n); n != 4 {
		t.Errorf("the safety point's database has %d rows, want the 4 there before the restore", n)
	}
	// To a directory: the dump file and the roles, as files.
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: p, Components: []string{"orders"}, To: filepath.Join(f.restoreRoot, "dumps")}, &rj)
	if d := ts.waitJob(t, rj.ID); d.State != lifeboat.JobSucceeded {
		t.Fatalf("restore to a directory: %s", d.Error)
	}
	if b, err := os.ReadFile(filepath.Join(f.restoreRoot, "dumps", "orders", "globals.sql")); err != nil || !strings.Contains(string(b), "CREATE ROLE") {
		t.Errorf("globals: %v %.200s", err, b)
	}
	if st, err := os.Stat(filepath.Join(f.restoreRoot, "dumps", "orders", db+".pgdump")); err != nil || st.Size() == 0 {
		t.Errorf("dump file: %v", err)
	}
	var pv PointView
	ts.must(t, "GET", "/api/v1/apps/shop/points/"+p, nil, &pv)
	found := false
	for _, c := range pv.Components {
		found = found || (c.Kind == "postgres" && strings.Contains(c.Source, db))
	}
	if !found {
		t.Errorf("point components: %+v", pv.Components)
	}
}

// TestUnreachableDatabase: an app whose database server is unreachable
// fails its backup with that cause; another app's backup goes on.
func TestUnreachableDatabase(t *testing.T) {
	dsn := testenv.Require(t, "LIFEBOAT_TEST_PG_DSN")["LIFEBOAT_TEST_PG_DSN"]
	u, _ := url.Parse(dsn)
	port, _ := strconv.Atoi(u.Port())
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	doc := f.doc()
	doc.DatabaseServers = []lifeboat.DBServer{{Name: "pg", Engine: "postgres", Host: u.Hostname(), Port: port, User: u.User.Username(), SSLMode: "disable"}}
	doc.Apps = append(doc.Apps, lifeboat.App{Name: "billing", Components: []lifeboat.Component{{Name: "db", Kind: "postgres", Server: "pg", Database: strings.TrimPrefix(u.Path, "/")}}})
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	// The server moves away (its registration now points at a closed port).
	closed := freeLocalPort(t)
	ts.db.Update(context.Background(), func(tx *catalog.Tx) error {
		d, _ := tx.DBServer(context.Background(), "pg")
		d.Port = closed
		return tx.PutDBServer(context.Background(), d)
	})
	var jb, js lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/billing/backups", nil, &jb)
	ts.must(t, "POST", "/api/v1/apps/shop/backups", nil, &js)
	if d := ts.waitJob(t, js.ID); d.State != lifeboat.JobSucceeded {
		t.Errorf("the other app: %s %s", d.State, d.Error)
	}
	d := ts.waitJob(t, jb.ID)
	if d.State != lifeboat.JobFailed || !strings.Contains(d.Error, fmt.Sprintf("127.0.0.1:%d", closed)) {
		t.Errorf("unreachable database: %s %q", d.State, d.Error)
	}
	// Registering an unreachable server is refused at once.
	doc.DatabaseServers = []lifeboat.DBServer{{Name: "pg2", Engine: "postgres", Host: "127.0.0.1", Port: closed, User: "x", SSLMode: "disable"}}
	if err := ts.do(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil); codeOf(err) != lifeboat.EUnavailable {
		t.Errorf("registering an unreachable server: %v", err)
	}
}

func freeLocalPort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestSSHHost: an SSH host registered after its fingerprint was confirmed,
// a files component on it backed up agentlessly (unchanged files not read
// again) and restored into a local directory.
func TestSSHHost(t *testing.T) {
	env := testenv.Require(t, "LIFEBOAT_TEST_SSH_HOST", "LIFEBOAT_TEST_SSH_PORT", "LIFEBOAT_TEST_SSH_USER", "LIFEBOAT_TEST_SSH_KEY")
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	// The remote tree (the sshd is on this machine; its user reads /tmp).
	root, err := os.MkdirTemp("", "lbssh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)
	os.MkdirAll(filepath.Join(root, "img"), 0o755)
	os.WriteFile(filepath.Join(root, "index.html"), []byte("<h1>remote ✓</h1>"), 0o644)
	os.WriteFile(filepath.Join(root, "img", "logo.png"), []byte(strings.Repeat("PNG", 100000)), 0o644)
	os.Symlink("index.html", filepath.Join(root, "home.html"))
	os.MkdirAll(filepath.Join(root, "..", filepath.Base(root)+"-etc"), 0o755)
	remoteEnv := filepath.Join(filepath.Dir(root), filepath.Base(root)+"-etc", "web.env")
	os.WriteFile(remoteEnv, []byte("SITE_NAME=remote shop\nSESSION_KEY=remote-secret-123\n"), 0o640)
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(remoteEnv)) })
	// The tree belongs to the SSH user (it swaps it in place on restore).
	ownBySSHUser := func(dirs ...string) {
		if u, err := user.Lookup(env["LIFEBOAT_TEST_SSH_USER"]); err == nil && os.Geteuid() == 0 {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			for _, d := range dirs {
				filepath.Walk(d, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, uid, gid) })
			}
		}
	}
	ownBySSHUser(root, filepath.Dir(remoteEnv))
	// Times the restore onto the host must bring back (SFTP: to the second).
	logoTime, imgTime := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC), time.Date(2022, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(filepath.Join(root, "img", "logo.png"), logoTime, logoTime)
	os.Chtimes(filepath.Join(root, "img"), imgTime, imgTime)
	mark := filepath.Join(root, "hook.out")
	h := lifeboat.Host{Name: "web1", Kind: "ssh", Address: env["LIFEBOAT_TEST_SSH_HOST"] + ":" + env["LIFEBOAT_TEST_SSH_PORT"], User: env["LIFEBOAT_TEST_SSH_USER"],
		KeyFile: env["LIFEBOAT_TEST_SSH_KEY"], Roots: []string{root, filepath.Dir(remoteEnv)},
		Commands: map[string]lifeboat.HostCommand{"flush": {Argv: []string{"/bin/sh", "-c", `echo "flushed $LIFEBOAT_APP $(pwd)" > "$MARK"; echo 'on $(hostname)'`}, Env: map[string]string{"MARK": mark}, Dir: root}}}
	// Without a fingerprint: refused, and the error shows the one to confirm.
	err = ts.do(t, "PUT", "/api/v1/hosts/web1", h, nil)
	if codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "SHA256:") {
		t.Fatalf("unconfirmed host key: %v", err)
	}
	fp := err.Error()[strings.LastIndex(err.Error(), "SHA256:"):]
	fp = strings.TrimSuffix(fp, ")")
	h.Fingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	if err := ts.do(t, "PUT", "/api/v1/hosts/web1", h, nil); codeOf(err) != lifeboat.EAuth {
		t.Fatalf("a wrong fingerprint: %v", err)
	}
	h.Fingerprint = fp
	var got lifeboat.Host
	ts.must(t, "PUT", "/api/v1/hosts/web1", h, &got)
	if got.HostKey == "" || got.KeyFile != "" {
		t.Errorf("registered host: %+v", got)
	}
	doc := f.doc()
	doc.Apps[0].Components = append(doc.Apps[0].Components, lifeboat.Component{Name: "www", Kind: "files", Host: "web1", Path: root, Exclude: []string{"hook.out", "cache/", "tmp/"}})
	doc.Apps[0].Hooks = []lifeboat.Hook{{When: "pre-backup", Command: "flush", Host: "web1"}}
	doc.Apps[0].Public = append(doc.Apps[0].Public, "SITE_NAME")
	doc.Apps[0].Components = append(doc.Apps[0].Components, lifeboat.Component{Name: "webconf", Kind: "config", Host: "web1", Files: []string{remoteEnv}})
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	j1 := ts.backup(t, "shop")
	r1 := result[BackupResult](t, j1)
	if b, _ := os.ReadFile(mark); string(b) != "flushed shop "+root+"\n" {
		t.Errorf("remote hook wrote %q", b)
	}
	var logs struct{ Items []lifeboat.JobLog }
	ts.must(t, "GET", "/api/v1/jobs/"+j1.ID+"/logs", nil, &logs)
	found := false
	for _, l := range logs.Items {
		found = found || strings.Contains(l.Msg, "pre-backup hook 1 (flush on web1): on $(hostname)")
	}
	if !found {
		t.Errorf("remote hook output not in the job log: %+v", logs.Items)
	}
	r2 := result[BackupResult](t, ts.backup(t, "shop"))
	// Only the small staged config files are read again, never the remote
	// tree's unchanged files (logo.png alone is 300 KB).
	if r2.Stats.BytesRead > 10000 || r2.Stats.UnchangedFiles < 4 {
		t.Errorf("second backup re-read remote files: %+v (first %+v)", r2.Stats, r1.Stats)
	}
	// The remote config's settings: public shown, secret masked.
	code, body := ts.rawDo(t, "GET", "/api/v1/apps/shop/points/"+r2.Point, ts.token, "")
	if code != 200 || !strings.Contains(body, `"remote shop"`) || strings.Contains(body, "remote-secret-123") || !strings.Contains(body, "webconf/web.env:SESSION_KEY") {
		t.Errorf("remote config settings: %d %.400s", code, body)
	}
	var rj lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: r2.Point, Components: []string{"webconf"}, To: filepath.Join(f.restoreRoot, "conf")}, &rj)
	if d := ts.waitJob(t, rj.ID); d.State != lifeboat.JobSucceeded {
		t.Fatalf("restore of the remote config: %s", d.Error)
	}
	if b, _ := os.ReadFile(filepath.Join(f.restoreRoot, "conf", "webconf", "files", "0", "web.env")); !strings.Contains(string(b), "SITE_NAME=remote shop") {
		t.Errorf("remote config restored: %q", b)
	}
	// And back to its place on the host, the replaced file removed after.
	os.WriteFile(remoteEnv, []byte("SITE_NAME=defaced\n"), 0o640)
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: r2.Point, Components: []string{"webconf"}, To: "original"}, &rj)
	if d := ts.waitJob(t, rj.ID); d.State != lifeboat.JobSucceeded {
		t.Fatalf("remote config to its original place: %s", d.Error)
	}
	if b, _ := os.ReadFile(remoteEnv); string(b) != "SITE_NAME=remote shop\nSESSION_KEY=remote-secret-123\n" {
		t.Errorf("remote config after restore: %q", b)
	}
	if st, _ := os.Stat(remoteEnv); st.Mode().Perm() != 0o640 {
		t.Errorf("remote config mode %o", st.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(remoteEnv), ".lifeboat-*")); len(left) != 0 {
		t.Errorf("left next to the remote config: %v", left)
	}
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: r2.Point, Components: []string{"www"}, To: filepath.Join(f.restoreRoot, "web")}, &rj)
	if d := ts.waitJob(t, rj.ID); d.State != lifeboat.JobSucceeded {
		t.Fatalf("restore of the remote tree: %s", d.Error)
	}
	if b, _ := os.ReadFile(filepath.Join(f.restoreRoot, "web", "www", "img", "logo.png")); string(b) != strings.Repeat("PNG", 100000) {
		t.Error("remote file restored differently")
	}
	if l, _ := os.Readlink(filepath.Join(f.restoreRoot, "web", "www", "home.html")); l != "index.html" {
		t.Errorf("remote symlink: %q", l)
	}
	// Back to its original place on the SSH host: damage, then restore.
	// What the component does not capture (hook.out, a file under cache/;
	// tmp/ is empty) is in no point and not carried over on an SSH host:
	// the replaced tree holding it is kept, named, never removed.
	os.Remove(filepath.Join(root, "img", "logo.png"))
	os.WriteFile(filepath.Join(root, "index.html"), []byte("defaced"), 0o644)
	os.MkdirAll(filepath.Join(root, "cache", "s"), 0o755)
	os.WriteFile(filepath.Join(root, "cache", "s", "sess1"), []byte("session"), 0o644)
	os.MkdirAll(filepath.Join(root, "tmp", "empty"), 0o755)
	ownBySSHUser(root)
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: r2.Point, Components: []string{"www"}, To: "original"}, &rj)
	d := ts.waitJob(t, rj.ID)
	if d.State != lifeboat.JobSucceeded {
		t.Fatalf("restore onto the SSH host: %s", d.Error)
	}
	rr := result[RestoreResult](t, d)
	if rr.SafetyPoint == "" {
		t.Error("no safety point of the remote tree")
	}
	if _, err := os.Lstat(filepath.Join(root, "hook.out")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an excluded file is in the restored tree: %v", err)
	}
	if len(rr.Components) != 1 || len(rr.Components[0].Kept) != 1 {
		t.Fatalf("what the restore kept: %+v", rr.Components)
	}
	keptTree := rr.Components[0].Kept[0]
	if b, err := os.ReadFile(filepath.Join(keptTree, "hook.out")); err != nil || !strings.HasPrefix(string(b), "flushed shop") {
		t.Errorf("the kept tree's hook.out: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(keptTree, "cache", "s", "sess1")); err != nil || string(b) != "session" {
		t.Errorf("the kept tree's cache: %q %v", b, err)
	}
	ts.must(t, "GET", "/api/v1/jobs/"+d.ID+"/logs", nil, &logs)
	warned := false
	for _, l := range logs.Items {
		if l.Level == "warn" && strings.Contains(l.Msg, "2 entries the component does not capture") && strings.Contains(l.Msg, keptTree+"/cache, "+keptTree+"/hook.out)") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("the job's log does not name what the kept tree holds: %+v", logs.Items)
	}
	// Once that is moved away, a restore's replaced tree holds nothing
	// uncaptured (an empty excluded directory is nothing) and goes.
	if err := os.RemoveAll(keptTree); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, "tmp", "empty"), 0o755)
	os.WriteFile(filepath.Join(root, "index.html"), []byte("defaced again"), 0o644)
	ownBySSHUser(root)
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: r2.Point, Components: []string{"www"}, To: "original"}, &rj)
	if d = ts.waitJob(t, rj.ID); d.State != lifeboat.JobSucceeded {
		t.Fatalf("second restore onto the SSH host: %s", d.Error)
	}
	if rr := result[RestoreResult](t, d); len(rr.Components) != 1 || len(rr.Components[0].Kept) != 0 {
		t.Errorf("kept after a restore that replaced nothing uncaptured: %+v", rr.Components)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "index.html")); string(b) != "<h1>remote ✓</h1>" {
		t.Errorf("remote index.html after restore: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "img", "logo.png")); string(b) != strings.Repeat("PNG", 100000) {
		t.Error("remote logo.png not restored")
	}
	if l, _ := os.Readlink(filepath.Join(root, "home.html")); l != "index.html" {
		t.Errorf("remote symlink after restore: %q", l)
	}
	if st, _ := os.Stat(filepath.Join(root, "img", "logo.png")); st == nil || !st.ModTime().Equal(logoTime) {
		t.Errorf("remote file's time after restore: %v, want %v", st.ModTime(), logoTime)
	}
	if st, _ := os.Stat(filepath.Join(root, "img")); st == nil || !st.ModTime().Equal(imgTime) || st.Mode().Perm() != 0o755 {
		t.Errorf("remote directory after restore: %v %v, want %v 0755", st.ModTime(), st.Mode(), imgTime)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(root), ".lifeboat-*"+filepath.Base(root)+"*"))
	if len(leftovers) != 0 {
		t.Errorf("left on the host: %v", leftovers)
	}

	// A directory with a file system mounted inside (a bind mount of the
	// same file system here) is refused before anything runs or changes.
	elsewhere := t.TempDir()
	os.WriteFile(filepath.Join(elsewhere, "precious"), []byte("not the app's"), 0o644)
	os.MkdirAll(filepath.Join(root, "shared"), 0o755)
	os.WriteFile(filepath.Join(root, "index.html"), []byte("defaced a third time"), 0o644)
	if err := unix.Mount(elsewhere, filepath.Join(root, "shared"), "", unix.MS_BIND, ""); err != nil {
		testenv.Skip(t, "cannot bind-mount here: "+err.Error())
	}
	defer unix.Unmount(filepath.Join(root, "shared"), unix.MNT_DETACH)
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: r2.Point, Components: []string{"www"}, To: "original"}, &rj)
	if d = ts.waitJob(t, rj.ID); d.State != lifeboat.JobFailed || !strings.Contains(d.Error, "mounted at "+filepath.Join(root, "shared")) {
		t.Errorf("restore over a mount on the SSH host: %s: %s", d.State, d.Error)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "index.html")); string(b) != "defaced a third time" {
		t.Errorf("a refused restore changed the tree: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(elsewhere, "precious")); string(b) != "not the app's" {
		t.Errorf("the mounted directory's file: %q", b)
	}
}

// registerSSHHost registers the test sshd as host name (fingerprint shown,
// then confirmed).
func registerSSHHost(t *testing.T, ts *testServer, env map[string]string, name string, roots []string) {
	t.Helper()
	h := lifeboat.Host{Name: name, Kind: "ssh", Address: env["LIFEBOAT_TEST_SSH_HOST"] + ":" + env["LIFEBOAT_TEST_SSH_PORT"], User: env["LIFEBOAT_TEST_SSH_USER"],
		KeyFile: env["LIFEBOAT_TEST_SSH_KEY"], Roots: roots}
	err := ts.do(t, "PUT", "/api/v1/hosts/"+name, h, nil)
	if err == nil || !strings.Contains(err.Error(), "SHA256:") {
		t.Fatalf("unconfirmed host key: %v", err)
	}
	h.Fingerprint = strings.TrimSuffix(err.Error()[strings.LastIndex(err.Error(), "SHA256:"):], ")")
	ts.must(t, "PUT", "/api/v1/hosts/"+name, h, nil)
}

// TestPostgresViaSSH: a database reachable only from an SSH host's point of
// view is dumped and restored through a tunnel; nothing is installed there.
func TestPostgresViaSSH(t *testing.T) {
	env := testenv.Require(t, "LIFEBOAT_TEST_SSH_HOST", "LIFEBOAT_TEST_SSH_PORT", "LIFEBOAT_TEST_SSH_USER", "LIFEBOAT_TEST_SSH_KEY", "LIFEBOAT_TEST_PG_DSN")
	u, _ := url.Parse(env["LIFEBOAT_TEST_PG_DSN"])
	port, _ := strconv.Atoi(u.Port())
	admin, err := sql.Open("pgx", env["LIFEBOAT_TEST_PG_DSN"])
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	db := "lbsshpg_" + randomHex(4)
	if _, err := admin.Exec("CREATE DATABASE " + db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)")
		admin.Exec("DROP DATABASE IF EXISTS " + db + "_copy WITH (FORCE)")
	})
	su := *u
	su.Path = "/" + db
	src, _ := sql.Open("pgx", su.String())
	defer src.Close()
	if _, err := src.Exec(`CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 500) g`); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	registerSSHHost(t, ts, env, "dbhost", []string{"/nowhere"})
	doc := f.doc()
	doc.DatabaseServers = []lifeboat.DBServer{{Name: "pgs", Engine: "postgres", Host: "127.0.0.1", Port: port, User: u.User.Username(), SSLMode: "disable", Via: "dbhost"}}
	doc.Apps[0].Components = append(doc.Apps[0].Components, lifeboat.Component{Name: "db", Kind: "postgres", Server: "pgs", Database: db})
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	p := result[BackupResult](t, ts.backup(t, "shop")).Point
	var rj lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: p, Components: []string{"db"}, To: "db:pgs/" + db + "_copy"}, &rj)
	d := ts.waitJob(t, rj.ID)
	if d.State != lifeboat.JobSucceeded {
		t.Fatalf("restore through the tunnel: %s", d.Error)
	}
	cu := *u
	cu.Path = "/" + db + "_copy"
	cp, _ := sql.Open("pgx", cu.String())
	defer cp.Close()
	var n int
	cp.QueryRow(`SELECT count(*) FROM t`).Scan(&n)
	if n != 500 {
		t.Errorf("restored through the tunnel: %d rows", n)
	}
	var pv PointView
	ts.must(t, "GET", "/api/v1/apps/shop/points/"+p, nil, &pv)
	for _, c := range pv.Components {
		if c.Name == "db" && !strings.Contains(c.Source, "via dbhost") {
			t.Errorf("the point does not say the database was reached through the SSH host: %s", c.Source)
		}
	}
}

// sshOwned gives the tree at root to the test SSH user (restores onto the
// host swap it in place as that user).
func sshOwned(t *testing.T, env map[string]string, root string) {
	t.Helper()
	u, err := user.Lookup(env["LIFEBOAT_TEST_SSH_USER"])
	if err != nil || os.Geteuid() != 0 {
		return // the SSH user is this user
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	filepath.Walk(root, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, uid, gid) })
}

// TestSQLiteOnSSHHost: a live SQLite database on an SSH host, written to
// during the backup, is captured with the host's own sqlite3 in one read
// transaction, then restored onto the host stopped (renamed into place,
// the damaged file kept until the health check) and live (written into
// the running database), row counts verified each time.
func TestSQLiteOnSSHHost(t *testing.T) {
	env := testenv.Require(t, "LIFEBOAT_TEST_SSH_HOST", "LIFEBOAT_TEST_SSH_PORT", "LIFEBOAT_TEST_SSH_USER", "LIFEBOAT_TEST_SSH_KEY")
	ts := newTestServer(t, testOpts{})
	root, err := os.MkdirTemp("", "lbsshdb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)
	dbPath := filepath.Join(root, "app.db")
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)`, `CREATE TABLE "odd ""name"" table" (x)`,
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) INSERT INTO notes (body) SELECT 'note ' || i || printf('%.500c', 'x') FROM n`, `INSERT INTO "odd ""name"" table" VALUES (1), (2)`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	sshOwned(t, env, root)
	registerSSHHost(t, ts, env, "db1", []string{root})
	doc := Document{Apps: []lifeboat.App{{Name: "notes", Components: []lifeboat.Component{{Name: "db", Kind: "sqlite", Host: "db1", Path: dbPath}}}}}
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)

	// The app keeps writing during the backup.
	stop := make(chan struct{})
	writerDone := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				writerDone <- n
				return
			default:
			}
			if _, err := db.Exec(`INSERT INTO notes (body) VALUES ('during the backup')`); err == nil {
				n++
			}
		}
	}()
	j := ts.backup(t, "notes")
	close(stop)
	written := <-writerDone
	br := result[BackupResult](t, j)
	var pv struct {
		Components []struct {
			Name   string                 `json:"name"`
			Source string                 `json:"source"`
			Meta   *lifeboat.DatabaseInfo `json:"meta"`
		} `json:"components"`
	}
	ts.must(t, "GET", "/api/v1/apps/notes/points/"+br.Point, nil, &pv)
	if len(pv.Components) != 1 || pv.Components[0].Meta == nil {
		t.Fatalf("point view: %+v", pv)
	}
	meta := pv.Components[0].Meta
	counts := map[string]int64{}
	for _, tc := range meta.Tables {
		counts[tc.Name] = tc.Rows
	}
	if meta.Engine != "sqlite" || meta.ServerVersion == "" || counts[`odd "name" table`] != 2 || counts["notes"] < 3000 || counts["notes"] > int64(3000+written) {
		t.Fatalf("recorded database: %+v (%d rows written during the backup)", meta, written)
	}
	t.Logf("%d rows written during the backup; the point has %d", written, counts["notes"])
	if left, _ := filepath.Glob(filepath.Join(root, ".lifeboat-*")); len(left) != 0 {
		t.Errorf("left on the host after the backup: %v", left)
	}
	rows := func() int64 {
		var n int64
		c, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.QueryRow(`SELECT count(*) FROM notes`).Scan(&n); err != nil {
			t.Fatalf("count after restore: %v", err)
		}
		return n
	}

	// Stopped: the app closed, the file damaged, restored into place.
	db.Close()
	os.WriteFile(dbPath, []byte("this is not a database any more"), 0o644)
	os.WriteFile(dbPath+"-wal", []byte("the last transactions"), 0o644)
	var rj lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/notes/restores", RestoreRequest{Point: br.Point, To: "original"}, &rj)
	if d := ts.waitJob(t, rj.ID); d.State != lifeboat.JobSucceeded {
		t.Fatalf("stopped restore onto the SSH host: %s", d.Error)
	}
	if n := rows(); n != counts["notes"] {
		t.Errorf("after the stopped restore: %d rows, the point has %d", n, counts["notes"])
	}
	// The damaged file is in no safety point (it is no database): it is
	// kept beside the restored one for good, with its log (which may hold
	// the last transactions), and named. The log is not beside the
	// restored database: replayed into it, it would corrupt it.
	left, _ := filepath.Glob(filepath.Join(root, ".lifeboat-*"))
	if len(left) != 2 || left[1] != left[0]+"-wal" {
		t.Fatalf("kept on the host after the restore: %v, want the damaged file and its log", left)
	}
	if b, _ := os.ReadFile(left[0]); string(b) != "this is not a database any more" {
		t.Errorf("kept %s: %q", left[0], b)
	}
	if b, _ := os.ReadFile(left[1]); string(b) != "the last transactions" {
		t.Errorf("kept %s: %q", left[1], b)
	}
	if _, err := os.Lstat(dbPath + "-wal"); err == nil {
		t.Error("the replaced database's log is beside the restored one")
	}
	if rr := result[RestoreResult](t, ts.waitJob(t, rj.ID)); !slices.Contains(rr.Components[0].Kept, left[0]) || !slices.Contains(rr.Components[0].Kept, left[1]) {
		t.Errorf("the job's result does not name %v: %v", left, rr.Components[0].Kept)
	}
	os.Remove(left[0])
	os.Remove(left[1])

	// Live: the app runs (a connection holds the database open) and rows
	// go missing; the restore writes through SQLite, not a rename.
	doc.Apps[0].Components[0].RestoreMode = "live"
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	live, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	live.SetMaxOpenConns(1)
	if _, err := live.Exec(`DELETE FROM notes WHERE id > 100`); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(dbPath)
	ts.must(t, "POST", "/api/v1/apps/notes/restores", RestoreRequest{Point: br.Point, To: "original"}, &rj)
	if d := ts.waitJob(t, rj.ID); d.State != lifeboat.JobSucceeded {
		t.Fatalf("live restore onto the SSH host: %s", d.Error)
	}
	var n int64
	if err := live.QueryRow(`SELECT count(*) FROM notes`).Scan(&n); err != nil || n != counts["notes"] {
		t.Errorf("the running app's connection sees %d rows (%v), the point has %d", n, err, counts["notes"])
	}
	if after, _ := os.Stat(dbPath); !os.SameFile(before, after) {
		t.Error("live restore replaced the file under the running app")
	}

	// A database that is not there: a clear error; nothing is created
	// (sqlite3 would make an empty one) and nothing left behind.
	doc.Apps[0].Components[0].Path = filepath.Join(root, "missing.db")
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	var bj lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/notes/backups", BackupRequest{}, &bj)
	if d := ts.waitJob(t, bj.ID); d.State != lifeboat.JobFailed || !strings.Contains(d.Error, "missing.db") || !strings.Contains(d.Error, "no such database file") {
		t.Errorf("backup of a missing remote database: %s %s", d.State, d.Error)
	}
	if _, err := os.Stat(filepath.Join(root, "missing.db")); err == nil {
		t.Error("the backup created the missing database on the host")
	}
	if left, _ := filepath.Glob(filepath.Join(root, ".lifeboat-*")); len(left) != 0 {
		t.Errorf("left on the host after a failed backup: %v", left)
	}
}
