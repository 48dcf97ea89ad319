package postgres

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// fill gives db many tables, quoted unicode names and text, bytea, large
// objects, sequences, a partitioned table, a view and a materialized view.
func fill(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	for i := 0; i < 40; i++ {
		mustExec(t, conn,
			fmt.Sprintf("CREATE TABLE t_%02d (id serial PRIMARY KEY, v text NOT NULL, n numeric)", i),
			fmt.Sprintf("INSERT INTO t_%02d (v, n) SELECT 'row ' || g, g / 7.0 FROM generate_series(1, %d) g", i, i*5))
	}
	mustExec(t, conn,
		`CREATE SCHEMA "Ünï Schema"`,
		`CREATE TABLE "Ünï Schema"."Mixed Case ✓" (id int PRIMARY KEY, txt text, "naïve col" jsonb)`,
		`INSERT INTO "Ünï Schema"."Mixed Case ✓" VALUES
			(1, 'héllo wörld ✓ 日本語 🚀', '{"k": "ü"}'),
			(2, E'tab\there\nnewline, comma, ''quote'' "dq" \\ backslash', '[1,2]'),
			(3, '', 'null'), (4, NULL, NULL)`,
		`CREATE TABLE blobs (id int PRIMARY KEY, b bytea, lo oid)`,
		`INSERT INTO blobs SELECT g, decode(md5(g::text), 'hex') || '\x00ff00'::bytea, NULL FROM generate_series(1, 200) g`,
		`INSERT INTO blobs VALUES (1000, (SELECT string_agg(decode(md5(g::text), 'hex'), ''::bytea) FROM generate_series(1, 40000) g), NULL)`,
		`INSERT INTO blobs VALUES (2000, NULL, lo_from_bytea(0, (SELECT string_agg(decode(md5(g::text), 'hex'), ''::bytea) FROM generate_series(1, 20000) g)))`,
		`INSERT INTO blobs VALUES (2001, NULL, lo_from_bytea(0, '\x00010203'::bytea))`,
		`CREATE SEQUENCE standalone START 100`,
		`SELECT setval('standalone', 4242)`,
		`CREATE TABLE events (id bigserial, at date NOT NULL, what text) PARTITION BY RANGE (at)`,
		`CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`,
		`CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`,
		`INSERT INTO events (at, what) SELECT date '2024-06-01' + g, 'e' || g FROM generate_series(1, 300) g`,
		`CREATE VIEW big_t AS SELECT * FROM t_39 WHERE id > 10`,
		`CREATE MATERIALIZED VIEW t_sum AS SELECT count(*) AS c FROM t_39`,
		`CREATE INDEX ON t_39 (v)`,
	)
}

