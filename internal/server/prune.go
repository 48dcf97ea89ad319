package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/jobs"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/retention"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// maxClockSkew is how far the server's clock and the storage's may differ
// before a prune refuses to run.
const maxClockSkew = time.Hour

// PruneResult is what a prune did.
type PruneResult struct {
	Kept        int                  `json:"kept"`
	SoftDeleted []string             `json:"softDeleted"`
	Collect     *vault.CollectReport `json:"collect,omitempty"`
}

// runPrune applies the app's policy to its points, read from the vault's
// manifests (never the catalog's cache): the points the rules drop are
// soft-deleted with a marker in the vault; then garbage collection runs on
// the vault.
func (s *Server) runPrune(ctx context.Context, r *jobs.Run) (any, error) {
	var req PruneRequest
	if err := json.Unmarshal(r.Job.Spec, &req); err != nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "job %s: bad spec: %v", r.Job.ID, err)
	}
	a, err := s.loadApp(ctx, r.Job.App)
	if err != nil {
		return nil, err
	}
	var pols []*lifeboat.Policy
	if err := s.db.View(ctx, func(tx *catalog.Tx) error { pols, err = allPolicies(ctx, tx); return err }); err != nil {
		return nil, err
	}
	pol := policyFor(pols, a)
	if pol == nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "no policy applies to app %s: nothing to prune by", a.Name)
	}
	v, err := s.vaults.get(ctx, a.Vault)
	if err != nil {
		return nil, err
	}
	// The storage's clock must agree with ours: retention and soft-delete
	// ages would be wrong otherwise.
	st, err := v.StorageTime(ctx)
	if err != nil {
		return nil, err
	}
	if err := retention.CheckClockSkew(s.now(), st, maxClockSkew); err != nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "prune of %s stopped: %v", a.Name, err)
	}
	mps, err := v.Points(ctx)
	if err != nil {
		return nil, err
	}
	states, err := v.PointStates(ctx)
	if err != nil {
		return nil, err
	}
	var pts []*lifeboat.Point
	for _, p := range mps {
		if p.App != a.Name || states[p.ID].Deleted {
			continue
		}
		pts = append(pts, catalogPoint(p, a.Vault))
	}
	ds, err := decide(pol, pts)
	if err != nil {
		return nil, err
	}
	hold, err := s.appHold(ctx, a.Name)
	if err != nil {
		return nil, err
	}
	lock, err := s.lockOf(ctx, a.Vault)
	if err != nil {
		return nil, err
	}
	locked := 0
	for i := range ds {
		if states[ds[i].Point.ID].Held || hold != nil {
			ds[i].Keep = true
		}
		if lock != nil && !ds[i].Keep && s.now().Sub(ds[i].Point.Time) < lock.MinRetention.D() {
			ds[i].Keep = true
			locked++
		}
	}
	if locked > 0 {
		r.Logf(ctx, "info", "vault %s is locked (%s, minimum retention %v): %d points the policy would drop are kept", a.Vault, lock.Mode, lock.MinRetention, locked)
	}
	if hold != nil {
		r.Logf(ctx, "info", "app %s is under a legal hold (%s, by %s since %s): no point is deleted", a.Name, hold.Reason, hold.By, hold.Since.Format(time.RFC3339))
	}
	if err := retention.CheckDropFraction(ds); err != nil && !req.Force {
		r.Logf(ctx, "error", "%v; run the prune with force after checking `lifeboat policy simulate`", err)
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "prune of %s stopped: %v", a.Name, err)
	}
	res := &PruneResult{SoftDeleted: []string{}}
	for _, d := range ds {
		if d.Keep {
			res.Kept++
			continue
		}
		if err := s.softDelete(ctx, v, r.Job.RequestedBy, a.Name, d.Point.ID, "retention: policy "+pol.Name, map[string]string{"policy": pol.Name}); err != nil {
			return res, err
		}
		res.SoftDeleted = append(res.SoftDeleted, d.Point.ID)
	}
	r.Logf(ctx, "info", "retention kept %d points and soft-deleted %d", res.Kept, len(res.SoftDeleted))
	// One collection per vault at a time (a catalog lease): concurrent runs
	// would be safe (the format sees to it) but waste work.
	lease := "gc:" + a.Vault
	fence, ok, err := s.db.TryLease(ctx, lease, s.cfg.Name, time.Hour)
	if err != nil {
		return res, err
	}
	if !ok {
		r.Logf(ctx, "info", "another collection of vault %s is running; garbage collection skipped this time", a.Vault)
		return res, nil
	}
	defer s.db.ReleaseLease(context.WithoutCancel(ctx), lease, fence)
	rep, err := v.Collect(ctx, vault.CollectOptions{Now: s.now, SoftDeleteRetention: s.cfg.SoftDelete})
	if err != nil {
		return res, fmt.Errorf("garbage collection of vault %s: %w", a.Vault, err)
	}
	// This handle's index may name packs that are gone now.
	s.vaults.reload(a.Vault)
	res.Collect = rep
	r.Logf(ctx, "info", "garbage collection: %d points purged, %d packs condemned, %d deleted, %d bytes freed",
		len(rep.PointsPurged), rep.PacksCondemned, rep.PacksDeleted, rep.BytesFreed)
	if rep.TempDeleted > 0 {
		r.Logf(ctx, "info", "garbage collection: %d unfinished objects of writers dead for %s removed, %d bytes freed",
			rep.TempDeleted, vault.TempAge, rep.TempBytesFreed)
	}
	if rep.AbandonedPurges > 0 {
		r.Logf(ctx, "info", "garbage collection: %d purge tombstones removed from points a hold or undelete saved after an interrupted collection", rep.AbandonedPurges)
	}
	if len(rep.PointsPurged) > 0 {
		if _, err := s.syncVaultPoints(ctx, r.Job.RequestedBy, a.Vault); err != nil {
			return res, err
		}
	}
	return res, nil
}

// softDelete soft-deletes a point: a marker in the vault (the truth), then
// the catalog and the audit trail (details: what decided it).
func (s *Server) softDelete(ctx context.Context, v *vault.Vault, actor, app, id, why string, details map[string]string) error {
	if err := v.Mark(ctx, id, vault.MarkDelete, why, actor); err != nil {
		return err
	}
	now := s.now()
	ev := map[string]string{"point": id}
	for k, x := range details {
		ev[k] = x
	}
	return s.db.Update(ctx, func(tx *catalog.Tx) error {
		if err := tx.SetPointDeleted(ctx, id, &now); err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return err
		}
		return tx.Audit(ctx, actor, "point.soft-delete", app, "ok", ev)
	})
}

// undelete clears a point's soft deletion (a marker in the vault, then the
// catalog).
func (s *Server) undelete(ctx context.Context, actor string, pt *lifeboat.Point) error {
	v, err := s.vaults.get(ctx, pt.Vault)
	if err != nil {
		return err
	}
	if err := v.Mark(ctx, pt.ID, vault.MarkUndelete, "undelete", actor); err != nil {
		return err
	}
	return s.db.Update(ctx, func(tx *catalog.Tx) error {
		if err := tx.SetPointDeleted(ctx, pt.ID, nil); err != nil {
			return err
		}
		return tx.Audit(ctx, actor, "point.undelete", pt.App, "ok", map[string]string{"point": pt.ID})
	})
}
