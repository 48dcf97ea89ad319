// Package catalogtest is the conformance suite every catalog backend
// (SQLite, PostgreSQL) passes: the same calls, the same answers.
package catalogtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// Clock is a settable clock for tests.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Run runs the suite; open returns a new, empty catalog for each subtest.
func Run(t *testing.T, open func(t *testing.T) *catalog.DB) {
	tests := []struct {
		name string
		fn   func(t *testing.T, db *catalog.DB, clk *Clock)
	}{
		{"Things", testThings},
		{"Points", testPoints},
		{"JobsLease", testJobsLease},
		{"JobsExclusive", testJobsExclusive},
		{"JobsConcurrentClaims", testJobsConcurrentClaims},
		{"Idempotency", testIdempotency},
		{"TokensAndAudit", testTokensAndAudit},
		{"Rollback", testRollback},
		{"Leases", testLeases},
		{"Access", testAccess},
		{"AuditChainConcurrent", testAuditChainConcurrent},
		{"VaultApproversAndOIDCLogins", testApproversAndOIDC},
		{"SignInFailures", testSignInFailures},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := open(t)
			clk := NewClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
			db.Now = clk.Now
			tc.fn(t, db, clk)
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testThings(t *testing.T, db *catalog.DB, clk *Clock) {
	ctx := context.Background()
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		if err := tx.PutVault(ctx, &catalog.VaultRecord{Vault: lifeboat.Vault{Name: "main", Region: "local", Location: "/v", Default: true}, SealedPassphrase: "sealed"}); err != nil {
			return err
		}
		if err := tx.PutHost(ctx, &lifeboat.Host{Name: "local", Kind: "local", Roots: []string{"/srv"}}); err != nil {
			return err
		}
		for _, n := range []string{"b", "a", "c"} {
			if err := tx.PutApp(ctx, &lifeboat.App{Name: n, Vault: "main", Environment: "staging", Labels: map[string]string{"tier": "web"},
				Components: []lifeboat.Component{{Name: "files", Kind: "files", Path: "/srv/" + n}}}); err != nil {
				return err
			}
		}
		if err := tx.PutDBServer(ctx, &lifeboat.DBServer{Name: "pg1", Engine: "postgres", Host: "127.0.0.1", Port: 5432, User: "app", PasswordFile: "/secret", HasPassword: true}); err != nil {
			return err
		}
		return tx.PutPolicy(ctx, &lifeboat.Policy{Name: "daily", Schedule: lifeboat.Schedule{Cron: "0 2 * * *"}, Retention: lifeboat.Retention{Daily: 7}})
	}))
	must(t, db.View(ctx, func(tx *catalog.Tx) error {
		s, err := tx.DBServer(ctx, "pg1")
		if err != nil || s.Port != 5432 || s.PasswordFile != "" || !s.HasPassword {
			t.Errorf("db server: %+v %v", s, err)
		}
		all, err := tx.DBServers(ctx)
		if len(all) != 1 {
			t.Errorf("db servers: %d %v", len(all), err)
		}
		return nil
	}))
	must(t, db.View(ctx, func(tx *catalog.Tx) error {
		v, err := tx.DefaultVault(ctx, "local")
		if err != nil || v.Name != "main" || v.SealedPassphrase != "sealed" {
			t.Errorf("default vault = %+v, %v", v, err)
		}
		apps, err := tx.Apps(ctx, catalog.Page{Limit: 2}, false)
		if err != nil || len(apps) != 2 || apps[0].Name != "a" || apps[1].Name != "b" {
			t.Errorf("first page = %v, %v", names(apps), err)
		}
		apps, err = tx.Apps(ctx, catalog.Page{After: "b", Limit: 2}, false)
		if err != nil || len(apps) != 1 || apps[0].Name != "c" || apps[0].Components[0].Path != "/srv/c" {
			t.Errorf("second page = %v, %v", names(apps), err)
		}
		if _, err := tx.App(ctx, "nope"); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("missing app: %v", err)
		}
		p, err := tx.Policy(ctx, "daily")
		if err != nil || p.Retention.Daily != 7 || p.Schedule.Cron != "0 2 * * *" {
			t.Errorf("policy = %+v, %v", p, err)
		}
		return nil
	}))
	clk.Add(time.Hour)
	must(t, db.Update(ctx, func(tx *catalog.Tx) error { return tx.RetireApp(ctx, "a") }))
	must(t, db.Update(ctx, func(tx *catalog.Tx) error { return tx.RenameApp(ctx, "b", "b2") }))
	must(t, db.View(ctx, func(tx *catalog.Tx) error {
		live, _ := tx.Apps(ctx, catalog.Page{}, false)
		all, _ := tx.Apps(ctx, catalog.Page{}, true)
		if fmt.Sprint(names(live)) != "[b2 c]" || fmt.Sprint(names(all)) != "[a b2 c]" {
			t.Errorf("live %v all %v", names(live), names(all))
		}
		a, _ := tx.App(ctx, "a")
		if a.RetiredAt == nil || !a.RetiredAt.Equal(clk.Now()) {
			t.Errorf("retired at %v", a.RetiredAt)
		}
		return nil
	}))
	if err := db.Update(ctx, func(tx *catalog.Tx) error { return tx.RenameApp(ctx, "c", "b2") }); !errors.Is(err, catalog.ErrExists) {
		t.Errorf("rename onto an existing app: %v", err)
	}
}

