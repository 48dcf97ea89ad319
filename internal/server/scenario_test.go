package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/testenv"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

func TestBootstrap(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	for name, mode := range map[string]os.FileMode{MasterKeyFile: 0o600, AdminTokenFile: 0o600, CatalogFile: 0o600, "vault-keys/default.passphrase": 0o600} {
		st, err := os.Stat(filepath.Join(ts.dataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s: mode %04o, want %04o", name, st.Mode().Perm(), mode)
		}
	}
	if !strings.HasPrefix(ts.token, catalog.TokenPrefix) {
		t.Errorf("token %q", ts.token)
	}
	// Stored hashed only.
	ts.stop()
	for _, f := range []string{CatalogFile, CatalogFile + "-wal"} {
		b, _ := os.ReadFile(filepath.Join(ts.dataDir, f))
		if strings.Contains(string(b), ts.token) {
			t.Errorf("the admin token is in clear in %s", f)
		}
		pass, _ := os.ReadFile(filepath.Join(ts.dataDir, "vault-keys/default.passphrase"))
		if strings.Contains(string(b), strings.TrimSpace(string(pass))) {
			t.Errorf("the vault passphrase is in clear in %s", f)
		}
	}
	// A restart keeps the same admin and token.
	ts2 := newTestServer(t, testOpts{dataDir: ts.dataDir})
	if ts2.token != ts.token {
		t.Error("a second start replaced the admin token")
	}
	var st Status
	code, body := ts2.rawDo(t, "GET", "/readyz", "", "")
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || len(st.Vaults) != 1 || st.Vaults[0].KeyExported {
		t.Fatalf("readyz %d %s", code, body)
	}
	if !strings.Contains(body, "was never exported") {
		t.Errorf("readyz does not say the key is not exported: %s", body)
	}
	if !strings.Contains(strings.Join(st.Warnings, "\n"), "same file system") {
		t.Errorf("no warning about the vault beside the data directory: %v", st.Warnings)
	}
	// Key export: the vault then opens offline with that passphrase.
	var kr KeyExportResult
	ts2.must(t, "POST", "/api/v1/vaults/default/key-export", KeyExportRequest{Passphrase: "correct horse battery"}, &kr)
	if kr.Location != filepath.Join(ts.dataDir, "vaults", "default") {
		t.Errorf("export location %q", kr.Location)
	}
	ts2.must(t, "GET", "/api/v1/status", nil, &st)
	if !st.Vaults[0].KeyExported {
		t.Error("status does not record the export")
	}
	if err := ts2.do(t, "POST", "/api/v1/vaults/default/key-export", KeyExportRequest{Passphrase: "short"}, nil); codeOf(err) != lifeboat.EInvalid {
		t.Errorf("short export passphrase: %v", err)
	}
	if strings.Contains(ts2.logs.String()+ts.logs.String(), ts.token) || strings.Contains(ts2.logs.String(), "correct horse") {
		t.Error("a secret reached the log")
	}
}

func TestAppLifecycle(t *testing.T) { testLifecycle(t, testOpts{}) }

func testLifecycle(t *testing.T, o testOpts) {
	ts := newTestServer(t, o)
	f := newFixture(t)
	doc := f.doc()
	var plan ApplyResult
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc, DryRun: true}, &plan)
	if plan.Applied || len(plan.Changes) != 3 {
		t.Fatalf("dry run: %+v", plan)
	}
	if err := ts.do(t, "GET", "/api/v1/apps/shop", nil, nil); codeOf(err) != lifeboat.ENotFound {
		t.Fatalf("dry run applied something: %v", err)
	}
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, &plan)
	if !plan.Applied {
		t.Fatalf("not applied: %+v", plan)
	}
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, &plan)
	for _, c := range plan.Changes {
		if c.Action != "unchanged" {
			t.Errorf("second apply changed %+v", c)
		}
	}

	j1 := ts.backup(t, "shop")
	r1 := result[BackupResult](t, j1)
	if r1.Partial || r1.Stats.Files != 4 { // 2 data files + staged env + config description
		t.Errorf("first backup: %+v", r1)
	}
	// Change a setting and a file, then back up again.
	write(t, f.envFile, "GREETING=bonjour\nDB_PASSWORD="+f.secret+"-rotated\n")
	write(t, filepath.Join(f.dataDir, "notes.db"), "database bytes v2")
	j2 := ts.backup(t, "shop")
	r2 := result[BackupResult](t, j2)

	var pts List[*lifeboat.Point]
	ts.must(t, "GET", "/api/v1/apps/shop/points", nil, &pts)
	if len(pts.Items) != 2 || pts.Items[0].ID != r2.Point || pts.Items[0].Labels["reason"] != "manual" || pts.Items[0].Labels["requested-by"] != "admin" {
		t.Fatalf("points: %+v", pts.Items)
	}
	// Settings: secrets masked, public shown, changed/unchanged known.
	var pv PointView
	code, body := ts.rawDo(t, "GET", "/api/v1/apps/shop/points/"+r2.Point[:8], ts.token, "")
	if code != 200 || json.Unmarshal([]byte(body), &pv) != nil {
		t.Fatalf("point: %d %s", code, body)
	}
	if strings.Contains(body, f.secret) {
		t.Fatalf("a secret value is in the API answer: %s", body)
	}
	got := map[string]SettingView{}
	for _, s := range pv.Settings {
		got[s.Key] = s
	}
	if g := got["config/app.env:GREETING"]; g.Secret || g.Value == nil || *g.Value != "bonjour" || g.Changed != "changed" {
		t.Errorf("GREETING: %+v", g)
	}
	if p := got["config/app.env:DB_PASSWORD"]; !p.Secret || p.Value != nil || p.Changed != "changed" {
		t.Errorf("DB_PASSWORD: %+v", p)
	}
	if x := got["config/FEATURE_X"]; !x.Secret || x.Changed != "unchanged" || x.Type != "bool" {
		t.Errorf("FEATURE_X: %+v", x)
	}
	// Revealing is allowed to an admin and audited.
	code, body = ts.rawDo(t, "GET", "/api/v1/apps/shop/points/"+r2.Point+"?reveal=true", ts.token, "")
	if code != 200 || !strings.Contains(body, f.secret+"-rotated") {
		t.Errorf("reveal: %d %s", code, body)
	}
	var audit List[lifeboat.AuditEvent]
	ts.must(t, "GET", "/api/v1/audit?limit=1000", nil, &audit)
	if !hasAudit(audit.Items, "secrets.reveal", "shop") || !hasAudit(audit.Items, "app.put", "shop") || !hasAudit(audit.Items, "point.create", "shop") {
		t.Errorf("audit trail misses events: %+v", audit.Items)
	}
	// Diff names the changes, never the secret.
	var d DiffResult
	code, body = ts.rawDo(t, "GET", "/api/v1/apps/shop/diff?from="+r1.Point+"&to="+r2.Point, ts.token, "")
	if code != 200 || json.Unmarshal([]byte(body), &d) != nil || strings.Contains(body, f.secret) {
		t.Fatalf("diff: %d %s", code, body)
	}
	wantDiff := map[string]string{"config/app.env:DB_PASSWORD": "changed", "config/app.env:GREETING": "changed"}
	if len(d.Settings) != 2 || d.Settings[0].Op != wantDiff[d.Settings[0].Key] || d.Settings[1].Op != wantDiff[d.Settings[1].Key] ||
		d.Settings[1].Old == nil || *d.Settings[1].Old != "hello" {
		t.Errorf("settings diff: %+v", d.Settings)
	}
	if len(d.Files) != 1 || d.Files[0].Path != "data/notes.db" || d.Files[0].Op != "changed" {
		t.Errorf("files diff: %+v", d.Files)
	}

	// Damage (the config file gone too), then restore the first point to
	// the original place.
	os.Remove(f.envFile)
	os.RemoveAll(filepath.Join(f.dataDir, "uploads"))
	write(t, filepath.Join(f.dataDir, "session.tmp"), "not captured, not to be dropped")
	write(t, filepath.Join(f.dataDir, "notes.db"), "garbage")
	var rp RestorePlan
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: r1.Point, To: "original", DryRun: true}, &rp)
	if len(rp.Components) != 2 || rp.Components[0].Create != 1 || rp.Components[1].Create != 2 || rp.Components[1].Overwrite != 1 {
		t.Errorf("restore plan: %+v %+v", rp.Components[0], rp.Components[1])
	}
	var rj lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: r1.Point, To: "original"}, &rj)
	done := ts.waitJob(t, rj.ID)
	if done.State != lifeboat.JobSucceeded {
		t.Fatalf("restore: %s %s", done.State, done.Error)
	}
	rr := result[RestoreResult](t, done)
	if rr.SafetyPoint == "" {
		t.Error("no safety point taken")
	}
	for path, want := range map[string]string{
		f.envFile:                                   "GREETING=hello\nDB_PASSWORD=" + f.secret + "\n",
		filepath.Join(f.dataDir, "notes.db"):        "database bytes",
		filepath.Join(f.dataDir, "uploads/cat.jpg"): strings.Repeat("meow", 5000),
	} {
		if b, err := os.ReadFile(path); err != nil || string(b) != want {
			t.Errorf("%s after restore: %q %v", path, b, err)
		}
	}
	// What the component does not capture (excluded) is left in place.
	if b, err := os.ReadFile(filepath.Join(f.dataDir, "session.tmp")); err != nil || string(b) != "not captured, not to be dropped" {
		t.Errorf("an excluded file was dropped by the restore: %q %v", b, err)
	}
	// No staging or kept copies left (no health URL: kept data removed).
	ents, _ := os.ReadDir(filepath.Join(f.root, "shop"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".lifeboat-") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
	// Restore to a directory: allowed under a restore root only.
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: "latest", Components: []string{"data"}, To: filepath.Join(f.restoreRoot, "x")}, &rj)
	if done := ts.waitJob(t, rj.ID); done.State != lifeboat.JobSucceeded {
		t.Fatalf("restore to dir: %s", done.Error)
	}
	// latest is the newest backup (v2), not the safety point of the damaged state.
	if b, _ := os.ReadFile(filepath.Join(f.restoreRoot, "x", "data", "notes.db")); string(b) != "database bytes v2" {
		t.Errorf("restored to dir: %q", b)
	}
	for _, bad := range []RestoreRequest{
		{To: "/etc"}, {To: "relative/dir"}, {To: filepath.Join(ts.dataDir, "x")}, {To: "original", Components: []string{"nope"}},
		{To: "original", Point: "ffffffffff"}, {To: "original", At: "yesterday"}, {},
	} {
		if err := ts.do(t, "POST", "/api/v1/apps/shop/restores", bad, nil); err == nil {
			t.Errorf("restore %+v accepted", bad)
		}
	}
	// Retiring keeps the points.
	ts.must(t, "DELETE", "/api/v1/apps/shop", nil, nil)
	ts.must(t, "GET", "/api/v1/apps/shop/points", nil, &pts)
	if len(pts.Items) < 3 {
		t.Errorf("points after retiring: %d", len(pts.Items))
	}
	if err := ts.do(t, "POST", "/api/v1/apps/shop/backups", BackupRequest{}, nil); codeOf(err) != lifeboat.EInvalid {
		t.Errorf("backup of a retired app: %v", err)
	}
	// The catalog is a cache: rebuilding it from the vault gives the same points.
	var sr SyncResult
	ts.must(t, "POST", "/api/v1/vaults/default/sync", nil, &sr)
	if sr.Points != len(pts.Items) {
		t.Errorf("sync found %d points, catalog had %d", sr.Points, len(pts.Items))
	}
	if strings.Contains(ts.logs.String(), f.secret) {
		t.Error("a secret value reached the server log")
	}
	evs, _ := json.Marshal(audit.Items)
	if strings.Contains(string(evs), f.secret) {
		t.Error("a secret value reached the audit trail")
	}
}

