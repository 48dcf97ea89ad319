package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lifeboat-vault/lifeboat/internal/testenv"
)

type order struct {
	ID         int64     `json:"id"`
	Customer   string    `json:"customer"`
	TotalCents int64     `json:"total_cents"`
	CreatedAt  time.Time `json:"created_at"`
	Receipt    []byte    `json:"receipt"`
}

func (o order) same(p order) bool {
	return o.ID == p.ID && o.Customer == p.Customer && o.TotalCents == p.TotalCents &&
		o.CreatedAt.Equal(p.CreatedAt) && bytes.Equal(o.Receipt, p.Receipt)
}

// pgDB names a database after the test, drops it (if it exists) when the
// test ends, and returns its name and a DSN for it; with create it is made
// now, empty.
func pgDB(t *testing.T, adminDSN, suffix string, create bool) (string, string) {
	t.Helper()
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "_"))
	name = fmt.Sprintf("lb_%s_%d_%s", name, os.Getpid(), suffix)
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminDSN)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	drop := "DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"
	if err := exec(drop); err != nil { // a leftover of an interrupted run
		t.Fatal(err)
	}
	if create {
		if err := exec("CREATE DATABASE " + pgx.Identifier{name}.Sanitize()); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if err := exec(drop); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return name, u.String()
}

