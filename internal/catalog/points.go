package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// PutPoint records (or refreshes) a point in the cache, with the keyed
// hashes of its settings (key -> hash; never a value).
func (t *Tx) PutPoint(ctx context.Context, p *lifeboat.Point, settings map[string]string) error {
	doc, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if settings == nil {
		settings = map[string]string{}
	}
	sb, err := json.Marshal(settings)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, `INSERT INTO points (id, vault, app, time, partial, reason, doc, settings, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET vault = excluded.vault, app = excluded.app, time = excluded.time, partial = excluded.partial,
			reason = excluded.reason, doc = excluded.doc, settings = excluded.settings, deleted_at = excluded.deleted_at`,
		p.ID, p.Vault, p.App, ns(p.Time), b2i(p.Partial), p.Labels["reason"], string(doc), string(sb), nsPtr(p.DeletedAt))
	return err
}

// ForgetPoints drops a vault's cached points that are not in keep (a
// rebuild from the vault's manifests).
func (t *Tx) ForgetPoints(ctx context.Context, vault string, keep map[string]bool) (int, error) {
	rows, err := t.query(ctx, `SELECT id FROM points WHERE vault = ?`, vault)
	if err != nil {
		return 0, err
	}
	var drop []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		if !keep[id] {
			drop = append(drop, id)
		}
	}
	rows.Close()
	for _, id := range drop {
		if _, err := t.exec(ctx, `DELETE FROM points WHERE id = ?`, id); err != nil {
			return 0, err
		}
	}
	return len(drop), nil
}

// PointFilter selects points.
type PointFilter struct {
	App            string
	Vault          string
	IncludeDeleted bool
}

// Points lists points newest first. Page.After is the id of the last point
// of the previous page.
func (t *Tx) Points(ctx context.Context, f PointFilter, pg Page) ([]*lifeboat.Point, error) {
	var conds []string
	var args []any
	if f.App != "" {
		conds = append(conds, "app = ?")
		args = append(args, f.App)
	}
	if f.Vault != "" {
		conds = append(conds, "vault = ?")
		args = append(args, f.Vault)
	}
	if !f.IncludeDeleted {
		conds = append(conds, "deleted_at IS NULL")
	}
	if pg.After != "" {
		var at int64
		if err := t.queryRow(ctx, `SELECT time FROM points WHERE id = ?`, pg.After).Scan(&at); err != nil {
			return nil, rowErr(err)
		}
		conds = append(conds, "(time < ? OR (time = ? AND id < ?))")
		args = append(args, at, at, pg.After)
	}
	q := `SELECT doc FROM points`
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += fmt.Sprintf(" ORDER BY time DESC, id DESC LIMIT %d", pg.limit())
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*lifeboat.Point
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		var p lifeboat.Point
		if err := json.Unmarshal([]byte(doc), &p); err != nil {
			return nil, err
		}
		out = append(out, &p)
	}
	return out, rows.Err()
}

// Point finds one point by id or unique id prefix (at least 6 characters).
func (t *Tx) Point(ctx context.Context, ref string) (*lifeboat.Point, map[string]string, error) {
	if len(ref) < 6 {
		return nil, nil, ErrNotFound
	}
	rows, err := t.query(ctx, `SELECT doc, settings FROM points WHERE id LIKE ? ORDER BY id LIMIT 2`, escapeLike(ref)+"%")
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var docs, sets []string
	for rows.Next() {
		var d, s string
		if err := rows.Scan(&d, &s); err != nil {
			return nil, nil, err
		}
		docs, sets = append(docs, d), append(sets, s)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	switch len(docs) {
	case 0:
		return nil, nil, ErrNotFound
	case 2:
		return nil, nil, lifeboat.Errorf(lifeboat.EInvalid, "point prefix %q is ambiguous", ref)
	}
	var p lifeboat.Point
	if err := json.Unmarshal([]byte(docs[0]), &p); err != nil {
		return nil, nil, err
	}
	settings := map[string]string{}
	if err := json.Unmarshal([]byte(sets[0]), &settings); err != nil {
		return nil, nil, err
	}
	return &p, settings, nil
}

func escapeLike(s string) string {
	// ids are hex; anything else cannot match, so drop LIKE's wildcards.
	return strings.NewReplacer("%", "", "_", "").Replace(s)
}

// SafetyReason labels the points a restore takes of what it replaces.
const SafetyReason = "pre-restore"

// LatestPoint returns the newest point of an app (complete ones only when
// complete is set) not later than at (zero: no bound). Safety points taken
// before restores are skipped: "latest" means the newest backup, not the
// damaged state a restore replaced (those are named by id).
func (t *Tx) LatestPoint(ctx context.Context, app string, atNS int64, complete bool) (*lifeboat.Point, error) {
	q := `SELECT id FROM points WHERE app = ? AND deleted_at IS NULL AND reason <> ?`
	args := []any{app, SafetyReason}
	if atNS != 0 {
		q += ` AND time <= ?`
		args = append(args, atNS)
	}
	if complete {
		q += ` AND partial = 0`
	}
	q += ` ORDER BY time DESC, id DESC LIMIT 1`
	var id string
	if err := t.queryRow(ctx, q, args...).Scan(&id); err != nil {
		return nil, rowErr(err)
	}
	p, _, err := t.Point(ctx, id)
	return p, err
}

// SetPointDeleted sets (at != nil) or clears a point's soft-deletion time
// in the cache.
func (t *Tx) SetPointDeleted(ctx context.Context, id string, at *time.Time) error {
	p, s, err := t.Point(ctx, id)
	if err != nil {
		return err
	}
	p.DeletedAt = at
	return t.PutPoint(ctx, p, s)
}

// PointIDs returns the ids of a vault's cached points, each with whether it
// is soft-deleted.
func (t *Tx) PointIDs(ctx context.Context, vault string) (map[string]bool, error) {
	rows, err := t.query(ctx, `SELECT id, deleted_at IS NOT NULL FROM points WHERE vault = ?`, vault)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		var deleted bool
		if err := rows.Scan(&id, &deleted); err != nil {
			return nil, err
		}
		out[id] = deleted
	}
	return out, rows.Err()
}