func hasAudit(evs []lifeboat.AuditEvent, action, target string) bool {
	for _, e := range evs {
		if e.Action == action && e.Target == target {
			return true
		}
	}
	return false
}

func TestBadInput(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil)
	cases := []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"PUT", "/api/v1/apps/shop", `{"name":"shop","colour":"red"}`, 400, `unknown field \"colour\"`},
		{"PUT", "/api/v1/apps/shop", `{"name":"shop","labels":"x"}`, 400, `field \"labels\"`},
		{"PUT", "/api/v1/apps/shop", "{\n\"name\": \"shop\",\n}", 400, "line 3"},
		{"GET", "/api/v1/apps/nope", "", 404, "app nope not found"},
		{"GET", "/api/v1/jobs/nope", "", 404, "job nope not found"},
		{"POST", "/api/v1/apps/nope/backups", "", 404, "app nope not found"},
		{"PUT", "/api/v1/policies/p", `{"name":"p","schedule":{"cron":"61 * * * *"}}`, 400, `61 * * * *`},
		{"PUT", "/api/v1/policies/p", `{"name":"p","schedule":{"every":"fortnightly"}}`, 400, `fortnightly`},
		{"PUT", "/api/v1/policies/p", `{"name":"p","schedule":{"every":"1h"},"retention":{"daily":-1}}`, 400, "daily"},
		{"PUT", "/api/v1/hosts/local", `{"name":"local","roots":["` + ts.dataDir + `"]}`, 400, "data directory"},
		{"PUT", "/api/v1/apps/x", `{"name":"x","components":[{"name":"d","kind":"files","path":"/etc"}]}`, 400, "not under a capture root"},
		{"PUT", "/api/v1/apps/x", `{"name":"x","components":[{"name":"d","kind":"tape","path":"/etc"}]}`, 400, `kind \"tape\"`},
		{"PUT", "/api/v1/apps/x", `{"name":"x","components":[{"name":"c","kind":"config","files":["` + f.root + `/a.ini"]}]}`, 400, "unknown kind"},
		{"PUT", "/api/v1/apps/Bad_Name", `{}`, 400, "app name"},
		{"POST", "/api/v1/apps/shop/backups", `{"reason":"Because I Said So"}`, 400, "reason"},
		{"POST", "/api/v1/vaults", `{"name":"v2","location":"ftp://x"}`, 400, "unknown scheme"},
		{"POST", "/api/v1/vaults", `{"name":"v2","location":"s3://bucket/p"}`, 400, "endpoint and credentialsFile"},
		{"GET", "/api/v1/apps?limit=0", "", 400, "limit"},
		{"GET", "/api/v1/nothing", "", 404, "no API route"},
	}
	for _, c := range cases {
		code, body := ts.rawDo(t, c.method, c.path, ts.token, c.body)
		if code != c.status || !strings.Contains(body, c.want) || !strings.Contains(body, `"code"`) {
			t.Errorf("%s %s %s: %d %s (want %d with %q)", c.method, c.path, c.body, code, body, c.status, c.want)
		}
	}
	// Nothing was applied by the bad requests.
	if err := ts.do(t, "GET", "/api/v1/apps/x", nil, nil); codeOf(err) != lifeboat.ENotFound {
		t.Errorf("a refused app exists: %v", err)
	}
	if err := ts.do(t, "GET", "/api/v1/policies/p", nil, nil); codeOf(err) != lifeboat.ENotFound {
		t.Errorf("a refused policy exists: %v", err)
	}
	// An apply with one bad app applies nothing at all.
	doc := f.doc()
	doc.Policies = append(doc.Policies, lifeboat.Policy{Name: "weekly", Schedule: lifeboat.Schedule{Cron: "@weekly"}})
	doc.Apps = append(doc.Apps, lifeboat.App{Name: "bad", Components: []lifeboat.Component{{Name: "d", Kind: "files", Path: "/etc"}}})
	if err := ts.do(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil); codeOf(err) != lifeboat.EInvalid {
		t.Errorf("apply with a bad app: %v", err)
	}
	if err := ts.do(t, "GET", "/api/v1/policies/weekly", nil, nil); codeOf(err) != lifeboat.ENotFound {
		t.Errorf("a partial apply happened: %v", err)
	}
	// Authentication: every route but health needs a valid token.
	for _, tok := range []string{"", "lbt_wrong", "Bearer"} {
		code, body := ts.rawDo(t, "GET", "/api/v1/apps", tok, "")
		if code != 401 || !strings.Contains(body, "token") {
			t.Errorf("token %q: %d %s", tok, code, body)
		}
	}
	if code, _ := ts.rawDo(t, "GET", "/healthz", "", ""); code != 200 {
		t.Errorf("healthz: %d", code)
	}
}

func TestIdempotencyKey(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil)
	var a, b lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/shop/backups", BackupRequest{Reason: "pre-deploy"}, &a, "Idempotency-Key", "deploy-42")
	ts.must(t, "POST", "/api/v1/apps/shop/backups", BackupRequest{Reason: "pre-deploy"}, &b, "Idempotency-Key", "deploy-42")
	if a.ID != b.ID {
		t.Errorf("a retried request made a second job: %s %s", a.ID, b.ID)
	}
	if err := ts.do(t, "POST", "/api/v1/apps/shop/backups", BackupRequest{Reason: "manual"}, nil, "Idempotency-Key", "deploy-42"); codeOf(err) != lifeboat.EInvalid {
		t.Errorf("key reused for another request: %v", err)
	}
	done := ts.waitJob(t, a.ID)
	if done.State != lifeboat.JobSucceeded {
		t.Fatal(done.Error)
	}
	var pts List[*lifeboat.Point]
	ts.must(t, "GET", "/api/v1/apps/shop/points", nil, &pts)
	if len(pts.Items) != 1 || pts.Items[0].Labels["reason"] != "pre-deploy" {
		t.Errorf("points: %+v", pts.Items)
	}
}

// TestUnreachableVault: an app whose vault is gone fails with that cause;
// another app's backup goes on.
func TestUnreachableVault(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	doc := f.doc()
	other := filepath.Join(t.TempDir(), "other-vault")
	doc.Vaults = []VaultSpec{{Vault: lifeboat.Vault{Name: "other", Region: "eu", Location: other}}}
	doc.Apps = append(doc.Apps, lifeboat.App{Name: "blog", Region: "eu", Vault: "other", Components: []lifeboat.Component{{Name: "data", Kind: "files", Path: f.dataDir}}})
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	ts.vaults.reload("other")
	if err := os.Rename(other, other+".moved"); err != nil {
		t.Fatal(err)
	}
	var jb, js lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/blog/backups", nil, &jb)
	ts.must(t, "POST", "/api/v1/apps/shop/backups", nil, &js)
	if d := ts.waitJob(t, js.ID); d.State != lifeboat.JobSucceeded {
		t.Errorf("shop: %s %s", d.State, d.Error)
	}
	d := ts.waitJob(t, jb.ID)
	if d.State != lifeboat.JobFailed || !strings.Contains(d.Error, other) {
		t.Errorf("blog: %s %q (want failed naming %s)", d.State, d.Error, other)
	}
}

// TestDrainAndTakeover: a server stopped during a backup puts the job back
// in the queue, and the next server runs it to the end.
func TestDrainAndTakeover(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	started := make(chan struct{}, 1)
	ts := newTestServer(t, testOpts{dataDir: dir, hook: func(ctx context.Context, j *lifeboat.Job) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done() // hold the job until the server stops
		return ctx.Err()
	}})
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil)
	var j lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/shop/backups", nil, &j)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("backup did not start")
	}
	ts.stop()
	db, err := catalog.Open(context.Background(), filepath.Join(dir, CatalogFile))
	if err != nil {
		t.Fatal(err)
	}
	var got *lifeboat.Job
	db.View(context.Background(), func(tx *catalog.Tx) error { got, err = tx.Job(context.Background(), j.ID); return err })
	db.Close()
	if got.State != lifeboat.JobQueued || !strings.Contains(got.Error, "shutdown") {
		t.Fatalf("after shutdown the job is %s (%q), want queued with a note", got.State, got.Error)
	}
	ts2 := newTestServer(t, testOpts{dataDir: dir})
	done := ts2.waitJob(t, j.ID)
	if done.State != lifeboat.JobSucceeded || done.Attempts != 2 {
		t.Errorf("after restart: %s, attempts %d, %s", done.State, done.Attempts, done.Error)
	}
}

// TestLeaseTakeover: a job whose worker died (its lease ran out) is taken
// over by a live server.
func TestLeaseTakeover(t *testing.T) {
	ts := newTestServer(t, testOpts{lease: time.Second})
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil)
	// A "dead" worker of another server claims the job and never heartbeats.
	ts.pool.Stop(context.Background())
	var j *lifeboat.Job
	ts.db.Update(context.Background(), func(tx *catalog.Tx) error {
		var err error
		j, _, err = tx.CreateJob(context.Background(), &lifeboat.Job{Kind: lifeboat.JobBackup, App: "shop", Vault: "default", RequestedBy: "admin", Spec: json.RawMessage(`{"reason":"manual"}`)}, "", "")
		return err
	})
	if _, err := ts.db.ClaimJob(context.Background(), "dead-server/w0", time.Second); err != nil {
		t.Fatal(err)
	}
	ts.pool.Start(context.Background())
	done := ts.waitJob(t, j.ID)
	if done.State != lifeboat.JobSucceeded || done.Fence != 2 {
		t.Errorf("takeover: %s fence %d %s", done.State, done.Fence, done.Error)
	}
}

