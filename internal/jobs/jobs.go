// Package jobs runs the catalog's job queue: a pool of workers each takes a
// lease on the oldest runnable job (catalog.ClaimJob), extends it with
// heartbeats that also carry live progress and pick up cancel requests, and
// finishes it under its fence number, so a worker that lost its lease can
// change nothing. Transient failures (storage or catalog unavailable) are
// retried with exponential backoff; others fail the job with their cause.
// On shutdown, running jobs are cancelled and put back in the queue with a
// note, so another server (or this one, restarted) runs them again.
//
// What a job does is an Executor registered per kind; jobs imports catalog
// and lifeboat only.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// Run is the running job as an executor sees it.
type Run struct {
	Job *lifeboat.Job
	db  *catalog.DB
	mu  sync.Mutex
	pr  *lifeboat.JobProgress
	log *slog.Logger
}

// Progress replaces the job's live progress (sent with the next heartbeat).
func (r *Run) Progress(p lifeboat.JobProgress) {
	r.mu.Lock()
	r.pr = &p
	r.mu.Unlock()
}

func (r *Run) progress() *lifeboat.JobProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pr
}

// SaveResult records the job's result so far (see catalog.SaveJobResult):
// what a retry of the job finds in Job.Result. An executor whose retries
// need to know what the attempts before did saves it as it goes (a failed
// attempt's returned result is not kept: it may never get returned, if the
// server dies). A job whose lease is lost gets catalog.ErrLeaseLost.
func (r *Run) SaveResult(ctx context.Context, res any) error {
	ctx = context.WithoutCancel(ctx)
	return r.db.Update(ctx, func(tx *catalog.Tx) error { return tx.SaveJobResult(ctx, r.Job.ID, r.Job.Fence, res) })
}

// Logf appends a line to the job's log (and the server log).
func (r *Run) Logf(ctx context.Context, level, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.log.Info("job log", "job", r.Job.ID, "kind", r.Job.Kind, "app", r.Job.App, "level", level, "msg", msg)
	err := r.db.Update(context.WithoutCancel(ctx), func(tx *catalog.Tx) error { return tx.AppendLog(ctx, r.Job.ID, level, msg) })
	if err != nil {
		r.log.Warn("job log not written", "job", r.Job.ID, "err", err)
	}
}

// Executor does one kind of job. The result is stored as JSON. It must stop
// promptly when ctx is cancelled.
type Executor func(ctx context.Context, r *Run) (result any, err error)

// Options configure a Pool.
type Options struct {
	Workers   int           // default 2
	Lease     time.Duration // default 30 s
	Heartbeat time.Duration // default Lease/3
	Poll      time.Duration // idle poll interval, default 1 s
	MaxTries  int           // attempts before a transient error fails the job; default 5
	Owner     string        // this server's name in leases
	Log       *slog.Logger
	// Backoff is the delay before retry n (1-based); default: 5 s doubling
	// to 5 min, with ±20% jitter.
	Backoff func(n int) time.Duration
}

// Pool is a set of workers.
type Pool struct {
	db    *catalog.DB
	opts  Options
	exec  map[string]Executor
	wake  chan struct{}
	mu    sync.Mutex
	runs  map[string]context.CancelCauseFunc
	wg    sync.WaitGroup
	close context.CancelCauseFunc
}

// ErrShutdown is the cause given to jobs cancelled by a shutdown.
var ErrShutdown = errors.New("server shutting down")

// errCancelled is the cause of a cancel asked for by a user.
var errCancelled = errors.New("cancelled on request")

// errLeaseLost is the cause when another worker took the job over.
var errLeaseLost = errors.New("lease lost to another worker")

// New makes a pool; Start starts it.
func New(db *catalog.DB, opts Options) *Pool {
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	if opts.Lease <= 0 {
		opts.Lease = 30 * time.Second
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = opts.Lease / 3
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.MaxTries <= 0 {
		opts.MaxTries = 5
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Backoff == nil {
		opts.Backoff = backoff
	}
	return &Pool{db: db, opts: opts, exec: map[string]Executor{}, wake: make(chan struct{}, 1), runs: map[string]context.CancelCauseFunc{}}
}

// Handle registers the executor of a kind (before Start).
func (p *Pool) Handle(kind string, e Executor) { p.exec[kind] = e }

// Wake tells an idle worker to look for work now.
func (p *Pool) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Start starts the workers; they stop when Stop is called.
func (p *Pool) Start(ctx context.Context) {
	ctx, p.close = context.WithCancelCause(context.WithoutCancel(ctx))
	for i := range p.opts.Workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.worker(ctx, i)
		}()
	}
}

// Cancel stops a job if it runs in this pool (the catalog's cancel flag
// reaches other servers with their next heartbeat).
func (p *Pool) Cancel(id string) {
	p.mu.Lock()
	c := p.runs[id]
	p.mu.Unlock()
	if c != nil {
		c(errCancelled)
	}
}