func names(apps []*lifeboat.App) []string {
	var out []string
	for _, a := range apps {
		out = append(out, a.Name)
	}
	return out
}

func testPoints(t *testing.T, db *catalog.DB, clk *Clock) {
	ctx := context.Background()
	base := clk.Now()
	ids := []string{}
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		for i := 0; i < 5; i++ {
			id := fmt.Sprintf("%02d%030x", i, i)
			ids = append(ids, id)
			p := &lifeboat.Point{ID: id, Vault: "main", App: "shop", Time: base.Add(time.Duration(i) * time.Hour), Partial: i == 4}
			if err := tx.PutPoint(ctx, p, map[string]string{"DB_URL": fmt.Sprint("h", i)}); err != nil {
				return err
			}
		}
		return nil
	}))
	must(t, db.View(ctx, func(tx *catalog.Tx) error {
		ps, err := tx.Points(ctx, catalog.PointFilter{App: "shop"}, catalog.Page{Limit: 2})
		if err != nil || len(ps) != 2 || ps[0].ID != ids[4] || ps[1].ID != ids[3] {
			t.Fatalf("page 1: %v", err)
		}
		ps, _ = tx.Points(ctx, catalog.PointFilter{App: "shop"}, catalog.Page{After: ps[1].ID, Limit: 10})
		if len(ps) != 3 || ps[0].ID != ids[2] {
			t.Errorf("page 2: %d points", len(ps))
		}
		p, s, err := tx.Point(ctx, ids[1][:8])
		if err != nil || p.ID != ids[1] || s["DB_URL"] != "h1" {
			t.Errorf("by prefix: %+v %v %v", p, s, err)
		}
		lp, err := tx.LatestPoint(ctx, "shop", 0, true)
		if err != nil || lp.ID != ids[3] {
			t.Errorf("latest complete: %v %v", lp, err)
		}
		lp, err = tx.LatestPoint(ctx, "shop", base.Add(90*time.Minute).UnixNano(), false)
		if err != nil || lp.ID != ids[1] {
			t.Errorf("latest at: %v %v", lp, err)
		}
		return nil
	}))
	del := clk.Now()
	must(t, db.Update(ctx, func(tx *catalog.Tx) error { return tx.SetPointDeleted(ctx, ids[0], &del) }))
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		n, err := tx.ForgetPoints(ctx, "main", map[string]bool{ids[0]: true, ids[1]: true, ids[2]: true})
		if n != 2 {
			t.Errorf("forgot %d", n)
		}
		return err
	}))
	must(t, db.View(ctx, func(tx *catalog.Tx) error {
		ps, _ := tx.Points(ctx, catalog.PointFilter{App: "shop"}, catalog.Page{})
		all, _ := tx.Points(ctx, catalog.PointFilter{App: "shop", IncludeDeleted: true}, catalog.Page{})
		if len(ps) != 2 || len(all) != 3 || all[2].DeletedAt == nil {
			t.Errorf("live %d, all %d", len(ps), len(all))
		}
		return nil
	}))
}