func TestSchedulerCatchesUpOnce(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	clock := func() time.Time { <-mu; defer func() { mu <- struct{}{} }(); return now }
	setNow := func(t time.Time) { <-mu; now = t; mu <- struct{}{} }
	ts := newTestServer(t, testOpts{now: clock})
	ts.pool.Stop(context.Background()) // look at the queue, not the backups
	f := newFixture(t)
	doc := f.doc()
	doc.Policies[0].Schedule = lifeboat.Schedule{Every: lifeboat.Duration(time.Hour)}
	doc.Policies[0].RPO = lifeboat.Duration(2 * time.Hour)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	ctx := context.Background()
	res, err := ts.tick(ctx)
	if err != nil || res.Enqueued != 0 {
		t.Fatalf("first tick: %+v %v", res, err)
	}
	setNow(now.Add(7 * 24 * time.Hour)) // a week of downtime
	res, err = ts.tick(ctx)
	if err != nil || res.Enqueued != 1 {
		t.Fatalf("after downtime: %+v %v", res, err)
	}
	res, _ = ts.tick(ctx)
	if res.Enqueued != 0 {
		t.Errorf("a burst: %+v", res)
	}
	setNow(now.Add(2 * time.Hour)) // the next slot, but a backup is still queued
	res, _ = ts.tick(ctx)
	if res.Due != 1 || res.Enqueued != 0 {
		t.Errorf("piled up behind a queued backup: %+v", res)
	}
	var st Status
	ts.must(t, "GET", "/api/v1/status", nil, &st)
	if !strings.Contains(strings.Join(st.Warnings, "\n"), "app shop has no complete point, and its RPO is 2h0m0s") {
		t.Errorf("no RPO warning: %v", st.Warnings)
	}
	var jobs List[*lifeboat.Job]
	ts.must(t, "GET", "/api/v1/jobs?app=shop", nil, &jobs)
	if len(jobs.Items) != 1 || !strings.Contains(string(jobs.Items[0].Spec), "scheduled") {
		t.Errorf("jobs: %+v", jobs.Items)
	}
}

// TestPostgresCatalog runs the app lifecycle on a PostgreSQL catalog.
func TestPostgresCatalog(t *testing.T) {
	base := testenv.Require(t, "LIFEBOAT_TEST_PG_DSN")["LIFEBOAT_TEST_PG_DSN"]
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := "lbsrv_" + randomHex(6)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	u, _ := url.Parse(base)
	u.Path = "/" + name
	testLifecycle(t, testOpts{catalog: u.String()})
}

// TestCancel: a running job stops when cancelled and is marked so; a queued
// one is cancelled before it starts.
func TestCancel(t *testing.T) {
	started := make(chan struct{}, 4)
	ts := newTestServer(t, testOpts{hook: func(ctx context.Context, j *lifeboat.Job) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}})
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil)
	var running, queued lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/shop/backups", nil, &running)
	<-started
	ts.must(t, "POST", "/api/v1/apps/shop/backups", BackupRequest{Reason: "second"}, &queued) // waits: one backup per app
	var q lifeboat.Job
	ts.must(t, "POST", "/api/v1/jobs/"+queued.ID+"/cancel", nil, &q)
	if q.State != lifeboat.JobCancelled {
		t.Errorf("queued job after cancel: %s", q.State)
	}
	ts.must(t, "POST", "/api/v1/jobs/"+running.ID+"/cancel", nil, nil)
	done := ts.waitJob(t, running.ID)
	if done.State != lifeboat.JobCancelled {
		t.Errorf("running job after cancel: %s %s", done.State, done.Error)
	}
	var logs struct{ Items []lifeboat.JobLog }
	ts.must(t, "GET", "/api/v1/jobs/"+running.ID+"/logs", nil, &logs)
	if len(logs.Items) == 0 || logs.Items[len(logs.Items)-1].Msg != "cancelled" {
		t.Errorf("job log: %+v", logs.Items)
	}
	if err := ts.do(t, "POST", "/api/v1/jobs/nope/cancel", nil, nil); codeOf(err) != lifeboat.ENotFound {
		t.Errorf("cancel unknown job: %v", err)
	}
}

// TestRestoreHealthCheck: the replaced data is kept until the app's health
// check passes, and kept (and reported) when it does not.
func TestRestoreHealthCheck(t *testing.T) {
	healthy := make(chan bool, 1)
	healthy <- true
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := <-healthy
		healthy <- ok
		if !ok {
			w.WriteHeader(500)
		}
	}))
	defer hs.Close()
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	doc := f.doc()
	doc.Apps[0].HealthURL = hs.URL + "/healthz"
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	ts.backup(t, "shop")
	restore := func() RestoreResult {
		var j lifeboat.Job
		ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: "latest", Components: []string{"data"}, To: "original"}, &j)
		d := ts.waitJob(t, j.ID)
		if d.State != lifeboat.JobSucceeded {
			t.Fatalf("restore: %s", d.Error)
		}
		return result[RestoreResult](t, d)
	}
	r := restore()
	if r.Health != "passed" || len(r.Components[0].Kept) != 0 {
		t.Errorf("healthy: %+v", r)
	}
	<-healthy
	healthy <- false
	r = restore() // waits out the health check
	if !strings.HasPrefix(r.Health, "failed") || len(r.Components[0].Kept) != 1 {
		t.Fatalf("unhealthy: %+v", r)
	}
	if _, err := os.Stat(r.Components[0].Kept[0]); err != nil {
		t.Errorf("kept data is gone: %v", err)
	}
}

// TestPolicySimulate: what a policy would keep, by the server's clock and
// complete points only, and when a prune would refuse.
func TestPolicySimulate(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	clock := make(chan time.Time, 1)
	clock <- now
	get := func() time.Time { t := <-clock; clock <- t; return t }
	ts := newTestServer(t, testOpts{now: get})
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil)
	for i := range 4 {
		<-clock
		clock <- now.Add(time.Duration(i) * 24 * time.Hour)
		ts.backup(t, "shop")
	}
	sim := func(r lifeboat.Retention) SimulateResult {
		var res SimulateResult
		pol := lifeboat.Policy{Name: "try", Schedule: lifeboat.Schedule{Cron: "@daily"}, Retention: r}
		ts.must(t, "POST", "/api/v1/policies/simulate", SimulateRequest{App: "shop", Policy: &pol}, &res)
		return res
	}
	if r := sim(lifeboat.Retention{Last: 2}); r.Keep != 2 || r.Drop != 2 || r.Refused != "" || !r.Points[0].Keep || r.Points[3].Keep {
		t.Errorf("last 2: %+v", r)
	}
	if r := sim(lifeboat.Retention{Last: 1}); r.Keep != 1 || r.Refused == "" {
		t.Errorf("last 1 should be refused (drops 3 of 4): %+v", r)
	}
	if r := sim(lifeboat.Retention{Within: lifeboat.Duration(36 * time.Hour)}); r.Keep != 2 {
		t.Errorf("within 36h of the newest point: %+v", r)
	}
	var res SimulateResult
	ts.must(t, "POST", "/api/v1/policies/simulate", SimulateRequest{App: "shop"}, &res) // the app's own policy: last 3
	if res.Policy != "daily" || res.Keep != 3 {
		t.Errorf("own policy: %+v", res)
	}
}

// TestS3Vault: a vault on a real S3-compatible server, its credentials read
// once from a 0600 file, sealed in the catalog and never shown.
func TestS3Vault(t *testing.T) {
	env := testenv.Require(t, "LIFEBOAT_TEST_S3_ENDPOINT", "LIFEBOAT_TEST_S3_ACCESS", "LIFEBOAT_TEST_S3_SECRET", "LIFEBOAT_TEST_S3_BUCKET")
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	creds := filepath.Join(t.TempDir(), "s3.creds")
	os.WriteFile(creds, []byte("access_key_id="+env["LIFEBOAT_TEST_S3_ACCESS"]+"\nsecret_access_key="+env["LIFEBOAT_TEST_S3_SECRET"]+"\n"), 0o644)
	doc := f.doc()
	doc.Vaults = []VaultSpec{{Vault: lifeboat.Vault{Name: "s3", Region: "local", Location: "s3://" + env["LIFEBOAT_TEST_S3_BUCKET"] + "/server-" + randomHex(6)},
		Endpoint: "http://" + env["LIFEBOAT_TEST_S3_ENDPOINT"], CredentialsFile: creds}}
	doc.Apps[0].Vault = "s3"
	if err := ts.do(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil); codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable credentials file was accepted: %v", err)
	}
	os.Chmod(creds, 0o600)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	j := ts.backup(t, "shop")
	p := result[BackupResult](t, j).Point
	var rj lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: p, Components: []string{"data"}, To: filepath.Join(f.restoreRoot, "from-s3")}, &rj)
	if d := ts.waitJob(t, rj.ID); d.State != lifeboat.JobSucceeded {
		t.Fatalf("restore from S3: %s", d.Error)
	}
	if b, _ := os.ReadFile(filepath.Join(f.restoreRoot, "from-s3", "data", "uploads", "cat.jpg")); string(b) != strings.Repeat("meow", 5000) {
		t.Error("restored file differs")
	}
	_, body := ts.rawDo(t, "GET", "/api/v1/vaults/s3", ts.token, "")
	secret := env["LIFEBOAT_TEST_S3_SECRET"]
	if strings.Contains(body, secret) || strings.Contains(ts.logs.String(), secret) {
		t.Error("the S3 secret key is shown")
	}
	// A fresh server on the same data directory opens the vault from the
	// sealed credentials (the file is no longer needed).
	os.Remove(creds)
	ts.stop()
	ts2 := newTestServer(t, testOpts{dataDir: ts.dataDir})
	var sr SyncResult
	ts2.must(t, "POST", "/api/v1/vaults/s3/sync", nil, &sr)
	if sr.Points != 1 {
		t.Errorf("sync of the S3 vault: %+v", sr)
	}
}

