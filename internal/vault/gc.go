package vault

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
	"github.com/lifeboat-vault/lifeboat/internal/vault/index"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/marker"
	"github.com/lifeboat-vault/lifeboat/internal/vault/pack"
	"github.com/lifeboat-vault/lifeboat/internal/vault/tree"
)

// Defaults of CollectOptions.
const (
	DefaultSoftDeleteRetention = 14 * 24 * time.Hour
	DefaultGrace               = time.Hour
	DefaultMaxClockSkew        = time.Hour
	// TempAge: an unfinished object (a local temp file) not written for
	// this long belongs to a writer that died; a collection removes it.
	TempAge = 24 * time.Hour
)

// CollectOptions tune a garbage collection. Zero values take defaults; to
// mean "no delay", pass a tiny duration (time.Nanosecond).
type CollectOptions struct {
	// Now is the server's clock, for the soft-delete retention (default:
	// the vault's Options.Now). Never a time a client sent.
	Now func() time.Time
	// SoftDeleteRetention is how long a soft-deleted point stays restorable
	// before it is purged (default 14 days, by Now).
	SoftDeleteRetention time.Duration
	// Grace is the collection grace period (default 1 h), measured by
	// storage timestamps only: a pack younger than Grace is never condemned,
	// a condemned pack is deleted once its tombstone is older than Grace.
	Grace time.Duration
	// MaxClockSkew: Collect refuses to run when the storage's clock and Now
	// differ by more (default 1 h).
	MaxClockSkew time.Duration
}

