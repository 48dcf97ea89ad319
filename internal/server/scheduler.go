package server

import (
	"context"
	"encoding/json"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/schedule"
)

// scheduler enqueues the backups policies call for, every Tick, until ctx
// ends. After downtime an app whose runs were missed gets one backup (never
// a burst), then its schedule goes on.
func (s *Server) scheduler(ctx context.Context) {
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	var lastHoldCheck time.Time
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("scheduler tick", "err", err)
		}
		if err := s.copyAuditToVaults(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("audit trail copy", "err", err)
		}
		if err := s.retainLocked(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("compliance lock retention", "err", err)
		}
		// Hold markers are written with each hold and each backup; this
		// repairs what a failure missed. It reads every marker of the held
		// apps' vaults, so not at every tick.
		if time.Since(lastHoldCheck) >= holdCheckEvery {
			lastHoldCheck = time.Now()
			if err := s.holdHeldApps(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("legal hold markers", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// holdCheckEvery is how often the scheduler checks that every point of a
// held app carries its hold marker.
const holdCheckEvery = time.Hour

// TickResult says what a scheduler tick did (tests and benchmarks).
type TickResult struct {
	Apps, Due, Enqueued int
}

// Tick runs the scheduler once at the server's clock.
func (s *Server) Tick(ctx context.Context) error {
	_, err := s.tick(ctx)
	return err
}

func (s *Server) tick(ctx context.Context) (TickResult, error) {
	s.schedMu.Lock()
	defer s.schedMu.Unlock()
	var res TickResult
	now := s.now()
	var apps []*lifeboat.App
	var pols []*lifeboat.Policy
	var states map[string]catalog.ScheduleState
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		if apps, err = allApps(ctx, tx); err != nil {
			return err
		}
		if pols, err = allPolicies(ctx, tx); err != nil {
			return err
		}
		states, err = tx.ScheduleStates(ctx)
		return err
	})
	if err != nil {
		return res, err
	}
	parsed := map[string]*schedule.Schedule{}
	for _, p := range pols {
		sc, err := schedule.Parse(scheduleSpec(p))
		if err != nil {
			s.log.Warn("policy has a bad schedule; skipped", "policy", p.Name, "err", err)
			continue
		}
		parsed[p.Name] = sc
	}
	var updates []catalog.ScheduleState
	var due []*lifeboat.App
	ix := indexPolicies(pols)
	for _, a := range apps {
		res.Apps++
		pol := ix.For(a)
		if pol == nil || parsed[pol.Name] == nil {
			continue
		}
		sc := parsed[pol.Name]
		st, ok := states[a.Name]
		if !ok || st.Policy != pol.Name {
			// New to this policy: the first run is the next slot.
			updates = append(updates, catalog.ScheduleState{App: a.Name, Policy: pol.Name, LastRun: st.LastRun, NextRun: sc.Next(now, a.Name)})
			continue
		}
		if now.Before(st.NextRun) {
			continue
		}
		// The slot came: run once, whatever number of slots passed.
		res.Due++
		due = append(due, a)
		updates = append(updates, catalog.ScheduleState{App: a.Name, Policy: pol.Name, LastRun: now, NextRun: sc.Next(now, a.Name)})
	}
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		for _, a := range due {
			if _, err := tx.ActiveJob(ctx, a.Name, lifeboat.JobBackup); err == nil {
				continue // one is queued or running already: never pile up
			}
			spec, _ := json.Marshal(BackupRequest{Reason: "scheduled"})
			if _, _, err := tx.CreateJob(ctx, &lifeboat.Job{Kind: lifeboat.JobBackup, App: a.Name, Vault: a.Vault, RequestedBy: "system:scheduler", Spec: spec}, "", ""); err != nil {
				return err
			}
			if err := tx.Audit(ctx, "system:scheduler", "job.create", a.Name, "ok", map[string]string{"kind": "backup", "reason": "scheduled"}); err != nil {
				return err
			}
			res.Enqueued++
		}
		for _, u := range updates {
			if err := tx.PutScheduleState(ctx, u); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && res.Enqueued > 0 && s.pool != nil {
		s.pool.Wake()
	}
	return res, err
}

func allApps(ctx context.Context, tx *catalog.Tx) ([]*lifeboat.App, error) {
	var out []*lifeboat.App
	pg := catalog.Page{Limit: 1000}
	for {
		as, err := tx.Apps(ctx, pg, false)
		if err != nil {
			return nil, err
		}
		out = append(out, as...)
		if len(as) < pg.Limit {
			return out, nil
		}
		pg.After = as[len(as)-1].Name
	}
}

func allPolicies(ctx context.Context, tx *catalog.Tx) ([]*lifeboat.Policy, error) {
	var out []*lifeboat.Policy
	pg := catalog.Page{Limit: 1000}
	for {
		ps, err := tx.Policies(ctx, pg)
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
		if len(ps) < pg.Limit {
			return out, nil
		}
		pg.After = ps[len(ps)-1].Name
	}
}

// afterBackup enqueues a prune of the app when its policy keeps points by
// rules (the prune job itself decides what, if anything, goes).
func (s *Server) afterBackup(ctx context.Context, a *lifeboat.App) {
	var pols []*lifeboat.Policy
	if err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		pols, err = allPolicies(ctx, tx)
		return err
	}); err != nil {
		return
	}
	pol := policyFor(pols, a)
	if pol == nil || retentionRules(pol).Empty() {
		return
	}
	err := s.db.Update(ctx, func(tx *catalog.Tx) error {
		if _, err := tx.ActiveJob(ctx, a.Name, lifeboat.JobPrune); err == nil {
			return nil
		}
		spec, _ := json.Marshal(PruneRequest{})
		_, _, err := tx.CreateJob(ctx, &lifeboat.Job{Kind: lifeboat.JobPrune, App: a.Name, Vault: a.Vault, RequestedBy: "system:scheduler", Spec: spec}, "", "")
		return err
	})
	if err != nil {
		s.log.Warn("enqueue prune", "app", a.Name, "err", err)
	}
}