func newJob(t *testing.T, db *catalog.DB, kind, app string) *lifeboat.Job {
	t.Helper()
	var j *lifeboat.Job
	must(t, db.Update(context.Background(), func(tx *catalog.Tx) error {
		var err error
		j, _, err = tx.CreateJob(context.Background(), &lifeboat.Job{Kind: kind, App: app, Spec: json.RawMessage(`{"x":1}`)}, "", "")
		return err
	}))
	return j
}

func testJobsLease(t *testing.T, db *catalog.DB, clk *Clock) {
	ctx := context.Background()
	j := newJob(t, db, lifeboat.JobBackup, "shop")
	got, err := db.ClaimJob(ctx, "w1", time.Minute)
	if err != nil || got.ID != j.ID || got.Fence != 1 || got.State != lifeboat.JobRunning || got.Attempts != 1 {
		t.Fatalf("claim: %+v %v", got, err)
	}
	if _, err := db.ClaimJob(ctx, "w2", time.Minute); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("second claim of a leased job: %v", err)
	}
	if c, err := db.Heartbeat(ctx, j.ID, 1, time.Minute, &lifeboat.JobProgress{Files: 3}); err != nil || c {
		t.Fatalf("heartbeat: %v %v", c, err)
	}
	// w1 dies: the lease runs out and w2 takes over with a higher fence.
	clk.Add(2 * time.Minute)
	got, err = db.ClaimJob(ctx, "w2", time.Minute)
	if err != nil || got.Fence != 2 || got.LeaseOwner != "w2" || got.Attempts != 2 || got.Progress == nil || got.Progress.Files != 3 {
		t.Fatalf("takeover: %+v %v", got, err)
	}
	// w1's late writes are refused.
	if _, err := db.Heartbeat(ctx, j.ID, 1, time.Minute, nil); !errors.Is(err, catalog.ErrLeaseLost) {
		t.Errorf("stale heartbeat: %v", err)
	}
	if err := db.Update(ctx, func(tx *catalog.Tx) error { return tx.FinishJob(ctx, j.ID, 1, lifeboat.JobSucceeded, nil, "") }); !errors.Is(err, catalog.ErrLeaseLost) {
		t.Errorf("stale finish: %v", err)
	}
	// Cancel is seen on the next heartbeat.
	must(t, db.Update(ctx, func(tx *catalog.Tx) error { _, err := tx.CancelJob(ctx, j.ID); return err }))
	if c, err := db.Heartbeat(ctx, j.ID, 2, time.Minute, nil); err != nil || !c {
		t.Errorf("cancel not seen: %v %v", c, err)
	}
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		if err := tx.AppendLog(ctx, j.ID, "info", "one"); err != nil {
			return err
		}
		if err := tx.AppendLog(ctx, j.ID, "error", "two"); err != nil {
			return err
		}
		return tx.FinishJob(ctx, j.ID, 2, lifeboat.JobCancelled, map[string]int{"n": 1}, "cancelled")
	}))
	must(t, db.View(ctx, func(tx *catalog.Tx) error {
		j, err := tx.Job(ctx, j.ID)
		if err != nil || j.State != lifeboat.JobCancelled || j.FinishedAt == nil || string(j.Result) != `{"n":1}` || j.LeaseOwner != "" {
			t.Errorf("finished job: %+v %v", j, err)
		}
		logs, err := tx.Logs(ctx, j.ID, 1)
		if err != nil || len(logs) != 1 || logs[0].Msg != "two" || logs[0].Seq != 2 {
			t.Errorf("logs after 1: %+v %v", logs, err)
		}
		return nil
	}))
	// Requeue with a delay: not claimable before its time.
	j2 := newJob(t, db, lifeboat.JobVerify, "")
	got, err = db.ClaimJob(ctx, "w1", time.Minute)
	if err != nil || got.ID != j2.ID {
		t.Fatalf("claim j2: %v %v", got, err)
	}
	// Its result so far is saved under its fence only, and the retry reads it.
	if err := db.Update(ctx, func(tx *catalog.Tx) error {
		return tx.SaveJobResult(ctx, j2.ID, got.Fence+1, map[string]int{"done": 9})
	}); !errors.Is(err, catalog.ErrLeaseLost) {
		t.Errorf("result saved under a stale fence: %v", err)
	}
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		return tx.SaveJobResult(ctx, j2.ID, got.Fence, map[string]int{"done": 1})
	}))
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		return tx.RequeueJob(ctx, j2.ID, got.Fence, time.Minute, "storage unreachable")
	}))
	if err := db.Update(ctx, func(tx *catalog.Tx) error {
		return tx.SaveJobResult(ctx, j2.ID, got.Fence, map[string]int{"done": 9})
	}); !errors.Is(err, catalog.ErrLeaseLost) {
		t.Errorf("result saved for a queued job: %v", err)
	}
	if _, err := db.ClaimJob(ctx, "w1", time.Minute); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("requeued job claimed before its time: %v", err)
	}
	clk.Add(61 * time.Second)
	if got, err := db.ClaimJob(ctx, "w1", time.Minute); err != nil || got.ID != j2.ID || got.Fence != 2 || string(got.Result) != `{"done":1}` {
		t.Errorf("requeued job after its time: %+v %v", got, err)
	}
}

