package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// exclusiveKinds are job kinds of which at most one runs per app.
var exclusiveKinds = []string{lifeboat.JobBackup, lifeboat.JobRestore}

const jobCols = `id, kind, app, vault, state, requested_by, spec, progress, result, error, attempts, cancel, created_at, started_at, finished_at, lease_owner, lease_until, fence`

func scanJob(s interface{ Scan(...any) error }) (*lifeboat.Job, error) {
	var j lifeboat.Job
	var spec, prog, res string
	var cancel int
	var created, leaseUntil int64
	var started, finished sql.NullInt64
	if err := s.Scan(&j.ID, &j.Kind, &j.App, &j.Vault, &j.State, &j.RequestedBy, &spec, &prog, &res, &j.Error, &j.Attempts, &cancel,
		&created, &started, &finished, &j.LeaseOwner, &leaseUntil, &j.Fence); err != nil {
		return nil, rowErr(err)
	}
	j.Spec = json.RawMessage(spec)
	if res != "" {
		j.Result = json.RawMessage(res)
	}
	if prog != "" {
		j.Progress = &lifeboat.JobProgress{}
		if err := json.Unmarshal([]byte(prog), j.Progress); err != nil {
			return nil, err
		}
	}
	j.Cancel = cancel == 1
	j.CreatedAt = fromNS(created)
	j.StartedAt = fromNullNS(started)
	j.FinishedAt = fromNullNS(finished)
	if j.State == lifeboat.JobRunning {
		lu := fromNS(leaseUntil)
		j.LeaseUntil = &lu
	} else {
		j.LeaseOwner = ""
	}
	return &j, nil
}

// CreateJob queues a job. With an idempotency key already used by the same
// request, it returns the existing job and false; with a key used by a
// different request, an EInvalid error.
func (t *Tx) CreateJob(ctx context.Context, j *lifeboat.Job, idemKey, requestHash string) (*lifeboat.Job, bool, error) {
	if idemKey != "" {
		var req, id string
		err := t.queryRow(ctx, `SELECT request, response FROM idempotency WHERE key = ?`, idemKey).Scan(&req, &id)
		if err == nil {
			if req != requestHash {
				return nil, false, lifeboat.Errorf(lifeboat.EInvalid, "Idempotency-Key %q was used for a different request", idemKey)
			}
			old, err := t.Job(ctx, id)
			return old, false, err
		}
		if rowErr(err) != ErrNotFound {
			return nil, false, err
		}
	}
	j.ID = NewID(t.now)
	j.State = lifeboat.JobQueued
	j.CreatedAt = t.now
	if len(j.Spec) == 0 {
		j.Spec = json.RawMessage("{}")
	}
	if _, err := t.exec(ctx, `INSERT INTO jobs (id, kind, app, vault, state, requested_by, spec, created_at, not_before) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		j.ID, j.Kind, j.App, j.Vault, j.State, j.RequestedBy, string(j.Spec), ns(t.now), ns(t.now)); err != nil {
		return nil, false, err
	}
	if idemKey != "" {
		if _, err := t.exec(ctx, `INSERT INTO idempotency (key, request, response, created_at) VALUES (?, ?, ?, ?)`, idemKey, requestHash, j.ID, ns(t.now)); err != nil {
			return nil, false, err
		}
	}
	return j, true, nil
}

// Job returns one job.
func (t *Tx) Job(ctx context.Context, id string) (*lifeboat.Job, error) {
	return scanJob(t.queryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE id = ?`, id))
}

// JobFilter selects jobs.
type JobFilter struct {
	App, Kind, State string
}