func (ts *testServer) waitIdle(t *testing.T, app string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var l List[*lifeboat.Job]
		ts.must(t, "GET", "/api/v1/jobs?app="+app+"&limit=1000", nil, &l)
		busy := false
		for _, j := range l.Items {
			busy = busy || !lifeboat.JobDone(j.State)
		}
		if !busy {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("jobs did not finish")
}

// TestPruneAndUndelete: retention soft-deletes (a marker in the vault),
// undelete brings a point back, a prune that would drop more than half
// stops, and garbage collection purges soft-deleted points after their
// retention — all seen by a catalog rebuilt from the vault.
func TestPruneAndUndelete(t *testing.T) {
	ts := newTestServer(t, testOpts{softDelete: 2 * time.Second})
	f := newFixture(t)
	doc := f.doc() // policy daily: retention last 3
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	var ids []string
	for i := range 4 {
		write(t, filepath.Join(f.dataDir, "notes.db"), fmt.Sprint("version ", i))
		ids = append(ids, result[BackupResult](t, ts.backup(t, "shop")).Point)
		ts.waitIdle(t, "shop") // the prune each backup queues
	}
	live := func() []string {
		var l List[*lifeboat.Point]
		ts.must(t, "GET", "/api/v1/apps/shop/points", nil, &l)
		var out []string
		for _, p := range l.Items {
			out = append(out, p.ID)
		}
		return out
	}
	if got := live(); len(got) != 3 || got[2] != ids[1] {
		t.Fatalf("after 4 backups with last 3: %v", got)
	}
	var all List[*lifeboat.Point]
	ts.must(t, "GET", "/api/v1/apps/shop/points?deleted=true", nil, &all)
	if len(all.Items) != 4 || all.Items[3].DeletedAt == nil {
		t.Fatalf("the soft-deleted point: %+v", all.Items)
	}
	// The soft deletion is in the vault: a rebuilt catalog agrees.
	ts.must(t, "POST", "/api/v1/vaults/default/sync", nil, nil)
	if got := live(); len(got) != 3 {
		t.Errorf("after sync: %v", got)
	}
	// Still restorable by id, and undelete brings it back.
	var rj lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: ids[0], Components: []string{"data"}, To: filepath.Join(f.restoreRoot, "old")}, &rj)
	if d := ts.waitJob(t, rj.ID); d.State != lifeboat.JobSucceeded {
		t.Fatalf("restore of a soft-deleted point: %s", d.Error)
	}
	ts.must(t, "POST", "/api/v1/apps/shop/points/"+ids[0][:8]+"/undelete", nil, nil)
	if got := live(); len(got) != 4 {
		t.Errorf("after undelete: %v", got)
	}
	ts.must(t, "POST", "/api/v1/vaults/default/sync", nil, nil)
	if got := live(); len(got) != 4 {
		t.Errorf("undelete not in the vault: %v", got)
	}
	// A policy that would drop 3 of 4 stops the prune.
	doc.Policies[0].Retention = lifeboat.Retention{Last: 1}
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	var pj lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/shop/prunes", PruneRequest{}, &pj)
	if d := ts.waitJob(t, pj.ID); d.State != lifeboat.JobFailed || !strings.Contains(d.Error, "more than half") {
		t.Errorf("a prune of 3 of 4: %s %q", d.State, d.Error)
	}
	if got := live(); len(got) != 4 {
		t.Errorf("the refused prune deleted: %v", got)
	}
	ts.must(t, "POST", "/api/v1/apps/shop/prunes", PruneRequest{Force: true}, &pj)
	if d := ts.waitJob(t, pj.ID); d.State != lifeboat.JobSucceeded {
		t.Fatalf("forced prune: %s", d.Error)
	}
	if got := live(); len(got) != 1 || got[0] != ids[3] {
		t.Errorf("after the forced prune: %v", got)
	}
	// After the soft-delete retention, collection purges them for good.
	time.Sleep(2100 * time.Millisecond)
	ts.must(t, "POST", "/api/v1/apps/shop/prunes", PruneRequest{}, &pj)
	d := ts.waitJob(t, pj.ID)
	pr := result[PruneResult](t, d)
	if d.State != lifeboat.JobSucceeded || pr.Collect == nil || len(pr.Collect.PointsPurged) != 3 {
		t.Fatalf("purge: %s %s %+v", d.State, d.Error, pr.Collect)
	}
	ts.must(t, "GET", "/api/v1/apps/shop/points?deleted=true", nil, &all)
	if len(all.Items) != 1 {
		t.Errorf("purged points still listed: %d", len(all.Items))
	}
	if err := ts.do(t, "POST", "/api/v1/apps/shop/points/"+ids[0][:8]+"/undelete", nil, nil); codeOf(err) != lifeboat.ENotFound {
		t.Errorf("undelete of a purged point: %v", err)
	}
}

// TestApplyRenameAndPrune: a rename keeps the app's points; nothing is
// deleted without prune; with prune, apps are retired (points kept) and
// policies deleted; vaults never.
func TestApplyRenameAndPrune(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	doc := f.doc()
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	p := result[BackupResult](t, ts.backup(t, "shop")).Point

	doc.Apps[0].Name, doc.Apps[0].RenamedFrom = "store", "shop"
	doc.Policies[0].Apps = []string{"store"}
	var res ApplyResult
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, &res)
	found := false
	for _, c := range res.Changes {
		found = found || (c.Action == "rename" && c.Name == "store" && c.From == "shop")
		if c.Action == "delete" || c.Action == "retire" || (c.Kind == "app" && c.Action == "create") {
			t.Errorf("a rename planned %+v", c)
		}
	}
	if !found {
		t.Fatalf("no rename in %+v", res.Changes)
	}
	var pts List[*lifeboat.Point]
	ts.must(t, "GET", "/api/v1/apps/store/points", nil, &pts)
	if len(pts.Items) != 1 || pts.Items[0].ID != p {
		t.Errorf("points after the rename: %+v", pts.Items)
	}
	if err := ts.do(t, "GET", "/api/v1/apps/shop", nil, nil); codeOf(err) != lifeboat.ENotFound {
		t.Errorf("old name still there: %v", err)
	}
	// Applying the renamed document again changes nothing.
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, &res)
	if hasChanges(res.Changes) {
		t.Errorf("re-apply after rename: %+v", res.Changes)
	}
	// A document without the app and the policy deletes nothing...
	empty := Document{Hosts: doc.Hosts}
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: empty}, &res)
	if hasChanges(res.Changes) {
		t.Errorf("apply without prune changed %+v", res.Changes)
	}
	// ...unless prune is given: the app is retired (points kept), the policy
	// deleted, the vaults kept.
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: empty, Prune: true, DryRun: true}, &res)
	if res.Applied || len(res.Changes) < 3 {
		t.Fatalf("prune dry run: %+v", res)
	}
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: empty, Prune: true}, &res)
	var a lifeboat.App
	ts.must(t, "GET", "/api/v1/apps/store", nil, &a)
	if a.RetiredAt == nil {
		t.Error("app not retired by prune")
	}
	ts.must(t, "GET", "/api/v1/apps/store/points", nil, &pts)
	if len(pts.Items) != 1 {
		t.Errorf("points after prune: %d", len(pts.Items))
	}
	if err := ts.do(t, "GET", "/api/v1/policies/daily", nil, nil); codeOf(err) != lifeboat.ENotFound {
		t.Errorf("policy not deleted by prune: %v", err)
	}
	ts.must(t, "GET", "/api/v1/vaults/default", nil, nil)
	// Re-applying the app brings it back, points and all.
	var res2 ApplyResult
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, &res2)
	var a2 lifeboat.App
	ts.must(t, "GET", "/api/v1/apps/store", nil, &a2)
	if a2.RetiredAt != nil {
		t.Errorf("re-applied app still retired: %+v", res2)
	}
}

// TestHooks: hooks run registered commands only, in order, with their
// output in the job log; a failing abort hook fails the job naming itself;
// a warn hook lets it go on; a timeout kills it.
func TestHooks(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	marker := filepath.Join(t.TempDir(), "order")
	doc := f.doc()
	doc.Hosts[0].Commands = map[string]lifeboat.HostCommand{
		"quiesce": {Argv: []string{"/bin/sh", "-c", `echo "pre $LIFEBOAT_APP" >> "$MARK"; echo quiesced`}, Env: map[string]string{"MARK": marker}},
		"resume":  {Argv: []string{"/bin/sh", "-c", `echo post >> "$MARK"`}, Env: map[string]string{"MARK": marker}},
		"fail":    {Argv: []string{"/bin/sh", "-c", "echo cannot flush caches >&2; exit 3"}},
		"slow":    {Argv: []string{"/bin/sleep", "30"}},
	}
	doc.Apps[0].Hooks = []lifeboat.Hook{{When: "pre-backup", Command: "quiesce"}, {When: "post-backup", Command: "resume"}, {When: "post-backup", Command: "fail", OnFailure: "warn"}}
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	j := ts.backup(t, "shop")
	if b, _ := os.ReadFile(marker); string(b) != "pre shop\npost\n" {
		t.Errorf("hooks ran: %q", b)
	}
	var logs struct{ Items []lifeboat.JobLog }
	ts.must(t, "GET", "/api/v1/jobs/"+j.ID+"/logs", nil, &logs)
	all := ""
	for _, l := range logs.Items {
		all += l.Level + " " + l.Msg + "\n"
	}
	for _, want := range []string{"pre-backup hook 1 (quiesce on local): quiesced", "post-backup hook 3 (fail on local): cannot flush caches", "warn post-backup hook 3 (fail on local) failed: exit status 3 (onFailure: warn; going on)"} {
		if !strings.Contains(all, want) {
			t.Errorf("job log misses %q:\n%s", want, all)
		}
	}
	// An abort hook that fails fails the job, naming itself; so does a timeout.
	doc.Apps[0].Hooks = []lifeboat.Hook{{When: "pre-backup", Command: "fail"}}
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	var jb lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/shop/backups", nil, &jb)
	if d := ts.waitJob(t, jb.ID); d.State != lifeboat.JobFailed || !strings.Contains(d.Error, "pre-backup hook 1 (fail on local) failed") {
		t.Errorf("abort hook: %s %q", d.State, d.Error)
	}
	doc.Apps[0].Hooks = []lifeboat.Hook{{When: "pre-backup", Command: "slow", Timeout: lifeboat.Duration(300 * time.Millisecond)}}
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	ts.must(t, "POST", "/api/v1/apps/shop/backups", nil, &jb)
	if d := ts.waitJob(t, jb.ID); d.State != lifeboat.JobFailed || !strings.Contains(d.Error, "timed out after 300ms") {
		t.Errorf("slow hook: %s %q", d.State, d.Error)
	}
	// A component's hook runs for the restores of that component only.
	os.Remove(marker)
	doc.Apps[0].Hooks = []lifeboat.Hook{{When: "pre-restore", Command: "quiesce", Component: "config"}, {When: "post-restore", Command: "resume"}}
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	for _, comp := range []string{"data", "config"} {
		var rj lifeboat.Job
		ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: result[BackupResult](t, j).Point, Components: []string{comp}, To: filepath.Join(f.restoreRoot, "hooked-"+comp)}, &rj)
		if d := ts.waitJob(t, rj.ID); d.State != lifeboat.JobSucceeded {
			t.Fatalf("restore of %s: %s", comp, d.Error)
		}
	}
	if b, _ := os.ReadFile(marker); string(b) != "post\npre shop\npost\n" {
		t.Errorf("component hook: the marker says %q", b)
	}
	doc.Apps[0].Hooks = []lifeboat.Hook{{When: "pre-restore", Command: "quiesce", Component: "nope"}}
	if err := ts.do(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil); codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), `no component "nope"`) {
		t.Errorf("a hook of an unknown component: %v", err)
	}
	// An app cannot name a command its host does not register.
	doc.Apps[0].Hooks = []lifeboat.Hook{{When: "pre-backup", Command: "rm-rf"}}
	if err := ts.do(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil); codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), `no registered command "rm-rf"`) {
		t.Errorf("unregistered command: %v", err)
	}
	doc.Hosts[0].Commands["bad"] = lifeboat.HostCommand{Argv: []string{"sh", "-c", "true"}}
	if err := ts.do(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil); codeOf(err) != lifeboat.EInvalid {
		t.Errorf("relative program: %v", err)
	}
}

