package server

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/marker"
)

// The destructive operations outside retention: deleting a point early,
// purging a retired app, deleting a vault, destroying a key slot, and
// changing who approves a vault's requests. Each checks what forbids it
// outright (legal holds, vault locks, the server's own key) first, then
// waits for two-person approval by the vault's approvers group, and runs
// (checking everything again) when approved.

// reasonParam reads the required ?reason= of a destructive request.
func reasonParam(r *http.Request, what string) (string, error) {
	reason := strings.TrimSpace(r.URL.Query().Get("reason"))
	if reason == "" {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "%s needs a reason (reason=...)", what)
	}
	if len(reason) > marker.MaxText {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "reason: at most %d bytes", marker.MaxText)
	}
	return reason, nil
}

// keepWhy says why a point must not be deleted now ("" if it may be):
// a legal hold (on the point or its app), or a vault lock whose minimum
// retention it is within. A governance lock is lifted (with approval)
// before its points can go; a compliance lock in force, never.
func keepWhy(pt *lifeboat.Point, held bool, hold *catalog.LegalHold, lock *VaultLock, now time.Time) string {
	switch {
	case hold != nil:
		return fmt.Sprintf("app %s is under a legal hold (%s, by %s)", pt.App, hold.Reason, hold.By)
	case held:
		return "the point is under a legal hold"
	case lock != nil && now.Sub(pt.Time) < lock.MinRetention.D():
		until := pt.Time.Add(lock.MinRetention.D()).Format(time.RFC3339)
		if lock.inForce(now) {
			return fmt.Sprintf("vault %s has a compliance lock in force: nobody can delete it before %s", pt.Vault, until)
		}
		return fmt.Sprintf("vault %s is locked (%s, minimum retention %v) until %s for this point: weaken or remove the lock first (that waits for approval)", pt.Vault, lock.Mode, lock.MinRetention, until)
	}
	return ""
}

// deleteGuards gathers what keepWhy needs for the points of one app.
type deleteGuards struct {
	v      *vault.Vault
	states map[string]vault.PointState
	hold   *catalog.LegalHold
	lock   *VaultLock
}

// guardsOf reads them for point of app in vaultName, or (point "") for
// every point of the vault.
func (s *Server) guardsOf(ctx context.Context, app, vaultName, point string) (*deleteGuards, error) {
	v, err := s.vaults.get(ctx, vaultName)
	if err != nil {
		return nil, err
	}
	g := &deleteGuards{v: v}
	if point != "" {
		st, err := v.PointState(ctx, point)
		if err != nil {
			return nil, err
		}
		g.states = map[string]vault.PointState{point: st}
	} else if g.states, err = v.PointStates(ctx); err != nil {
		return nil, err
	}
	if g.hold, err = s.appHold(ctx, app); err != nil {
		return nil, err
	}
	if g.lock, err = s.lockOf(ctx, vaultName); err != nil {
		return nil, err
	}
	return g, nil
}

// PointDeleteResult is what deleting a point did.
type PointDeleteResult struct {
	Point     string    `json:"point"`
	App       string    `json:"app"`
	DeletedAt time.Time `json:"deletedAt"`
	// RestorableUntil: a soft-deleted point is purged by garbage
	// collection after the soft-delete retention; until then, undelete.
	RestorableUntil time.Time `json:"restorableUntil"`
}

