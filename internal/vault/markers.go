package vault

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/marker"
)

// MarkKind is what a point marker does.
type MarkKind = marker.Kind

// Marker kinds.
const (
	MarkDelete   = marker.Delete   // soft delete: restorable until the soft-delete retention ends
	MarkUndelete = marker.Undelete // cancels a soft delete
	MarkHold     = marker.Hold     // never purged; cannot be deleted while held
	MarkRelease  = marker.Release  // cancels a hold
)

// PointState is what a point's markers say about it. The newest marker of
// each pair decides: delete/undelete, hold/release.
type PointState struct {
	Deleted   bool      `json:"deleted"`
	DeletedAt time.Time `json:"deleted_at,omitzero"` // time of the deciding delete marker (server clock)
	Held      bool      `json:"held"`
	Reason    string    `json:"reason,omitempty"` // of the deciding delete marker
	By        string    `json:"by,omitempty"`
	// HoldReason is the reason of the deciding hold marker (while held).
	HoldReason string `json:"hold_reason,omitempty"`
}

// Mark writes a marker for a point: a new object, never overwriting one.
// The time is the vault's clock (Options.Now: the server's, never a client's).
// A held point cannot be marked deleted (EInvalid), nor one inside the
// vault's lock (EForbidden: see RecordLock); a point without a manifest
// cannot be marked (ENotFound).
func (v *Vault) Mark(ctx context.Context, pointID string, kind MarkKind, reason, by string) error {
	if !manifest.ValidID(pointID) {
		return lifeboat.Errorf(lifeboat.EInvalid, "bad point id %q: want 32 hex digits", pointID)
	}
	if !kind.Valid() {
		return lifeboat.Errorf(lifeboat.EInvalid, "unknown marker kind %q", kind)
	}
	if len(reason) > marker.MaxText || len(by) > marker.MaxText {
		return lifeboat.Errorf(lifeboat.EInvalid, "reason or author longer than %d bytes", marker.MaxText)
	}
	if ok, err := v.pointExists(ctx, pointID); err != nil {
		return storageError(v.be, err)
	} else if !ok {
		return lifeboat.Errorf(lifeboat.ENotFound, "no point %s in the vault at %s", pointID, v.be.Location())
	}
	if kind == MarkDelete {
		st, err := v.pointState(ctx, pointID)
		if err != nil {
			return err
		}
		if st.Held {
			return lifeboat.Errorf(lifeboat.EInvalid, "point %s is held: release the hold before deleting it", pointID[:8])
		}
		// The vault's lock binds every writer, the offline CLI included.
		lock, err := v.Lock(ctx)
		if err != nil {
			return err
		}
		if lock != nil {
			p, err := v.LoadPoint(ctx, pointID)
			if err != nil {
				return err
			}
			if until := p.Time.Add(lock.MinRetention); v.opts.Now().Before(until) {
				return lifeboat.Errorf(lifeboat.EForbidden, "point %s is inside the %s lock of the vault at %s (minimum retention %v) until %s: it cannot be deleted before",
					pointID[:8], lock.Mode, v.be.Location(), lock.MinRetention, until.UTC().Format(time.RFC3339))
			}
		}
	}
	// A marker written after another must sort after it, whatever the
	// writers' clocks (a CLI's clock behind the server's made an undelete
	// lose to the delete it followed, and the point was purged).
	// The names alone say when (a damaged marker does not block this); a
	// name more than a day ahead of the clock is not followed.
	now := v.opts.Now()
	err := v.be.List(ctx, marker.Prefix+pointID+"/", func(oi storage.ObjectInfo) error {
		base, _ := splitResealed(oi.Name)
		if n, err := marker.ParseName(base); err == nil && n.Nanos >= now.UnixNano() && n.Nanos-now.UnixNano() < int64(24*time.Hour) {
			now = time.Unix(0, n.Nanos+1)
		}
		return nil
	})
	if err != nil {
		return storageError(v.be, err)
	}
	var rnd [4]byte
	if _, err := randRead(rnd[:]); err != nil {
		return err
	}
	n, err := marker.NewName(pointID, now, kind, rnd)
	if err != nil {
		return lifeboat.Errorf(lifeboat.EInvalid, "%v", err)
	}
	body, err := marker.Encode(marker.Marker{Kind: kind, Time: now, Reason: reason, By: by})
	if err != nil {
		return lifeboat.Errorf(lifeboat.EInvalid, "%v", err)
	}
	obj := n.Object()
	if err := v.putSealed(ctx, obj, marker.Context(obj), body); err != nil {
		return storageError(v.be, err)
	}
	if kind == MarkHold || kind == MarkUndelete {
		// A collection purging the point writes its purge tombstone, then
		// reads the markers: either it sees this marker and gives up, or
		// this sees its tombstone. Never both miss.
		if _, err := v.be.Stat(ctx, purgedName(pointID)); err == nil {
			return lifeboat.Errorf(lifeboat.EUnavailable, "point %s was being purged by a garbage collection as the %s was written: the %s is recorded, but whether the point stays is not known yet; list the points to see (a purge that was interrupted is settled by a collection within a day, and the point then stays)", pointID[:8], kind, kind)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return storageError(v.be, err)
		}
	}
	return nil
}

