package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

func newPool(t *testing.T, opts Options) (*Pool, *catalog.DB) {
	t.Helper()
	db, err := catalog.Open(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	opts.Owner = "test"
	opts.Poll = 10 * time.Millisecond
	if opts.Lease == 0 {
		opts.Lease = time.Second
	}
	opts.Backoff = func(int) time.Duration { return 10 * time.Millisecond }
	return New(db, opts), db
}

func enqueue(t *testing.T, db *catalog.DB, kind string) string {
	t.Helper()
	var id string
	err := db.Update(context.Background(), func(tx *catalog.Tx) error {
		j, _, err := tx.CreateJob(context.Background(), &lifeboat.Job{Kind: kind, App: "a-" + kind}, "", "")
		if j != nil {
			id = j.ID
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func wait(t *testing.T, db *catalog.DB, id string) *lifeboat.Job {
	t.Helper()
	for range 1000 {
		var j *lifeboat.Job
		db.View(context.Background(), func(tx *catalog.Tx) error {
			var err error
			j, err = tx.Job(context.Background(), id)
			return err
		})
		if j != nil && lifeboat.JobDone(j.State) {
			return j
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("job %s did not finish", id)
	return nil
}

func TestOutcomes(t *testing.T) {
	p, db := newPool(t, Options{Workers: 2, MaxTries: 3})
	var flaky, down atomic.Int32
	p.Handle("ok", func(ctx context.Context, r *Run) (any, error) {
		r.Progress(lifeboat.JobProgress{Files: 1})
		r.Logf(ctx, "info", "hello %d", 1)
		return map[string]int{"n": 1}, nil
	})
	p.Handle("flaky", func(ctx context.Context, r *Run) (any, error) {
		if flaky.Add(1) == 1 {
			return nil, lifeboat.Errorf(lifeboat.EUnavailable, "storage unreachable")
		}
		return nil, nil
	})
	p.Handle("down", func(ctx context.Context, r *Run) (any, error) {
		down.Add(1)
		return nil, lifeboat.Errorf(lifeboat.EUnavailable, "storage still unreachable")
	})
	p.Handle("bad", func(ctx context.Context, r *Run) (any, error) {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "no such thing")
	})
	p.Handle("panic", func(ctx context.Context, r *Run) (any, error) { panic("boom") })
	ids := map[string]string{}
	for _, k := range []string{"ok", "flaky", "down", "bad", "panic", "unknown"} {
		ids[k] = enqueue(t, db, k)
	}
	p.Start(context.Background())
	defer p.Stop(context.Background())
	want := map[string]struct {
		state    string
		attempts int
		err      string
	}{
		"ok":      {lifeboat.JobSucceeded, 1, ""},
		"flaky":   {lifeboat.JobSucceeded, 2, ""},
		"down":    {lifeboat.JobFailed, 3, "storage still unreachable"},
		"bad":     {lifeboat.JobFailed, 1, "no such thing"},
		"panic":   {lifeboat.JobFailed, 1, "job panicked: boom"},
		"unknown": {lifeboat.JobFailed, 1, `no executor for job kind "unknown"`},
	}
	for k, w := range want {
		j := wait(t, db, ids[k])
		if j.State != w.state || j.Attempts != w.attempts || j.Error != w.err {
			t.Errorf("%s: %s after %d attempts, %q; want %s, %d, %q", k, j.State, j.Attempts, j.Error, w.state, w.attempts, w.err)
		}
	}
	if down.Load() != 3 {
		t.Errorf("down ran %d times", down.Load())
	}
	db.View(context.Background(), func(tx *catalog.Tx) error {
		j, _ := tx.Job(context.Background(), ids["ok"])
		var res map[string]int
		json.Unmarshal(j.Result, &res)
		logs, _ := tx.Logs(context.Background(), ids["ok"], 0)
		if res["n"] != 1 || len(logs) != 1 || logs[0].Msg != "hello 1" {
			t.Errorf("result %s, logs %+v", j.Result, logs)
		}
		return nil
	})
}

// TestLeaseLostStopsTheJob: when another worker takes the job over (this
// one's lease ran out), the executor's context ends and nothing it does
// afterwards reaches the job.
func TestLeaseLostStopsTheJob(t *testing.T) {
	p, db := newPool(t, Options{Workers: 1, Lease: 300 * time.Millisecond, Heartbeat: 50 * time.Millisecond})
	stolen := make(chan struct{})
	var cause atomic.Value
	p.Handle("slow", func(ctx context.Context, r *Run) (any, error) {
		<-stolen
		<-ctx.Done()
		cause.Store(context.Cause(ctx))
		return "late result", nil
	})
	id := enqueue(t, db, "slow")
	p.Start(context.Background())
	defer p.Stop(context.Background())
	// Wait until it runs, then steal it: bump the fence as a takeover does.
	for {
		var j *lifeboat.Job
		db.View(context.Background(), func(tx *catalog.Tx) error { j, _ = tx.Job(context.Background(), id); return nil })
		if j.State == lifeboat.JobRunning {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	db.Update(context.Background(), func(tx *catalog.Tx) error {
		return tx.RequeueJob(context.Background(), id, 1, time.Hour, "taken over")
	})
	close(stolen)
	for cause.Load() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if !errors.Is(cause.Load().(error), errLeaseLost) {
		t.Errorf("cause %v", cause.Load())
	}
	time.Sleep(100 * time.Millisecond)
	db.View(context.Background(), func(tx *catalog.Tx) error {
		j, _ := tx.Job(context.Background(), id)
		if j.State != lifeboat.JobQueued || len(j.Result) != 0 {
			t.Errorf("the late worker changed the job: %s %s", j.State, j.Result)
		}
		return nil
	})
}
