package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/capture"
	"github.com/lifeboat-vault/lifeboat/internal/capture/config"
	"github.com/lifeboat-vault/lifeboat/internal/capture/sqlite"
	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/jobs"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
)

// BackupResult is a backup job's result.
type BackupResult struct {
	Point    string         `json:"point"`
	Partial  bool           `json:"partial,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
	Stats    manifest.Stats `json:"stats"`
	Seconds  float64        `json:"seconds"`
}

// RestoreResult is a restore job's result. While the job runs, and between
// its attempts, it is the result so far: a retry reads it.
type RestoreResult struct {
	Point string `json:"point"`
	// SafetyPoint holds what a restore to the original place replaced,
	// when one point holds it all; Safety names the point of each
	// component (two after a retry that found some components not yet
	// replaced: those are taken again, as they are then).
	SafetyPoint string            `json:"safetyPoint,omitempty"`
	Safety      map[string]string `json:"safety,omitempty"`
	// First: the job's first safety point of each component, and
	// Unprotected: the components some attempt had no complete one of
	// (for retries).
	First       map[string]string `json:"firstSafety,omitempty"`
	Unprotected []string          `json:"unprotected,omitempty"`
	// Started: the components an attempt began to replace at their place.
	// For them, a retry's safety point holds an earlier attempt's restore
	// (with what was written since): what the job replaced stays named by
	// the earlier one.
	Started    []string       `json:"started,omitempty"`
	Components []RestoredComp `json:"components"`
	Health     string         `json:"health,omitempty"` // "passed", "failed: ...", "" (no health URL)
	Seconds    float64        `json:"seconds"`          // the RTO of this restore
}

// RestoredComp is one restored component.
type RestoredComp struct {
	Name   string   `json:"name"`
	Target []string `json:"target"`
	Files  int64    `json:"files"`
	Bytes  int64    `json:"bytes"`
	// Kept lists where replaced data is kept: until the health check
	// passes (remove it yourself if it did not), or for good where it holds
	// what no point has (the job's log says what).
	Kept []string `json:"kept,omitempty"`
}

func (s *Server) loadApp(ctx context.Context, name string) (*lifeboat.App, error) {
	var a *lifeboat.App
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		a, err = tx.App(ctx, name)
		return notFound(err, "app", name)
	})
	return a, err
}

// reportProgress copies a vault progress into the job every second until
// stop is closed.
func reportProgress(r *jobs.Run, prog *vault.Progress, comp *string, stop <-chan struct{}) {
	start := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		b := prog.Bytes.Load()
		jp := lifeboat.JobProgress{Component: *comp, Files: prog.Files.Load(), Bytes: b}
		if el := time.Since(start).Seconds(); el > 0 {
			jp.Rate = float64(b) / el
		}
		if prog.ScanDone.Load() {
			jp.TotalFiles, jp.TotalBytes = prog.TotalFiles.Load(), prog.TotalBytes.Load()
			if jp.Rate > 0 && jp.TotalBytes > b {
				jp.ETA = time.Duration(float64(jp.TotalBytes-b) / jp.Rate * float64(time.Second)).Round(time.Second).String()
			}
		}
		r.Progress(jp)
	}
}

// settingsHasher returns the keyed hasher of settings, creating its key
// (sealed in the catalog) on first use; loaded once per process, since
// every point view and backup needs it.
func (s *Server) settingsHasher(ctx context.Context) (*config.Hasher, error) {
	s.hasherMu.Lock()
	defer s.hasherMu.Unlock()
	if s.hasher != nil {
		return s.hasher, nil
	}
	var key []byte
	err := s.db.Update(ctx, func(tx *catalog.Tx) error {
		sealed, err := tx.Secret(ctx, "settings-hash-key")
		if errors.Is(err, catalog.ErrNotFound) {
			key = []byte(randomHex(16)) // 32 bytes of hex text from 16 random bytes
			return tx.PutSecret(ctx, "settings-hash-key", s.mk.Seal("settings-hash-key", key))
		}
		if err != nil {
			return err
		}
		key, err = s.mk.Open("settings-hash-key", sealed)
		return err
	})
	if err != nil {
		return nil, err
	}
	h, err := config.NewHasher(key)
	if err != nil {
		return nil, err
	}
	s.hasher = h
	return h, nil
}

// backupApp captures app into its vault as one point and records it.
func (s *Server) backupApp(ctx context.Context, r *jobs.Run, a *lifeboat.App, labels map[string]string, only map[string]bool) (*manifest.Point, error) {
	g, err := s.guard(ctx)
	if err != nil {
		return nil, err
	}
	app := *a
	if only != nil {
		app.Components = nil
		for _, c := range a.Components {
			if only[c.Name] {
				app.Components = append(app.Components, c)
			}
		}
	}
	staging := filepath.Join(s.cfg.DataDir, StagingDir, r.Job.ID+"-"+randomHex(4))
	prep, err := capture.Prepare(ctx, &app, g, staging)
	if err != nil {
		return nil, err
	}
	defer prep.Close()
	v, err := s.vaults.get(ctx, a.Vault)
	if err != nil {
		return nil, err
	}
	prog := &vault.Progress{}
	comp := ""
	stop := make(chan struct{})
	defer close(stop)
	go reportProgress(r, prog, &comp, stop)
	for _, src := range prep.Sources {
		if dir, ok := vault.LinkedDir(src.Path); ok {
			r.Logf(ctx, "warn", "component %s: %s is a symlink to the directory %s: the link itself is captured, not what it points to; to back up the directory, register it as the component's path", src.Name, src.Path, dir)
		}
	}
	host, _ := os.Hostname()
	p, err := v.Backup(ctx, vault.BackupOptions{Sources: prep.Sources, Labels: labels, Host: host, App: a.Name, Progress: prog, Scan: true,
		Warn: func(path string, err error) { r.Logf(ctx, "warn", "%s: %v", path, err) }})
	if err != nil {
		return nil, err
	}
	h, err := s.settingsHasher(ctx)
	if err != nil {
		return nil, err
	}
	hashes := map[string]string{}
	for _, st := range prep.Settings {
		hashes[st.Key] = h.Sum(st)
	}
	cp := catalogPoint(p, a.Vault)
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		if err := tx.PutPoint(ctx, cp, hashes); err != nil {
			return err
		}
		return tx.Audit(ctx, r.Job.RequestedBy, "point.create", a.Name, "ok", map[string]string{"point": p.ID, "job": r.Job.ID, "reason": labels["reason"]})
	})
	if err != nil {
		return nil, err
	}
	if err := s.retainVault(ctx, a.Vault); err != nil {
		// The point is taken; the scheduler retries the retention.
		r.Logf(ctx, "warn", "compliance lock: retention in the storage not set yet: %v", err)
	}
	if h, err := s.appHold(ctx, a.Name); err == nil && h != nil {
		v, err := s.vaults.get(ctx, a.Vault)
		if err == nil {
			err = v.Mark(ctx, p.ID, vault.MarkHold, appHoldPrefix+h.Reason, h.By)
		}
		if err != nil {
			// The catalog's hold protects it meanwhile; the scheduler retries.
			r.Logf(ctx, "warn", "legal hold: the new point's hold marker is not written yet: %v", err)
		}
	}
	return p, nil
}

func catalogPoint(p *manifest.Point, vaultName string) *lifeboat.Point {
	cp := &lifeboat.Point{ID: p.ID, Vault: vaultName, App: p.App, Time: p.Time, Finished: p.Finished, Partial: p.Partial, Labels: p.Labels,
		BytesRead: p.Stats.BytesRead, BytesNew: p.Stats.BytesNew, Files: p.Stats.Files, Bytes: p.Stats.Bytes}
	for _, c := range p.Components {
		cp.Components = append(cp.Components, lifeboat.PointComponent{Name: c.Name, Kind: c.Kind, Host: c.Host, Source: c.Source, Taken: c.Taken, Meta: c.Meta})
	}
	return cp
}

func (s *Server) runBackup(ctx context.Context, r *jobs.Run) (any, error) {
	var req BackupRequest
	if err := json.Unmarshal(r.Job.Spec, &req); err != nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "job %s: bad spec: %v", r.Job.ID, err)
	}
	if s.testHook != nil {
		if err := s.testHook(ctx, r.Job); err != nil {
			return nil, err
		}
	}
	a, err := s.loadApp(ctx, r.Job.App)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	for k, v := range req.Labels {
		labels[k] = v
	}
	labels["reason"] = req.Reason
	labels["requested-by"] = r.Job.RequestedBy
	start := time.Now()
	if err := s.runHooks(ctx, r, a, lifeboat.PreBackup, nil); err != nil {
		return nil, err
	}
	r.Logf(ctx, "info", "backing up app %s (%d components) into vault %s", a.Name, len(a.Components), a.Vault)
	p, err := s.backupApp(ctx, r, a, labels, nil)
	if err != nil {
		return nil, err
	}
	if err := s.runHooks(ctx, r, a, lifeboat.PostBackup, nil); err != nil {
		return BackupResult{Point: p.ID, Partial: p.Partial, Warnings: p.Warnings, Stats: p.Stats, Seconds: time.Since(start).Seconds()}, err
	}
	res := BackupResult{Point: p.ID, Partial: p.Partial, Warnings: p.Warnings, Stats: p.Stats, Seconds: time.Since(start).Seconds()}
	r.Logf(ctx, "info", "point %s written: %d files, %d bytes read, %d bytes new", p.ID[:8], p.Stats.Files, p.Stats.BytesRead, p.Stats.BytesNew)
	if p.Partial {
		r.Logf(ctx, "warn", "point %s is partial: %d items could not be read", p.ID[:8], p.Stats.Warnings)
	}
	s.afterBackup(ctx, a)
	return res, nil
}

func (s *Server) runRestore(ctx context.Context, r *jobs.Run) (out any, err error) {
	var req RestoreRequest
	if err := json.Unmarshal(r.Job.Spec, &req); err != nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "job %s: bad spec: %v", r.Job.ID, err)
	}
	start := time.Now()
	// A retry (attempt 2 on) goes on from what the attempts before did (the
	// spec names the point by its id). Whatever this attempt fails on, its
	// result keeps what they did.
	res := &RestoreResult{Point: req.Point}
	if r.Job.Attempts > 1 && len(r.Job.Result) > 0 {
		var prev RestoreResult
		if json.Unmarshal(r.Job.Result, &prev) == nil && prev.Point == req.Point {
			res = &prev
		}
	}
	defer func() {
		if err != nil {
			out = res
		}
	}()
	a, err := s.loadApp(ctx, r.Job.App)
	if err != nil {
		return nil, err
	}
	v, err := s.vaults.get(ctx, r.Job.Vault)
	if err != nil {
		return nil, err
	}
	p, err := v.LoadPoint(ctx, req.Point)
	if err != nil {
		return nil, err
	}
	g, err := s.guard(ctx)
	if err != nil {
		return nil, err
	}
	res.Health, res.Seconds = "", 0
	comps := map[string]manifest.Component{}
	for _, c := range p.Components {
		comps[c.Name] = c
	}
	if req.To == "original" {
		// Refused before anything runs or changes (hooks included): a
		// directory with another file system mounted inside, or that is
		// one, cannot be swapped.
		for _, name := range req.Components {
			c := comps[name]
			if c.Kind != lifeboat.KindFiles {
				continue
			}
			hostName, dir, remote := capture.RemoteSource(c)
			if !remote {
				if err := capture.RefuseMounts(name, c.Source); err != nil {
					return nil, err
				}
				continue
			}
			if h := g.Hosts[hostName]; h != nil {
				if err := s.refuseRemoteMounts(ctx, h, name, dir); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := s.runHooks(ctx, r, a, lifeboat.PreRestore, req.Components); err != nil {
		return nil, err
	}
	// unprotected: the components of this attempt whose place no complete
	// safety point of it holds (what their swap replaces is kept for good).
	unprotected := map[string]bool{}
	earlierUnprotected := slices.Clone(res.Unprotected)
	if req.To == "original" {
		// A safety point of what is about to be replaced.
		only := map[string]bool{}
		for _, name := range req.Components {
			unprotected[name] = true
			c, ok := findComponent(a, name)
			if !ok || !s.present(ctx, g, c) {
				r.Logf(ctx, "info", "component %s is not (wholly) at its place: nothing of it to keep in the safety point", name)
				continue
			}
			if h := g.Hosts[hostName(c.Host)]; c.Kind == lifeboat.KindSQLite && (h == nil || h.Kind != "ssh") {
				if err := sqlite.Check(c.Path); err != nil {
					r.Logf(ctx, "warn", "component %s: %v; not in the safety point (a stopped-mode restore keeps the damaged file beside the restored one)", name, err)
					continue
				}
			}
			only[name] = true
		}
		if len(only) > 0 {
			sp, err := s.backupApp(ctx, r, a, map[string]string{"reason": catalog.SafetyReason, "requested-by": r.Job.RequestedBy, "restore-of": p.ID}, only)
			if err != nil {
				return nil, fmt.Errorf("safety point before restoring: %w", err)
			}
			if res.Safety == nil {
				res.Safety = map[string]string{}
			}
			r.Logf(ctx, "info", "safety point %s taken of what the restore replaces", sp.ID[:8])
			if sp.Partial {
				r.Logf(ctx, "warn", "safety point %s is partial (%d items could not be read): the files it replaces are kept for good (its databases are whole in it)", sp.ID[:8], sp.Stats.Warnings)
			}
			if res.First == nil {
				res.First = map[string]string{}
			}
			for name := range only {
				if !sp.Partial {
					delete(unprotected, name)
				}
				if res.First[name] == "" {
					res.First[name] = sp.ID
				}
				// An earlier attempt began to replace it: what the job
				// replaces is in that attempt's safety point; this one
				// holds that attempt's restore with what was written since
				// (by the app, restarted meanwhile, say), which the
				// restore replaces too.
				if early := res.Safety[name]; early != "" && slices.Contains(res.Started, name) {
					r.Logf(ctx, "info", "component %s: an earlier attempt began to replace it: what was there before the job is in safety point %s; %s holds what that attempt put there, with what was written since", name, early[:8], sp.ID[:8])
					continue
				}
				res.Safety[name] = sp.ID
			}
			res.SafetyPoint = res.onePoint()
		}
		for name := range unprotected {
			if !slices.Contains(res.Unprotected, name) {
				res.Unprotected = append(res.Unprotected, name)
			}
		}
		res.SafetyPoint = res.onePoint()
		res.save(ctx, r)
	}
	// Files and config first, databases after: a database file may live
	// inside a files component's directory, which a restore swaps whole.
	// Outer directories before what lies inside them: what a nested
	// component's restore keeps beside its target (in the outer
	// directory) must not go with the outer one's swap.
	order := append([]string{}, req.Components...)
	sort.SliceStable(order, func(i, j int) bool {
		di, dj := isDatabase(comps[order[i]].Kind), isDatabase(comps[order[j]].Kind)
		if di != dj {
			return dj
		}
		return depth(a, order[i]) < depth(a, order[j])
	})
	var swaps []*capture.Swap
	var records []string // restore records, kept until the job is done
	// settle takes in component name's swap to its place: what is kept,
	// which safety point holds what it replaced.
	settle := func(name string, rc *RestoredComp, sw *capture.Swap, rr *vault.RestoreResult) {
		swaps = append(swaps, sw)
		res.swapped(ctx, r, name, sw, unprotected[name], slices.Contains(earlierUnprotected, name))
		rc.Target, rc.Files, rc.Bytes, rc.Kept = sw.Target, rr.Files, rr.Bytes, sw.Kept()
		for _, n := range sw.Notes {
			r.Logf(ctx, "warn", "component %s: %s", name, n)
		}
	}
	for _, name := range order {
		c := comps[name]
		prog := &vault.Progress{}
		stop := make(chan struct{})
		cn := name
		go reportProgress(r, prog, &cn, stop)
		rc := RestoredComp{Name: name}
		ac, _ := findComponent(a, name)
		if server, database, toDB := dbTargetSpec(req.To); (toDB || req.To == "original") && (c.Kind == lifeboat.KindPostgres || c.Kind == lifeboat.KindMySQL) {
			opts := capture.DBRestoreOptions{Create: true, NoOwner: true}
			if !toDB { // the original database: its objects replaced
				server, database = ac.Server, ac.Database
				// From its first statement on, the database no longer
				// holds only what the safety point has: saved first, or
				// the restore does not start.
				opts = capture.DBRestoreOptions{Clean: true, Starting: func() error { return res.start(ctx, r, name) }}
			}
			t, err := g.DB(server, c.Kind)
			if err != nil {
				close(stop)
				return res, fmt.Errorf("component %s: %w", name, err)
			}
			info, err := capture.RestoreDB(ctx, v, p, c, t, database, opts)
			t.Close()
			close(stop)
			if err != nil {
				return res, err
			}
			rc.Target = []string{c.Kind + "://" + t.Where(database)}
			for _, tc := range info.Tables {
				rc.Files += tc.Rows // rows, for databases
			}
			r.Logf(ctx, "info", "component %s restored into %s: %d tables, row counts verified", name, rc.Target[0], len(info.Tables))
			res.put(rc, false)
			continue
		}
		var warns []string // what restored incompletely (an owner, mode or time)
		if hostName, _, remote := capture.RemoteSource(c); remote && req.To == "original" {
			h := g.Hosts[hostName]
			if h == nil || g.RemoteTarget == nil {
				close(stop)
				return res, lifeboat.Errorf(lifeboat.EInvalid, "component %s: host %s is not registered", name, hostName)
			}
			rt, closer, err := g.RemoteTarget(ctx, h)
			if err != nil {
				close(stop)
				return res, fmt.Errorf("component %s: %w", name, err)
			}
			defer closer.Close()
			restore := func(ctx context.Context, v *vault.Vault, p *manifest.Point, c manifest.Component, rt capture.RemoteTarget, tag string, prog *vault.Progress) (*capture.Swap, *vault.RestoreResult, error) {
				return capture.RestoreRemote(ctx, v, p, c, ac, rt, tag, prog)
			}
			switch c.Kind {
			case lifeboat.KindConfig:
				restore = capture.RestoreRemoteConfig
			case lifeboat.KindSQLite:
				mode := ac.RestoreMode
				restore = func(ctx context.Context, v *vault.Vault, p *manifest.Point, c manifest.Component, rt capture.RemoteTarget, tag string, prog *vault.Progress) (*capture.Swap, *vault.RestoreResult, error) {
					return capture.RestoreRemoteSQLite(ctx, v, p, c, mode, rt, tag, prog)
				}
			}
			sw, rr, err := restore(ctx, v, p, c, rt, r.Job.ID[len(r.Job.ID)-8:], prog)
			close(stop)
			if err != nil {
				return res, fmt.Errorf("component %s: %w", name, err)
			}
			settle(name, &rc, sw, rr)
			warns = rr.Warnings
		} else if req.To == "original" {
			sw, rr, err := capture.RestoreOriginal(ctx, v, p, c, ac, g, hostOf(a, name), r.Job.ID[len(r.Job.ID)-8:], prog)
			close(stop)
			if err != nil {
				return res, fmt.Errorf("component %s: %w", name, err)
			}
			settle(name, &rc, sw, rr)
			warns = rr.Warnings
		} else {
			// A retry (attempt 2 on) finishes what the attempts before left.
			rr, err := capture.RestoreToDir(ctx, v, p, c, g, dirHost(g, a, name), req.To, "job "+r.Job.ID, r.Job.Attempts > 1, prog)
			close(stop)
			if err != nil {
				return res, fmt.Errorf("component %s: %w", name, err)
			}
			if len(rr.Failed) > 0 {
				return res, lifeboat.Errorf(lifeboat.ECorrupt, "component %s: %d items failed to restore (first: %s)", name, len(rr.Failed), rr.Failed[0])
			}
			rc.Target, rc.Files, rc.Bytes = []string{filepath.Join(req.To, name)}, rr.Files, rr.Bytes+rr.KeptBytes
			warns = rr.Warnings
			records = append(records, rc.Target[0])
			if rr.Kept > 0 {
				r.Logf(ctx, "info", "component %s: what an earlier attempt restored into %s was finished: %d files (%d bytes) found whole and kept", name, rc.Target[0], rr.Kept, rr.KeptBytes)
			}
		}
		r.Logf(ctx, "info", "component %s restored to %v: %d files, %d bytes", name, rc.Target, rc.Files, rc.Bytes)
		for i, w := range warns {
			if i == 20 {
				r.Logf(ctx, "warn", "component %s: %d more warnings", name, len(warns)-20)
				break
			}
			r.Logf(ctx, "warn", "component %s: %s", name, w)
		}
		_, _, remote := capture.RemoteSource(c)
		res.put(rc, remote)
		if req.To == "original" {
			// Replaced, with what lies inside it (a database file in a
			// files component's directory): saved for a retry, which
			// then keeps naming this attempt's safety point for them. A
			// catalog that cannot save it does not stop the restore.
			if err := res.start(ctx, r, nestedIn(a, name, req.Components)...); err != nil {
				r.Logf(ctx, "warn", "component %s: restored, but the job's progress could not be saved for a retry: %v", name, err)
			}
		}
		if s.testRestoreHook != nil {
			if err := s.testRestoreHook(r.Job, name); err != nil {
				return res, err
			}
		}
	}
	// After the restore, before the health check: a post-restore hook
	// typically starts the app again.
	if err := s.runHooks(ctx, r, a, lifeboat.PostRestore, req.Components); err != nil {
		return res, err
	}
	if req.To == "original" {
		healthy := true
		if a.HealthURL != "" {
			if err := s.waitHealthy(ctx, a.HealthURL, s.cfg.HealthWait); err != nil {
				healthy = false
				res.Health = "failed: " + err.Error()
				r.Logf(ctx, "warn", "health check %s failed: %v; the replaced data is kept (see the result)", a.HealthURL, err)
			} else {
				res.Health = "passed"
			}
		}
		if healthy {
			for _, sw := range swaps {
				before := slices.Clone(sw.Old)
				if err := sw.Commit(); err != nil {
					r.Logf(ctx, "warn", "removing replaced data of %s: %v", sw.Component, err)
				}
				gone := slices.DeleteFunc(before, func(o string) bool { return slices.Contains(sw.Old, o) })
				for i := range res.Components {
					if res.Components[i].Name == sw.Component {
						res.Components[i].Kept = slices.DeleteFunc(res.Components[i].Kept, func(k string) bool { return slices.Contains(gone, k) })
					}
				}
			}
		}
	}
	if s.testRestoreHook != nil {
		if err := s.testRestoreHook(r.Job, ""); err != nil {
			return res, err
		}
	}
	res.Seconds = time.Since(start).Seconds()
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		return tx.Audit(ctx, r.Job.RequestedBy, "point.restore", a.Name, "ok", map[string]string{"point": p.ID, "job": r.Job.ID, "to": req.To})
	})
	if err != nil {
		return res, err
	}
	// Last: until here, a retry of the job (after a storage error, a
	// shutdown) resumes every component through its record.
	for _, dir := range records {
		if err := vault.RemoveRestoreRecord(dir); err != nil {
			r.Logf(ctx, "warn", "restored, but the restore's record stays: %v", err)
		}
	}
	return res, nil
}

// present reports whether a component's sources are all there to capture
// (on an SSH host: its directory, asked of the host).
func (s *Server) present(ctx context.Context, g *capture.Guard, c lifeboat.Component) bool {
	if h := g.Hosts[hostName(c.Host)]; h != nil && h.Kind == "ssh" {
		cl, err := s.dialSSH(ctx, h)
		if err != nil {
			return true // let the safety point fail, with the cause
		}
		defer cl.Close()
		if c.Kind == lifeboat.KindConfig {
			for _, f := range c.Files {
				if cl.Run(ctx, []string{"test", "-f", f}, nil, io.Discard) != nil {
					return false
				}
			}
			return true
		}
		if c.Kind == lifeboat.KindSQLite { // there, and a database (a damaged one is not kept)
			var head bytes.Buffer
			err := cl.Run(ctx, []string{"head", "-c", "16", "--", c.Path}, nil, &head)
			return err == nil && head.String() == "SQLite format 3\x00"
		}
		return cl.Run(ctx, []string{"test", "-d", c.Path}, nil, io.Discard) == nil
	}
	return presentLocal(c)
}

func presentLocal(c lifeboat.Component) bool {
	paths := c.Files
	if c.Path != "" {
		paths = []string{c.Path}
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			return false
		}
	}
	return true
}

func isDatabase(kind string) bool {
	return kind == lifeboat.KindSQLite || kind == lifeboat.KindPostgres || kind == lifeboat.KindMySQL
}

func findComponent(a *lifeboat.App, name string) (lifeboat.Component, bool) {
	for _, c := range a.Components {
		if c.Name == name {
			return c, true
		}
	}
	return lifeboat.Component{}, false
}

// waitHealthy polls url until it answers 2xx or the wait is over.
func (s *Server) waitHealthy(ctx context.Context, url string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return last
		case <-time.After(time.Second):
		}
	}
}

// VerifyResult is a verify job's result.
type VerifyResult struct {
	Vault    string          `json:"vault"`
	OK       bool            `json:"ok"`
	Problems []vault.Problem `json:"problems,omitempty"`
	Percent  float64         `json:"readDataPercent"`
}

func (s *Server) runVerify(ctx context.Context, r *jobs.Run) (any, error) {
	var spec struct {
		ReadData float64 `json:"readDataPercent"`
	}
	json.Unmarshal(r.Job.Spec, &spec)
	v, err := s.vaults.get(ctx, r.Job.Vault)
	if err != nil {
		return nil, err
	}
	rep, err := v.Check(ctx, vault.CheckOptions{ReadData: spec.ReadData > 0, ReadPercent: spec.ReadData})
	if err != nil {
		return nil, err
	}
	res := VerifyResult{Vault: r.Job.Vault, OK: rep.OK(), Problems: rep.Problems, Percent: spec.ReadData}
	if !rep.OK() {
		return res, lifeboat.Errorf(lifeboat.ECorrupt, "vault %s: %d problems found", r.Job.Vault, len(rep.Problems))
	}
	return res, nil
}

// start records (and saves, for a retry) that the places of components
// are being replaced, or have been. It fails (unavailable: the job is
// retried) if it cannot save that.
func (res *RestoreResult) start(ctx context.Context, r *jobs.Run, names ...string) error {
	for _, name := range names {
		if !slices.Contains(res.Started, name) {
			res.Started = append(res.Started, name)
		}
	}
	if err := r.SaveResult(ctx, res); err != nil {
		return lifeboat.Errorf(lifeboat.EUnavailable, "saving the restore's progress: %v", err)
	}
	return nil
}

// save saves the result so far for a retry; a catalog that cannot is said
// in the log, and the restore goes on.
func (res *RestoreResult) save(ctx context.Context, r *jobs.Run) {
	if err := r.SaveResult(ctx, res); err != nil {
		r.Logf(ctx, "warn", "the restore's progress could not be saved for a retry: %v", err)
	}
}

// put sets a component's entry: an earlier attempt's is replaced, but
// what it kept and is still there stays named (what an earlier attempt
// left under its staging name, say, which this one does not see again).
func (res *RestoreResult) put(rc RestoredComp, remote bool) {
	for i := range res.Components {
		if res.Components[i].Name != rc.Name {
			continue
		}
		for _, k := range res.Components[i].Kept {
			if slices.Contains(rc.Kept, k) {
				continue
			}
			if _, err := os.Lstat(k); remote || err == nil {
				rc.Kept = append(rc.Kept, k)
			}
		}
		res.Components[i] = rc
		return
	}
	res.Components = append(res.Components, rc)
}

// swapped settles, after component name's swap, which safety point holds
// what the job replaced there, and what must be kept for good because no
// complete safety point holds it: what it replaced now, if this attempt
// has none (unprotected); what an earlier attempt that swapped here first
// kept (Swap.Prior), if some earlier attempt had none (earlierUnprotected:
// it may be the one that swapped).
func (res *RestoreResult) swapped(ctx context.Context, r *jobs.Run, name string, sw *capture.Swap, unprotected, earlierUnprotected bool) {
	defer func() { res.SafetyPoint = res.onePoint() }()
	if sw.Earlier {
		first := res.First[name]
		switch {
		case earlierUnprotected || first == "":
			sw.KeepOnly(sw.Prior, "an earlier attempt of the job replaced it, maybe before any complete safety point of it was taken")
			delete(res.Safety, name)
		case res.Safety[name] != first:
			// An earlier attempt swapped here first without saving that
			// it had: what was there before the job is in the first
			// safety point (the later ones may hold that attempt's
			// restore).
			r.Logf(ctx, "info", "component %s: an earlier attempt of the job got as far as replacing it: what was there before the job is in safety point %s, the job's first (%.8s may hold that attempt's restore)", name, first[:8], res.Safety[name])
			res.Safety[name] = first
		}
	}
	if unprotected {
		sw.KeepOnly(slices.DeleteFunc(slices.Clone(sw.Old), func(o string) bool { return slices.Contains(sw.Prior, o) }), "no complete safety point holds it")
	}
}

// onePoint returns the safety point holding what every component replaced,
// or "" if there are several (or none).
func (res *RestoreResult) onePoint() string {
	one := ""
	for _, sp := range res.Safety {
		if one != "" && sp != one {
			return ""
		}
		one = sp
	}
	return one
}

// depth is how deep component name's place is (its shallowest file for a
// config component): outer places restore first.
func depth(a *lifeboat.App, name string) int {
	c, ok := findComponent(a, name)
	if !ok {
		return 0
	}
	paths := c.Files
	if c.Path != "" {
		paths = []string{c.Path}
	}
	d := -1
	for _, p := range paths {
		if n := strings.Count(filepath.Clean(p), string(filepath.Separator)); d < 0 || n < d {
			d = n
		}
	}
	return d
}

// nestedIn returns name and the components of names whose files lie inside
// its directory (a files component's): a swap of it replaces them too.
func nestedIn(a *lifeboat.App, name string, names []string) []string {
	out := []string{name}
	c, ok := findComponent(a, name)
	if !ok || c.Kind != lifeboat.KindFiles || c.Path == "" {
		return out
	}
	inside := func(p string) bool {
		return p != "" && strings.HasPrefix(filepath.Clean(p), filepath.Clean(c.Path)+string(filepath.Separator))
	}
	for _, n := range names {
		o, ok := findComponent(a, n)
		if !ok || n == name || hostName(o.Host) != hostName(c.Host) {
			continue
		}
		in := inside(o.Path)
		for _, f := range o.Files {
			in = in || inside(f)
		}
		if in {
			out = append(out, n)
		}
	}
	return out
}