func testJobsExclusive(t *testing.T, db *catalog.DB, clk *Clock) {
	ctx := context.Background()
	a1 := newJob(t, db, lifeboat.JobBackup, "shop")
	clk.Add(time.Millisecond)
	a2 := newJob(t, db, lifeboat.JobBackup, "shop")
	clk.Add(time.Millisecond)
	b1 := newJob(t, db, lifeboat.JobBackup, "blog")
	g1, err := db.ClaimJob(ctx, "w", time.Minute)
	if err != nil || g1.ID != a1.ID {
		t.Fatalf("first: %v %v", g1, err)
	}
	g2, err := db.ClaimJob(ctx, "w", time.Minute)
	if err != nil || g2.ID != b1.ID {
		t.Fatalf("a second backup of shop ran beside the first: got %v, %v", g2, err)
	}
	must(t, db.Update(ctx, func(tx *catalog.Tx) error { return tx.FinishJob(ctx, a1.ID, g1.Fence, lifeboat.JobSucceeded, nil, "") }))
	g3, err := db.ClaimJob(ctx, "w", time.Minute)
	if err != nil || g3.ID != a2.ID {
		t.Fatalf("after the first finished: %v %v", g3, err)
	}
	// A prune of vault v waits for the backups of v; then backups of v wait
	// for it.
	mk := func(kind, app string) *lifeboat.Job {
		var j *lifeboat.Job
		must(t, db.Update(ctx, func(tx *catalog.Tx) error {
			var err error
			j, _, err = tx.CreateJob(ctx, &lifeboat.Job{Kind: kind, App: app, Vault: "v"}, "", "")
			return err
		}))
		clk.Add(time.Millisecond)
		return j
	}
	finish := func(j *lifeboat.Job) {
		must(t, db.Update(ctx, func(tx *catalog.Tx) error { return tx.FinishJob(ctx, j.ID, j.Fence, lifeboat.JobSucceeded, nil, "") }))
	}
	finish(g2)
	finish(g3)
	vb1 := mk(lifeboat.JobBackup, "x")
	vp1 := mk(lifeboat.JobPrune, "y")
	vb2 := mk(lifeboat.JobBackup, "z")
	gb1, _ := db.ClaimJob(ctx, "w", time.Minute)
	gb2, _ := db.ClaimJob(ctx, "w", time.Minute)
	if gb1 == nil || gb1.ID != vb1.ID || gb2 == nil || gb2.ID != vb2.ID {
		t.Fatalf("backups of other apps of the vault: %v %v", gb1, gb2)
	}
	if j, err := db.ClaimJob(ctx, "w", time.Minute); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("a prune ran beside backups of its vault: %v %v", j, err)
	}
	finish(gb1)
	finish(gb2)
	gp, err := db.ClaimJob(ctx, "w", time.Minute)
	if err != nil || gp.ID != vp1.ID {
		t.Fatalf("the prune after the backups: %v %v", gp, err)
	}
	mk(lifeboat.JobBackup, "x")
	if j, err := db.ClaimJob(ctx, "w", time.Minute); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("a backup ran beside a prune of its vault: %v %v", j, err)
	}
}

