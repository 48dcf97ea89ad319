package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
)

// ObjectLock returns nil when the vault's storage enforces retention
// itself (an S3 bucket with object lock), or an error saying why not.
func (v *Vault) ObjectLock(ctx context.Context) error {
	r, ok := v.be.(storage.Retainer)
	if !ok {
		return lifeboat.Errorf(lifeboat.EInvalid, "%s cannot enforce retention itself: compliance mode needs an S3 bucket with object lock", v.be.Location())
	}
	if err := r.ObjectLock(ctx); err != nil {
		if errors.Is(err, storage.ErrUnavailable) {
			return storageError(v.be, err)
		}
		return lifeboat.Errorf(lifeboat.EInvalid, "%s: %v", v.be.Location(), err)
	}
	return nil
}

// RetainReport says what RetainPoints did.
type RetainReport struct {
	Points   int `json:"points"`
	Objects  int `json:"objects"`  // objects the points need
	Extended int `json:"extended"` // objects given a later retain-until date
}

// RetainPoints gives every object the points of want need to be restored
// a retain-until date at least want[point] on storage that enforces it (S3
// object lock, compliance mode): their manifests (every copy), the packs
// holding their trees and data (packs reused from older points included),
// the index objects naming those packs, the data key objects,
// lifeboat.json and the feature objects. A date already later is left
// alone; storage never shortens one. Key slots, tombstones and markers
// are never retained: rotation and the collector must be able to delete
// them.
func (v *Vault) RetainPoints(ctx context.Context, want map[string]time.Time) (*RetainReport, error) {
	r, ok := v.be.(storage.Retainer)
	if !ok {
		return nil, v.ObjectLock(ctx)
	}
	rep := &RetainReport{Points: len(want)}
	if len(want) == 0 {
		return rep, nil
	}
	until := map[string]time.Time{}
	need := func(name string, t time.Time) {
		if t.After(until[name]) {
			until[name] = t
		}
	}
	packs, tombs, err := v.listPacks(ctx)
	if err != nil {
		return nil, err
	}
	pointNames, err := v.listPoints(ctx)
	if err != nil {
		return nil, err
	}
	fresh, idxPacks, _, err := v.freshIndex(ctx, packs, tombs)
	if err != nil {
		return nil, err
	}
	var latest time.Time
	packUntil := map[blob.PackID]time.Time{}
	for _, id := range sortedKeys(want) {
		t := ceilSecond(want[id])
		latest = maxTime(latest, t)
		names, ok := pointNames[id]
		if !ok {
			return nil, lifeboat.Errorf(lifeboat.ENotFound, "point %s is not in %s: nothing to retain", id, v.be.Location())
		}
		for _, n := range names {
			need(n, t)
		}
		refs, bad, err := v.referencedBlobs(ctx, fresh, map[string][]string{id: names})
		if err != nil {
			return nil, err
		}
		if bad > 0 {
			return nil, lifeboat.Errorf(lifeboat.ECorrupt, "point %s in %s: %d trees or manifests do not open, so what it needs is unknown (run lifeboat vault check)", id, v.be.Location(), bad)
		}
		for b := range refs {
			loc, ok := fresh.Lookup(b)
			if !ok {
				return nil, lifeboat.Errorf(lifeboat.ECorrupt, "point %s in %s: blob %s is in no pack (run lifeboat vault check)", id, v.be.Location(), b)
			}
			if t.After(packUntil[loc.Pack]) {
				packUntil[loc.Pack] = t
			}
		}
	}
	for p, t := range packUntil {
		need(p.ObjectName(), t)
	}
	for name, pks := range idxPacks {
		for _, p := range pks {
			if t, ok := packUntil[p]; ok {
				need(name, t)
			}
		}
	}
	// What opening and decrypting needs, whatever the point.
	need(ConfigName, latest)
	for _, prefix := range []string{"datakeys/", featurePrefix} {
		if err := v.be.List(ctx, prefix, func(oi storage.ObjectInfo) error {
			need(oi.Name, latest)
			return nil
		}); err != nil {
			return nil, storageError(v.be, err)
		}
	}
	rep.Objects = len(until)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for name, t := range until {
		g.Go(func() error {
			cur, err := r.Retention(gctx, name)
			if err != nil || !cur.Before(t) {
				return err
			}
			if err := r.Retain(gctx, name, t); err != nil {
				return err
			}
			mu.Lock()
			rep.Extended++
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, storageError(v.be, fmt.Errorf("%w (retention not set on every object)", err))
	}
	return rep, nil
}

// RetainObject gives one object a retain-until date of at least until, on
// storage that enforces retention (audit segments of a locked vault).
func (v *Vault) RetainObject(ctx context.Context, name string, until time.Time) error {
	r, ok := v.be.(storage.Retainer)
	if !ok {
		return v.ObjectLock(ctx)
	}
	until = ceilSecond(until)
	cur, err := r.Retention(ctx, name)
	if err == nil && cur.Before(until) {
		err = r.Retain(ctx, name, until)
	}
	if err != nil {
		return storageError(v.be, err)
	}
	return nil
}

// ceilSecond rounds t up to a whole second: storage keeps retain-until
// dates to the second, and a date rounded down would be extended again
// every time.
func ceilSecond(t time.Time) time.Time {
	if s := t.Truncate(time.Second); !s.Equal(t) {
		return s.Add(time.Second)
	}
	return t
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// UndeleteReport says what Undelete did (or would do).
type UndeleteReport struct {
	Restored []string `json:"restored"` // objects readable again
	Skipped  []string `json:"skipped"`  // deleted, but left deleted (key slots, probes)
}

// Undelete makes readable again every object of a versioned bucket that
// a delete hid behind delete markers while its data is still kept (object
// lock keeps it at least until its retain-until date): it removes the
// delete markers in front of the object's newest version. With a non-zero
// since, only objects whose newest delete marker the storage dates at or
// after since. It needs no key. Key slots stay deleted: a slot removed by
// key rotation must never come back (a disaster kit's copy opens the
// vault); feature objects do come back. Objects the collector removed come
// back too (their tombstones stay, so readers never use them); its next
// run removes them again.
func Undelete(ctx context.Context, be storage.Backend, since time.Time, dryRun bool) (*UndeleteReport, error) {
	vr, ok := be.(storage.Versioner)
	if !ok {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "%s keeps no object versions (only a versioned S3 bucket does): nothing to undelete", be.Location())
	}
	// S3 lists the versions of a name newest first: the delete markers
	// hiding an object are the ones before its first real version.
	type entry struct {
		markers []storage.Version
		kept    bool
	}
	byName := map[string]*entry{}
	if err := vr.ListVersions(ctx, "", func(ver storage.Version) error {
		e := byName[ver.Name]
		if e == nil {
			e = &entry{}
			byName[ver.Name] = e
		}
		switch {
		case e.kept:
		case ver.DeleteMarker:
			e.markers = append(e.markers, ver)
		default:
			e.kept = true
		}
		return nil
	}); err != nil {
		return nil, storageError(be, err)
	}
	rep := &UndeleteReport{Restored: []string{}, Skipped: []string{}}
	for _, name := range sortedKeys(byName) {
		e := byName[name]
		if len(e.markers) == 0 || !e.kept || !e.markers[0].Latest || e.markers[0].ModTime.Before(since) {
			continue // not deleted, nothing kept, or deleted before since
		}
		if (strings.HasPrefix(name, slotPrefix) && !strings.HasPrefix(name, featurePrefix)) || strings.HasPrefix(name, "locks/") {
			rep.Skipped = append(rep.Skipped, name)
			continue
		}
		if !dryRun {
			for _, m := range e.markers {
				if err := vr.DeleteVersion(ctx, name, m.VersionID); err != nil {
					return rep, storageError(be, err)
				}
			}
		}
		rep.Restored = append(rep.Restored, name)
	}
	return rep, nil
}