func (o *CollectOptions) defaults(v *Vault) {
	if o.Now == nil {
		o.Now = v.opts.Now
	}
	if o.SoftDeleteRetention <= 0 {
		o.SoftDeleteRetention = DefaultSoftDeleteRetention
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.MaxClockSkew <= 0 {
		o.MaxClockSkew = DefaultMaxClockSkew
	}
}

// CollectReport is what a collection did.
type CollectReport struct {
	PointsPurged    []string  `json:"points_purged"`    // soft-deleted past the retention: manifest and markers deleted
	Points          int       `json:"points"`           // points whose data is kept (live or soft-deleted)
	PacksReferenced int       `json:"packs_referenced"` // packs kept for them
	PacksCondemned  int       `json:"packs_condemned"`  // tombstones written this run
	PacksWaiting    int       `json:"packs_waiting"`    // condemned, tombstone younger than the grace period
	PacksRecent     int       `json:"packs_recent"`     // unreferenced, but younger than the grace period or a live session: a later run decides
	PacksDeleted    int       `json:"packs_deleted"`    // condemned packs deleted this run
	BytesFreed      int64     `json:"bytes_freed"`      // their sizes
	IndexesDeleted  int       `json:"indexes_deleted"`  // index objects all of whose packs are deleted
	TempDeleted     int       `json:"temp_deleted"`     // unfinished objects of writers dead for TempAge (local vaults)
	TempBytesFreed  int64     `json:"temp_bytes_freed"` // their sizes
	MarkersDeleted  int       `json:"markers_deleted"`  // markers of purged (or vanished) points
	AbandonedPurges int       `json:"abandoned_purges"` // purge tombstones removed from points saved after a collection stopped half-way
	MissingBlobs    int       `json:"missing_blobs"`    // referenced blobs in no pack present (check names them)
	Unreadable      int       `json:"unreadable"`       // manifests and trees that did not open: nothing was deleted
	ServerTime      time.Time `json:"server_time"`
	StorageTime     time.Time `json:"storage_time"`
}

// StorageTime returns the storage's clock: it writes a probe object, reads
// its timestamp and deletes it. Callers compare it with the server's clock
// and refuse to prune when they disagree (DESIGN.md, retention).
func (v *Vault) StorageTime(ctx context.Context) (time.Time, error) {
	name := "locks/clock-" + hex.EncodeToString(randBytes(16))
	if err := v.be.Put(ctx, name, nil); err != nil {
		return time.Time{}, storageError(v.be, fmt.Errorf("write clock probe %s: %w", name, err))
	}
	defer v.be.Delete(context.WithoutCancel(ctx), name)
	oi, err := v.be.Stat(ctx, name)
	if err != nil {
		return time.Time{}, storageError(v.be, fmt.Errorf("stat clock probe %s: %w", name, err))
	}
	if oi.ModTime.IsZero() {
		return time.Time{}, lifeboat.Errorf(lifeboat.EInternal, "storage %s gives no object timestamps", v.be.Location())
	}
	return oi.ModTime, nil
}

// packInfo is a pack present in storage.
type packInfo struct {
	size int64
	mod  time.Time
}

// Collect is the garbage collector (docs/vault-format.md, "Garbage
// collection"). In order:
//
//  1. markers, then manifests: a point soft-deleted longer than the
//     retention (by opts.Now) and not held is purged — its markers are read
//     again, then its purge tombstone (purged/<id>) is written, then its
//     manifest with every resealed copy, then its markers are deleted;
//  2. list packs (data/) and tombstones (condemned/), with storage times;
//  3. list manifests again, then index objects (an index is written before
//     its manifest, so every listed point's packs are indexed); packs no
//     index names are indexed from their own trailers;
//  4. walk the trees of every remaining point (live or soft-deleted):
//     referenced blobs; a pack is referenced when it holds a referenced
//     blob that has no copy in a healthy (present, uncondemned, indexed)
//     pack, or when it is a healthy pack holding a referenced blob;
//  5. tombstones are never removed: a condemned pack a point still needs
//     is kept (not deleted) but stays condemned, so no writer dedups
//     against it and no writer that references it can succeed; once its
//     blobs have healthy copies it is unreferenced and goes in step 7.
//     (Removing a tombstone would let a writer succeed while a paused
//     collector, which decided earlier, deletes the pack.)
//  6. unreferenced packs older than the grace period (storage time) get a
//     tombstone, except those of a live write session; nothing they hold is
//     deleted in this run;
//  7. packs whose tombstone (listed in 2, before the manifests) is older
//     than the grace period (storage time) and that are still unreferenced
//     are deleted; their tombstones are kept, so a late writer sees them;
//     index objects all of whose packs are deleted are deleted.
//
// A marker that does not open stops the collection before anything is
// purged (ECorrupt). A manifest or tree that does not open makes the run
// delete nothing (Unreadable > 0): what it references is unknown; condemning
// is still done, since the next run undoes it for anything referenced.
func (v *Vault) Collect(ctx context.Context, opts CollectOptions) (*CollectReport, error) {
	opts.defaults(v)
	rep := &CollectReport{PointsPurged: []string{}}
	stNow, err := v.StorageTime(ctx)
	if err != nil {
		return nil, err
	}
	now := opts.Now()
	rep.ServerTime, rep.StorageTime = now.UTC(), stNow.UTC()
	if d := now.Sub(stNow).Abs(); d > opts.MaxClockSkew {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "the server clock (%s) and the storage clock of %s (%s) differ by %s, more than %s: refusing to collect",
			now.UTC().Format(time.RFC3339), v.be.Location(), stNow.UTC().Format(time.RFC3339), d.Round(time.Second), opts.MaxClockSkew)
	}

	// 1. Purge points soft-deleted past the retention. Markers first: a
	// marker is written only for an existing manifest, so every marker's
	// point is in the listing after it unless it was purged.
	markers, err := v.loadMarkers(ctx, marker.Prefix)
	if err != nil {
		return nil, err
	}
	ids, err := v.PointIDs(ctx)
	if err != nil {
		return nil, err
	}
	states := statesOf(markers)
	exists := map[string]bool{}
	for _, id := range ids {
		exists[id] = true
	}
	for _, id := range ids {
		if !expired(states[id], now, opts.SoftDeleteRetention) {
			continue
		}
		// A hold or undelete written since the listing wins.
		st, err := v.pointState(ctx, id)
		if err != nil {
			return nil, err
		}
		if !expired(st, now, opts.SoftDeleteRetention) {
			continue
		}
		// Another collection's tombstone is taken over after a day, not
		// the grace period: with --grace 0 this one took over a purge in
		// progress, and a hold written in between reported success.
		done, err := v.purgePoint(ctx, id, func(st PointState) bool { return expired(st, now, opts.SoftDeleteRetention) }, TempAge, stNow)
		if err != nil {
			return nil, err
		}
		if !done {
			continue
		}
		rep.PointsPurged = append(rep.PointsPurged, id)
		exists[id] = false
	}
	cleared, finished, err := v.settleAbandonedPurges(ctx, exists, now, stNow, opts.SoftDeleteRetention)
	if err != nil {
		return nil, err
	}
	rep.AbandonedPurges = cleared
	for _, id := range finished {
		rep.PointsPurged = append(rep.PointsPurged, id)
		exists[id] = false
	}
	for _, lm := range markers {
		if exists[lm.name.Point] {
			continue
		}
		if err := v.be.Delete(ctx, lm.obj); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, storageError(v.be, err)
		}
		rep.MarkersDeleted++
	}

	// 2. Packs and tombstones, with their storage times.
	packs, tombs, err := v.listPacks(ctx)
	if err != nil {
		return nil, err
	}
	// Live write sessions (listed before the manifests: a session that
	// ends after this listing wrote its manifest before it ended, so the
	// manifest listing below finds it, or is protected here).
	sessionsFrom, staleSessions, err := v.liveSessions(ctx, stNow)
	if err != nil {
		return nil, err
	}
	if err := v.deleteStale(ctx, staleSessions); err != nil {
		return nil, err
	}
	// Unfinished objects of writers that died (killed backups).
	if sw, ok := v.be.(storage.Sweeper); ok {
		if rep.TempDeleted, rep.TempBytesFreed, err = sw.Sweep(ctx, TempAge); err != nil {
			return nil, storageError(v.be, err)
		}
	}

	// 3 and 4. Manifests again, then the indexes that serve them, then
	// everything the points reference.
	healthy := func(p blob.PackID) bool { _, ok := packs[p]; return ok && tombs[p].IsZero() }
	pointNames, err := v.listPoints(ctx)
	if err != nil {
		return nil, err
	}
	rep.Points = len(pointNames)
	fresh, idxPacks, all, err := v.freshIndex(ctx, packs, tombs)
	if err != nil {
		return nil, err
	}
	refBlobs, unreadable, err := v.referencedBlobs(ctx, fresh, pointNames)
	if err != nil {
		return nil, err
	}
	rep.Unreadable = unreadable
	ref := map[blob.PackID]bool{}
	// Only a copy in an indexed pack lets a condemned pack go: readers find
	// blobs through index objects, and a pack no index names (a write
	// session that died before its index) is invisible to them.
	indexed := map[blob.PackID]bool{}
	for _, pks := range idxPacks {
		for _, p := range pks {
			indexed[p] = true
		}
	}
	hasHealthy := map[blob.ID]bool{}
	for _, pe := range all {
		if !healthy(pe.Pack) {
			continue
		}
		for _, e := range pe.Entries {
			if _, ok := refBlobs[e.ID]; ok {
				ref[pe.Pack] = true
				if indexed[pe.Pack] {
					hasHealthy[e.ID] = true
				}
			}
		}
	}
	for _, pe := range all {
		if _, present := packs[pe.Pack]; !present || healthy(pe.Pack) {
			continue
		}
		for _, e := range pe.Entries {
			if _, ok := refBlobs[e.ID]; ok && !hasHealthy[e.ID] {
				ref[pe.Pack] = true // condemned, but holds the only copy: keep it
			}
		}
	}
	for id := range refBlobs {
		if !fresh.Has(id) {
			rep.MissingBlobs++
		}
	}
	rep.PacksReferenced = len(ref)

	// 5. A condemned pack is never un-condemned (see the doc comment):
	// while a point still needs it, it is kept; writers store its blobs
	// again, and once a healthy copy exists it is collected.

	// 6. Condemn unreferenced packs older than the grace period.
	testStop("gc-before-condemn")
	for p, pi := range sortedPacks(packs) {
		if ref[p] || !tombs[p].IsZero() {
			continue
		}
		if stNow.Sub(pi.mod) < opts.Grace || (!sessionsFrom.IsZero() && !pi.mod.Before(sessionsFrom)) {
			rep.PacksRecent++ // may belong to a backup in flight, or a live write session
			continue
		}
		if err := v.be.Put(ctx, tombstoneName(p), nil); err != nil && !errors.Is(err, storage.ErrExists) {
			return nil, storageError(v.be, fmt.Errorf("condemn pack %s: %w", p, err))
		}
		v.setCondemned(p, true)
		rep.PacksCondemned++
	}

	// 7. Delete packs condemned long enough ago and still unreferenced —
	// unless something a point references could not be read: what it
	// references is then unknown. (A writer withdrawing a manifest whose
	// data was collected causes this briefly; damage, until repaired.)
	if unreadable > 0 {
		return rep, nil
	}
	var doomed []blob.PackID
	for p, t := range tombs {
		if _, present := packs[p]; !present || ref[p] {
			continue
		}
		if stNow.Sub(t) < opts.Grace {
			rep.PacksWaiting++
			continue
		}
		doomed = append(doomed, p)
	}
	sort.Slice(doomed, func(i, j int) bool { return string(doomed[i][:]) < string(doomed[j][:]) })
	testStop("gc-before-delete")
	for _, p := range doomed {
		if err := v.be.Delete(ctx, p.ObjectName()); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, storageError(v.be, fmt.Errorf("delete pack %s: %w", p, err))
		}
		rep.PacksDeleted++
		rep.BytesFreed += packs[p].size
		delete(packs, p)
	}
	// Index objects whose packs are all gone by collection.
	for name, pks := range idxPacks {
		gone := len(pks) > 0
		for _, p := range pks {
			if _, present := packs[p]; present || tombs[p].IsZero() {
				gone = false
				break
			}
		}
		if !gone {
			continue
		}
		if err := v.be.Delete(ctx, name); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, storageError(v.be, err)
		}
		rep.IndexesDeleted++
	}
	return rep, nil
}

