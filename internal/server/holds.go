package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/marker"
)

// HoldRequest puts or releases a legal hold; the reason is required.
type HoldRequest struct {
	Reason string `json:"reason"`
}

func holdReason(r *http.Request) (string, error) {
	var req HoldRequest
	if err := decode(r, &req); err != nil {
		return "", err
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "a legal hold and its release need a reason")
	}
	if len(req.Reason) > marker.MaxText {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "reason: at most %d bytes", marker.MaxText)
	}
	return req.Reason, nil
}

// holdPoint: POST /api/v1/apps/{app}/points/{point}/hold and /release. A
// point hold is a marker in the vault: it survives the catalog, and the
// vault's garbage collection never purges a held point.
func (s *Server) holdPoint(hold bool) handler {
	return func(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
		ctx := r.Context()
		app := r.PathValue("app")
		reason, err := holdReason(r)
		if err != nil {
			return err
		}
		pt, _, err := s.findPoint(ctx, app, r.PathValue("point"))
		if err != nil {
			return err
		}
		v, err := s.vaults.get(ctx, pt.Vault)
		if err != nil {
			return err
		}
		kind, action := vault.MarkHold, "point.hold"
		if !hold {
			kind, action = vault.MarkRelease, "point.release"
		}
		if err := v.Mark(ctx, pt.ID, kind, reason, p.Name); err != nil {
			return err
		}
		err = s.db.Update(ctx, func(tx *catalog.Tx) error {
			return tx.Audit(ctx, p.Name, action, app, "ok", map[string]string{"point": pt.ID, "reason": reason})
		})
		if err != nil {
			return err
		}
		states, err := v.PointStates(ctx)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]any{"point": pt.ID, "state": states[pt.ID]})
	}
}

// appHoldPrefix starts the reason of the hold markers an app hold puts
// on its points.
const appHoldPrefix = "app hold: "

// holdApp: POST /api/v1/apps/{app}/hold and /release. While an app is
// held, none of its points is deleted: the hold is recorded in the
// catalog, and as a hold marker on each of its points in the vault (and
// on each new one, after its backup), so that it survives the loss of the
// catalog and binds the offline CLI too. The markers are written first:
// a failure half way leaves the catalog as it was, and a retry finishes.
func (s *Server) holdApp(hold bool) handler {
	return func(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
		ctx := r.Context()
		app := r.PathValue("app")
		reason, err := holdReason(r)
		if err != nil {
			return err
		}
		cur, err := s.appHold(ctx, app)
		if err != nil {
			return err
		}
		switch {
		case hold && cur != nil:
			return lifeboat.Errorf(lifeboat.EExists, "app %s is held already", app)
		case !hold && cur == nil:
			return lifeboat.Errorf(lifeboat.ENotFound, "app %s is not held", app)
		}
		var out *catalog.LegalHold
		if hold {
			out = &catalog.LegalHold{App: app, Reason: reason, By: p.Name}
			if _, err := s.holdMarkers(ctx, app, out); err != nil {
				return err
			}
		} else if err := s.releaseMarkers(ctx, app, p.Name, reason); err != nil {
			return err
		}
		err = s.db.Update(ctx, func(tx *catalog.Tx) error {
			if _, err := tx.App(ctx, app); err != nil {
				return notFound(err, "app", app)
			}
			if hold {
				if err := tx.PutLegalHold(ctx, out); err == catalog.ErrExists {
					return lifeboat.Errorf(lifeboat.EExists, "app %s is held already", app)
				} else if err != nil {
					return err
				}
				return tx.Audit(ctx, p.Name, "app.hold", app, "ok", map[string]string{"reason": reason})
			}
			if err := tx.DeleteLegalHold(ctx, app); err == catalog.ErrNotFound {
				return lifeboat.Errorf(lifeboat.ENotFound, "app %s is not held", app)
			} else if err != nil {
				return err
			}
			return tx.Audit(ctx, p.Name, "app.release", app, "ok", map[string]string{"reason": reason})
		})
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]any{"app": app, "hold": out})
	}
}

// appPointsByVault returns an app's points (soft-deleted ones too: a
// hold keeps them from being purged), by vault.
func (s *Server) appPointsByVault(ctx context.Context, app string) (map[string][]string, error) {
	if _, err := s.loadApp(ctx, app); err != nil {
		return nil, err
	}
	byVault := map[string][]string{}
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		pts, err := tx.Points(ctx, catalog.PointFilter{App: app, IncludeDeleted: true}, catalog.Page{Limit: 1 << 30})
		for _, pt := range pts {
			byVault[pt.Vault] = append(byVault[pt.Vault], pt.ID)
		}
		return err
	})
	return byVault, err
}

// holdMarkers puts a hold marker (reason "app hold: ...") on every point
// of a held app that has none; it returns how many it wrote.
func (s *Server) holdMarkers(ctx context.Context, app string, h *catalog.LegalHold) (int, error) {
	byVault, err := s.appPointsByVault(ctx, app)
	if err != nil {
		return 0, err
	}
	n := 0
	for name, ids := range byVault {
		v, err := s.vaults.get(ctx, name)
		if err != nil {
			return n, err
		}
		states, err := v.PointStates(ctx)
		if err != nil {
			return n, err
		}
		for _, id := range ids {
			if states[id].Held {
				continue
			}
			if err := v.Mark(ctx, id, vault.MarkHold, appHoldPrefix+h.Reason, h.By); err != nil {
				if lifeboat.ErrorCode(err) == lifeboat.ENotFound {
					continue // purged since the catalog listed it
				}
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// releaseMarkers ends the holds an app hold put on its points; a point
// held on its own since (a later hold marker of another reason) stays
// held.
func (s *Server) releaseMarkers(ctx context.Context, app, by, reason string) error {
	byVault, err := s.appPointsByVault(ctx, app)
	if err != nil {
		return err
	}
	for name, ids := range byVault {
		v, err := s.vaults.get(ctx, name)
		if err != nil {
			return err
		}
		states, err := v.PointStates(ctx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if st := states[id]; !st.Held || !strings.HasPrefix(st.HoldReason, appHoldPrefix) {
				continue
			}
			if err := v.Mark(ctx, id, vault.MarkRelease, appHoldPrefix+"released: "+reason, by); err != nil && lifeboat.ErrorCode(err) != lifeboat.ENotFound {
				return err
			}
		}
	}
	return nil
}

// holdHeldApps puts the hold markers of every held app on the points that
// lack them (each scheduler tick: new points, and any a failure missed).
func (s *Server) holdHeldApps(ctx context.Context) error {
	var holds []*catalog.LegalHold
	if err := s.db.View(ctx, func(tx *catalog.Tx) error { var err error; holds, err = tx.LegalHolds(ctx); return err }); err != nil {
		return err
	}
	var first error
	for _, h := range holds {
		n, err := s.holdMarkers(ctx, h.App, h)
		if err != nil && first == nil {
			first = fmt.Errorf("legal hold of app %s: %w", h.App, err)
		}
		if n > 0 {
			s.log.Info("legal hold: points marked held", "app", h.App, "points", n)
		}
	}
	return first
}

// appHold returns an app's legal hold, or nil.
func (s *Server) appHold(ctx context.Context, app string) (*catalog.LegalHold, error) {
	var h *catalog.LegalHold
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		h, err = tx.LegalHoldOf(ctx, app)
		if err == catalog.ErrNotFound {
			h, err = nil, nil
		}
		return err
	})
	return h, err
}