func TestRoundTrip(t *testing.T) {
	s := testServer(t)
	ctx := context.Background()
	src := newDB(t, s)
	srcConn := mustConnect(t, s, src)
	fill(t, srcConn)
	want := state(t, srcConn)

	dump, info := dumpAll(t, s, src)
	if !bytes.HasPrefix(dump, []byte("PGDMP")) {
		t.Fatalf("dump does not start with PGDMP: %q", dump[:min(len(dump), 16)])
	}
	if info.Engine != "postgres" || info.Database != src || info.SizeBytes <= 0 ||
		!regexp.MustCompile(`^\d+\.\d+$`).MatchString(info.ServerVersion) || !regexp.MustCompile(`^\d+\.\d+`).MatchString(info.ToolVersion) {
		t.Errorf("info = %+v", info)
	}
	if len(info.Tables) != 40+1+1+2 {
		t.Errorf("info has %d tables, want 44: %v", len(info.Tables), info.Tables)
	}
	for _, tc := range info.Tables {
		if w := want[tc.Name]; !strings.HasPrefix(w, fmt.Sprintf("%d rows ", tc.Rows)) {
			t.Errorf("info: %s has %d rows, source %s", tc.Name, tc.Rows, w)
		}
	}
	if got := fmt.Sprint(info.Tables[0]); got != `{"Ünï Schema"."Mixed Case ✓" 4}` {
		t.Errorf("first table %s", got)
	}

	dst := dbName(t, s)
	if err := Restore(ctx, s, dst, bytes.NewReader(dump), RestoreOptions{Create: true}); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	dstConn := mustConnect(t, s, dst)
	if d := diffStates(state(t, dstConn), want); len(d) > 0 {
		t.Errorf("restored copy differs:\n%s", strings.Join(d, "\n"))
	}
	if err := Verify(ctx, s, dst, info); err != nil {
		t.Errorf("Verify: %v", err)
	}

	// Verify detects a difference, naming the table.
	mustExec(t, dstConn, "DELETE FROM t_07 WHERE id = 3", `CREATE TABLE extra (x int)`)
	err := Verify(ctx, s, dst, info)
	wantCode(t, "Verify after a delete", err, lifeboat.ECorrupt, "2 difference", "public.t_07 has 34 rows, want 35", "public.extra")

	// Clean restore into the existing database: back to the dump.
	mustExec(t, dstConn, "DROP TABLE extra", "INSERT INTO t_01 (v) VALUES ('stray')")
	if err := Restore(ctx, s, dst, bytes.NewReader(dump), RestoreOptions{Clean: true}); err != nil {
		t.Fatalf("Restore with Clean: %v", err)
	}
	if d := diffStates(state(t, dstConn), want); len(d) > 0 {
		t.Errorf("clean-restored copy differs:\n%s", strings.Join(d, "\n"))
	}
	if err := Verify(ctx, s, dst, info); err != nil {
		t.Errorf("Verify after clean restore: %v", err)
	}

	// Without Clean, into a database that has the objects: the first error
	// stops it and the single transaction leaves the database as it was.
	err = Restore(ctx, s, dst, bytes.NewReader(dump), RestoreOptions{})
	wantCode(t, "Restore over existing objects", err, lifeboat.EExists, "pg_restore into", "already exists")
	if d := diffStates(state(t, dstConn), want); len(d) > 0 {
		t.Errorf("a failed restore changed the database:\n%s", strings.Join(d, "\n"))
	}

	err = Restore(ctx, s, dst, bytes.NewReader(dump), RestoreOptions{Create: true})
	wantCode(t, "Restore Create into an existing database", err, lifeboat.EExists, dst)
	missing := dbName(t, s)
	err = Restore(ctx, s, missing, bytes.NewReader(dump), RestoreOptions{})
	wantCode(t, "Restore into a missing database", err, lifeboat.ENotFound, missing)

	// NoOwner into another new database.
	dst2 := dbName(t, s)
	if err := Restore(ctx, s, dst2, bytes.NewReader(dump), RestoreOptions{Create: true, NoOwner: true}); err != nil {
		t.Fatalf("Restore NoOwner: %v", err)
	}
	if err := Verify(ctx, s, dst2, info); err != nil {
		t.Errorf("Verify NoOwner copy: %v", err)
	}

	// A source that fails halfway: nothing committed, the created database
	// dropped again, the source's error and code reported.
	bad := dbName(t, s)
	broken := io.MultiReader(bytes.NewReader(dump[:len(dump)/2]), errReader{lifeboat.Errorf(lifeboat.ECorrupt, "pack 1234: authentication failed")})
	err = Restore(ctx, s, bad, broken, RestoreOptions{Create: true})
	wantCode(t, "Restore from a failing source", err, lifeboat.ECorrupt, "pack 1234")
	admin := mustConnect(t, s, "postgres")
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", bad).Scan(&exists); err != nil || exists {
		t.Errorf("database of a failed Create restore still exists (%v, %v)", exists, err)
	}
	// A truncated dump (clean EOF) fails in pg_restore: nothing committed.
	err = Restore(ctx, s, dst, bytes.NewReader(dump[:len(dump)*3/4]), RestoreOptions{Clean: true})
	if err == nil {
		t.Errorf("Restore of a truncated dump: no error")
	}
	if d := diffStates(state(t, dstConn), want); len(d) > 0 {
		t.Errorf("a truncated restore changed the database:\n%s", strings.Join(d, "\n"))
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestDumpDuringWrites writes pairs of rows in transactions while the dump
// runs: the restored copy holds whole transactions only, exactly the rows
// the dump's counts say, and those are the source's rows at the snapshot.
func TestDumpDuringWrites(t *testing.T) {
	s := testServer(t)
	ctx := context.Background()
	src := newDB(t, s)
	srcConn := mustConnect(t, s, src)
	mustExec(t, srcConn,
		"CREATE TABLE pairs (grp bigint NOT NULL, k int NOT NULL, pad text, PRIMARY KEY (grp, k))",
		"CREATE TABLE static AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g",
	)
	writer := mustConnect(t, s, src)
	var commits atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var werr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for g := int64(1); ; g++ {
			select {
			case <-stop:
				return
			default:
			}
			err := pgx.BeginFunc(ctx, writer, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "INSERT INTO pairs VALUES ($1, 1, repeat('x', 100))", g); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, "INSERT INTO pairs VALUES ($1, 2, repeat('y', 100))", g)
				return err
			})
			if err != nil {
				werr = err
				return
			}
			commits.Add(1)
		}
	}()
	waitFor := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for commits.Load() < n {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("writer stuck at %d commits (%v)", commits.Load(), werr)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor(50)
	r, info, err := Dump(ctx, s, src)
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatal(err)
	}
	after := commits.Load()
	// Read slowly at first, while the writer goes on.
	var dump bytes.Buffer
	if _, err := io.CopyN(&dump, r, 4096); err != nil {
		t.Fatal(err)
	}
	waitFor(after + 50)
	if _, err := io.Copy(&dump, r); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(commits.Load() + 10)
	close(stop)
	wg.Wait()
	if werr != nil {
		t.Fatalf("writer: %v", werr)
	}

	var infoPairs int64 = -1
	for _, tc := range info.Tables {
		if tc.Name == "public.pairs" {
			infoPairs = tc.Rows
		}
	}
	var total int64
	if err := srcConn.QueryRow(ctx, "SELECT count(*) FROM pairs").Scan(&total); err != nil {
		t.Fatal(err)
	}
	if infoPairs < 100 || infoPairs%2 != 0 || infoPairs >= total {
		t.Fatalf("info counts %d pair rows; the source has %d now (want even, >= 100, < now)", infoPairs, total)
	}

	dst := dbName(t, s)
	if err := Restore(ctx, s, dst, &dump, RestoreOptions{Create: true}); err != nil {
		t.Fatal(err)
	}
	dstConn := mustConnect(t, s, dst)
	var n, torn, maxGrp int64
	if err := dstConn.QueryRow(ctx, `SELECT count(*), coalesce(max(grp), 0),
		(SELECT count(*) FROM (SELECT grp FROM pairs GROUP BY grp HAVING count(*) <> 2) x) FROM pairs`).Scan(&n, &maxGrp, &torn); err != nil {
		t.Fatal(err)
	}
	if torn != 0 || n != infoPairs || maxGrp*2 != n {
		t.Errorf("restored pairs: %d rows, max group %d, %d torn groups; info says %d rows", n, maxGrp, torn, infoPairs)
	}
	// The restored rows are the source's rows at the snapshot: with one
	// writer committing in order, the groups up to maxGrp.
	sum := func(conn *pgx.Conn, q string) string {
		var s string
		if err := conn.QueryRow(ctx, strings.ReplaceAll(q, "$1", fmt.Sprint(maxGrp))).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	q := "SELECT md5(string_agg(p::text, ',' ORDER BY grp, k)) FROM pairs p WHERE grp <= $1"
	if a, b := sum(srcConn, q), sum(dstConn, q); a != b {
		t.Errorf("restored pairs checksum %s, source at snapshot %s", b, a)
	}
	q = "SELECT $1::text || md5(string_agg(s::text, ',' ORDER BY id)) FROM static s"
	if a, b := sum(srcConn, q), sum(dstConn, q); a != b {
		t.Errorf("restored static checksum %s, source %s", b, a)
	}
	if err := Verify(ctx, s, dst, info); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if err := Verify(ctx, s, src, info); err == nil || !strings.Contains(err.Error(), "public.pairs has") {
		t.Errorf("Verify of the grown source: %v, want a difference in public.pairs", err)
	}
}

