package server

import (
	"context"
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

// holdApp: POST /api/v1/apps/{app}/hold and /release. While an app is
// held, pruning deletes none of its points.
func (s *Server) holdApp(hold bool) handler {
	return func(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
		ctx := r.Context()
		app := r.PathValue("app")
		reason, err := holdReason(r)
		if err != nil {
			return err
		}
		var out *catalog.LegalHold
		err = s.db.Update(ctx, func(tx *catalog.Tx) error {
			if _, err := tx.App(ctx, app); err != nil {
				return notFound(err, "app", app)
			}
			if hold {
				out = &catalog.LegalHold{App: app, Reason: reason, By: p.Name}
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