func testJobsConcurrentClaims(t *testing.T, db *catalog.DB, clk *Clock) {
	ctx := context.Background()
	const n = 20
	for i := 0; i < n; i++ {
		newJob(t, db, lifeboat.JobVerify, "")
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j, err := db.ClaimJob(ctx, fmt.Sprint("w", w), time.Minute)
				if errors.Is(err, catalog.ErrNotFound) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[j.ID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d jobs claimed, want %d", len(seen), n)
	}
	must(t, db.View(ctx, func(tx *catalog.Tx) error {
		c, err := tx.CountJobs(ctx)
		if c[lifeboat.JobRunning] != n {
			t.Errorf("counts %v", c)
		}
		return err
	}))
	for id, c := range seen {
		if c != 1 {
			t.Errorf("job %s claimed %d times", id, c)
		}
	}
}

func testIdempotency(t *testing.T, db *catalog.DB, clk *Clock) {
	ctx := context.Background()
	var first, again *lifeboat.Job
	var created bool
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		var err error
		first, created, err = tx.CreateJob(ctx, &lifeboat.Job{Kind: lifeboat.JobBackup, App: "shop"}, "admin:k1", "req-a")
		return err
	}))
	if !created {
		t.Fatal("first request not created")
	}
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		var err error
		again, created, err = tx.CreateJob(ctx, &lifeboat.Job{Kind: lifeboat.JobBackup, App: "shop"}, "admin:k1", "req-a")
		return err
	}))
	if created || again.ID != first.ID {
		t.Errorf("retry made a new job: %v %v", created, again.ID)
	}
	err := db.Update(ctx, func(tx *catalog.Tx) error {
		_, _, err := tx.CreateJob(ctx, &lifeboat.Job{Kind: lifeboat.JobBackup, App: "blog"}, "admin:k1", "req-b")
		return err
	})
	if lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Errorf("key reused for another request: %v", err)
	}
}

func testTokensAndAudit(t *testing.T, db *catalog.DB, clk *Clock) {
	ctx := context.Background()
	var tok, short string
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		if err := tx.PutPrincipal(ctx, &lifeboat.Principal{Name: "admin", Kind: "user", Admin: true}); err != nil {
			return err
		}
		var err error
		if tok, _, err = tx.CreateToken(ctx, "admin", 0); err != nil {
			return err
		}
		short, _, err = tx.CreateToken(ctx, "admin", time.Hour)
		if err != nil {
			return err
		}
		return tx.Audit(ctx, "admin", "token.create", "admin", "ok", map[string]string{"id": "x"})
	}))
	p, err := db.Authenticate(ctx, tok)
	if err != nil || p.Name != "admin" || !p.Admin {
		t.Fatalf("authenticate: %+v %v", p, err)
	}
	for _, bad := range []string{"", "lbt_nope", tok + "x", "Bearer " + tok} {
		if _, err := db.Authenticate(ctx, bad); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("token %q accepted: %v", bad, err)
		}
	}
	clk.Add(2 * time.Hour)
	if _, err := db.Authenticate(ctx, short); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("expired token accepted: %v", err)
	}
	must(t, db.View(ctx, func(tx *catalog.Tx) error {
		evs, err := tx.AuditEvents(ctx, catalog.AuditFilter{}, catalog.Page{})
		if err != nil || len(evs) != 1 || evs[0].Action != "token.create" || string(evs[0].Detail) != `{"id":"x"}` {
			t.Errorf("audit: %+v %v", evs, err)
		}
		return nil
	}))
}