// TestEndToEndPostgres is the story with PostgreSQL and real processes:
// lifeboat serve, the example orders app, the CLI. Back up while the app
// keeps writing, damage the database (rows deleted, a column dropped),
// restore the latest point to the original database after a dry run and a
// refused unconfirmed attempt, restart the app and check through HTTP that
// the orders are back — exactly those of the dump's snapshot — then
// restore the same point into a new database and compare.
func TestEndToEndPostgres(t *testing.T) {
	adminDSN := testenv.Require(t, "LIFEBOAT_TEST_PG_DSN")["LIFEBOAT_TEST_PG_DSN"]
	ordersBin := buildExample(t, "orders")
	pgURL, err := url.Parse(adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	dbName, appDSN := pgDB(t, adminDSN, "orders", true)
	copyName, copyDSN := pgDB(t, adminDSN, "copy", false)

	tmp := t.TempDir()
	home := filepath.Join(tmp, "home")
	dataDir := filepath.Join(tmp, "lifeboat-data")
	os.MkdirAll(home, 0o700)
	appAddr := freePort(t)

	// The example's lifeboat.yaml, pointed at the test's server and
	// database (trust authentication: no password file).
	yml, err := os.ReadFile("../../examples/orders/lifeboat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ymlText := string(yml)
	for _, r := range [][2]string{
		{"    host: 127.0.0.1\n", "    host: " + pgURL.Hostname() + "\n"},
		{"    port: 5432\n", "    port: " + pgURL.Port() + "\n"},
		{"    user: lifeboat_backup\n", "    user: " + pgURL.User.Username() + "\n"},
		{"    passwordFile: /etc/lifeboat/pg-main.password\n", ""},
		{"        database: orders\n", "        database: " + dbName + "\n"},
		{"http://127.0.0.1:8090/healthz", "http://" + appAddr + "/healthz"},
	} {
		if strings.Count(ymlText, r[0]) != 1 {
			t.Fatalf("examples/orders/lifeboat.yaml: %q is not there once", r[0])
		}
		ymlText = strings.Replace(ymlText, r[0], r[1], 1)
	}
	yamlPath := filepath.Join(tmp, "lifeboat.yaml")
	os.WriteFile(yamlPath, []byte(ymlText), 0o644)

	st := startStory(t, home, dataDir)
	addr, env, srv, token, cli := st.addr, st.env, st.srv, st.token, st.cli

	r := lifeboat(t, env, "apply", "-f", yamlPath, "--dry-run")
	st.outputs = append(st.outputs, r.stdout, r.stderr)
	if r.code == 2 && strings.Contains(r.stderr, `database server "pg-main" is not registered`) {
		// The CLI's readDocuments (internal/cli/remote.go) merges hosts,
		// vaults, apps and policies but not databaseServers. Say so, and
		// register the server by hand to go on with the story.
		t.Errorf("apply -f dropped the document's databaseServers: %s", r.stderr)
		cli(0, "host", "add", "pg-main", "--kind", "postgres", "--address", pgURL.Host, "--user", pgURL.User.Username())
		r = cli(0, "apply", "-f", yamlPath, "--dry-run")
	} else if r.code != 0 {
		t.Fatalf("apply --dry-run: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	} else if !strings.Contains(r.stdout, "+ database server pg-main: postgres "+pgURL.Hostname()) {
		t.Errorf("apply plan misses the database server: %s", r.stdout)
	}
	if !strings.Contains(r.stdout, "+ app orders") || !strings.Contains(r.stdout, "Dry run") {
		t.Errorf("apply plan: %s", r.stdout)
	}
	cli(0, "apply", "-f", yamlPath)
	if r := cli(0, "apply", "-f", yamlPath); !strings.Contains(r.stdout, "No changes") {
		t.Errorf("second apply: %s", r.stdout)
	}

	// The app runs and takes orders.
	appEnv := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
	startApp := func(dsn string) *proc {
		p := start(t, appEnv, ordersBin, "-addr", appAddr, "-dsn", dsn)
		waitHTTP(t, "http://"+appAddr+"/healthz", p)
		return p
	}
	app := startApp(appDSN)
	base := "http://" + appAddr
	create := func(customer string, i int) order {
		receipt := bytes.Repeat([]byte{byte(i), 0, 0xff, byte(i >> 8)}, 64+i%200)
		b, _ := json.Marshal(map[string]any{"customer": customer, "total_cents": 100*i + 99, "receipt": receipt})
		var o order
		if code := httpJSON(t, "POST", base+"/orders", "", b, &o); code != 201 || !bytes.Equal(o.Receipt, receipt) {
			t.Errorf("create order %s: %d %+v", customer, code, o)
		}
		return o
	}
	var all []order
	for i := range 20 {
		all = append(all, create(fmt.Sprintf("before %d", i), i))
	}
	before := len(all)

	// Back up while a writer keeps creating orders: the dump is one
	// snapshot, so what comes back is a prefix of what was created.
	stop, writing := make(chan struct{}), make(chan struct{})
	var during []order
	go func() {
		defer close(writing)
		for i := 0; i < 5000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			during = append(during, create(fmt.Sprintf("during %d", i), before+i))
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(100 * time.Millisecond) // the writer is under way
	r = cli(0, "backup", "--app", "orders", "--reason", "pre-migration", "--wait")
	time.Sleep(100 * time.Millisecond) // and still writes after the snapshot
	close(stop)
	<-writing
	all = append(all, during...)
	for i := 1; i < len(all); i++ {
		if all[i].ID <= all[i-1].ID { // also a failed create (id 0)
			t.Fatalf("order ids not increasing: %d after %d", all[i].ID, all[i-1].ID)
		}
	}
	if !strings.Contains(r.stdout, "Point ") {
		t.Errorf("backup output: %s", r.stdout)
	}
	r = cli(0, "points", "--app", "orders", "-o", "json")
	var pts []struct {
		ID         string            `json:"id"`
		Labels     map[string]string `json:"labels"`
		Components []struct {
			Name, Kind string
		} `json:"components"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &pts); err != nil || len(pts) != 1 || pts[0].Labels["reason"] != "pre-migration" ||
		len(pts[0].Components) != 1 || pts[0].Components[0].Name != "db" || pts[0].Components[0].Kind != "postgres" {
		t.Fatalf("points: %v %s", err, r.stdout)
	}
	point := pts[0].ID

	// The row count the point recorded: the server's point view, or the
	// vault's own manifest (read offline with the vault's passphrase).
	recorded := recordedRows(t, cli, "http://"+addr, token, point, dataDir)
	if recorded < int64(before) || recorded > int64(len(all)) {
		t.Fatalf("the point recorded %d orders; %d were created before the backup, %d in all", recorded, before, len(all))
	}
	snap := all[:recorded]
	t.Logf("the snapshot holds %d orders: %d from before the backup, %d of the %d written during it", recorded, before, int(recorded)-before, len(during))

	// Damage: half the orders deleted and a column dropped. The app
	// notices.
	func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, appDSN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DELETE FROM orders WHERE id % 2 = 0"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "ALTER TABLE orders DROP COLUMN receipt"); err != nil {
			t.Fatal(err)
		}
	}()
	if code := httpJSON(t, "GET", base+"/healthz", "", nil, nil); code != 500 {
		t.Fatalf("damaged database still healthy: %d", code)
	}

	// The plan, then a refusal without --yes (nothing changed), then the
	// restore. The app keeps running: the health check after the restore
	// is the app's.
	r = cli(0, "restore", "--app", "orders", "latest", "--to", "original", "--dry-run")
	if !strings.Contains(r.stdout, "Restore of point "+point[:8]) || !strings.Contains(r.stdout, "db -> pg-main/"+dbName) ||
		!strings.Contains(r.stdout, "overwrite 1") || !strings.Contains(r.stdout, "dropped and recreated") {
		t.Errorf("restore plan: %s", r.stdout)
	}
	r = cli(2, "restore", "--app", "orders", "latest", "--to", "original")
	if !strings.Contains(r.stderr, "confirm") || !strings.Contains(r.stderr, "--yes") {
		t.Errorf("unconfirmed restore: %s", r.stderr)
	}
	if code := httpJSON(t, "GET", base+"/healthz", "", nil, nil); code != 500 {
		t.Fatalf("a refused restore changed the database: healthz %d", code)
	}
	r = cli(0, "restore", "--app", "orders", "latest", "--to", "original", "--yes")
	for _, w := range []string{"Restored point " + point[:8], "safety point", "health check: passed"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("restore output misses %q: %s", w, r.stdout)
		}
	}

	// Restart the app and check every order through HTTP.
	if code := app.stop(t); code != 0 {
		t.Fatalf("app exit %d: %s", code, app.output())
	}
	app = startApp(appDSN)
	if code := httpJSON(t, "GET", base+"/healthz", "", nil, nil); code != 200 {
		t.Fatalf("health after restore: %d", code)
	}
	checkOrders := func(what string) {
		t.Helper()
		var got []order
		if code := httpJSON(t, "GET", base+"/orders", "", nil, &got); code != 200 || len(got) != len(snap) {
			t.Fatalf("%s: %d, %d orders, want the %d of the snapshot", what, code, len(got), len(snap))
		}
		for i := range got {
			if !got[i].same(snap[i]) {
				t.Fatalf("%s: order %d is %+v, want %+v", what, i, got[i], snap[i])
			}
		}
		for _, o := range []order{snap[0], snap[1], snap[len(snap)-1]} {
			var one order
			if code := httpJSON(t, "GET", fmt.Sprintf("%s/orders/%d", base, o.ID), "", nil, &one); code != 200 || !one.same(o) {
				t.Errorf("%s: order %d: %d %+v", what, o.ID, code, one)
			}
		}
		if len(snap) < len(all) {
			if code := httpJSON(t, "GET", fmt.Sprintf("%s/orders/%d", base, all[len(snap)].ID), "", nil, nil); code != 404 {
				t.Errorf("%s: order %d, created after the snapshot: %d, want 404", what, all[len(snap)].ID, code)
			}
		}
	}
	checkOrders("after the restore")

	// The same point into a new database: the same orders, and the row
	// counts the server verified are the point's.
	r = cli(0, "restore", "--app", "orders", "latest", "--component", "db", "--to", "db:pg-main/"+copyName, "-o", "json")
	var job struct {
		State  string `json:"state"`
		Result struct {
			Point      string `json:"point"`
			Components []struct {
				Name   string   `json:"name"`
				Target []string `json:"target"`
				Files  int64    `json:"files"` // rows, for a database
			} `json:"components"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &job); err != nil || job.State != "succeeded" || job.Result.Point != point ||
		len(job.Result.Components) != 1 || job.Result.Components[0].Files != recorded ||
		!strings.Contains(strings.Join(job.Result.Components[0].Target, " "), copyName) {
		t.Fatalf("restore into a new database: %v %s", err, r.stdout)
	}
	// Not again into the same database: refused when requested (exit 8,
	// "exists"), and the database is left alone.
	r = lifeboat(t, env, "restore", "--app", "orders", "latest", "--component", "db", "--to", "db:pg-main/"+copyName)
	st.outputs = append(st.outputs, r.stdout, r.stderr)
	if r.code != 8 || !strings.Contains(r.stderr, copyName+" already exists") {
		t.Errorf("restore into an existing database: exit %d %s", r.code, r.stderr)
	}
	app.stop(t)
	app = startApp(copyDSN)
	checkOrders("in the new database")
	app.stop(t)

	// The restored original takes new orders after the restored ones.
	app = startApp(appDSN)
	if o := create("after the restore", 7); o.ID <= snap[len(snap)-1].ID {
		t.Errorf("new order id %d, not after %d", o.ID, snap[len(snap)-1].ID)
	}
	app.stop(t)

	// The audit trail has the restores; nothing secret leaked.
	var audit struct {
		Items []map[string]any `json:"items"`
	}
	httpJSON(t, "GET", "http://"+addr+"/api/v1/audit?limit=1000", token, nil, &audit)
	auditJSON, _ := json.Marshal(audit)
	if strings.Count(string(auditJSON), "point.restore") < 2 {
		t.Errorf("audit trail misses the restores: %s", auditJSON)
	}
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exit %d:\n%s", code, srv.output())
	}
	logs := srv.output()
	vaultPass, _ := os.ReadFile(filepath.Join(dataDir, "vault-keys", "default.passphrase"))
	for what, secret := range map[string]string{"the admin token": token, "the vault passphrase": strings.TrimSpace(string(vaultPass))} {
		if strings.Contains(logs, secret) {
			t.Errorf("%s is in the server log", what)
		}
		for _, o := range append(st.outputs, string(auditJSON)) {
			if strings.Contains(o, secret) {
				t.Errorf("%s was printed: %s", what, o)
			}
		}
	}
}

// recordedRows returns the row count of public.orders that point recorded
// for its db component: from the API's point view if it shows the
// component's metadata, else from the vault's manifest.
func recordedRows(t *testing.T, cli func(int, ...string) run, server, token, point, dataDir string) int64 {
	t.Helper()
	type comp struct {
		Name string `json:"name"`
		Meta *struct {
			Engine string `json:"engine"`
			Tables []struct {
				Name string `json:"name"`
				Rows int64  `json:"rows"`
			} `json:"tables"`
		} `json:"meta"`
	}
	rows := func(cs []comp, where string) (int64, bool) {
		for _, c := range cs {
			if c.Name != "db" || c.Meta == nil {
				continue
			}
			for _, tc := range c.Meta.Tables {
				if tc.Name == "public.orders" {
					return tc.Rows, true
				}
			}
			t.Fatalf("%s: no row count of public.orders in %+v", where, c.Meta)
		}
		return 0, false
	}
	var view struct {
		Components []comp `json:"components"`
	}
	if code := httpJSON(t, "GET", server+"/api/v1/apps/orders/points/"+point, token, nil, &view); code != 200 {
		t.Fatalf("point view: %d", code)
	}
	if n, ok := rows(view.Components, "the point view"); ok {
		return n
	}
	t.Logf("the API's point view has no component metadata: reading the vault's manifest")
	r := cli(0, "vault", "points", "--vault", filepath.Join(dataDir, "vaults", "default"),
		"--passphrase-file", filepath.Join(dataDir, "vault-keys", "default.passphrase"), "-o", "json")
	var pts []struct {
		ID         string `json:"id"`
		Components []comp `json:"components"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &pts); err != nil {
		t.Fatalf("vault points: %v %s", err, r.stdout)
	}
	for _, p := range pts {
		if p.ID == point {
			if n, ok := rows(p.Components, "the vault's manifest"); ok {
				return n
			}
		}
	}
	t.Fatalf("the vault has no row count for point %s: %s", point, r.stdout)
	return 0
}
