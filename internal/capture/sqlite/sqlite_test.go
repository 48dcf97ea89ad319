package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestSnapshotUnderWriter: a snapshot taken while a writer commits pairs of
// rows holds whole transactions only, its counts are its own, and the writer
// is not stopped (WAL and rollback-journal modes).
func TestSnapshotUnderWriter(t *testing.T) {
	for _, mode := range []string{"wal", "delete"} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			src := filepath.Join(dir, "app.db")
			db, err := sql.Open("sqlite", "file:"+src+"?_pragma=busy_timeout(10000)&_pragma=journal_mode("+mode+")")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			mustExec(t, db, `CREATE TABLE pairs (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, body BLOB)`)
			mustExec(t, db, `CREATE TABLE "odd ""name""" (x TEXT)`)
			mustExec(t, db, `INSERT INTO "odd ""name""" VALUES ('héllo ✓')`)
			mustExec(t, db, `WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 499)
				INSERT INTO pairs (grp, body) SELECT i, randomblob(200) FROM n UNION ALL SELECT i, randomblob(200) FROM n`)
			var stop atomic.Bool
			var written atomic.Int64
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 100000; !stop.Load(); i++ {
					tx, err := db.Begin()
					if err != nil {
						t.Error(err)
						return
					}
					tx.Exec(`INSERT INTO pairs (grp, body) VALUES (?, randomblob(100))`, i)
					tx.Exec(`INSERT INTO pairs (grp, body) VALUES (?, randomblob(100))`, i)
					if err := tx.Commit(); err != nil {
						t.Error(err)
						return
					}
					written.Add(1)
				}
			}()
			time.Sleep(20 * time.Millisecond)
			before := written.Load()
			dst := filepath.Join(dir, "copy.db")
			info, err := Snapshot(ctx, src, dst)
			time.Sleep(20 * time.Millisecond)
			stop.Store(true)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if written.Load() <= before {
				t.Error("the writer made no progress around the snapshot")
			}
			cp, _ := sql.Open("sqlite", "file:"+dst+"?mode=ro")
			defer cp.Close()
			var torn int
			cp.QueryRow(`SELECT count(*) FROM (SELECT grp FROM pairs GROUP BY grp HAVING count(*) <> 2)`).Scan(&torn)
			if torn != 0 {
				t.Errorf("%d torn transactions in the snapshot", torn)
			}
			var n int64
			cp.QueryRow(`SELECT count(*) FROM pairs`).Scan(&n)
			if info.Engine != "sqlite" || info.ServerVersion == "" || info.SizeBytes == 0 || len(info.Tables) != 2 {
				t.Fatalf("info %+v", info)
			}
			got := map[string]int64{}
			for _, tc := range info.Tables {
				got[tc.Name] = tc.Rows
			}
			if got["pairs"] != n || got[`odd "name"`] != 1 {
				t.Errorf("counts %v, copy has %d pairs", got, n)
			}
		})
	}
}

func TestRestoreModes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	target := filepath.Join(dir, "app.db")
	mk := func(path string, rows int) {
		db, _ := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(wal)")
		defer db.Close()
		mustExec(t, db, `CREATE TABLE IF NOT EXISTS t (x INTEGER)`)
		for i := range rows {
			mustExec(t, db, `INSERT INTO t VALUES (?)`, i)
		}
	}
	mk(target, 3)
	good := filepath.Join(dir, "good.db")
	mk(good, 10)
	count := func(db *sql.DB) int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Live: an open connection of "the app" sees the restored content.
	snap := filepath.Join(dir, "snap1.db")
	if _, err := Snapshot(ctx, good, snap); err != nil {
		t.Fatal(err)
	}
	app, _ := sql.Open("sqlite", "file:"+target+"?_pragma=busy_timeout(5000)")
	defer app.Close()
	app.SetMaxOpenConns(1)
	if count(app) != 3 {
		t.Fatal("setup")
	}
	if err := Restore(ctx, snap, target, Live); err != nil {
		t.Fatal(err)
	}
	if n := count(app); n != 10 {
		t.Errorf("the app's connection sees %d rows after a live restore, want 10", n)
	}
	app.Close()
	// Stopped: a corrupt database with a stale -wal is replaced whole.
	os.WriteFile(target, []byte("garbage garbage garbage garbage"), 0o644)
	os.WriteFile(target+"-wal", []byte("stale wal"), 0o644)
	snap2 := filepath.Join(dir, "snap2.db")
	if _, err := Snapshot(ctx, good, snap2); err != nil {
		t.Fatal(err)
	}
	if err := Restore(ctx, snap2, target, Stopped); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(target + "-wal"); !os.IsNotExist(err) {
		t.Error("the stale -wal is still there")
	}
	db2, _ := sql.Open("sqlite", "file:"+target)
	defer db2.Close()
	if n := count(db2); n != 10 {
		t.Errorf("after a stopped restore: %d rows", n)
	}
	db2.Close()
	// Live into a file that is no database (no safety point holds it):
	// the restore fails and the file is as it was, never overwritten.
	garbage := []byte(strings.Repeat("not a database, but someone's data ", 200))
	os.Remove(target + "-wal")
	os.Remove(target + "-shm")
	os.WriteFile(target, garbage, 0o644)
	if err := Restore(ctx, snap2, target, Live); err == nil {
		t.Error("a live restore into a file that is no database succeeded")
	}
	if b, _ := os.ReadFile(target); !bytes.Equal(b, garbage) {
		t.Errorf("a failed live restore changed the file (%d bytes)", len(b))
	}
	if err := Restore(ctx, good, target, "sideways"); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Errorf("bad mode: %v", err)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := Snapshot(ctx, filepath.Join(dir, "nope.db"), filepath.Join(dir, "c")); lifeboat.ErrorCode(err) != lifeboat.ENotFound {
		t.Errorf("missing: %v", err)
	}
	bad := filepath.Join(dir, "bad.db")
	os.WriteFile(bad, []byte(fmt.Sprint("not a database at all, really not")), 0o644)
	if _, err := Snapshot(ctx, bad, filepath.Join(dir, "c")); lifeboat.ErrorCode(err) != lifeboat.ECorrupt {
		t.Errorf("garbage: %v", err)
	}
	if PageSize(bad) != 4096 {
		t.Error("page size of garbage")
	}
}
