package vault

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/index"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/marker"
)

// ReencryptOptions tune Reencrypt. Zero values take defaults.
type ReencryptOptions struct {
	// MinVersion: objects sealed under a data key version below it are
	// rewritten under the current one (default, and at most: the current
	// version, so everything sealed under an older key is rewritten).
	MinVersion uint32
	// Progress, if set, is called after each pack read with the bytes of
	// old packs read so far and their total.
	Progress func(done, total int64)
}

// ReencryptResult is what a re-encryption did.
type ReencryptResult struct {
	Version        uint32 `json:"version"`         // the data key everything was rewritten under
	PacksRead      int    `json:"packs_read"`      // packs under an older key read
	BytesRead      int64  `json:"bytes_read"`      // their sizes
	BlobsRewritten int64  `json:"blobs_rewritten"` // referenced blobs copied into new packs
	PacksWritten   int    `json:"packs_written"`   // new packs (and their index objects)
	BytesWritten   int64  `json:"bytes_written"`   // sealed bytes of the copied blobs
	// PacksCondemned: old packs given a tombstone; the collector deletes
	// them once the tombstone is older than its grace period, and then the
	// index objects that named only them.
	PacksCondemned int       `json:"packs_condemned"`
	PacksKept      int       `json:"packs_kept"`     // old packs not condemned: a referenced blob in them does not open
	Manifests      int       `json:"manifests"`      // manifests rewritten as resealed copies
	Markers        int       `json:"markers"`        // point markers rewritten
	AuditSegments  int       `json:"audit_segments"` // audit segments rewritten
	LockRecords    int       `json:"lock_records"`   // records of the vault's lock rewritten
	Withdrawn      int       `json:"withdrawn"`      // manifest copies withdrawn: their point was purged meanwhile
	Problems       []Problem `json:"problems"`       // objects that could not be rewritten (damage: run check)
}

// reencryptBatch is how many old packs are rewritten before their copies
// are committed (index object) and they are condemned: the work a crash
// loses, and the new packs held back from the index.
const reencryptBatch = 16

// Reencrypt rewrites, under the current data key, everything sealed under
// an older one (docs/vault-format.md, "Re-encryption"), so that once the
// collector has deleted the condemned packs an old data key protects no
// live data:
//
//  1. like the collector: list packs and tombstones, then manifests, then
//     index objects, and walk every point's trees: the referenced blobs; a
//     pack's key version is its index object's (a write session seals its
//     packs and its index under one version) or its trailer's;
//  2. by batches of old packs: copy each referenced blob that has no copy
//     in a healthy pack under a recent key into new packs (a write session:
//     packs durable, then an index object), then condemn the old packs —
//     the collector's tombstone, so its rules decide when they are deleted;
//  3. manifests, point markers and audit segments: write a copy under the
//     current key named <name>.<8 hex version>, then delete the older ones.
//
// It is safe against crashes (every step leaves a vault where each blob has
// a readable, indexed copy, and each object at least one copy; running
// again finishes the work) and against concurrent backups and collectors (a
// tombstone is what the collector would write; a backup that deduped
// against a pack condemned meanwhile is refused at commit and retried).
// Blobs that a backup committing during the run references only in an old
// pack stay there (the pack is condemned but kept): run Reencrypt again.
func (v *Vault) Reencrypt(ctx context.Context, opts ReencryptOptions) (*ReencryptResult, error) {
	if err := v.refreshDataKeys(ctx); err != nil {
		return nil, err
	}
	cur := v.CurrentDataKey()
	minVer := opts.MinVersion
	if minVer == 0 {
		minVer = cur
	}
	if minVer > cur {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "re-encrypt: minimum data key version %d is above the current version %d", minVer, cur)
	}
	res := &ReencryptResult{Version: cur, Problems: []Problem{}}
	if err := v.reencryptPacks(ctx, minVer, opts.Progress, res); err != nil {
		return res, err
	}
	if err := v.resealPoints(ctx, minVer, res); err != nil {
		return res, err
	}
	if err := v.resealMarkers(ctx, minVer, res); err != nil {
		return res, err
	}
	if err := v.resealAudit(ctx, minVer, res); err != nil {
		return res, err
	}
	if err := v.resealLockRecords(ctx, minVer, res); err != nil {
		return res, err
	}
	return res, nil
}