// A files component whose path is a symlink to a directory (a deploy's
// "current" link) is captured as the link, as by the CLI; the job's log
// says so, naming the directory, instead of a point of one symlink going
// unexplained.
func TestBackupNotesSymlinkComponent(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	current := filepath.Join(f.root, "shop", "current")
	if err := os.Symlink(f.dataDir, current); err != nil {
		t.Fatal(err)
	}
	doc := f.doc()
	doc.Apps[0].Components[1].Path = current
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	j := ts.backup(t, "shop")
	var logs struct{ Items []lifeboat.JobLog }
	ts.must(t, "GET", "/api/v1/jobs/"+j.ID+"/logs", nil, &logs)
	found := false
	for _, l := range logs.Items {
		if l.Level == "warn" && strings.Contains(l.Msg, "component data: "+current+" is a symlink to the directory "+f.dataDir) {
			found = true
		}
		if strings.Contains(l.Msg, "config") && strings.Contains(l.Msg, "symlink") {
			t.Errorf("the config component, no symlink, got a note: %s", l.Msg)
		}
	}
	if !found {
		t.Errorf("no warning about the symlinked component in the job log: %+v", logs.Items)
	}
}

// A restore job to a directory that fails on a storage error after its
// first component, or after the last (its post-restore hooks run), is
// retried, and the retry finishes what the first attempt restored (its
// records stay until the job is done): files found whole are kept, the
// job's log says so, and no record is left. A new job into a directory
// holding anything — even an unfinished restore of the same point, with the
// user's files beside it — is refused, changing nothing, and so is a retry
// into one holding another job's record. (The retry failed on its own
// leftovers: "not empty".)
func TestRestoreToDirRetryFinishesEarlierAttempt(t *testing.T) {
	var failAt atomic.Value // the component after which attempt 1 fails
	ts := newRetryServer(t, func(j *lifeboat.Job, comp string) error {
		if j.Attempts == 1 && comp == failAt.Load().(string) {
			return lifeboat.Errorf(lifeboat.EUnavailable, "storage went away after component %q", comp)
		}
		return nil
	})
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil)
	p := result[BackupResult](t, ts.backup(t, "shop")).Point
	restore := func(to string) *lifeboat.Job {
		t.Helper()
		var rj lifeboat.Job
		ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: p, Components: []string{"config", "data"}, To: to}, &rj)
		return ts.waitJob(t, rj.ID)
	}
	for _, after := range []string{"config", ""} {
		failAt.Store(after)
		to := filepath.Join(f.restoreRoot, "again-"+after)
		d := restore(to)
		if d.State != lifeboat.JobSucceeded || d.Attempts != 2 {
			t.Fatalf("failing after %q: restore retried after a storage error: %s after %d attempts: %s", after, d.State, d.Attempts, d.Error)
		}
		cat := filepath.Join(to, "data", "uploads", "cat.jpg")
		if b, err := os.ReadFile(cat); err != nil || string(b) != strings.Repeat("meow", 5000) {
			t.Errorf("failing after %q: cat.jpg: %d bytes, %v", after, len(b), err)
		}
		for _, comp := range []string{"config", "data"} {
			if _, err := os.Lstat(filepath.Join(to, comp, vault.RestoreRecord)); err == nil {
				t.Errorf("failing after %q: component %s: the restore's record was left", after, comp)
			}
		}
		var logs List[lifeboat.JobLog]
		ts.must(t, "GET", "/api/v1/jobs/"+d.ID+"/logs", nil, &logs)
		kept := false
		for _, l := range logs.Items {
			kept = kept || strings.Contains(l.Msg, "what an earlier attempt restored into") && strings.Contains(l.Msg, "found whole and kept")
		}
		if !kept {
			t.Errorf("failing after %q: the job's log does not say what the retry kept: %+v", after, logs.Items)
		}
	}
	// A new job: refused, even over an unfinished restore of the same
	// point (a record), with the user's own files beside it.
	to := filepath.Join(f.restoreRoot, "again-")
	write(t, filepath.Join(to, "data", vault.RestoreRecord), "point "+p+"\npath data\nby job earlier\n")
	write(t, filepath.Join(to, "data", "notes.db"), "the user's edit")
	failAt.Store("none")
	if d := restore(to); d.State != lifeboat.JobFailed || !strings.Contains(d.Error, "not empty") {
		t.Fatalf("a new restore into a directory holding things: %s %q", d.State, d.Error)
	}
	// A retry does not take over a record it did not write either (here
	// one a restore of the same point by the command line left).
	failAt.Store("config")
	to = filepath.Join(f.restoreRoot, "other")
	os.MkdirAll(filepath.Join(to, "data"), 0o755)
	write(t, filepath.Join(to, "data", vault.RestoreRecord), "point "+p+"\npath data\n")
	write(t, filepath.Join(to, "data", "notes.db"), "the user's edit")
	if d := restore(to); d.State != lifeboat.JobFailed || !strings.Contains(d.Error, "unfinished restore of something else") {
		t.Fatalf("a retry into a directory holding another job's record: %s %q", d.State, d.Error)
	}
	for _, dir := range []string{filepath.Join(f.restoreRoot, "again-"), to} {
		if b, _ := os.ReadFile(filepath.Join(dir, "data", "notes.db")); string(b) != "the user's edit" {
			t.Errorf("a refused restore changed %s/data/notes.db: %q", dir, b)
		}
	}
}

// A restore to the original place retried after a storage error that came
// once every component was swapped in: the retry swaps them in again and
// keeps, for the failed health check, what was there before the job — a
// kept file was overwritten by the first attempt's restore, and a kept
// directory failed the retry — and, beside it, what it replaced (the first
// attempt's restore, with anything written there since: nothing is
// dropped), and leaves no staging behind.
func TestRestoreToOriginalRetryKeepsWhatWasThere(t *testing.T) {
	ts := newRetryServer(t, failOnceAfter("data"))
	f := newFixture(t)
	d := restoreDamaged(t, ts, f, applyUnhealthy(t, ts, f))
	if d.State != lifeboat.JobSucceeded || d.Attempts != 2 {
		t.Fatalf("restore retried after a storage error: %s after %d attempts: %s", d.State, d.Attempts, d.Error)
	}
	rr := result[RestoreResult](t, d)
	if !strings.HasPrefix(rr.Health, "failed") || len(rr.Components) != 2 {
		t.Fatalf("result: %+v", rr)
	}
	// Kept: what was there before the job, then the first attempt's
	// restore (with whatever was written there since), beside it.
	for _, c := range rr.Components {
		if len(c.Kept) != 2 {
			t.Fatalf("component %s: kept %v, want what was there before the job and the first attempt's restore", c.Name, c.Kept)
		}
		for i, want := range []string{"GREETING=damaged\n", "GREETING=hello\nDB_PASSWORD=" + f.secret + "\n"} {
			path := c.Kept[i]
			if c.Name == "data" {
				want, path = []string{"damaged db", "database bytes"}[i], filepath.Join(c.Kept[i], "notes.db")
			}
			if b, err := os.ReadFile(path); err != nil || string(b) != want {
				t.Errorf("component %s: kept[%d] %q (%v), want %q", c.Name, i, b, err, want)
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(f.dataDir, "notes.db")); string(b) != "database bytes" {
		t.Errorf("notes.db after the restore: %q", b)
	}
	// Both components were replaced by the first attempt: the retry's
	// safety point holds that attempt's restore, and the result names the
	// first, which holds what was there before.
	if sps := safetyPoints(t, ts); len(sps) != 2 || rr.SafetyPoint != sps[0] || rr.Safety["config"] != sps[0] || rr.Safety["data"] != sps[0] {
		t.Errorf("safety points %v; the result names %q (%v)", sps, rr.SafetyPoint, rr.Safety)
	} else if g := pointSetting(t, ts, sps[0], "config/app.env:GREETING"); g != "damaged" {
		t.Errorf("the safety point holds GREETING=%q, want what was there before the job", g)
	}
	for _, dir := range []string{filepath.Dir(f.envFile), filepath.Dir(f.dataDir)} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".lifeboat-restore-") {
				t.Errorf("staging left behind: %s", filepath.Join(dir, e.Name()))
			}
		}
	}
}

// A retry of a restore to the original place whose first attempt stopped
// between its swap and setting the replaced tree aside (it is still under
// the staging name) keeps that tree, what was there before the job, and
// reports it. (The retry's restore into the staging name was refused "not
// empty", and the tree removed with the staging.)
func TestRestoreToOriginalRetryKeepsLeftoverStaging(t *testing.T) {
	var f *fixture
	var ts *testServer
	var failed atomic.Bool
	ts = newRetryServerN(t, 3, func(j *lifeboat.Job, comp string) error {
		if j.Attempts == 2 && comp == "data" {
			// And a third attempt, which no longer sees the leftover the
			// second one set aside: the result still names it.
			return lifeboat.Errorf(lifeboat.EUnavailable, "storage went away after component %s", comp)
		}
		if j.Attempts != 1 || comp != "data" || failed.Swap(true) {
			return nil
		}
		// Back to the moment before the replaced tree was set aside.
		parent, tag := filepath.Dir(f.dataDir), j.ID[len(j.ID)-8:]
		if err := os.Rename(filepath.Join(parent, ".lifeboat-old-"+tag+"-data"), filepath.Join(parent, ".lifeboat-restore-"+tag+"-data")); err != nil {
			t.Errorf("setup: %v", err)
		}
		unsave(t, ts, j)
		return lifeboat.Errorf(lifeboat.EUnavailable, "stopped between the swap and setting aside")
	})
	f = newFixture(t)
	p := applyUnhealthy(t, ts, f)
	write(t, filepath.Join(f.dataDir, "notes.db"), "damaged db")
	d := restoreToOriginal(t, ts, p, "data")
	if d.State != lifeboat.JobSucceeded || d.Attempts != 3 {
		t.Fatalf("restore retried: %s after %d attempts: %s", d.State, d.Attempts, d.Error)
	}
	rr := result[RestoreResult](t, d)
	found := false
	for _, k := range rr.Components[0].Kept {
		b, _ := os.ReadFile(filepath.Join(k, "notes.db"))
		found = found || string(b) == "damaged db"
	}
	if !found {
		t.Errorf("what was there before the job is in none of the kept copies %v", rr.Components[0].Kept)
	}
	// The retry could not know the first attempt had swapped (nothing
	// saved says so), took a second safety point (and the third attempt a
	// third), but names the first.
	if sps := safetyPoints(t, ts); len(sps) != 3 || rr.Safety["data"] != sps[0] {
		t.Errorf("safety points %v; the result names %v, want the first", sps, rr.Safety)
	}
	if b, _ := os.ReadFile(filepath.Join(f.dataDir, "notes.db")); string(b) != "database bytes" {
		t.Errorf("notes.db after the restore: %q", b)
	}
}

