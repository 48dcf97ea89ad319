package server

import (
	"context"
	"database/sql"
	"fmt"
	"github.com/lifeboat-vault/lifeboat/internal/testenv"
	"log/slog"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/schedule"
)

// BenchmarkSchedulerTick10kApps measures one scheduler tick over a catalog
// of 10,000 apps and 100 policies (half the apps named by a policy, half
// picked by a label selector), on SQLite and, when LIFEBOAT_TEST_PG_DSN is
// set, on a fresh PostgreSQL database. Sub-benchmarks split the tick:
//
//	first   the first tick: every app new to its policy, 10,000 schedule states written
//	tick    a steady tick: the clock moves 30 s per op, the due apps get a job
//	read    the tick's catalog reads alone (apps, policies, schedule states)
//	assign  finding every app's policy alone (index built once per tick)
//	next    the next-run computation for every app alone (as in the first tick)
//
// The server is opened but not served: its job pool never starts, so the
// jobs the tick enqueues stay queued, and an app with a queued job is not
// enqueued again. With -count the clock goes on from run to run, so due/op
// varies between runs; the tick's cost hardly does.
func BenchmarkSchedulerTick10kApps(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchTick(b, "") })
	b.Run("postgres", func(b *testing.B) {
		base := testenv.Require(b, "LIFEBOAT_TEST_PG_DSN")["LIFEBOAT_TEST_PG_DSN"]
		admin, err := sql.Open("pgx", base)
		if err != nil {
			b.Fatal(err)
		}
		defer admin.Close()
		name := "lbbench_" + randomHex(6)
		if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
			b.Fatal(err)
		}
		defer admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		u, _ := url.Parse(base)
		u.Path = "/" + name
		benchTick(b, u.String())
	})
}

const benchApps, benchPolicies = 10_000, 100

