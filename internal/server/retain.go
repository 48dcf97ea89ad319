package server

import (
	"context"
	"fmt"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
)

// retainLocked runs a retention pass on every vault with a compliance lock
// in force. Errors of one vault do not stop the others; the first is
// returned.
func (s *Server) retainLocked(ctx context.Context) error {
	var locks map[string][]byte
	if err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		locks, err = tx.VaultLocks(ctx)
		return err
	}); err != nil {
		return err
	}
	var first error
	for name := range locks { // retainVault reads the lock again, in force or not
		if err := s.retainVault(ctx, name); err != nil && first == nil {
			first = fmt.Errorf("retention in vault %s: %w", name, err)
		}
	}
	return first
}

// retainVault gives every point of vault still inside the minimum
// retention of its compliance lock (soft-deleted ones too) a retain-until
// date of its time + the minimum retention on everything it needs, in the
// storage itself (S3 object lock), and records it in the catalog so that
// it is done once per point. Nothing happens without a compliance lock in
// force: during the cooling-off period the lock can still be removed, and
// storage retention cannot.
func (s *Server) retainVault(ctx context.Context, name string) error {
	s.retainMu.Lock()
	defer s.retainMu.Unlock()
	l, err := s.lockOf(ctx, name)
	if err != nil || !l.inForce(s.now()) {
		return err
	}
	now := s.now()
	want := map[string]time.Time{}
	err = s.db.View(ctx, func(tx *catalog.Tx) error {
		done, err := tx.PointRetentions(ctx, name)
		if err != nil {
			return err
		}
		pg := catalog.Page{Limit: 1000}
		for {
			pts, err := tx.Points(ctx, catalog.PointFilter{Vault: name, IncludeDeleted: true}, pg)
			if err != nil {
				return err
			}
			for _, p := range pts {
				until := p.Time.Add(l.MinRetention.D())
				if !until.After(now) {
					return nil // newest first: older points are past the lock's retention
				}
				if until.After(done[p.ID]) {
					want[p.ID] = until
				}
			}
			if len(pts) < pg.Limit {
				return nil
			}
			pg.After = pts[len(pts)-1].ID
		}
	})
	if err != nil || len(want) == 0 {
		return err
	}
	v, err := s.vaults.get(ctx, name)
	if err != nil {
		return err
	}
	rep, err := v.RetainPoints(ctx, want)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	return s.db.Update(ctx, func(tx *catalog.Tx) error {
		for id, until := range want {
			if err := tx.PutPointRetention(ctx, name, id, until); err != nil {
				return err
			}
		}
		return tx.Audit(ctx, "server", "vault.retain", "vault:"+name, "ok", map[string]any{"points": ids, "objects": rep.Objects, "extended": rep.Extended})
	})
}

// lockRetention is how long a new object of vault must be kept in the
// storage itself (audit segments): the minimum retention of its
// compliance lock in force, or 0.
func (s *Server) lockRetention(ctx context.Context, name string) (time.Duration, error) {
	l, err := s.lockOf(ctx, name)
	if err != nil || !l.inForce(s.now()) {
		return 0, err
	}
	return l.MinRetention.D(), nil
}