// Jobs lists jobs newest first; Page.After is the last id of the previous page.
func (t *Tx) Jobs(ctx context.Context, f JobFilter, pg Page) ([]*lifeboat.Job, error) {
	var conds []string
	var args []any
	for col, v := range map[string]string{"app": f.App, "kind": f.Kind, "state": f.State} {
		if v != "" {
			conds = append(conds, col+" = ?")
			args = append(args, v)
		}
	}
	if pg.After != "" {
		conds = append(conds, "id < ?")
		args = append(args, pg.After)
	}
	q := `SELECT ` + jobCols + ` FROM jobs`
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY id DESC LIMIT %d", pg.limit())
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*lifeboat.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// ActiveJob returns a queued or running job of kind for app, if any.
func (t *Tx) ActiveJob(ctx context.Context, app, kind string) (*lifeboat.Job, error) {
	return scanJob(t.queryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE app = ? AND kind = ? AND state IN ('queued', 'running') ORDER BY id LIMIT 1`, app, kind))
}

// ClaimJob gives the oldest runnable job to owner with a lease until
// now+lease: a queued job whose time has come, or a running job whose lease
// expired (its worker died). A backup or restore is skipped while another
// of the same app runs; a backup waits while a prune (garbage collection)
// of its vault runs, and a prune while a backup of its vault runs — the
// coordination DESIGN.md asks for (the vault format keeps it safe anyway).
// The fence grows with every claim.
func (d *DB) ClaimJob(ctx context.Context, owner string, lease time.Duration) (*lifeboat.Job, error) {
	var out *lifeboat.Job
	err := d.Update(ctx, func(t *Tx) error {
		now := ns(t.now)
		lock := ""
		if d.dialect == Postgres {
			lock = " FOR UPDATE SKIP LOCKED"
		}
		excl := "'" + strings.Join(exclusiveKinds, "','") + "'"
		var id string
		err := t.queryRow(ctx, `SELECT id FROM jobs j
			WHERE ((state = 'queued' AND not_before <= ?) OR (state = 'running' AND lease_until < ?))
			AND NOT (kind IN (`+excl+`) AND EXISTS (SELECT 1 FROM jobs r WHERE r.app = j.app AND r.id <> j.id AND r.app <> ''
				AND r.kind IN (`+excl+`) AND r.state = 'running' AND r.lease_until >= ?))
			AND NOT (kind = 'backup' AND EXISTS (SELECT 1 FROM jobs r WHERE r.vault = j.vault AND r.vault <> ''
				AND r.kind = 'prune' AND r.state = 'running' AND r.lease_until >= ?))
			AND NOT (kind = 'prune' AND EXISTS (SELECT 1 FROM jobs r WHERE r.vault = j.vault AND r.vault <> ''
				AND r.kind = 'backup' AND r.state = 'running' AND r.lease_until >= ?))
			AND NOT (kind IN ('prune', 'reencrypt') AND EXISTS (SELECT 1 FROM jobs r WHERE r.vault = j.vault AND r.vault <> '' AND r.id <> j.id
				AND r.kind IN ('prune', 'reencrypt') AND r.state = 'running' AND r.lease_until >= ?))
			ORDER BY not_before, id LIMIT 1`+lock, now, now, now, now, now, now).Scan(&id)
		if err != nil {
			return rowErr(err)
		}
		r, err := t.exec(ctx, `UPDATE jobs SET state = 'running', lease_owner = ?, lease_until = ?, fence = fence + 1,
			attempts = attempts + 1, started_at = COALESCE(started_at, ?)
			WHERE id = ? AND ((state = 'queued' AND not_before <= ?) OR (state = 'running' AND lease_until < ?))`,
			owner, now+int64(lease), now, id, now, now)
		if err != nil {
			return err
		}
		if err := affected(r); err != nil {
			return err
		}
		out, err = t.Job(ctx, id)
		if err != nil {
			return err
		}
		return t.auditJob(ctx, out, "job.start", "running", map[string]any{"owner": owner, "attempt": out.Attempts})
	})
	return out, err
}

// auditJob records a job's change of state.
func (t *Tx) auditJob(ctx context.Context, j *lifeboat.Job, action, outcome string, detail map[string]any) error {
	target := j.App
	if target == "" {
		target = "vault:" + j.Vault
	}
	detail["job"], detail["kind"] = j.ID, j.Kind
	return t.Audit(ctx, "system:jobs", action, target, outcome, detail)
}

// auditJobID is auditJob for a job known by id.
func (t *Tx) auditJobID(ctx context.Context, id, action, outcome string, detail map[string]any) error {
	j, err := t.Job(ctx, id)
	if err != nil {
		return err
	}
	return t.auditJob(ctx, j, action, outcome, detail)
}

// Heartbeat extends a job's lease and records its progress. It returns
// ErrLeaseLost when the fence is stale, and whether a cancel was asked.
func (d *DB) Heartbeat(ctx context.Context, id string, fence int64, lease time.Duration, prog *lifeboat.JobProgress) (cancel bool, err error) {
	err = d.Update(ctx, func(t *Tx) error {
		pj := ""
		if prog != nil {
			b, err := json.Marshal(prog)
			if err != nil {
				return err
			}
			pj = string(b)
		}
		r, err := t.exec(ctx, `UPDATE jobs SET lease_until = ?, progress = ? WHERE id = ? AND fence = ? AND state = 'running'`,
			ns(t.now)+int64(lease), pj, id, fence)
		if err != nil {
			return err
		}
		if affected(r) != nil {
			return ErrLeaseLost
		}
		var c int
		if err := t.queryRow(ctx, `SELECT cancel FROM jobs WHERE id = ?`, id).Scan(&c); err != nil {
			return err
		}
		cancel = c == 1
		return nil
	})
	return cancel, err
}

// FinishJob sets a running job's final state, under its fence.
func (t *Tx) FinishJob(ctx context.Context, id string, fence int64, state string, result any, errMsg string) error {
	res := ""
	if result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			return err
		}
		res = string(b)
	}
	r, err := t.exec(ctx, `UPDATE jobs SET state = ?, result = ?, error = ?, finished_at = ?, lease_owner = '', lease_until = 0
		WHERE id = ? AND fence = ? AND state = 'running'`, state, res, errMsg, ns(t.now), id, fence)
	if err != nil {
		return err
	}
	if affected(r) != nil {
		return ErrLeaseLost
	}
	d := map[string]any{}
	if errMsg != "" {
		d["error"] = errMsg
	}
	return t.auditJobID(ctx, id, "job.finish", state, d)
}

// SaveJobResult records a running job's result so far, under its fence: a
// retry of the job (after a transient error, a shutdown or a worker's
// death) reads what the attempts before it did there (Job.Result), and so
// can anyone meanwhile. FinishJob replaces it with the final one.
func (t *Tx) SaveJobResult(ctx context.Context, id string, fence int64, result any) error {
	b, err := json.Marshal(result)
	if err != nil {
		return err
	}
	r, err := t.exec(ctx, `UPDATE jobs SET result = ? WHERE id = ? AND fence = ? AND state = 'running'`, string(b), id, fence)
	if err != nil {
		return err
	}
	if affected(r) != nil {
		return ErrLeaseLost
	}
	return nil
}

// RequeueJob puts a running job back in the queue (a retry after a transient
// error, or a server shutting down), to run again not before now+delay.
func (t *Tx) RequeueJob(ctx context.Context, id string, fence int64, delay time.Duration, errMsg string) error {
	r, err := t.exec(ctx, `UPDATE jobs SET state = 'queued', not_before = ?, error = ?, lease_owner = '', lease_until = 0
		WHERE id = ? AND fence = ? AND state = 'running'`, ns(t.now)+int64(delay), errMsg, id, fence)
	if err != nil {
		return err
	}
	if affected(r) != nil {
		return ErrLeaseLost
	}
	return t.auditJobID(ctx, id, "job.requeue", "queued", map[string]any{"error": errMsg, "delay": delay.String()})
}

// CancelJob cancels a queued job at once, or asks a running one to stop.
// It returns the job as it now is.
func (t *Tx) CancelJob(ctx context.Context, id string) (*lifeboat.Job, error) {
	if _, err := t.exec(ctx, `UPDATE jobs SET state = 'cancelled', finished_at = ?, error = 'cancelled before it started' WHERE id = ? AND state = 'queued'`, ns(t.now), id); err != nil {
		return nil, err
	}
	if _, err := t.exec(ctx, `UPDATE jobs SET cancel = 1 WHERE id = ? AND state = 'running'`, id); err != nil {
		return nil, err
	}
	return t.Job(ctx, id)
}

// AppendLog adds a line to a job's log.
func (t *Tx) AppendLog(ctx context.Context, id, level, msg string) error {
	var seq int64
	if err := t.queryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM job_logs WHERE job_id = ?`, id).Scan(&seq); err != nil {
		return err
	}
	_, err := t.exec(ctx, `INSERT INTO job_logs (job_id, seq, time, level, msg) VALUES (?, ?, ?, ?, ?)`, id, seq+1, ns(t.now), level, msg)
	return err
}

// Logs returns a job's log lines after seq.
func (t *Tx) Logs(ctx context.Context, id string, after int64) ([]lifeboat.JobLog, error) {
	rows, err := t.query(ctx, `SELECT seq, time, level, msg FROM job_logs WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT 1000`, id, after)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []lifeboat.JobLog
	for rows.Next() {
		var l lifeboat.JobLog
		var tm int64
		if err := rows.Scan(&l.Seq, &tm, &l.Level, &l.Msg); err != nil {
			return nil, err
		}
		l.Time = fromNS(tm)
		out = append(out, l)
	}
	return out, rows.Err()
}

// ScheduleState is when an app's policy last ran and runs next.
type ScheduleState struct {
	App, Policy      string
	LastRun, NextRun time.Time
}

// ScheduleStates returns every app's schedule state.
func (t *Tx) ScheduleStates(ctx context.Context) (map[string]ScheduleState, error) {
	rows, err := t.query(ctx, `SELECT app, policy, last_run, next_run FROM schedule_state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]ScheduleState{}
	for rows.Next() {
		var s ScheduleState
		var last, next int64
		if err := rows.Scan(&s.App, &s.Policy, &last, &next); err != nil {
			return nil, err
		}
		if last != 0 {
			s.LastRun = fromNS(last)
		}
		s.NextRun = fromNS(next)
		out[s.App] = s
	}
	return out, rows.Err()
}

// PutScheduleState writes an app's schedule state.
func (t *Tx) PutScheduleState(ctx context.Context, s ScheduleState) error {
	var last int64
	if !s.LastRun.IsZero() {
		last = ns(s.LastRun)
	}
	_, err := t.exec(ctx, `INSERT INTO schedule_state (app, policy, last_run, next_run) VALUES (?, ?, ?, ?)
		ON CONFLICT (app) DO UPDATE SET policy = excluded.policy, last_run = excluded.last_run, next_run = excluded.next_run`,
		s.App, s.Policy, last, ns(s.NextRun))
	return err
}

// TryLease grants the named lease to owner until now+ttl if it is free,
// expired, or already owner's; it returns the lease's fence and whether it
// was granted.
func (d *DB) TryLease(ctx context.Context, name, owner string, ttl time.Duration) (fence int64, ok bool, err error) {
	err = d.Update(ctx, func(t *Tx) error {
		now := ns(t.now)
		var cur string
		var until, f int64
		err := t.queryRow(ctx, `SELECT owner, until, fence FROM leases WHERE name = ?`, name).Scan(&cur, &until, &f)
		switch {
		case rowErr(err) == ErrNotFound:
			_, err = t.exec(ctx, `INSERT INTO leases (name, owner, until, fence) VALUES (?, ?, ?, 1)`, name, owner, now+int64(ttl))
			fence, ok = 1, err == nil
			return err
		case err != nil:
			return err
		case cur != owner && until > now:
			return nil // held by another
		}
		fence, ok = f+1, true
		_, err = t.exec(ctx, `UPDATE leases SET owner = ?, until = ?, fence = ? WHERE name = ? AND fence = ?`, owner, now+int64(ttl), fence, name, f)
		return err
	})
	if errors.Is(err, ErrExists) {
		return 0, false, nil // another server inserted it first
	}
	return fence, ok, err
}

// ReleaseLease frees a lease held under fence.
func (d *DB) ReleaseLease(ctx context.Context, name string, fence int64) error {
	return d.Update(ctx, func(t *Tx) error {
		_, err := t.exec(ctx, `UPDATE leases SET until = 0 WHERE name = ? AND fence = ?`, name, fence)
		return err
	})
}

// CountJobs counts jobs by state.
func (t *Tx) CountJobs(ctx context.Context) (map[string]int, error) {
	rows, err := t.query(ctx, `SELECT state, COUNT(*) FROM jobs GROUP BY state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, rows.Err()
}