func benchTick(b *testing.B, dsn string) {
	ctx := context.Background()
	dataDir := filepath.Join(b.TempDir(), "data")
	var clock atomic.Int64
	clock.Store(time.Date(2025, 3, 29, 18, 0, 0, 0, time.UTC).UnixNano()) // a DST weekend
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	s, err := Open(ctx, Config{DataDir: dataDir, Catalog: dsn, Tick: time.Hour, VaultKDF: &weakKDF, Log: slog.New(slog.DiscardHandler), Now: now})
	if err != nil {
		b.Fatal(err)
	}
	defer s.db.Close()
	seedTickCatalog(b, s, b.TempDir())

	// raw reaches the catalog's tables behind its back, to clear the
	// schedule states between runs of the first tick.
	var raw *sql.DB
	if dsn == "" {
		raw, err = sql.Open("sqlite", "file:"+filepath.Join(dataDir, CatalogFile)+"?_pragma=busy_timeout(10000)")
	} else {
		raw, err = sql.Open("pgx", dsn)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()

	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			if _, err := raw.Exec(`DELETE FROM schedule_state`); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			res, err := s.tick(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if res.Apps != benchApps || res.Due != 0 {
				b.Fatalf("first tick: %+v", res)
			}
		}
	})

	b.Run("tick", func(b *testing.B) {
		if _, err := s.tick(ctx); err != nil { // every app has a state
			b.Fatal(err)
		}
		var due, enq int
		for b.Loop() {
			clock.Add(int64(30 * time.Second))
			res, err := s.tick(ctx)
			if err != nil {
				b.Fatal(err)
			}
			due += res.Due
			enq += res.Enqueued
		}
		b.ReportMetric(float64(due)/float64(b.N), "due/op")
		b.ReportMetric(float64(enq)/float64(b.N), "enqueued/op")
	})

	var apps []*lifeboat.App
	var pols []*lifeboat.Policy
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			err := s.db.View(ctx, func(tx *catalog.Tx) error {
				var err error
				if apps, err = allApps(ctx, tx); err != nil {
					return err
				}
				if pols, err = allPolicies(ctx, tx); err != nil {
					return err
				}
				_, err = tx.ScheduleStates(ctx)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	if len(apps) != benchApps || len(pols) != benchPolicies {
		b.Fatalf("read %d apps, %d policies", len(apps), len(pols))
	}

	assigned := make([]*schedule.Schedule, len(apps))
	parsed := map[string]*schedule.Schedule{}
	for _, p := range pols {
		sc, err := schedule.Parse(scheduleSpec(p))
		if err != nil {
			b.Fatal(err)
		}
		parsed[p.Name] = sc
	}
	b.Run("assign", func(b *testing.B) {
		for b.Loop() {
			ix := indexPolicies(pols)
			for i, a := range apps {
				p := ix.For(a)
				if p == nil {
					b.Fatalf("app %s has no policy", a.Name)
				}
				assigned[i] = parsed[p.Name]
			}
		}
	})

	b.Run("next", func(b *testing.B) {
		t := now()
		for b.Loop() {
			for i, a := range apps {
				if next := assigned[i].Next(t, a.Name); !next.After(t) {
					b.Fatalf("%s: Next(%v) = %v", a.Name, t, next)
				}
			}
		}
	})
}

// seedTickCatalog writes a host, 100 policies and 10,000 apps in one
// transaction. Policies 0-49 name 100 apps each (apps 0-4999); policies
// 50-99 select by label the apps 5000-9999. The schedules mix cron and
// intervals, time zones, jitter and windows, like the schedule package's
// BenchmarkTick10kApps100Policies.
func seedTickCatalog(b *testing.B, s *Server, root string) {
	b.Helper()
	ctx := context.Background()
	zones := []string{"UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney"}
	err := s.db.Update(ctx, func(tx *catalog.Tx) error {
		if err := tx.PutHost(ctx, &lifeboat.Host{Name: "local", Kind: "local", Roots: []string{root}}); err != nil {
			return err
		}
		for i := range benchPolicies {
			p := &lifeboat.Policy{Name: fmt.Sprintf("policy-%03d", i), Retention: lifeboat.Retention{Last: 7, Daily: 14}}
			sc := &p.Schedule
			sc.TimeZone = zones[i%len(zones)]
			switch i % 4 {
			case 0:
				sc.Cron = fmt.Sprintf("%d %d * * *", i%60, i%24)
				sc.Jitter = lifeboat.Duration(15 * time.Minute)
			case 1:
				sc.Cron = fmt.Sprintf("0 %d * * %d", i%6, i%7)
				sc.Jitter = lifeboat.Duration(30 * time.Minute)
				sc.Window = "01:00-05:00"
			case 2:
				sc.Every = lifeboat.Duration(time.Duration(i%12+1) * time.Hour)
				sc.Jitter = lifeboat.Duration(5 * time.Minute)
			case 3:
				sc.Cron = "*/15 * * * *"
				sc.Jitter = lifeboat.Duration(2 * time.Minute)
				sc.Window = "22:00-04:00"
			}
			if i < benchPolicies/2 {
				for j := range benchApps / benchPolicies {
					p.Apps = append(p.Apps, benchAppName(i*(benchApps/benchPolicies)+j))
				}
			} else {
				p.Selector = map[string]string{"team": fmt.Sprintf("t%02d", i)}
			}
			if err := tx.PutPolicy(ctx, p); err != nil {
				return err
			}
		}
		for i := range benchApps {
			a := &lifeboat.App{Name: benchAppName(i), Environment: "production", Region: "local", Vault: "default",
				Components: []lifeboat.Component{{Name: "data", Kind: lifeboat.KindFiles, Host: "local", Path: filepath.Join(root, benchAppName(i))}}}
			if i >= benchApps/2 {
				a.Labels = map[string]string{"team": fmt.Sprintf("t%02d", benchPolicies/2+i%(benchPolicies/2))}
			}
			if err := tx.PutApp(ctx, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

func benchAppName(i int) string { return fmt.Sprintf("app-%05d", i) }