// deletePoint: DELETE /api/v1/apps/{app}/points/{point}?reason=. The
// point is soft-deleted before its retention ends, once approved.
func (s *Server) deletePoint(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	ctx := r.Context()
	app := r.PathValue("app")
	reason, err := reasonParam(r, "deleting a point")
	if err != nil {
		return err
	}
	pt, _, err := s.findPoint(ctx, app, r.PathValue("point"))
	if err != nil {
		return err
	}
	if pt.DeletedAt != nil {
		return lifeboat.Errorf(lifeboat.EInvalid, "point %s of app %s is soft-deleted already (since %s)", pt.ID, app, pt.DeletedAt.Format(time.RFC3339))
	}
	g, err := s.guardsOf(ctx, app, pt.Vault, pt.ID)
	if err != nil {
		return err
	}
	if why := keepWhy(pt, g.states[pt.ID].Held, g.hold, g.lock, s.now()); why != "" {
		return lifeboat.Errorf(lifeboat.EForbidden, "point %s of app %s cannot be deleted: %s", pt.ID, app, why)
	}
	approvers, err := s.approversOf(ctx, pt.Vault)
	if err != nil {
		return err
	}
	if err := s.needApproval(r, p, approvers, "point.delete", app,
		fmt.Sprintf("deletes point %s of app %s (taken %s) before its retention ends: %s", pt.ID, app, pt.Time.Format(time.RFC3339), reason)); err != nil {
		return err
	}
	if err := s.softDelete(ctx, g.v, p.Name, app, pt.ID, "deleted by "+p.Name+": "+reason, map[string]string{"reason": reason, "early": "true"}); err != nil {
		return err
	}
	now := s.now()
	return writeJSON(w, http.StatusOK, PointDeleteResult{Point: pt.ID, App: app, DeletedAt: now, RestorableUntil: now.Add(s.cfg.SoftDelete)})
}

// PurgeRequest purges a retired app's points.
type PurgeRequest struct {
	Reason string `json:"reason"`
}

// KeptPoint is a point a purge could not delete, and why.
type KeptPoint struct {
	Point string `json:"point"`
	Why   string `json:"why"`
}

// PurgeResult is what a purge did.
type PurgeResult struct {
	App             string      `json:"app"`
	SoftDeleted     []string    `json:"softDeleted"`
	Kept            []KeptPoint `json:"kept"`
	RestorableUntil time.Time   `json:"restorableUntil"`
}

// purgeApp: POST /api/v1/apps/{app}/purge. Soft-deletes every point of a
// retired app (retention keeps its newest point for ever otherwise), but
// those under a legal hold or a vault lock's minimum retention.
func (s *Server) purgeApp(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	ctx := r.Context()
	name := r.PathValue("app")
	var req PurgeRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" {
		return lifeboat.Errorf(lifeboat.EInvalid, "purging app %s needs a reason", name)
	}
	if len(req.Reason) > marker.MaxText {
		return lifeboat.Errorf(lifeboat.EInvalid, "reason: at most %d bytes", marker.MaxText)
	}
	var a *lifeboat.App
	var pts []*lifeboat.Point
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		if a, err = tx.App(ctx, name); err != nil {
			return notFound(err, "app", name)
		}
		pts, err = tx.Points(ctx, catalog.PointFilter{App: name}, catalog.Page{Limit: 1 << 30})
		return err
	})
	if err != nil {
		return err
	}
	if a.RetiredAt == nil {
		return lifeboat.Errorf(lifeboat.EInvalid, "app %s is not retired: retire it first (lifeboat app delete %s); a live app's points follow its policy", name, name)
	}
	res := &PurgeResult{App: name, SoftDeleted: []string{}, Kept: []KeptPoint{}}
	var doomed []*lifeboat.Point
	guards := map[string]*deleteGuards{} // by vault
	for _, pt := range pts {
		g := guards[pt.Vault]
		if g == nil {
			if g, err = s.guardsOf(ctx, name, pt.Vault, ""); err != nil {
				return err
			}
			guards[pt.Vault] = g
		}
		if why := keepWhy(pt, g.states[pt.ID].Held, g.hold, g.lock, s.now()); why != "" {
			res.Kept = append(res.Kept, KeptPoint{Point: pt.ID, Why: why})
			continue
		}
		doomed = append(doomed, pt)
	}
	if len(doomed) > 0 {
		vaults := map[string]bool{}
		for _, pt := range doomed {
			vaults[pt.Vault] = true
		}
		approvers := DefaultApprovers
		if len(vaults) == 1 {
			if approvers, err = s.approversOf(ctx, doomed[0].Vault); err != nil {
				return err
			}
		}
		if err := s.needApproval(r, p, approvers, "app.purge", name,
			fmt.Sprintf("soft-deletes %d points of retired app %s (%d kept: held or locked): %s", len(doomed), name, len(res.Kept), req.Reason)); err != nil {
			return err
		}
	}
	for _, pt := range doomed {
		if err := s.softDelete(ctx, guards[pt.Vault].v, p.Name, name, pt.ID, "purge of retired app by "+p.Name+": "+req.Reason, map[string]string{"reason": req.Reason, "purge": "true"}); err != nil {
			return err
		}
		res.SoftDeleted = append(res.SoftDeleted, pt.ID)
	}
	res.RestorableUntil = s.now().Add(s.cfg.SoftDelete)
	return writeJSON(w, http.StatusOK, res)
}