func TestDumpGlobals(t *testing.T) {
	s := testServer(t)
	r, err := DumpGlobals(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "CREATE ROLE "+pgx.Identifier{s.User}.Sanitize()) &&
		!strings.Contains(string(b), "CREATE ROLE "+s.User+";") {
		t.Errorf("globals do not create role %s:\n%s", s.User, b)
	}
}

func TestErrors(t *testing.T) {
	s := testServer(t)
	ctx := context.Background()
	v, err := Ping(ctx, s)
	if err != nil || !regexp.MustCompile(`^\d+\.\d+$`).MatchString(v) {
		t.Fatalf("Ping = %q, %v", v, err)
	}

	down := s
	down.Host, down.Port = "127.0.0.1", freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", down.Port)
	_, err = Ping(ctx, down)
	wantCode(t, "Ping unreachable", err, lifeboat.EUnavailable, "postgres "+addr)
	_, _, err = Dump(ctx, down, "x")
	wantCode(t, "Dump unreachable", err, lifeboat.EUnavailable, addr)

	_, _, err = Dump(ctx, s, "no_such_db_lb")
	wantCode(t, "Dump unknown database", err, lifeboat.ENotFound, `database "no_such_db_lb" does not exist`)
	err = Verify(ctx, s, "no_such_db_lb", &lifeboat.DatabaseInfo{})
	wantCode(t, "Verify unknown database", err, lifeboat.ENotFound)

	bad := s
	bad.SSLMode = "sometimes"
	_, err = Ping(ctx, bad)
	wantCode(t, "bad sslmode", err, lifeboat.EInvalid, "sslmode")

	db := newDB(t, s)
	major := strings.Split(v, ".")[0]

	t.Run("missing tool", func(t *testing.T) {
		setBinDir(t, t.TempDir())
		_, _, err := Dump(ctx, s, db)
		wantCode(t, "Dump", err, lifeboat.EInvalid, "pg_dump not found", "apt-get install postgresql-client-"+major)
		err = Restore(ctx, s, db, strings.NewReader(""), RestoreOptions{})
		wantCode(t, "Restore", err, lifeboat.EInvalid, "pg_restore not found", "postgresql-client-"+major)
		_, err = DumpGlobals(ctx, s)
		wantCode(t, "DumpGlobals", err, lifeboat.EInvalid, "pg_dumpall not found")
	})

	t.Run("old tool", func(t *testing.T) {
		dir := t.TempDir()
		script := "#!/bin/sh\necho 'pg_dump (PostgreSQL) 13.14 (Debian 13.14-0+deb11u1)'\n"
		if err := os.WriteFile(filepath.Join(dir, "pg_dump"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		setBinDir(t, dir)
		_, _, err := Dump(ctx, s, db)
		wantCode(t, "Dump", err, lifeboat.EInvalid,
			fmt.Sprintf("pg_dump 13.14 is older than the server (%s): install postgresql-client-%s", v, major))
	})

	t.Run("cancel", func(t *testing.T) {
		conn := mustConnect(t, s, db)
		mustExec(t, conn, "CREATE TABLE big AS SELECT g, md5(g::text) AS v FROM generate_series(1, 100000) g")
		cctx, cancel := context.WithCancel(ctx)
		r, _, err := Dump(cctx, s, db)
		if err != nil {
			t.Fatal(err)
		}
		st := r.(*stream)
		cancel()
		_, rerr := io.Copy(io.Discard, r)
		cerr := r.Close()
		if rerr == nil && cerr == nil {
			t.Errorf("cancelled dump: no error")
		}
		wantCode(t, "Close after cancel", cerr, lifeboat.EInterrupted)
		if st.cmd.ProcessState == nil {
			t.Errorf("pg_dump not waited for")
		}
		// Closing before the end kills pg_dump and says so.
		r, _, err = Dump(ctx, s, db)
		if err != nil {
			t.Fatal(err)
		}
		wantCode(t, "Close before the end", r.Close(), lifeboat.EInterrupted, "closed before the end")
	})
}

func setBinDir(t *testing.T, dir string) {
	old := BinDir
	BinDir = dir
	t.Cleanup(func() { BinDir = old })
}

// TestPasswords runs against a cluster of its own with scram-sha-256: a
// wrong password, and a right one (with characters a password file and a
// connection string must escape) that reaches pg_dump, pg_restore and
// pg_dumpall through the password file and never through their command
// lines or environments.
func TestPasswords(t *testing.T) {
	super, socketDir := startCluster(t)
	ctx := context.Background()
	const password = `S3cr:et\pa'ss w0rd`
	admin := mustConnect(t, super, "postgres")
	mustExec(t, admin,
		"CREATE ROLE app LOGIN CREATEDB PASSWORD "+quoteLiteral(password),
		"CREATE DATABASE appdb OWNER app")
	app := Server{Host: "127.0.0.1", Port: super.Port, User: "app", Password: password, SSLMode: "disable"}
	appConn := mustConnect(t, app, "appdb")
	mustExec(t, appConn,
		"CREATE TABLE data AS SELECT g AS id, md5(g::text) || md5((g+1)::text) AS v FROM generate_series(1, 30000) g",
		"SELECT lo_from_bytea(0, 'a large object'::bytea)")
	want := state(t, appConn)

	wrong := app
	wrong.Password = "not-the-password"
	_, err := Ping(ctx, wrong)
	wantCode(t, "Ping wrong password", err, lifeboat.EAuth)
	if err != nil && err.Error() != fmt.Sprintf("postgres 127.0.0.1:%d user app: password authentication failed", app.Port) {
		t.Errorf("wrong password: %q", err)
	}
	_, _, err = Dump(ctx, wrong, "appdb")
	wantCode(t, "Dump wrong password", err, lifeboat.EAuth)
	empty := app
	empty.Password = ""
	_, err = Ping(ctx, empty)
	wantCode(t, "Ping no password", err, lifeboat.EAuth)

	checkChildren := func(tool string) {
		t.Helper()
		cmdlines, environs := children(t)
		found := false
		for pid, c := range cmdlines {
			if strings.Contains(c, tool) {
				found = true
			}
			if strings.Contains(c, password) || strings.Contains(c, "S3cr") {
				t.Errorf("password in the command line of %d: %q", pid, c)
			}
			env := environs[pid]
			if strings.Contains(env, "S3cr") || strings.Contains(env, "PGPASSWORD") {
				t.Errorf("password in the environment of %d: %q", pid, env)
			}
			for _, kv := range strings.Split(strings.TrimSpace(env), "\n") {
				k, _, _ := strings.Cut(kv, "=")
				switch k {
				case "PATH", "PGPASSFILE", "PGSSLMODE", "PGCONNECT_TIMEOUT", "LC_ALL":
				default:
					t.Errorf("child %d (%s) has %q in its environment", pid, c, kv)
				}
			}
		}
		if !found {
			t.Errorf("no %s child seen (children: %v)", tool, cmdlines)
		}
	}

	// pg_dump's output exceeds the pipe's buffer: it is still running.
	r, info, err := Dump(ctx, app, "appdb")
	if err != nil {
		t.Fatalf("Dump with the password: %v", err)
	}
	checkChildren("pg_dump")
	dump, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("dump: %v", err)
	}

	// pg_restore reads a pipe fed slowly, so it can be looked at.
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Restore(ctx, app, "appcopy", pr, RestoreOptions{Create: true, NoOwner: true}) }()
	if _, err := pw.Write(dump[:1024]); err != nil {
		t.Fatal(err)
	}
	checkChildren("pg_restore")
	go func() { pw.Write(dump[1024:]); pw.Close() }()
	if err := <-done; err != nil {
		t.Fatalf("Restore with the password: %v", err)
	}
	if d := diffStates(state(t, mustConnect(t, app, "appcopy")), want); len(d) > 0 {
		t.Errorf("restored copy differs:\n%s", strings.Join(d, "\n"))
	}
	if err := Verify(ctx, app, "appcopy", info); err != nil {
		t.Errorf("Verify: %v", err)
	}

	// A unix socket directory as the host, for pgx and for pg_dump.
	sock := super
	sock.Host = socketDir
	if v, err := Ping(ctx, sock); err != nil {
		t.Errorf("Ping over the unix socket: %v, %v", v, err)
	}
	if _, sinfo := dumpAll(t, sock, "appdb"); fmt.Sprint(sinfo.Tables) != fmt.Sprint(info.Tables) {
		t.Errorf("dump over the unix socket counted %v, want %v", sinfo.Tables, info.Tables)
	}

	// Not a superuser: globals without role passwords.
	g, err := DumpGlobals(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	checkChildren("pg_dumpall")
	b, err := io.ReadAll(g)
	if cerr := g.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("DumpGlobals as app: %v", err)
	}
	if !strings.Contains(string(b), "CREATE ROLE app;") || strings.Contains(string(b), "SCRAM-SHA-256$") {
		t.Errorf("globals as app:\n%s", b)
	}
	leftovers, _ := filepath.Glob(filepath.Join(os.TempDir(), "lifeboat-pg-*"))
	for _, l := range leftovers {
		if fi, err := os.Stat(l); err == nil && time.Since(fi.ModTime()) < time.Minute {
			t.Errorf("private directory left behind: %s", l)
		}
	}
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