// Stop cancels running jobs (they are put back in the queue) and waits for
// the workers to finish, or for ctx to end.
func (p *Pool) Stop(ctx context.Context) error {
	if p.close == nil {
		return nil
	}
	p.close(ErrShutdown)
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Pool) worker(ctx context.Context, i int) {
	owner := fmt.Sprintf("%s/w%d", p.opts.Owner, i)
	for ctx.Err() == nil {
		j, err := p.db.ClaimJob(ctx, owner, p.opts.Lease)
		if err != nil {
			if !errors.Is(err, catalog.ErrNotFound) && ctx.Err() == nil {
				p.opts.Log.Warn("claim job", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-p.wake:
			case <-time.After(p.opts.Poll):
			}
			continue
		}
		p.run(ctx, j)
	}
}

func (p *Pool) run(poolCtx context.Context, j *lifeboat.Job) {
	log := p.opts.Log.With("job", j.ID, "kind", j.Kind, "app", j.App, "fence", j.Fence)
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(poolCtx))
	defer cancel(nil)
	stop := context.AfterFunc(poolCtx, func() { cancel(context.Cause(poolCtx)) })
	defer stop()
	p.mu.Lock()
	p.runs[j.ID] = cancel
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.runs, j.ID)
		p.mu.Unlock()
	}()
	r := &Run{Job: j, db: p.db, pr: j.Progress, log: p.opts.Log}
	exec := p.exec[j.Kind]
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(p.opts.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			c, err := p.db.Heartbeat(context.WithoutCancel(ctx), j.ID, j.Fence, p.opts.Lease, r.progress())
			switch {
			case errors.Is(err, catalog.ErrLeaseLost):
				log.Warn("lease lost; stopping")
				cancel(errLeaseLost)
				return
			case err != nil:
				log.Warn("heartbeat", "err", err)
			case c:
				cancel(errCancelled)
				return
			}
		}
	}()
	log.Info("job started", "attempt", j.Attempts)
	var res any
	var err error
	if exec == nil {
		err = lifeboat.Errorf(lifeboat.EInternal, "no executor for job kind %q", j.Kind)
	} else if j.Cancel {
		err = errCancelled
	} else {
		res, err = safeRun(ctx, exec, r)
	}
	cause := context.Cause(ctx)
	cancel(nil)
	<-hbDone
	bg := context.WithoutCancel(poolCtx)
	switch {
	case errors.Is(cause, errLeaseLost):
		log.Warn("job abandoned: lease lost")
		return
	case err == nil:
		err = p.finish(bg, j, lifeboat.JobSucceeded, res, "")
	case errors.Is(cause, ErrShutdown):
		r.Logf(bg, "warn", "interrupted by server shutdown; queued to run again")
		err = p.db.Update(bg, func(tx *catalog.Tx) error {
			return tx.RequeueJob(bg, j.ID, j.Fence, 0, "interrupted by server shutdown; will run again")
		})
	case errors.Is(cause, errCancelled) || errors.Is(err, errCancelled):
		r.Logf(bg, "warn", "cancelled")
		err = p.finish(bg, j, lifeboat.JobCancelled, res, "cancelled on request")
	case lifeboat.ErrorCode(err) == lifeboat.EUnavailable && j.Attempts < p.opts.MaxTries:
		delay := p.opts.Backoff(j.Attempts)
		r.Logf(bg, "warn", "attempt %d failed: %v; retrying in %s", j.Attempts, err, delay.Round(time.Second))
		msg := err.Error()
		err = p.db.Update(bg, func(tx *catalog.Tx) error { return tx.RequeueJob(bg, j.ID, j.Fence, delay, msg) })
	default:
		msg := err.Error()
		r.Logf(bg, "error", "failed: %s", msg)
		err = p.finish(bg, j, lifeboat.JobFailed, res, msg)
	}
	if err != nil {
		log.Warn("job state not recorded", "err", err)
	}
}

func safeRun(ctx context.Context, exec Executor, r *Run) (res any, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = lifeboat.Errorf(lifeboat.EInternal, "job panicked: %v", v)
		}
	}()
	return exec(ctx, r)
}

func (p *Pool) finish(ctx context.Context, j *lifeboat.Job, state string, res any, msg string) error {
	return p.db.Update(ctx, func(tx *catalog.Tx) error {
		if err := tx.FinishJob(ctx, j.ID, j.Fence, state, res, msg); err != nil {
			return err
		}
		return tx.Audit(ctx, "system:worker", "job."+j.Kind, j.App, state, map[string]string{"job": j.ID})
	})
}

// backoff is the delay before retry n (1-based): 5 s, 10 s, 20 s... up to
// 5 min, with ±20% jitter.
func backoff(n int) time.Duration {
	d := 5 * time.Second << min(n-1, 6)
	d = min(d, 5*time.Minute)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