// purgePoint deletes a point's manifest and its copies. The purge
// tombstone comes first, so that a re-encryption writing a copy meanwhile
// either sees it and withdraws its copy, or wrote the copy before the
// tombstone, hence before the listing here, which deletes it. Then the
// point's markers are read once more: a hold or undelete (Mark checks for
// the tombstone after writing its marker) wins, the tombstone is removed
// and nothing is purged (done false). still tells whether a state is
// still to be purged.
func (v *Vault) purgePoint(ctx context.Context, id string, still func(PointState) bool, abandoned time.Duration, stNow time.Time) (done bool, err error) {
	if err := v.be.Put(ctx, purgedName(id), nil); errors.Is(err, storage.ErrExists) {
		// Another collection is purging it (only the tombstone's writer
		// may give up and remove it), unless that one died long ago.
		oi, serr := v.be.Stat(ctx, purgedName(id))
		if serr != nil || stNow.Sub(oi.ModTime) < abandoned {
			return false, nil
		}
	} else if err != nil {
		return false, storageError(v.be, fmt.Errorf("purge point %s: write %s: %w", id, purgedName(id), err))
	}
	st, err := v.pointState(ctx, id)
	if err != nil {
		return false, err
	}
	if still != nil && !still(st) {
		if err := v.be.Delete(ctx, purgedName(id)); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return false, storageError(v.be, fmt.Errorf("purge point %s given up (a hold or undelete came first): delete %s: %w", id, purgedName(id), err))
		}
		return false, nil
	}
	names, err := v.pointCopies(ctx, id)
	if err != nil {
		return false, storageError(v.be, fmt.Errorf("purge point %s: %w", id, err))
	}
	// A tombstone gone by now was taken for abandoned (settleAbandonedPurges)
	// once a hold or undelete had saved the point: give up.
	if _, err := v.be.Stat(ctx, purgedName(id)); errors.Is(err, storage.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, storageError(v.be, fmt.Errorf("purge point %s: %w", id, err))
	}
	for _, n := range names {
		if err := v.be.Delete(ctx, n); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return false, storageError(v.be, fmt.Errorf("purge point %s: delete %s: %w", id, n, err))
		}
	}
	return true, nil
}