func testRollback(t *testing.T, db *catalog.DB, clk *Clock) {
	ctx := context.Background()
	boom := errors.New("boom")
	err := db.Update(ctx, func(tx *catalog.Tx) error {
		if err := tx.PutHost(ctx, &lifeboat.Host{Name: "h", Kind: "local"}); err != nil {
			return err
		}
		if err := tx.Audit(ctx, "admin", "host.put", "h", "ok", nil); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	must(t, db.View(ctx, func(tx *catalog.Tx) error {
		if _, err := tx.Host(ctx, "h"); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("rolled-back host exists: %v", err)
		}
		if evs, _ := tx.AuditEvents(ctx, catalog.AuditFilter{}, catalog.Page{}); len(evs) != 0 {
			t.Errorf("rolled-back audit event kept: %v", evs)
		}
		return nil
	}))
}

func testLeases(t *testing.T, db *catalog.DB, clk *Clock) {
	ctx := context.Background()
	f1, ok, err := db.TryLease(ctx, "gc:main", "a", time.Minute)
	if err != nil || !ok || f1 != 1 {
		t.Fatalf("first grant: %d %v %v", f1, ok, err)
	}
	if _, ok, err := db.TryLease(ctx, "gc:main", "b", time.Minute); err != nil || ok {
		t.Fatalf("a held lease granted to another: %v %v", ok, err)
	}
	if f, ok, _ := db.TryLease(ctx, "gc:main", "a", time.Minute); !ok || f != 2 {
		t.Errorf("renewal by its owner: %d %v", f, ok)
	}
	clk.Add(2 * time.Minute)
	f3, ok, err := db.TryLease(ctx, "gc:main", "b", time.Minute)
	if err != nil || !ok || f3 != 3 {
		t.Fatalf("an expired lease not granted: %d %v %v", f3, ok, err)
	}
	must(t, db.ReleaseLease(ctx, "gc:main", 2)) // a stale fence frees nothing
	if _, ok, _ := db.TryLease(ctx, "gc:main", "a", time.Minute); ok {
		t.Error("released with a stale fence")
	}
	must(t, db.ReleaseLease(ctx, "gc:main", f3))
	if _, ok, _ := db.TryLease(ctx, "gc:main", "a", time.Minute); !ok {
		t.Error("not free after release")
	}
}

// testAccess: nested groups (cycles end), grants through them, assignment
// uniqueness, token listing and revocation, principal removal.
func testAccess(t *testing.T, db *catalog.DB, clk *Clock) {
	ctx := context.Background()
	var annTok string
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		for _, p := range []lifeboat.Principal{{Name: "ann", Kind: "user"}, {Name: "ops", Kind: "group"}, {Name: "oncall", Kind: "group"}, {Name: "app:shop", Kind: "service"}} {
			if err := tx.PutPrincipal(ctx, &p); err != nil {
				return err
			}
		}
		for _, m := range [][2]string{{"oncall", "ann"}, {"ops", "oncall"}, {"oncall", "ops"}, {"ops", "app:shop"}} { // ops <-> oncall: a cycle
			if err := tx.AddMember(ctx, m[0], m[1]); err != nil {
				return err
			}
		}
		for _, a := range []lifeboat.Assignment{{Principal: "ops", Role: "reader", Scope: "*"}, {Principal: "oncall", Role: "restore-operator", Scope: "app:shop"}, {Principal: "ann", Role: "auditor", Scope: "*"}} {
			if err := tx.PutAssignment(ctx, &a); err != nil {
				return err
			}
		}
		var err error
		annTok, _, err = tx.CreateToken(ctx, "ann", 0)
		return err
	}))
	// Twice the same (each in its own transaction: PostgreSQL aborts one
	// after a failed statement).
	if err := db.Update(ctx, func(tx *catalog.Tx) error { return tx.AddMember(ctx, "oncall", "ann") }); !errors.Is(err, catalog.ErrExists) {
		t.Errorf("a member added twice: %v", err)
	}
	if err := db.Update(ctx, func(tx *catalog.Tx) error {
		return tx.PutAssignment(ctx, &lifeboat.Assignment{Principal: "ops", Role: "reader", Scope: "*"})
	}); !errors.Is(err, catalog.ErrExists) {
		t.Errorf("the same assignment twice: %v", err)
	}
	p, err := db.Authenticate(ctx, annTok)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Groups, ",") != "oncall,ops" {
		t.Errorf("ann's groups: %v", p.Groups)
	}
	got := map[string]string{}
	for _, g := range p.Grants {
		got[g.Role+" "+g.Scope] = g.Via
	}
	want := map[string]string{"auditor *": "direct", "reader *": "group ops", "restore-operator app:shop": "group oncall"}
	if len(got) != len(want) {
		t.Errorf("ann's grants: %+v", p.Grants)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("ann's grant %s: via %q, want %q (all: %+v)", k, got[k], v, p.Grants)
		}
	}
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		ms, err := tx.Members(ctx, "ops")
		if err != nil || len(ms) != 2 || ms[0].Name != "app:shop" || ms[0].Kind != "service" || ms[1].Name != "oncall" {
			t.Errorf("members of ops: %+v %v", ms, err)
		}
		return nil
	}))
	clk.Add(time.Minute)
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		toks, err := tx.ListTokens(ctx, "ann")
		if err != nil || len(toks) != 1 {
			t.Fatalf("ann's tokens: %+v %v", toks, err)
		}
		info, err := tx.RevokeToken(ctx, toks[0].ID)
		if err != nil || info.RevokedAt == nil || !info.RevokedAt.Equal(clk.Now()) {
			t.Errorf("revoke: %+v %v", info, err)
		}
		if _, err := tx.RevokeToken(ctx, "nope"); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("revoke of no token: %v", err)
		}
		return nil
	}))
	if _, err := db.Authenticate(ctx, annTok); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("a revoked token accepted: %v", err)
	}
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		if err := tx.DeletePrincipal(ctx, "oncall"); err != nil {
			return err
		}
		gs, err := tx.GroupsOf(ctx, "ann")
		if err != nil || len(gs) != 0 {
			t.Errorf("ann's groups after oncall went: %v %v", gs, err)
		}
		as, err := tx.ListAssignments(ctx, "")
		if err != nil || len(as) != 2 {
			t.Errorf("assignments after oncall went: %+v %v", as, err)
		}
		if err := tx.DeletePrincipal(ctx, "oncall"); !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("removed twice: %v", err)
		}
		if err := tx.SetPasswordHash(ctx, "ann", "$argon2id$x"); err != nil {
			return err
		}
		kind, hash, err := tx.PasswordHash(ctx, "ann")
		if err != nil || kind != "user" || hash != "$argon2id$x" {
			t.Errorf("password hash: %s %s %v", kind, hash, err)
		}
		return nil
	}))
}