// newRetryServer is a test server whose jobs are tried twice, 50 ms apart;
// hook runs after each component a restore job restored, then with "".
// A retry of a restore to the original place whose first attempt replaced
// one component (config) and not the other (data) takes a new safety point
// (data as it is then: the app wrote to it between the attempts), and the
// result names, per component, the point holding what the job replaced
// there: the first for config, the second for data. A server that dies between the swap and saving the
// result is covered too: the swap finds the earlier attempt's kept copy.
func TestRestoreToOriginalRetrySafetyPoints(t *testing.T) {
	for _, lost := range []bool{false, true} {
		t.Run(map[bool]string{false: "saved", true: "unsaved"}[lost], func(t *testing.T) {
			var f *fixture
			var ts *testServer
			var failed atomic.Bool
			ts = newRetryServer(t, func(j *lifeboat.Job, comp string) error {
				if j.Attempts != 1 || comp != "config" || failed.Swap(true) {
					return nil
				}
				write(t, filepath.Join(f.dataDir, "notes.db"), "written between the attempts")
				if lost { // as if the server died before saving that config was replaced
					unsave(t, ts, j)
				}
				return lifeboat.Errorf(lifeboat.EUnavailable, "storage went away after component %s", comp)
			})
			f = newFixture(t)
			d := restoreDamaged(t, ts, f, applyUnhealthy(t, ts, f))
			if d.State != lifeboat.JobSucceeded || d.Attempts != 2 {
				t.Fatalf("restore retried: %s after %d attempts: %s", d.State, d.Attempts, d.Error)
			}
			rr := result[RestoreResult](t, d)
			sps := safetyPoints(t, ts) // oldest first
			if len(sps) != 2 {
				t.Fatalf("safety points %v, want one per attempt", sps)
			}
			if rr.Safety["config"] != sps[0] || rr.Safety["data"] != sps[1] || rr.SafetyPoint != "" {
				t.Errorf("the result names %q and %v; want config in %s, data in %s", rr.SafetyPoint, rr.Safety, sps[0][:8], sps[1][:8])
			}
			if g := pointSetting(t, ts, rr.Safety["config"], "config/app.env:GREETING"); g != "damaged" {
				t.Errorf("config's safety point holds GREETING=%q, want what was there before the job", g)
			}
			// data's holds what the app wrote between the attempts.
			to := filepath.Join(f.restoreRoot, "sp2")
			var j lifeboat.Job
			ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: sps[1], Components: []string{"data"}, To: to}, &j)
			if d := ts.waitJob(t, j.ID); d.State != lifeboat.JobSucceeded {
				t.Fatalf("restore of the second safety point: %s", d.Error)
			}
			if b, _ := os.ReadFile(filepath.Join(to, "data", "notes.db")); string(b) != "written between the attempts" {
				t.Errorf("data's safety point holds notes.db %q", b)
			}
		})
	}
}

// A restore job that fails for good names in its result what every attempt
// restored and kept, not only the last attempt's: here the first restores
// both components, the second only config before it fails, the third fails
// at its start (a pre-restore hook), so data's kept copy is the first
// attempt's alone.
func TestRestoreToOriginalFailedRetryNamesEarlierKept(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "gate")
	ts := newRetryServerN(t, 3, func(j *lifeboat.Job, comp string) error {
		switch {
		case j.Attempts == 1 && comp == "":
			return lifeboat.Errorf(lifeboat.EUnavailable, "storage went away before the audit")
		case j.Attempts == 2 && comp == "config":
			os.WriteFile(gate, nil, 0o644)
			return lifeboat.Errorf(lifeboat.EUnavailable, "storage went away after component %s", comp)
		}
		return nil
	})
	f := newFixture(t)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	t.Cleanup(hs.Close)
	doc := f.doc()
	doc.Apps[0].HealthURL = hs.URL + "/healthz"
	doc.Hosts[0].Commands = map[string]lifeboat.HostCommand{"gate": {Argv: []string{"/bin/sh", "-c", `test ! -e "$GATE"`}, Env: map[string]string{"GATE": gate}}}
	doc.Apps[0].Hooks = []lifeboat.Hook{{When: "pre-restore", Command: "gate"}}
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	p := result[BackupResult](t, ts.backup(t, "shop")).Point
	write(t, f.envFile, "GREETING=damaged\n")
	write(t, filepath.Join(f.dataDir, "notes.db"), "damaged db")
	d := restoreToOriginal(t, ts, p, "config", "data")
	if d.State != lifeboat.JobFailed || d.Attempts != 3 {
		t.Fatalf("restore: %s after %d attempts: %s", d.State, d.Attempts, d.Error)
	}
	rr := result[RestoreResult](t, d)
	if sps := safetyPoints(t, ts); len(sps) != 2 || rr.SafetyPoint != sps[0] || !slices.Equal(rr.Started, []string{"config", "data"}) {
		t.Errorf("safety points %v; the result: %+v", sps, rr)
	}
	kept := map[string][]string{}
	for _, c := range rr.Components {
		kept[c.Name] = c.Kept
	}
	if len(kept["config"]) != 2 || len(kept["data"]) != 1 {
		t.Fatalf("kept %v, want config's from before the job and the first attempt's restore, data's from before the job", kept)
	}
	if b, err := os.ReadFile(kept["config"][0]); err != nil || string(b) != "GREETING=damaged\n" {
		t.Errorf("config kept %q (%v)", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(kept["data"][0], "notes.db")); err != nil || string(b) != "damaged db" {
		t.Errorf("data kept %q (%v)", b, err)
	}
}