// settleAbandonedPurges deals with purge tombstones older than TempAge (24
// h, whatever the grace period: a collection run with --grace 0 must not
// take a purge in progress for abandoned) on points that still have a
// manifest, when every marker of the point is that old too:
//
//   - The point was soft-deleted but is no longer to be purged: a
//     collection stopped between its tombstone and its give-up, then a hold
//     or an undelete saved the point (and reported that it failed). The
//     tombstone is deleted: left there, every later hold or undelete of the
//     point would fail, and re-encryption withdraw its manifest copy.
//   - The point has no delete marker and its manifests are re-encrypted
//     copies only (purgeLeftover): its purge went through (the original
//     goes first, the markers, the delete among them, last), and what is
//     left is a copy a re-encryption wrote and could not withdraw. The
//     purge is finished. An original is left alone: put back by hand.
//   - Still expired: the purge loop above takes it over.
//
// The collection that wrote a tombstone checks it is still there before
// deleting anything (purgePoint), so one still running gives up; one
// stalled for a day between those two steps is beyond what the collector
// guards against, as for condemned packs. It returns how many tombstones
// it deleted and which points it purged.
func (v *Vault) settleAbandonedPurges(ctx context.Context, exists map[string]bool, now, stNow time.Time, retention time.Duration) (int, []string, error) {
	var candidates []string
	if err := v.be.List(ctx, purgedPrefix, func(oi storage.ObjectInfo) error {
		if id := strings.TrimPrefix(oi.Name, purgedPrefix); exists[id] && stNow.Sub(oi.ModTime) >= TempAge {
			candidates = append(candidates, id)
		}
		return nil
	}); err != nil {
		return 0, nil, storageError(v.be, err)
	}
	cleared, purged := 0, []string{}
	for _, id := range candidates {
		ms, err := v.loadMarkers(ctx, marker.Prefix+id+"/")
		if err != nil {
			return cleared, purged, err
		}
		if slices.ContainsFunc(ms, func(lm loadedMarker) bool { return stNow.Sub(lm.mod) < TempAge }) {
			continue
		}
		switch {
		case !hasDelete(ms):
			leftover, err := v.purgeLeftover(ctx, id)
			if err != nil {
				return cleared, purged, err
			}
			if !leftover {
				continue
			}
			done, err := v.purgePoint(ctx, id, nil, TempAge, stNow)
			if err != nil {
				return cleared, purged, err
			}
			if done {
				purged = append(purged, id)
			}
		case expired(statesOf(ms)[id], now, retention):
		default:
			if err := v.be.Delete(ctx, purgedName(id)); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return cleared, purged, storageError(v.be, fmt.Errorf("remove the abandoned purge tombstone of point %s: %w", id, err))
			}
			cleared++
		}
	}
	return cleared, purged, nil
}