// testAuditChainConcurrent: writers appending audit events at the same time
// (on PostgreSQL, on different connections, as several servers would) all
// succeed, and the chain stays one unbroken line.
func testAuditChainConcurrent(t *testing.T, db *catalog.DB, clk *Clock) {
	ctx := context.Background()
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				errs <- db.Update(ctx, func(tx *catalog.Tx) error {
					return tx.Audit(ctx, fmt.Sprintf("writer%d", w), "test.event", fmt.Sprint(i), "ok", nil)
				})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent audit append failed: %v", err)
		}
	}
	cc, err := db.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cc.Break != nil || cc.Events != writers*each || cc.Head.Seq != writers*each {
		t.Errorf("chain after concurrent appends: %+v (break %+v)", cc, cc.Break)
	}
}

func testApproversAndOIDC(t *testing.T, db *catalog.DB, clk *Clock) {
	ctx := context.Background()
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		return tx.PutVault(ctx, &catalog.VaultRecord{Vault: lifeboat.Vault{Name: "main", Region: "local", Location: "/v", Approvers: "vault-approvers"}, SealedPassphrase: "sealed"})
	}))
	approvers := func() string {
		var v *catalog.VaultRecord
		must(t, db.View(ctx, func(tx *catalog.Tx) error { var err error; v, err = tx.Vault(ctx, "main"); return err }))
		return v.Approvers
	}
	if got := approvers(); got != "vault-approvers" {
		t.Errorf("approvers at creation: %q", got)
	}
	must(t, db.Update(ctx, func(tx *catalog.Tx) error { return tx.SetVaultApprovers(ctx, "main", "") }))
	if got := approvers(); got != "" {
		t.Errorf("approvers after a reset: %q", got)
	}
	err := db.Update(ctx, func(tx *catalog.Tx) error { return tx.SetVaultApprovers(ctx, "nope", "g") })
	if err != catalog.ErrNotFound {
		t.Errorf("approvers of no vault: %v", err)
	}

	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		if err := tx.PutOIDCLogin(ctx, "s1", []byte(`{"n":1}`), clk.Now().Add(10*time.Minute)); err != nil {
			return err
		}
		return tx.PutOIDCLogin(ctx, "s2", []byte(`{"n":2}`), clk.Now().Add(time.Minute))
	}))
	take := func(state string) ([]byte, error) {
		var doc []byte
		err := db.Update(ctx, func(tx *catalog.Tx) error { var err error; doc, err = tx.TakeOIDCLogin(ctx, state); return err })
		return doc, err
	}
	if doc, err := take("s1"); err != nil || string(doc) != `{"n":1}` {
		t.Errorf("take s1: %s %v", doc, err)
	}
	if _, err := take("s1"); err != catalog.ErrNotFound {
		t.Errorf("take s1 twice: %v", err)
	}
	clk.Add(2 * time.Minute)
	if _, err := take("s2"); err != catalog.ErrNotFound {
		t.Errorf("take an expired login: %v", err)
	}
	// Two takes of one state at once: exactly one wins.
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		return tx.PutOIDCLogin(ctx, "s3", []byte(`{}`), clk.Now().Add(time.Minute))
	}))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := take("s3"); err == nil {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d concurrent takes of one state won, want 1", wins.Load())
	}
}