// A component whose file lies inside a files component's directory (here a
// SQLite database in data) is replaced by that one's swap: after a retry,
// the job names for it the first attempt's safety point (the retry's holds
// the point's copy).
func TestRestoreToOriginalRetryNestedComponent(t *testing.T) {
	ts := newRetryServer(t, failOnceAfter("data"))
	f := newFixture(t)
	dbPath := filepath.Join(f.dataDir, "app.sqlite")
	sqlExec := func(q string) {
		db, err := sql.Open("sqlite", dbPath)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	sqlExec(`CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('in the point')`)
	doc := f.doc()
	doc.Apps[0].Components = append(doc.Apps[0].Components, lifeboat.Component{Name: "db", Kind: "sqlite", Path: dbPath})
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	p := result[BackupResult](t, ts.backup(t, "shop")).Point
	sqlExec(`INSERT INTO notes VALUES ('before the job')`)
	d := restoreToOriginal(t, ts, p, "data", "db")
	if d.State != lifeboat.JobSucceeded || d.Attempts != 2 {
		t.Fatalf("restore retried: %s after %d attempts: %s", d.State, d.Attempts, d.Error)
	}
	rr := result[RestoreResult](t, d)
	if sps := safetyPoints(t, ts); len(sps) != 2 || rr.Safety["db"] != sps[0] || rr.SafetyPoint != sps[0] {
		t.Errorf("safety points %v; the result names %q (%v), want the first attempt's", sps, rr.SafetyPoint, rr.Safety)
	}
}

// A component no safety point holds (a config file missing, so not wholly
// at its place) has what its first attempt replaced kept for good; the
// retry (which finds the component whole, its first attempt's restore)
// must not name its own safety point, nor remove that kept copy.
func TestRestoreToOriginalRetryKeepsWhatNoSafetyPointHolds(t *testing.T) {
	ts := newRetryServer(t, failOnceAfter("config"))
	f := newFixture(t)
	second := filepath.Join(filepath.Dir(f.envFile), "second.env")
	write(t, second, "B=1\n")
	doc := f.doc()
	doc.Apps[0].Components[0].Files = append(doc.Apps[0].Components[0].Files, second)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	p := result[BackupResult](t, ts.backup(t, "shop")).Point
	os.Remove(second)
	write(t, f.envFile, "GREETING=the only copy\n")
	d := restoreToOriginal(t, ts, p, "config")
	if d.State != lifeboat.JobSucceeded || d.Attempts != 2 {
		t.Fatalf("restore retried: %s after %d attempts: %s", d.State, d.Attempts, d.Error)
	}
	rr := result[RestoreResult](t, d)
	if rr.Safety["config"] != "" || rr.SafetyPoint != "" {
		t.Errorf("the result names a safety point (%q, %v); none holds what the job replaced", rr.SafetyPoint, rr.Safety)
	}
	found := false
	for _, k := range rr.Components[0].Kept {
		b, _ := os.ReadFile(k)
		found = found || string(b) == "GREETING=the only copy\n"
	}
	if !found {
		t.Errorf("what was there before the job is in none of the kept copies %v (no health check: removed)", rr.Components[0].Kept)
	}
}

// applySQLiteApp gives the fixture's app a SQLite component (a database
// of one row) and, unless healthy, a health check that always fails, so
// that a restore to the original place keeps what it replaced; it backs
// the app up, and returns the database's path and the point.
func applySQLiteApp(t *testing.T, ts *testServer, healthy bool) (string, string) {
	t.Helper()
	f := newFixture(t)
	dbPath := filepath.Join(f.root, "shop", "app.sqlite")
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('in the point')`); err != nil {
		t.Fatal(err)
	}
	doc := f.doc()
	if !healthy {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
		t.Cleanup(hs.Close)
		doc.Apps[0].HealthURL = hs.URL + "/healthz"
	}
	doc.Apps[0].Components = append(doc.Apps[0].Components, lifeboat.Component{Name: "db", Kind: "sqlite", Path: dbPath})
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	return dbPath, result[BackupResult](t, ts.backup(t, "shop")).Point
}

// A SQLite database restored to its place (stopped mode) keeps the
// replaced file with its write-ahead log beside it, under the name SQLite
// reads with the kept copy: the restore removes the log from the target,
// and it may hold the last transactions.
func TestRestoreSQLiteKeepsItsLog(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	dbPath, p := applySQLiteApp(t, ts, false)
	write(t, dbPath+"-wal", "the last transactions")
	d := restoreToOriginal(t, ts, p, "db")
	if d.State != lifeboat.JobSucceeded {
		t.Fatalf("restore: %s", d.Error)
	}
	rr := result[RestoreResult](t, d)
	if len(rr.Components) != 1 || len(rr.Components[0].Kept) != 2 {
		t.Fatalf("kept: %+v", rr.Components)
	}
	kept := rr.Components[0].Kept
	if kept[1] != kept[0]+"-wal" {
		t.Errorf("kept %v, want the file and its log beside it", kept)
	}
	if b, _ := os.ReadFile(kept[1]); string(b) != "the last transactions" {
		t.Errorf("kept log: %q", b)
	}
	if _, err := os.Lstat(dbPath + "-wal"); err == nil {
		t.Error("the old log is still beside the restored database")
	}
}

// A retried restore of a SQLite database that passes its health check
// removes what every attempt kept, the first attempt's copy of the log
// with the rest (it was left behind, named by nothing).
func TestRestoreSQLiteRetryRemovesTheFirstLog(t *testing.T) {
	ts := newRetryServer(t, failOnceAfter("db"))
	dbPath, p := applySQLiteApp(t, ts, true)
	write(t, dbPath+"-wal", "not a log SQLite reads")
	d := restoreToOriginal(t, ts, p, "db")
	if d.State != lifeboat.JobSucceeded || d.Attempts != 2 {
		t.Fatalf("restore: %s after %d attempts: %s", d.State, d.Attempts, d.Error)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dbPath), ".lifeboat-*")); len(left) != 0 {
		t.Errorf("left beside the database after a restore whose safety points hold all it replaced: %v", left)
	}
}

// A retry of a SQLite restore never keeps what it replaces under a name
// beside which a log is already (one whose database an interrupted
// clean-up removed): SQLite would replay that log into it.
func TestRestoreSQLiteRetryAvoidsAForeignLog(t *testing.T) {
	var name atomic.Value // the database's path
	ts := newRetryServer(t, failFirstAttempt(&name, "db", func(j *lifeboat.Job, dbPath string) error {
		// As if a clean-up had removed the kept copy, then stopped.
		return os.Remove(keptName(j, dbPath))
	}))
	dbPath, p := applySQLiteApp(t, ts, false)
	name.Store(dbPath)
	write(t, dbPath+"-wal", "the last transactions")
	d := restoreToOriginal(t, ts, p, "db")
	if d.State != lifeboat.JobSucceeded || d.Attempts != 2 {
		t.Fatalf("restore: %s after %d attempts: %s", d.State, d.Attempts, d.Error)
	}
	old := keptName(d, dbPath)
	if _, err := os.Lstat(old); err == nil {
		t.Errorf("the retry kept what it replaced at %s, beside the log %s-wal of another database", old, old)
	}
	if b, _ := os.ReadFile(old + "-wal"); string(b) != "the last transactions" {
		t.Errorf("the first attempt's kept log: %q", b)
	}
}

// A retry after an attempt that linked the database to its kept name and
// stopped before replacing it keeps the database there, with its log
// (instead of a second copy beside the first, which kept no log and was
// taken for what an earlier attempt replaced).
func TestRestoreSQLiteRetryAfterAStopBetweenItsLinks(t *testing.T) {
	var name atomic.Value // the database's path
	ts := newRetryServer(t, failFirstAttempt(&name, "data", func(j *lifeboat.Job, dbPath string) error {
		return os.Link(dbPath, keptName(j, dbPath))
	}))
	d, dbPath := retrySQLiteRestore(t, ts, &name, false, 2)
	old := keptName(d, dbPath)
	rr := result[RestoreResult](t, d)
	for _, c := range rr.Components {
		if c.Name == "db" && !slices.Equal(c.Kept, []string{old, old + "-wal"}) {
			t.Errorf("db kept at %q, want %s with its log", c.Kept, old)
		}
	}
	if b, _ := os.ReadFile(old + "-wal"); string(b) != "the last transactions" {
		t.Errorf("the kept log: %q", b)
	}
}

// A stopped-mode restore that fails once it has removed the database's
// log (here the -shm cannot be removed) puts the log back beside the
// database and keeps nothing else.
func TestRestoreSQLiteFailurePutsTheLogBack(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	dbPath, p := applySQLiteApp(t, ts, false)
	write(t, dbPath+"-wal", "the last transactions")
	os.MkdirAll(filepath.Join(dbPath+"-shm", "in the way"), 0o755)
	if d := restoreToOriginal(t, ts, p, "db"); d.State != lifeboat.JobFailed {
		t.Fatalf("restore: %s, want it failed", d.State)
	}
	if b, _ := os.ReadFile(dbPath + "-wal"); string(b) != "the last transactions" {
		t.Errorf("the log beside the database after the failed restore: %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dbPath), ".lifeboat-old-*")); len(left) != 0 {
		t.Errorf("kept after a restore that changed nothing: %v", left)
	}
}

// failFirstAttempt is a restore hook that, after component comp in a
// job's first attempt, runs f with the job and the database's path (in
// name), then fails the attempt as unavailable, so that it is retried.
func failFirstAttempt(name *atomic.Value, comp string, f func(j *lifeboat.Job, dbPath string) error) func(j *lifeboat.Job, component string) error {
	var failed atomic.Bool
	return func(j *lifeboat.Job, component string) error {
		if j.Attempts != 1 || component != comp || failed.Swap(true) {
			return nil
		}
		if err := f(j, name.Load().(string)); err != nil {
			return err
		}
		return lifeboat.Errorf(lifeboat.EUnavailable, "the attempt stopped after component %s", component)
	}
}

// separateLog is failFirstAttempt leaving the database as a stopped-mode
// restore that died inside its swap does: the database and its -wal
// linked at their kept names, the -wal gone from beside the database;
// then runs after.
func separateLog(name *atomic.Value, then func(dbPath string)) func(j *lifeboat.Job, component string) error {
	return failFirstAttempt(name, "data", func(j *lifeboat.Job, dbPath string) error {
		old := keptName(j, dbPath)
		if err := os.Link(dbPath, old); err != nil {
			return err
		}
		if err := os.Link(dbPath+"-wal", old+"-wal"); err != nil {
			return err
		}
		os.Remove(dbPath + "-wal")
		then(dbPath)
		return nil
	})
}

// retrySQLiteRestore gives ts an app with a SQLite database (name holds
// its path; healthy as applySQLiteApp), writes a log beside it, restores
// the app's data and database to their place, and fails the test unless
// the job succeeded after attempts tries. It returns the job and the
// database's path.
func retrySQLiteRestore(t *testing.T, ts *testServer, name *atomic.Value, healthy bool, attempts int) (*lifeboat.Job, string) {
	t.Helper()
	dbPath, p := applySQLiteApp(t, ts, healthy)
	name.Store(dbPath)
	write(t, dbPath+"-wal", "the last transactions")
	d := restoreToOriginal(t, ts, p, "data", "db")
	if d.State != lifeboat.JobSucceeded || d.Attempts != attempts {
		t.Fatalf("restore: %s after %d attempts: %s", d.State, d.Attempts, d.Error)
	}
	return d, dbPath
}

// keptName is where job j keeps the database at dbPath it replaces.
func keptName(j *lifeboat.Job, dbPath string) string {
	return filepath.Join(filepath.Dir(dbPath), ".lifeboat-old-"+j.ID[len(j.ID)-8:]+"-"+filepath.Base(dbPath))
}

// A retry after an attempt that separated the database from its log (it
// died inside its swap), or whose kept log the app has replaced since,
// keeps that log under a name SQLite pairs with nothing, names it, and
// keeps what it replaces for good; the job succeeds.
func TestRestoreSQLiteRetryKeepsASeparatedLog(t *testing.T) {
	for _, newer := range []bool{false, true} {
		var name atomic.Value
		ts := newRetryServer(t, separateLog(&name, func(dbPath string) {
			if newer { // the app ran meanwhile, and wrote a new log
				write(t, dbPath+"-wal", "newer transactions")
			}
		}))
		d, dbPath := retrySQLiteRestore(t, ts, &name, false, 2)
		old := keptName(d, dbPath)
		var named bool
		for _, c := range result[RestoreResult](t, d).Components {
			for _, k := range c.Kept {
				b, _ := os.ReadFile(k)
				named = named || c.Name == "db" && strings.HasPrefix(k, old+"-wal-") && string(b) == "the last transactions"
			}
		}
		if !named {
			t.Errorf("newer log %v: the separated log is not named as kept", newer)
		}
		if b, _ := os.ReadFile(old + "-wal"); newer != (string(b) == "newer transactions") {
			t.Errorf("newer log %v: beside the kept database: %q", newer, b)
		}
	}
}

// What an attempt keeps for good after finding a separated log (above)
// stays for good in every later attempt of the job: a third attempt, once
// the app is healthy, removed it.
func TestRestoreSQLiteThirdAttemptKeepsWhatTheSecondKept(t *testing.T) {
	for _, newer := range []bool{false, true} {
		var name atomic.Value
		first := separateLog(&name, func(dbPath string) {
			if newer {
				write(t, dbPath+"-wal", "newer transactions")
			}
		})
		var failed2 atomic.Bool
		ts := newRetryServerN(t, 3, func(j *lifeboat.Job, component string) error {
			if err := first(j, component); err != nil {
				return err
			}
			if j.Attempts == 2 && component == "db" && !failed2.Swap(true) {
				return lifeboat.Errorf(lifeboat.EUnavailable, "storage went away after component db")
			}
			return nil
		})
		d, dbPath := retrySQLiteRestore(t, ts, &name, true, 3)
		old := keptName(d, dbPath)
		if _, err := os.Lstat(old); err != nil {
			t.Errorf("newer log %v: what attempt 2 kept for good at %s was removed: %v", newer, old, err)
		}
		if b, _ := os.ReadFile(old + "-wal"); newer && string(b) != "newer transactions" {
			t.Errorf("newer log %v: the log attempt 2 kept for good at %s-wal: %q", newer, old, b)
		}
	}
}

// A retry finding a log an earlier attempt set aside (and that attempt
// stopped before saving what it did) names it, keeps what it replaces,
// and names the first safety point, not its own (taken of the database
// without that log).
func TestRestoreSQLiteRetryFindsASetAsideLog(t *testing.T) {
	var name atomic.Value
	ts := newRetryServer(t, failFirstAttempt(&name, "data", func(j *lifeboat.Job, dbPath string) error {
		old := keptName(j, dbPath)
		if err := os.Link(dbPath, old); err != nil {
			return err
		}
		return os.Rename(dbPath+"-wal", old+"-wal-0badc0de")
	}))
	d, dbPath := retrySQLiteRestore(t, ts, &name, true, 2)
	old := keptName(d, dbPath)
	rr := result[RestoreResult](t, d)
	var named bool
	for _, c := range rr.Components {
		named = named || c.Name == "db" && slices.Contains(c.Kept, old+"-wal-0badc0de")
	}
	if !named || rr.Safety["db"] != rr.First["db"] {
		t.Errorf("the set-aside log named %v; safety point %.8s, the first %.8s: want it named, and the first", named, rr.Safety["db"], rr.First["db"])
	}
	if _, err := os.Lstat(old); err != nil {
		t.Errorf("the database the set-aside log goes with was removed: %v", err)
	}
}

// An attempt that kept the database under a name of its own (an earlier
// attempt's copy was at the job's name) and stopped, inside its swap or
// right after it, before its result was saved: a later attempt finds that
// copy and its log, names them and keeps them.
func TestRestoreSQLiteThirdAttemptFindsARandomCopy(t *testing.T) {
	for _, swapped := range []bool{false, true} {
		var name atomic.Value
		var failed1, failed2 atomic.Bool
		ts := newRetryServerN(t, 3, func(j *lifeboat.Job, component string) error {
			dbPath := name.Load().(string)
			switch {
			case j.Attempts == 1 && component == "db" && !failed1.Swap(true):
				write(t, dbPath+"-wal", "written since attempt 1") // the app, restarted
				return lifeboat.Errorf(lifeboat.EUnavailable, "stopped after db")
			case j.Attempts == 2 && component == "data" && !failed2.Swap(true):
				old := keptName(j, dbPath) + "-0badc0de"
				if err := os.Link(dbPath, old); err != nil {
					return err
				}
				if err := os.Link(dbPath+"-wal", old+"-wal"); err != nil {
					return err
				}
				os.Remove(dbPath + "-wal")
				if swapped { // the restored file in place (another file)
					b, _ := os.ReadFile(dbPath)
					write(t, dbPath+".new", string(b))
					if err := os.Rename(dbPath+".new", dbPath); err != nil {
						return err
					}
				}
				return lifeboat.Errorf(lifeboat.EUnavailable, "stopped inside the swap of db")
			}
			return nil
		})
		d, dbPath := retrySQLiteRestore(t, ts, &name, true, 3)
		old := keptName(d, dbPath) + "-0badc0de"
		var named []string
		for _, c := range result[RestoreResult](t, d).Components {
			named = append(named, c.Kept...)
		}
		for _, p := range []string{old, old + "-wal"} {
			if _, err := os.Lstat(p); err != nil || !slices.Contains(named, p) {
				t.Errorf("swapped %v: %s (%v) is not named as kept: %q", swapped, p, err, named)
			}
		}
	}
}

// The same, the retry's own restore failing too: its error says where
// the separated log is.
func TestRestoreSQLiteFailedRetryNamesASeparatedLog(t *testing.T) {
	var name atomic.Value
	ts := newRetryServer(t, separateLog(&name, func(dbPath string) {
		os.Remove(dbPath + "-shm")
		os.MkdirAll(filepath.Join(dbPath+"-shm", "in the way"), 0o755)
	}))
	dbPath, p := applySQLiteApp(t, ts, false)
	name.Store(dbPath)
	write(t, dbPath+"-wal", "the last transactions")
	d := restoreToOriginal(t, ts, p, "data", "db")
	if d.State != lifeboat.JobFailed || !strings.Contains(d.Error, keptName(d, dbPath)+"-wal-") {
		t.Errorf("restore: %s: %s, want it failed naming the kept log", d.State, d.Error)
	}
}

// Components nested in one another restore the outer one first: what the
// inner one's restore keeps beside its target (here its replaced tree,
// kept for good for what it could not carry) stays where the result names
// it, instead of going with the outer one's swap.
func TestRestoreToOriginalNestedFilesComponents(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	uploads := filepath.Join(f.dataDir, "uploads")
	doc := f.doc()
	doc.Apps[0].Components[1].Exclude = append(doc.Apps[0].Components[1].Exclude, "/uploads")
	doc.Apps[0].Components = append(doc.Apps[0].Components, lifeboat.Component{Name: "uploads", Kind: "files", Path: uploads, Exclude: []string{"*.cache"}})
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	write(t, filepath.Join(uploads, "logs"), "a file when backed up")
	p := result[BackupResult](t, ts.backup(t, "shop")).Point
	os.Remove(filepath.Join(uploads, "logs"))
	os.Mkdir(filepath.Join(uploads, "logs"), 0o755)
	write(t, filepath.Join(uploads, "logs", "app.cache"), "not captured")
	d := restoreToOriginal(t, ts, p, "uploads", "data")
	if d.State != lifeboat.JobSucceeded {
		t.Fatalf("restore: %s", d.Error)
	}
	rr := result[RestoreResult](t, d)
	var kept []string
	for _, c := range rr.Components {
		if c.Name == "uploads" {
			kept = c.Kept
		}
	}
	if len(kept) != 1 {
		t.Fatalf("uploads kept %v, want its replaced tree", kept)
	}
	if b, err := os.ReadFile(filepath.Join(kept[0], "logs", "app.cache")); err != nil || string(b) != "not captured" {
		t.Errorf("uploads' kept tree, where the result names it: %q %v", b, err)
	}
}

// What the component does not capture and the restore cannot carry into
// the restored tree (here below a path the point has as a file) stays in
// the replaced tree, which is then kept for good, named in the job's
// result and log, instead of being removed with it.
func TestRestoreToOriginalKeepsWhatItCannotCarry(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil)
	write(t, filepath.Join(f.dataDir, "logs"), "a file when backed up")
	p := result[BackupResult](t, ts.backup(t, "shop")).Point
	os.Remove(filepath.Join(f.dataDir, "logs"))
	os.Mkdir(filepath.Join(f.dataDir, "logs"), 0o755)
	write(t, filepath.Join(f.dataDir, "logs", "app.tmp"), "not captured")
	write(t, filepath.Join(f.dataDir, "session.tmp"), "not captured either")
	d := restoreToOriginal(t, ts, p, "data")
	if d.State != lifeboat.JobSucceeded {
		t.Fatalf("restore: %s", d.Error)
	}
	if b, _ := os.ReadFile(filepath.Join(f.dataDir, "logs")); string(b) != "a file when backed up" {
		t.Errorf("logs after the restore: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(f.dataDir, "session.tmp")); string(b) != "not captured either" {
		t.Errorf("session.tmp not carried over: %q", b)
	}
	rr := result[RestoreResult](t, d)
	if len(rr.Components) != 1 || len(rr.Components[0].Kept) != 1 {
		t.Fatalf("kept: %+v", rr.Components)
	}
	kept := rr.Components[0].Kept[0]
	if b, err := os.ReadFile(filepath.Join(kept, "logs", "app.tmp")); err != nil || string(b) != "not captured" {
		t.Errorf("the kept tree's logs/app.tmp: %q %v", b, err)
	}
	var logs struct{ Items []lifeboat.JobLog }
	ts.must(t, "GET", "/api/v1/jobs/"+d.ID+"/logs", nil, &logs)
	noted := false
	for _, l := range logs.Items {
		noted = noted || l.Level == "warn" && strings.Contains(l.Msg, "1 entries the component does not capture") && strings.Contains(l.Msg, "could not be carried") &&
			strings.Contains(l.Msg, filepath.Join(kept, "logs", "app.tmp"))
	}
	if !noted {
		t.Errorf("the job's log does not say what the kept tree holds: %+v", logs.Items)
	}
}

// A restore to the original place of a directory with another file system
// mounted inside fails before anything changes (no safety point, no swap):
// the swap would move the mount aside, and removing the replaced tree
// would delete what it holds.
func TestRestoreToOriginalRefusesMountsInside(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "mounting a tmpfs needs root")
	}
	ts := newTestServer(t, testOpts{})
	f := newFixture(t)
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: f.doc()}, nil)
	p := result[BackupResult](t, ts.backup(t, "shop")).Point
	mnt := filepath.Join(f.dataDir, "shared")
	os.Mkdir(mnt, 0o755)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		testenv.Skip(t, "cannot mount a tmpfs here: "+err.Error())
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	write(t, filepath.Join(mnt, "cat.jpg"), "on the shared file system")
	write(t, filepath.Join(f.dataDir, "notes.db"), "damaged db")
	d := restoreToOriginal(t, ts, p, "config", "data")
	if d.State != lifeboat.JobFailed || !strings.Contains(d.Error, mnt+" is a mount point inside "+f.dataDir) {
		t.Fatalf("restore: %s: %s", d.State, d.Error)
	}
	if b, _ := os.ReadFile(filepath.Join(f.dataDir, "notes.db")); string(b) != "damaged db" {
		t.Errorf("notes.db changed: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(mnt, "cat.jpg")); string(b) != "on the shared file system" {
		t.Errorf("the mounted file system's content: %q", b)
	}
	if sps := safetyPoints(t, ts); len(sps) != 0 {
		t.Errorf("safety points taken: %v", sps)
	}
}

// unsave makes a running restore job's saved result forget the components
// it started and restored, as if the server had died before saving them.
func unsave(t *testing.T, ts *testServer, j *lifeboat.Job) {
	t.Helper()
	err := ts.db.Update(context.Background(), func(tx *catalog.Tx) error {
		cur, err := tx.Job(context.Background(), j.ID)
		if err != nil {
			return err
		}
		var saved RestoreResult
		if err := json.Unmarshal(cur.Result, &saved); err != nil {
			return err
		}
		if len(saved.Started) == 0 || len(saved.Safety) == 0 {
			return fmt.Errorf("saved: %+v, want a safety point and a started component", saved)
		}
		saved.Started, saved.Components = nil, nil
		return tx.SaveJobResult(context.Background(), j.ID, j.Fence, saved)
	})
	if err != nil {
		t.Errorf("setup: %v", err)
	}
}

// safetyPoints returns the ids of shop's safety points, oldest first.
func safetyPoints(t *testing.T, ts *testServer) []string {
	t.Helper()
	var pts List[*lifeboat.Point]
	ts.must(t, "GET", "/api/v1/apps/shop/points", nil, &pts)
	var ids []string
	for i := len(pts.Items) - 1; i >= 0; i-- {
		if pts.Items[i].Labels["reason"] == catalog.SafetyReason {
			ids = append(ids, pts.Items[i].ID)
		}
	}
	return ids
}

// pointSetting returns the value of a public setting of shop's point.
func pointSetting(t *testing.T, ts *testServer, point, key string) string {
	t.Helper()
	var pv PointView
	ts.must(t, "GET", "/api/v1/apps/shop/points/"+point, nil, &pv)
	for _, s := range pv.Settings {
		if s.Key == key && s.Value != nil {
			return *s.Value
		}
	}
	return ""
}

// restoreDamaged damages shop's config and data, then restores point p's
// config and data to their place and returns the job, done.
func restoreDamaged(t *testing.T, ts *testServer, f *fixture, p string) *lifeboat.Job {
	t.Helper()
	write(t, f.envFile, "GREETING=damaged\n")
	write(t, filepath.Join(f.dataDir, "notes.db"), "damaged db")
	return restoreToOriginal(t, ts, p, "config", "data")
}

// restoreToOriginal restores components of shop's point p to their place
// and returns the job, done.
func restoreToOriginal(t *testing.T, ts *testServer, p string, components ...string) *lifeboat.Job {
	t.Helper()
	var j lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/shop/restores", RestoreRequest{Point: p, Components: components, To: "original"}, &j)
	return ts.waitJob(t, j.ID)
}

// failOnceAfter is a restore hook that fails a job's first attempt once,
// as unavailable (so that it is retried), after component comp.
func failOnceAfter(comp string) func(j *lifeboat.Job, component string) error {
	var failed atomic.Bool
	return func(j *lifeboat.Job, component string) error {
		if j.Attempts == 1 && component == comp && !failed.Swap(true) {
			return lifeboat.Errorf(lifeboat.EUnavailable, "storage went away after component %s", component)
		}
		return nil
	}
}

func newRetryServer(t *testing.T, hook func(j *lifeboat.Job, component string) error) *testServer {
	t.Helper()
	return newRetryServerN(t, 2, hook)
}

// newRetryServerN is newRetryServer with jobs tried n times.
func newRetryServerN(t *testing.T, n int, hook func(j *lifeboat.Job, component string) error) *testServer {
	t.Helper()
	return newTestServerCfg(t, testOpts{restoreHook: hook}, func(c *Config) {
		c.JobTries, c.JobBackoff = n, func(int) time.Duration { return 50 * time.Millisecond }
	})
}

// applyUnhealthy applies f's document with a health check that always
// fails, so that a restore to the original place keeps (and reports) what
// it replaced, then backs the app up and returns the point.
func applyUnhealthy(t *testing.T, ts *testServer, f *fixture) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	t.Cleanup(hs.Close)
	doc := f.doc()
	doc.Apps[0].HealthURL = hs.URL + "/healthz"
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)
	return result[BackupResult](t, ts.backup(t, "shop")).Point
}