func hasDelete(ms []loadedMarker) bool {
	return slices.ContainsFunc(ms, func(lm loadedMarker) bool { return lm.name.Kind == marker.Delete })
}

// purgeLeftover says whether the manifest objects of a tombstoned point
// with no delete marker are what a finished purge leaves when a
// re-encryption could not withdraw its copy: copies only (a purge deletes
// the original first), and still no delete marker on a second read (a
// marker being re-encrypted can escape a listing).
func (v *Vault) purgeLeftover(ctx context.Context, id string) (bool, error) {
	names, err := v.pointCopies(ctx, id)
	if err != nil {
		return false, storageError(v.be, err)
	}
	if len(names) == 0 || slices.Contains(names, manifest.ObjectName(id)) {
		return false, nil // gone meanwhile, or an original (put back from an older copy of the vault?)
	}
	ms, err := v.loadMarkers(ctx, marker.Prefix+id+"/")
	if err != nil {
		return false, err
	}
	return !hasDelete(ms), nil
}

func expired(st PointState, now time.Time, retention time.Duration) bool {
	return st.Deleted && !st.Held && now.Sub(st.DeletedAt) >= retention
}

func tombstoneName(p blob.PackID) string { return "condemned/" + p.String() }

func parseTombstone(name string) (blob.PackID, bool) {
	var p blob.PackID
	h, ok := strings.CutPrefix(name, "condemned/")
	if !ok || len(h) != 32 || strings.ToLower(h) != h {
		return p, false
	}
	if _, err := hex.Decode(p[:], []byte(h)); err != nil {
		return p, false
	}
	return p, true
}

func (v *Vault) setCondemned(p blob.PackID, on bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if on {
		v.condemned[p] = true
	} else {
		delete(v.condemned, p)
	}
}

// sortedPacks iterates packs in id order (deterministic runs and tests).
func sortedPacks(m map[blob.PackID]packInfo) func(func(blob.PackID, packInfo) bool) {
	ks := make([]blob.PackID, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return string(ks[i][:]) < string(ks[j][:]) })
	return func(yield func(blob.PackID, packInfo) bool) {
		for _, k := range ks {
			if !yield(k, m[k]) {
				return
			}
		}
	}
}