// reencryptAttempts bounds how often step 1 is redone when a manifest or
// tree does not open: a backup withdrawing its manifest (a pack it used was
// condemned) can leave one briefly unreadable.
const reencryptAttempts = 3

// reencryptPacks is steps 1 and 2 of Reencrypt.
func (v *Vault) reencryptPacks(ctx context.Context, minVer uint32, progress func(done, total int64), res *ReencryptResult) error {
	var sc *packScan
	for attempt := 1; ; attempt++ {
		var err error
		if sc, err = v.scanPacks(ctx); err != nil {
			return err
		}
		if sc.unreadable == 0 {
			break
		}
		if attempt == reencryptAttempts {
			return lifeboat.Errorf(lifeboat.ECorrupt, "re-encrypt: %d manifests or trees of the vault at %s do not open, so what they reference is unknown: nothing was rewritten; run lifeboat vault check", sc.unreadable, v.be.Location())
		}
	}
	packs, tombs, idxPacks, all, vers, refs := sc.packs, sc.tombs, sc.idxPacks, sc.all, sc.vers, sc.refs
	healthy := func(p blob.PackID) bool { _, ok := packs[p]; return ok && !tombs[p] }
	indexed := map[blob.PackID]bool{}
	for _, ps := range idxPacks {
		for _, p := range ps {
			indexed[p] = true
		}
	}
	// good: a copy in a healthy, indexed pack under a recent key. A pack no
	// index names (a run that died before its index) does not count:
	// readers would not find it.
	good := map[blob.ID]bool{}
	entries := map[blob.PackID][]blob.Entry{}
	for _, pe := range all {
		if _, seen := entries[pe.Pack]; !seen {
			entries[pe.Pack] = pe.Entries
		}
		if healthy(pe.Pack) && indexed[pe.Pack] && vers[pe.Pack] >= minVer {
			for _, e := range pe.Entries {
				good[e.ID] = true
			}
		}
	}
	// Old packs: present, sealed under an older key. Indexed healthy ones
	// are condemned even if they hold nothing referenced (garbage under the
	// old key); unindexed ones (a backup in flight, or leftovers) and
	// condemned ones only matter if they hold a referenced blob with no
	// good copy. So do, as for the collector, indexed ones written since
	// the earliest live write session started: a running backup's, named by
	// its checkpoints; condemned, they failed that backup at its commit. A
	// later run takes those its point then references.
	live := !sc.liveFrom.IsZero()
	var old []blob.PackID
	var total int64
	for p, pi := range sortedPacks(packs) {
		ver, known := vers[p]
		if !known || ver >= minVer {
			continue
		}
		needed := false
		for _, e := range entries[p] {
			if _, ok := refs[e.ID]; ok && !good[e.ID] {
				needed = true
				break
			}
		}
		ofLiveSession := live && !pi.mod.Before(sc.liveFrom)
		if !needed && (!indexed[p] || tombs[p] || ofLiveSession) {
			continue
		}
		old = append(old, p)
		total += pi.size
	}
	var done int64
	if progress != nil {
		progress(0, total)
	}
	for start := 0; start < len(old); start += reencryptBatch {
		batch := old[start:min(start+reencryptBatch, len(old))]
		n, err := v.reencryptBatch(ctx, batch, entries, refs, good, tombs, res)
		done += n
		if progress != nil {
			progress(done, total)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// packScan is step 1 of Reencrypt: the collector's view of the vault.
type packScan struct {
	packs      map[blob.PackID]packInfo // present
	tombs      map[blob.PackID]bool
	idxPacks   map[string][]blob.PackID // by readable index object
	all        []index.PackEntries
	vers       map[blob.PackID]uint32 // data key version of each pack
	refs       map[blob.ID]struct{}   // referenced blobs
	unreadable int                    // manifests and trees that did not open
	// stNow is the storage's clock; liveFrom the start of the earliest live
	// write session (zero if none), listed after the packs and before the
	// manifests, as the collector does.
	stNow, liveFrom time.Time
}

// scanPacks lists packs, tombstones and write sessions, then manifests,
// then index objects, and walks every point's trees, as the collector does.
func (v *Vault) scanPacks(ctx context.Context) (*packScan, error) {
	sc := &packScan{packs: map[blob.PackID]packInfo{}}
	var err error
	if sc.stNow, err = v.StorageTime(ctx); err != nil {
		return nil, err
	}
	if err := v.be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		if p, err := blob.ParsePackName(oi.Name); err == nil {
			sc.packs[p] = packInfo{size: oi.Size, mod: oi.ModTime}
		}
		return nil
	}); err != nil {
		return nil, storageError(v.be, err)
	}
	if err := v.loadCondemned(ctx); err != nil {
		return nil, err
	}
	if sc.tombs, err = v.listCondemned(ctx); err != nil {
		return nil, err
	}
	if sc.liveFrom, _, err = v.liveSessions(ctx, sc.stNow); err != nil {
		return nil, err
	}
	points, err := v.listPoints(ctx)
	if err != nil {
		return nil, err
	}
	if sc.idxPacks, sc.all, sc.vers, err = v.collectIndexes(ctx, sc.packs); err != nil {
		return nil, err
	}
	healthy := func(p blob.PackID) bool { _, ok := sc.packs[p]; return ok && !sc.tombs[p] }
	fresh := index.New()
	for pass := range 2 {
		for _, pe := range sc.all {
			if _, ok := sc.packs[pe.Pack]; ok && healthy(pe.Pack) == (pass == 0) {
				fresh.Add(pe.Pack, pe.Entries)
			}
		}
	}
	sc.refs, sc.unreadable, err = v.referencedBlobs(ctx, fresh, points)
	if err != nil {
		return nil, err
	}
	return sc, nil
}

// reencryptBatch copies the referenced blobs of a batch of old packs that
// have no good copy yet, commits the copies (packs, then an index object),
// then condemns the old packs whose referenced blobs all have good copies.
// It returns the bytes of old packs read.
func (v *Vault) reencryptBatch(ctx context.Context, batch []blob.PackID, entries map[blob.PackID][]blob.Entry,
	refs map[blob.ID]struct{}, good map[blob.ID]bool, tombs map[blob.PackID]bool, res *ReencryptResult) (int64, error) {
	s := v.newSaver(ctx)
	var read int64
	keep := map[blob.PackID]bool{} // a referenced blob in it did not open
	gone := map[blob.PackID]bool{} // deleted by a collector since the listing
	var copied []blob.ID
	fail := func(err error) (int64, error) {
		if serr := s.abort(); serr != nil && !errors.Is(serr, context.Canceled) {
			err = serr
		}
		return read, storageError(v.be, err)
	}
	for _, p := range batch {
		data, err := storage.ReadAll(ctx, v.be, p.ObjectName())
		if errors.Is(err, storage.ErrNotFound) {
			gone[p] = true
			continue
		}
		if err != nil {
			return fail(fmt.Errorf("read pack %s: %w", p, err))
		}
		read += int64(len(data))
		res.PacksRead++
		res.BytesRead += int64(len(data))
		es := append([]blob.Entry(nil), entries[p]...)
		sort.Slice(es, func(i, j int) bool { return es[i].Offset < es[j].Offset })
		for _, e := range es {
			if _, ok := refs[e.ID]; !ok || good[e.ID] {
				continue
			}
			end := int64(e.Offset) + int64(e.Length)
			var plain []byte
			if end > int64(len(data)) {
				err = &CorruptError{Object: p.ObjectName(), Blob: e.ID.String(), Err: errors.New("pack truncated")}
			} else {
				plain, err = v.openBlob(ctx, index.Location{Pack: p, Entry: e}, data[e.Offset:end])
			}
			if err == nil && v.Hash(plain) != e.ID {
				err = &CorruptError{Object: p.ObjectName(), Blob: e.ID.String(), Err: errors.New("content does not hash to its id")}
			}
			var ce *CorruptError
			if errors.As(err, &ce) {
				// Not copied: the old pack stays (uncondemned, unless a
				// collector did it) so that nothing that opens is lost.
				keep[p] = true
				res.Problems = append(res.Problems, Problem{Object: ce.Object, Blob: ce.Blob, What: "not re-encrypted: " + ce.Err.Error()})
				continue
			}
			if err != nil {
				return fail(err)
			}
			_, n, err := s.saveNew(e.Type, e.ID, plain)
			if err != nil {
				return fail(err)
			}
			copied = append(copied, e.ID)
			res.BlobsRewritten++
			res.BytesWritten += int64(n)
		}
	}
	if err := s.finish(); err != nil {
		return read, storageError(v.be, fmt.Errorf("re-encrypt: commit new packs: %w", err))
	}
	res.PacksWritten += len(s.done)
	for _, id := range copied {
		good[id] = true
	}
	// The copies are durable and indexed: the old packs can go, by the
	// collector's rules.
	for _, p := range batch {
		if keep[p] {
			res.PacksKept++
			continue
		}
		if gone[p] || tombs[p] {
			continue // condemned already
		}
		if err := v.be.Put(ctx, tombstoneName(p), nil); err != nil && !errors.Is(err, storage.ErrExists) {
			return read, storageError(v.be, fmt.Errorf("condemn pack %s: %w", p, err))
		}
		v.setCondemned(p, true)
		tombs[p] = true
		res.PacksCondemned++
	}
	return read, nil
}

// resealPoints rewrites the manifests sealed under an older key.
func (v *Vault) resealPoints(ctx context.Context, minVer uint32, res *ReencryptResult) error {
	points, err := v.listPoints(ctx)
	if err != nil {
		return err
	}
	for _, id := range sortedIDs(points) {
		purged := func(ctx context.Context) (bool, error) {
			_, err := v.be.Stat(ctx, purgedName(id))
			if errors.Is(err, storage.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		}
		r, err := v.reseal(ctx, manifest.ObjectName(id), points[id], manifest.Context(id), minVer, purged)
		if err := v.resealOutcome(err, res); err != nil {
			return err
		}
		switch r {
		case resealDone:
			res.Manifests++
		case resealWithdrawn:
			res.Withdrawn++
		}
	}
	return nil
}

// resealMarkers rewrites the point markers sealed under an older key.
func (v *Vault) resealMarkers(ctx context.Context, minVer uint32, res *ReencryptResult) error {
	byBase := map[string][]string{}
	if err := v.be.List(ctx, marker.Prefix, func(oi storage.ObjectInfo) error {
		base, _ := splitResealed(oi.Name)
		if _, err := marker.ParseName(base); err != nil {
			res.Problems = append(res.Problems, Problem{Object: oi.Name, What: "not re-encrypted: " + err.Error()})
			return nil
		}
		byBase[base] = append(byBase[base], oi.Name)
		return nil
	}); err != nil {
		return storageError(v.be, err)
	}
	for _, names := range byBase {
		sortCopies(names)
	}
	return v.resealEach(ctx, byBase, marker.Context, minVer, res, &res.Markers)
}

// resealAudit rewrites the audit segments sealed under an older key.
func (v *Vault) resealAudit(ctx context.Context, minVer uint32, res *ReencryptResult) error {
	byBase, err := v.listAuditSegments(ctx)
	if err != nil {
		return err
	}
	return v.resealEach(ctx, byBase, auditContext, minVer, res, &res.AuditSegments)
}

// resealLockRecords rewrites the records of the vault's lock sealed under
// an older key.
func (v *Vault) resealLockRecords(ctx context.Context, minVer uint32, res *ReencryptResult) error {
	byBase, err := v.lockRecords(ctx)
	if err != nil {
		return err
	}
	return v.resealEach(ctx, byBase, lockRecordContext, minVer, res, &res.LockRecords)
}

// resealEach reseals every object of byBase (base name: its copies), in
// name order, counting those rewritten in done.
func (v *Vault) resealEach(ctx context.Context, byBase map[string][]string, context func(string) string, minVer uint32, res *ReencryptResult, done *int) error {
	for _, base := range sortedKeys(byBase) {
		r, err := v.reseal(ctx, base, byBase[base], context(base), minVer, nil)
		if err := v.resealOutcome(err, res); err != nil {
			return err
		}
		if r == resealDone {
			*done++
		}
	}
	return nil
}

// resealOutcome records an object that does not open as a problem (it is
// left as it is) and returns any other error.
func (v *Vault) resealOutcome(err error, res *ReencryptResult) error {
	var ce *CorruptError
	switch {
	case err == nil, errors.Is(err, storage.ErrNotFound): // deleted since the listing
		return nil
	case errors.As(err, &ce):
		res.Problems = append(res.Problems, Problem{Object: ce.Object, What: "not re-encrypted: " + ce.Err.Error()})
		return nil
	}
	return storageError(v.be, err)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