// deleteVault: DELETE /api/v1/vaults/{vault}?reason=. The vault is
// retired: nothing is backed up to, restored from or copied to it any
// more, and it leaves the status. Its storage is left as it was (Lifeboat
// never erases a bucket or directory): the operator removes it, and an
// exported key still opens it until then. Refused while an app uses it,
// while it has a lock, or while anything in it is under a legal hold.
func (s *Server) deleteVault(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	ctx := r.Context()
	name := r.PathValue("vault")
	reason, err := reasonParam(r, "deleting a vault")
	if err != nil {
		return err
	}
	var rec *catalog.VaultRecord
	var users, held []string
	var lock *VaultLock
	var points int
	var approvers string
	err = s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		if rec, err = tx.Vault(ctx, name); err != nil {
			return notFound(err, "vault", name)
		}
		if rec.RetiredAt != nil {
			return lifeboat.Errorf(lifeboat.ENotFound, "vault %s was deleted at %s already", name, rec.RetiredAt.Format(time.RFC3339))
		}
		apps, err := tx.Apps(ctx, catalog.Page{Limit: 1 << 30}, true)
		if err != nil {
			return err
		}
		for _, a := range apps {
			if a.Vault != name {
				continue
			}
			if a.RetiredAt == nil {
				users = append(users, a.Name)
			}
			if _, err := tx.LegalHoldOf(ctx, a.Name); err == nil {
				held = append(held, "app "+a.Name)
			}
		}
		pts, err := tx.Points(ctx, catalog.PointFilter{Vault: name}, catalog.Page{Limit: 1 << 30})
		points = len(pts)
		if err != nil {
			return err
		}
		if lock, err = s.vaultLock(ctx, tx, name); err != nil {
			return err
		}
		approvers, err = vaultApprovers(ctx, tx, name)
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case len(users) > 0:
		return lifeboat.Errorf(lifeboat.EInvalid, "vault %s is used by app(s) %s: move or retire them first", name, strings.Join(users, ", "))
	case lock != nil && lock.inForce(s.now()):
		return lifeboat.Errorf(lifeboat.EForbidden, "vault %s has a compliance lock in force since %s: nobody can delete it", name, lock.EffectiveAt.Format(time.RFC3339))
	case lock != nil:
		return lifeboat.Errorf(lifeboat.EForbidden, "vault %s is locked (%s): remove the lock first (that waits for approval)", name, lock.Mode)
	}
	if v, err := s.vaults.get(ctx, name); err == nil {
		states, err := v.PointStates(ctx)
		if err != nil {
			return err
		}
		for id, st := range states {
			if st.Held {
				held = append(held, "point "+id)
			}
		}
	} else if lifeboat.ErrorCode(err) != lifeboat.EUnavailable {
		return err
	}
	if len(held) > 0 {
		slices.Sort(held)
		return lifeboat.Errorf(lifeboat.EForbidden, "vault %s holds what is under a legal hold (%s): release it first", name, strings.Join(held, ", "))
	}
	if err := s.needApproval(r, p, approvers, "vault.delete", "vault:"+name,
		fmt.Sprintf("deletes vault %s (%s, %d points of retired apps): %s", name, rec.Location, points, reason)); err != nil {
		return err
	}
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		if err := tx.RetireVault(ctx, name); err != nil {
			return notFound(err, "vault", name)
		}
		return tx.Audit(ctx, p.Name, "vault.delete", "vault:"+name, "ok", map[string]any{"location": rec.Location, "points": points, "reason": reason})
	})
	if err != nil {
		return err
	}
	s.vaults.evict(name)
	var out *catalog.VaultRecord
	if err := s.db.View(ctx, func(tx *catalog.Tx) error { out, err = tx.Vault(ctx, name); return err }); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, vaultView(out))
}