// listPacks lists the packs and the tombstones, with their storage times.
func (v *Vault) listPacks(ctx context.Context) (map[blob.PackID]packInfo, map[blob.PackID]time.Time, error) {
	packs := map[blob.PackID]packInfo{}
	if err := v.be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		if p, err := blob.ParsePackName(oi.Name); err == nil {
			packs[p] = packInfo{size: oi.Size, mod: oi.ModTime}
		}
		return nil
	}); err != nil {
		return nil, nil, storageError(v.be, err)
	}
	tombs := map[blob.PackID]time.Time{}
	if err := v.be.List(ctx, "condemned/", func(oi storage.ObjectInfo) error {
		if p, ok := parseTombstone(oi.Name); ok {
			tombs[p] = oi.ModTime
		}
		return nil
	}); err != nil {
		return nil, nil, storageError(v.be, err)
	}
	return packs, tombs, nil
}

// freshIndex reads every index object (and the trailers of present packs
// no readable index names) into a new index of the present packs, healthy
// ones first: the locations readers use. It also returns the packs each
// index object names, and every entry read.
func (v *Vault) freshIndex(ctx context.Context, packs map[blob.PackID]packInfo, tombs map[blob.PackID]time.Time) (*index.Index, map[string][]blob.PackID, []index.PackEntries, error) {
	idxPacks, all, _, err := v.collectIndexes(ctx, packs)
	if err != nil {
		return nil, nil, nil, err
	}
	fresh := index.New()
	for pass := range 2 { // healthy copies first: they are the ones read
		for _, pe := range all {
			if _, ok := packs[pe.Pack]; ok && tombs[pe.Pack].IsZero() == (pass == 0) {
				fresh.Add(pe.Pack, pe.Entries)
			}
		}
	}
	return fresh, idxPacks, all, nil
}