func testSignInFailures(t *testing.T, db *catalog.DB, clk *Clock) {
	ctx := context.Background()
	start := clk.Now()
	for i := range 3 {
		at := start.Add(time.Duration(i) * time.Second)
		must(t, db.Update(ctx, func(tx *catalog.Tx) error {
			return tx.AddFailure(ctx, []string{"name:ann", "addr:192.0.2.1"}, at, at.Add(-time.Minute))
		}))
	}
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		return tx.AddFailure(ctx, []string{"addr:192.0.2.1"}, start.Add(5*time.Second), start.Add(-time.Minute))
	}))
	count := func(since time.Time, keys ...string) (int, time.Time) {
		var n int
		var oldest time.Time
		must(t, db.View(ctx, func(tx *catalog.Tx) error {
			var err error
			n, oldest, err = tx.RecentFailures(ctx, keys, since)
			return err
		}))
		return n, oldest
	}
	if n, oldest := count(start.Add(-time.Second), "name:ann", "addr:192.0.2.1"); n != 4 || !oldest.Equal(start) {
		t.Errorf("failures of the busiest key: %d since %v", n, oldest)
	}
	if n, oldest := count(start, "name:ann"); n != 2 || !oldest.Equal(start.Add(time.Second)) {
		t.Errorf("failures after the first: %d since %v", n, oldest)
	}
	if n, _ := count(start, "name:bob"); n != 0 {
		t.Errorf("failures of nobody: %d", n)
	}
	// A later failure forgets those older than its window.
	late := start.Add(time.Hour)
	must(t, db.Update(ctx, func(tx *catalog.Tx) error {
		return tx.AddFailure(ctx, []string{"name:bob"}, late, late.Add(-time.Minute))
	}))
	if n, _ := count(start.Add(-24*time.Hour), "name:ann", "addr:192.0.2.1"); n != 0 {
		t.Errorf("old failures kept: %d", n)
	}
}