// PointStates reads every marker and returns the state of each point that
// has markers (points without markers are live and not held). It reads
// marker objects only, so a manifest-less marker (its point purged) shows
// up too. A marker that does not open is an error naming it: a state is
// never derived from unauthenticated bytes.
func (v *Vault) PointStates(ctx context.Context) (map[string]PointState, error) {
	ms, err := v.loadMarkers(ctx, marker.Prefix)
	if err != nil {
		return nil, err
	}
	return statesOf(ms), nil
}

// PointState reads the markers of one point and returns its state.
func (v *Vault) PointState(ctx context.Context, pointID string) (PointState, error) {
	if !manifest.ValidID(pointID) {
		return PointState{}, lifeboat.Errorf(lifeboat.EInvalid, "bad point id %q: want 32 hex digits", pointID)
	}
	return v.pointState(ctx, pointID)
}

func (v *Vault) pointState(ctx context.Context, pointID string) (PointState, error) {
	ms, err := v.loadMarkers(ctx, marker.Prefix+pointID+"/")
	if err != nil {
		return PointState{}, err
	}
	return statesOf(ms)[pointID], nil
}

type loadedMarker struct {
	name marker.Name
	obj  string    // the object read: the marker's name, or a re-encrypted copy's
	mod  time.Time // obj's storage time
	m    marker.Marker
}

// loadMarkers lists and opens the markers below prefix. A re-encrypted
// copy of a marker (reseal.go) is the same marker: applying it twice
// changes no state.
func (v *Vault) loadMarkers(ctx context.Context, prefix string) ([]loadedMarker, error) {
	var names []marker.Name
	var objs []storage.ObjectInfo
	err := v.be.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		base, _ := splitResealed(oi.Name)
		n, err := marker.ParseName(base)
		if err != nil {
			return &CorruptError{Object: oi.Name, Err: err}
		}
		names = append(names, n)
		objs = append(objs, oi)
		return nil
	})
	if err != nil {
		return nil, storageError(v.be, err)
	}
	out := make([]loadedMarker, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, n := range names {
		g.Go(func() error {
			oi := objs[i]
			m, err := v.openMarker(gctx, oi.Name, n)
			if errors.Is(err, storage.ErrNotFound) {
				// Gone since the listing: its point was purged, or a
				// re-encryption replaced it with a copy the listing did not
				// show (then the copy is the marker: dropping it missed a
				// hold or a delete).
				oi, m, err = v.markerCopy(gctx, oi.Name, n)
				if errors.Is(err, storage.ErrNotFound) {
					return nil
				}
			}
			if err != nil {
				return err
			}
			out[i] = loadedMarker{name: n, obj: oi.Name, mod: oi.ModTime, m: m}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, storageError(v.be, err)
	}
	return slices.DeleteFunc(out, func(lm loadedMarker) bool { return lm.name.Point == "" }), nil
}

// markerCopy reads another copy of marker n than gone (the object and its
// re-encrypted copies share a base name), newest first; ErrNotFound if none
// is left.
func (v *Vault) markerCopy(ctx context.Context, gone string, n marker.Name) (storage.ObjectInfo, marker.Marker, error) {
	base, _ := splitResealed(gone)
	names, err := v.copiesOf(ctx, base)
	if err != nil {
		return storage.ObjectInfo{}, marker.Marker{}, err
	}
	for _, name := range names {
		if name == gone {
			continue
		}
		oi, err := v.be.Stat(ctx, name) // its storage time: settleAbandonedPurges reads it
		if err == nil {
			var m marker.Marker
			if m, err = v.openMarker(ctx, name, n); err == nil {
				return oi, m, nil
			}
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return storage.ObjectInfo{}, marker.Marker{}, err
		}
	}
	return storage.ObjectInfo{}, marker.Marker{}, storage.ErrNotFound
}

// openMarker reads the marker object obj (the marker n, or a resealed copy
// of it); one that does not open or decode is a CorruptError.
func (v *Vault) openMarker(ctx context.Context, obj string, n marker.Name) (marker.Marker, error) {
	plain, err := v.getSealed(ctx, obj, marker.Context(n.Object()))
	if err != nil {
		return marker.Marker{}, err
	}
	m, err := marker.Decode(plain, n)
	if err != nil {
		return marker.Marker{}, &CorruptError{Object: obj, Err: err}
	}
	return m, nil
}

func statesOf(ms []loadedMarker) map[string]PointState {
	sort.Slice(ms, func(i, j int) bool { return ms[i].name.Less(ms[j].name) })
	out := map[string]PointState{}
	for _, lm := range ms { // oldest first: the newest of each pair wins
		st := out[lm.name.Point]
		switch lm.m.Kind {
		case MarkDelete:
			st.Deleted, st.DeletedAt, st.Reason, st.By = true, lm.m.Time, lm.m.Reason, lm.m.By
		case MarkUndelete:
			st.Deleted, st.DeletedAt, st.Reason, st.By = false, time.Time{}, "", ""
		case MarkHold:
			st.Held, st.HoldReason = true, lm.m.Reason
		case MarkRelease:
			st.Held, st.HoldReason = false, ""
		}
		out[lm.name.Point] = st
	}
	return out
}

// markerPoint returns the point id of a marker object name ("" if none).
func markerPoint(name string) string {
	rest, ok := strings.CutPrefix(name, marker.Prefix)
	if !ok {
		return ""
	}
	p, _, _ := strings.Cut(rest, "/")
	return p
}