// collectIndexes reads every index object, and the trailers of present
// packs no index names (leftovers, or packs of a damaged index object). It
// returns the packs each index object names, every pack's entries, and the
// data key version of each pack (its index object's: a write session seals
// its packs and its index under one version; or its trailer's). The packs
// of an index object that does not open are read from their trailers, as
// the index loader does; a pack whose trailer does not open either holds
// nothing any reader can find, and is garbage.
func (v *Vault) collectIndexes(ctx context.Context, packs map[blob.PackID]packInfo) (map[string][]blob.PackID, []index.PackEntries, map[blob.PackID]uint32, error) {
	var names []string
	if err := v.be.List(ctx, "index/", func(oi storage.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	}); err != nil {
		return nil, nil, nil, storageError(v.be, err)
	}
	var mu sync.Mutex
	byName := map[string][]blob.PackID{}
	vers := map[blob.PackID]uint32{}
	var all []index.PackEntries
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, name := range names {
		g.Go(func() error {
			b, err := storage.ReadAll(gctx, v.be, name)
			var plain []byte
			if err == nil {
				plain, err = v.openSealed(gctx, name, b, "index "+name)
			}
			ver, _ := crypto.KeyVersion(b)
			var pes []index.PackEntries
			if err == nil {
				if pes, err = index.Decode(plain); err != nil {
					err = &CorruptError{Object: name, Err: err}
				}
			}
			var ce *CorruptError
			if errors.Is(err, storage.ErrNotFound) || errors.As(err, &ce) {
				// Deleted by a concurrent collector, or damaged: the
				// packs it named are read from their trailers below.
				return nil
			}
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, pe := range pes {
				byName[name] = append(byName[name], pe.Pack)
				if old, ok := vers[pe.Pack]; !ok || ver < old {
					vers[pe.Pack] = ver
				}
			}
			all = append(all, pes...)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, nil, storageError(v.be, fmt.Errorf("%w (stopped; run lifeboat vault check)", err))
	}
	named := map[blob.PackID]bool{}
	for _, pe := range all {
		named[pe.Pack] = true
	}
	for p, pi := range sortedPacks(packs) {
		if named[p] || pi.size < 4 {
			continue
		}
		es, ver, err := v.trailerOf(ctx, p, pi.size)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		var ce *CorruptError
		if errors.As(err, &ce) {
			continue // unreadable leftover: nothing can reference it
		}
		if err != nil {
			return nil, nil, nil, storageError(v.be, err)
		}
		all = append(all, index.PackEntries{Pack: p, Entries: es})
		vers[p] = ver
	}
	return byName, all, vers, nil
}

// trailerOf reads a pack's trailer by ranges; it returns the entries and
// the data key version that sealed the trailer.
func (v *Vault) trailerOf(ctx context.Context, p blob.PackID, size int64) ([]blob.Entry, uint32, error) {
	name := p.ObjectName()
	last, err := readRange(ctx, v.be, name, size-4, 4)
	if err != nil {
		return nil, 0, err
	}
	if len(last) != 4 {
		return nil, 0, &CorruptError{Object: name, Err: errors.New("pack shorter than its trailer length")}
	}
	tl := int64(pack.TrailerLength(last))
	if tl+4 > size {
		return nil, 0, &CorruptError{Object: name, Err: fmt.Errorf("trailer length %d beyond the pack", tl)}
	}
	sealed, err := readRange(ctx, v.be, name, size-4-tl, tl)
	if err != nil {
		return nil, 0, err
	}
	s, err := v.sealerFor(ctx, sealed)
	if err != nil {
		return nil, 0, keyError(name, "", err)
	}
	es, err := pack.ParseTrailer(s, p, sealed, size)
	if err != nil {
		return nil, 0, &CorruptError{Object: name, Err: err}
	}
	ver, _ := crypto.KeyVersion(sealed)
	return es, ver, nil
}

// referencedBlobs loads the manifests of points (id → its manifest objects,
// as listPoints returns them) and walks their trees, level by level and in
// parallel, each tree once. It returns every tree and data blob they
// reference, and how many manifests and trees did not open.
func (v *Vault) referencedBlobs(ctx context.Context, idx *index.Index, points map[string][]string) (map[blob.ID]struct{}, int, error) {
	refs := map[blob.ID]struct{}{}
	bad := 0
	var mu sync.Mutex
	var frontier []blob.ID
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for id, names := range points {
		g.Go(func() error {
			p, err := v.loadListedPoint(gctx, id, names)
			if errors.Is(err, storage.ErrNotFound) {
				return nil // purged or withdrawn since the listing
			}
			var ce *CorruptError
			if errors.As(err, &ce) {
				mu.Lock()
				bad++
				mu.Unlock()
				return nil
			}
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if _, seen := refs[p.Root]; !seen {
				refs[p.Root] = struct{}{}
				frontier = append(frontier, p.Root)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, storageError(v.be, fmt.Errorf("%w (garbage collection stopped)", err))
	}
	n, err := v.walkTrees(ctx, idx, frontier, func(id blob.ID, _ blob.Type) bool {
		_, seen := refs[id]
		refs[id] = struct{}{}
		return !seen
	})
	if err != nil {
		return nil, 0, storageError(v.be, fmt.Errorf("%w (garbage collection stopped)", err))
	}
	return refs, bad + n, nil
}

// walkTrees walks the trees under roots (the locations of idx), level by
// level and in parallel. visit is called, one call at a time, with the id of
// every data blob and subtree the trees reference; the walk goes down a
// subtree only when visit returns true for it (each tree once). It returns
// how many trees did not open (corrupt or missing: what they reference is
// unknown); any other error stops it.
func (v *Vault) walkTrees(ctx context.Context, idx *index.Index, roots []blob.ID, visit func(blob.ID, blob.Type) bool) (int, error) {
	bad := 0
	var mu sync.Mutex
	frontier := roots
	for len(frontier) > 0 {
		var next []blob.ID
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(v.opts.Workers)
		for _, tid := range frontier {
			g.Go(func() error {
				b, err := v.readBlobIn(gctx, idx, tid)
				var t *tree.Tree
				if err == nil {
					if t, err = tree.Decode(b); err != nil {
						err = &CorruptError{Object: "tree", Blob: tid.String(), Err: err}
					}
				}
				var ce *CorruptError
				if errors.As(err, &ce) {
					mu.Lock()
					bad++
					mu.Unlock()
					return nil
				}
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				for _, n := range t.Nodes {
					for _, e := range n.Content {
						if e.ID != nil {
							visit(*e.ID, blob.Data)
						}
					}
					if n.Subtree != nil && visit(*n.Subtree, blob.Tree) {
						next = append(next, *n.Subtree)
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return 0, err
		}
		frontier = next
	}
	return bad, nil
}