// destroyKeySlot: DELETE /api/v1/vaults/{vault}/keys/{slot}?reason=. A
// key slot (e.g. an exported disaster kit's, feared leaked) is deleted
// from the vault, so its passphrase no longer opens it. Copies made
// before (a kit carries one) still do; see docs/access.md. The server's
// own slot is rotated, not destroyed.
func (s *Server) destroyKeySlot(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	ctx := r.Context()
	name, slot := r.PathValue("vault"), r.PathValue("slot")
	reason, err := reasonParam(r, "destroying a key slot")
	if err != nil {
		return err
	}
	keyMu.Lock()
	defer keyMu.Unlock()
	v, server, err := s.keyVault(ctx, name)
	if err != nil {
		return err
	}
	approvers, err := s.approversOf(ctx, name)
	if err != nil {
		return err
	}
	slots, err := v.KeySlots(ctx)
	if err != nil {
		return err
	}
	if slot, err = resolveSlot(slots, slot, name); err != nil {
		return err
	}
	if slot == server {
		return lifeboat.Errorf(lifeboat.EInvalid, "key slot %s is the server's own: rotate it (lifeboat key rotate --vault %s) instead", slot, name)
	}
	if err := s.needApproval(r, p, approvers, "key.destroy", "vault:"+name, fmt.Sprintf("destroys key slot %s of vault %s: %s", slot, name, reason)); err != nil {
		return err
	}
	if _, err := v.RotateKeySlot(ctx, nil, slot); err != nil {
		return err
	}
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		return tx.Audit(ctx, p.Name, "key.destroy", "vault:"+name, "ok", map[string]string{"slot": slot, "reason": reason})
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]string{"vault": name, "destroyed": slot})
}

// resolveSlot returns the id of the slot that id names: the whole id, or
// the first 8 characters or more of it, as key list and key export show it.
func resolveSlot(slots []vault.SlotInfo, id, vaultName string) (string, error) {
	var found []string
	for _, x := range slots {
		if x.ID == id {
			return id, nil
		}
		if len(id) >= 8 && strings.HasPrefix(x.ID, id) {
			found = append(found, x.ID)
		}
	}
	switch len(found) {
	case 0:
		return "", lifeboat.Errorf(lifeboat.ENotFound, "vault %s has no key slot %s (give its id as lifeboat key list shows it, 8 characters or more)", vaultName, id)
	case 1:
		return found[0], nil
	default:
		return "", lifeboat.Errorf(lifeboat.EInvalid, "key slot %s of vault %s is ambiguous: %d slots' ids start with it; give more of the id", id, vaultName, len(found))
	}
}

// ApproversRequest sets a vault's approvers group ("": the server's).
type ApproversRequest struct {
	Group string `json:"group"`
}

// putVaultApprovers: PUT /api/v1/vaults/{vault}/approvers. Approved by the
// vault's current approvers group.
func (s *Server) putVaultApprovers(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	ctx := r.Context()
	name := r.PathValue("vault")
	var req ApproversRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Group == DefaultApprovers {
		req.Group = ""
	}
	var cur string
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		rec, err := tx.Vault(ctx, name)
		if err != nil {
			return notFound(err, "vault", name)
		}
		if rec.RetiredAt != nil {
			return lifeboat.Errorf(lifeboat.ENotFound, "vault %s was deleted", name)
		}
		if err := checkApproversGroup(ctx, tx, name, req.Group); err != nil {
			return err
		}
		cur, err = vaultApprovers(ctx, tx, name)
		return err
	})
	if err != nil {
		return err
	}
	want := cmp.Or(req.Group, DefaultApprovers)
	if want != cur {
		if err := s.needApproval(r, p, cur, "approvers.change", "vault:"+name, fmt.Sprintf("makes group %s approve vault %s's requests instead of group %s", want, name, cur)); err != nil {
			return err
		}
		err = s.db.Update(ctx, func(tx *catalog.Tx) error {
			if err := tx.SetVaultApprovers(ctx, name, req.Group); err != nil {
				return notFound(err, "vault", name)
			}
			return tx.Audit(ctx, p.Name, "vault.approvers", "vault:"+name, "ok", map[string]string{"from": cur, "to": want})
		})
		if err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusOK, map[string]string{"vault": name, "approvers": want})
}
