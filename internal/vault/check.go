package vault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
	"github.com/lifeboat-vault/lifeboat/internal/vault/index"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/marker"
	"github.com/lifeboat-vault/lifeboat/internal/vault/pack"
	"github.com/lifeboat-vault/lifeboat/internal/vault/tree"
)

// CheckOptions select how deep check goes.
type CheckOptions struct {
	// ReadData decrypts and verifies every blob of the packs read.
	ReadData bool
	// ReadPercent (0 < p <= 100) reads a random subset of packs; 0 means all.
	ReadPercent float64
	Progress    *Progress
}

// Problem is one thing check found wrong.
type Problem struct {
	Object string   `json:"object"`           // storage object
	Blob   string   `json:"blob,omitempty"`   // damaged blob, if known
	What   string   `json:"what"`             // what is wrong
	Points []string `json:"points,omitempty"` // points it breaks
	Paths  []string `json:"paths,omitempty"`  // files/dirs it breaks ("point:path"), first few
}

// CheckReport is check's result.
type CheckReport struct {
	Points       int       `json:"points"`
	Packs        int       `json:"packs"`
	PacksRead    int       `json:"packs_read"`
	Blobs        int       `json:"blobs"`
	BlobsRead    int       `json:"blobs_read"`
	Unreferenced int       `json:"unreferenced_packs"` // packs no index names: leftovers of interrupted backups
	Problems     []Problem `json:"problems"`
}

// OK reports whether check found nothing wrong.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

const maxPathsPerProblem = 20

// Check verifies the vault's structure: every manifest opens, every tree a
// point reaches decodes, every blob it references is indexed and its pack is
// present and long enough. With ReadData it also reads packs and verifies
// every blob (authentication and keyed hash) and each trailer against the
// index. Each problem names the object, and the points and paths it breaks.
// Data key objects that do not open, and data key versions that no key slot
// or data key object provides, are problems too (named datakeys/<version>).
func (v *Vault) Check(ctx context.Context, opts CheckOptions) (*CheckReport, error) {
	rep := &CheckReport{}
	bad := map[blob.ID]*Problem{} // damaged or missing blobs
	var objProblems []Problem

	// Packs present in storage.
	sizes := map[blob.PackID]int64{}
	err := v.be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		if p, err := blob.ParsePackName(oi.Name); err == nil {
			sizes[p] = oi.Size
		}
		return nil
	})
	if err != nil {
		return nil, storageError(v.be, err)
	}
	indexed := map[blob.PackID]bool{}
	packEnd := map[blob.PackID]int64{}
	byPack := map[blob.PackID][]index.Location{}
	v.idx.Each(func(l index.Location) {
		indexed[l.Pack] = true
		packEnd[l.Pack] = max(packEnd[l.Pack], int64(l.Offset)+int64(l.Length))
		byPack[l.Pack] = append(byPack[l.Pack], l)
		rep.Blobs++
	})
	rep.Packs = len(indexed)
	for p := range sizes {
		if !indexed[p] {
			rep.Unreferenced++
		}
	}
	// A pack whose size is not what its entry list says: its trailer is cut
	// short or damaged, or bytes follow it. Its blobs still read, but an
	// index rebuilt from the packs would miss them. (Read-data names the
	// trailer's damage itself; this is for packs it does not read.)
	sizeBad := map[blob.PackID]Problem{}
	for p, locs := range byPack {
		sz, ok := sizes[p]
		if n, end, known := v.idx.PackExtent(p); ok && known && sz >= end {
			if want := pack.Size(n, end); sz != want {
				sizeBad[p] = Problem{Object: p.ObjectName(), What: fmt.Sprintf("pack is %d bytes where its entry list makes %d: its trailer is cut short or damaged (its blobs still read; the pack no longer describes itself)", sz, want)}
			}
		}
		switch {
		case !ok:
			for _, l := range locs {
				bad[l.ID] = &Problem{Object: p.ObjectName(), Blob: l.ID.String(), What: "pack missing"}
			}
		case sz < packEnd[p]+4:
			for _, l := range locs {
				if int64(l.Offset)+int64(l.Length) > sz {
					bad[l.ID] = &Problem{Object: p.ObjectName(), Blob: l.ID.String(), What: fmt.Sprintf("pack truncated to %d bytes", sz)}
				}
			}
		}
	}

	// Data: read packs and verify every blob.
	if opts.ReadData {
		var packs []blob.PackID
		for p := range byPack {
			if _, ok := sizes[p]; ok {
				packs = append(packs, p)
			}
		}
		sort.Slice(packs, func(i, j int) bool { return string(packs[i][:]) < string(packs[j][:]) })
		if opts.ReadPercent > 0 && opts.ReadPercent < 100 {
			rand.Shuffle(len(packs), func(i, j int) { packs[i], packs[j] = packs[j], packs[i] })
			n := int(float64(len(packs))*opts.ReadPercent/100 + 0.999)
			packs = packs[:min(max(n, 1), len(packs))]
		}
		var mu sync.Mutex
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(v.opts.Workers)
		for _, p := range packs {
			g.Go(func() error {
				probs, n, err := v.checkPack(gctx, p, byPack[p])
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				if n >= 0 {
					rep.PacksRead++
					rep.BlobsRead += n
				}
				for _, pr := range probs {
					if pr.Blob != "" {
						var id blob.ID
						_ = id.UnmarshalText([]byte(pr.Blob))
						if bad[id] == nil {
							bad[id] = &pr
						}
					} else {
						objProblems = append(objProblems, pr)
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, storageError(v.be, err)
		}
	}

	for _, pr := range sizeBad {
		if !slices.ContainsFunc(objProblems, func(x Problem) bool { return x.Object == pr.Object }) {
			objProblems = append(objProblems, pr)
		}
	}

	// Packs no index object names: leftovers of interrupted backups
	// (harmless), or the packs of an index object that is lost. Their
	// trailers say what they hold; a point that needs one is reported (it
	// restores, from the trailer).
	orphanPacks, err := v.indexOrphans(ctx)
	if err != nil {
		return nil, err
	}
	orphan := map[blob.ID]*Problem{}
	for p, es := range orphanPacks {
		pr := &Problem{Object: p.ObjectName(), What: "pack named by no index object (an index object is lost): points restore from the pack's own trailer"}
		for _, e := range es {
			// Only blobs that are in no indexed pack: a copy of a blob
			// an indexed pack holds (an interrupted backup's) is never
			// read.
			if loc, ok := v.idx.Lookup(e.ID); ok && loc.Pack == p {
				orphan[e.ID] = pr
			}
		}
	}

	// Points: walk every tree, attribute damage to points and paths.
	points, err := v.listPoints(ctx)
	if err != nil {
		return nil, err
	}
	ids := sortedIDs(points)
	rep.Points = len(ids)
	treeOK := map[blob.ID]error{}
	for _, id := range ids {
		plain, from, _, err := v.readCopies(ctx, points[id], manifest.Context(id))
		var p *manifest.Point
		if err == nil {
			p, err = decodePoint(from, plain, id)
		}
		if errors.Is(err, storage.ErrNotFound) {
			rep.Points--
			continue // purged since the listing
		}
		if err != nil && v.unreadable(ctx, err) {
			err = &CorruptError{Object: manifest.ObjectName(id), Err: fmt.Errorf("could not be read: %w", err)}
		}
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				return nil, storageError(v.be, err)
			}
			objProblems = append(objProblems, Problem{Object: manifest.ObjectName(id), What: ce.Err.Error(), Points: []string{id}})
			continue
		}
		// Other copies (re-encryption's) must open too: a later
		// re-encryption keeps the newest copy and deletes the others.
		for _, n := range points[id] {
			if n == from {
				continue
			}
			_, err := v.getSealed(ctx, n, manifest.Context(id))
			var ce *CorruptError
			switch {
			case errors.As(err, &ce):
				objProblems = append(objProblems, Problem{Object: n, What: "copy of the manifest does not open: " + ce.Err.Error() + " (the point reads from " + from + ")", Points: []string{id}})
			case err != nil && !errors.Is(err, storage.ErrNotFound):
				return nil, storageError(v.be, err)
			}
		}
		root := &tree.Node{Type: tree.Dir, Subtree: &p.Root}
		if err := v.checkTree(ctx, id, root, "", bad, orphan, treeOK); err != nil {
			return nil, err
		}
	}
	for _, pr := range bad {
		if len(pr.Points) > 0 {
			rep.Problems = append(rep.Problems, *pr)
		}
	}
	seen := map[*Problem]bool{}
	for _, pr := range orphan {
		if len(pr.Points) > 0 && !seen[pr] {
			seen[pr] = true
			rep.Problems = append(rep.Problems, *pr)
		}
	}
	// Damaged blobs no point references are still worth reporting, except
	// in packs a garbage collector condemned (deleted on purpose).
	cond, err := v.listCondemned(ctx)
	if err != nil {
		return nil, err
	}
	for _, pr := range bad {
		if pk, err := blob.ParsePackName(pr.Object); err == nil && cond[pk] && len(pr.Points) == 0 {
			continue
		}
		if len(pr.Points) == 0 {
			pr.What += " (no point references it)"
			rep.Problems = append(rep.Problems, *pr)
		}
	}
	rep.Problems = append(rep.Problems, objProblems...)
	rep.Problems = append(rep.Problems, v.badIndexes...)
	dkp, err := v.dataKeyProblems(ctx)
	if err != nil {
		return nil, err
	}
	rep.Problems = append(rep.Problems, dkp...)
	mp, err := v.markerAndSlotProblems(ctx)
	if err != nil {
		return nil, err
	}
	rep.Problems = append(rep.Problems, mp...)
	sort.Slice(rep.Problems, func(i, j int) bool {
		a, b := rep.Problems[i], rep.Problems[j]
		if a.Object != b.Object {
			return a.Object < b.Object
		}
		return a.Blob < b.Blob
	})
	return rep, nil
}

func (pr *Problem) note(point, path string) {
	if len(pr.Points) == 0 || pr.Points[len(pr.Points)-1] != point {
		found := false
		for _, p := range pr.Points {
			found = found || p == point
		}
		if !found {
			pr.Points = append(pr.Points, point)
		}
	}
	if len(pr.Paths) < maxPathsPerProblem {
		pr.Paths = append(pr.Paths, point[:8]+":"+path)
	}
}

func (v *Vault) checkTree(ctx context.Context, point string, n *tree.Node, path string, bad, orphan map[blob.ID]*Problem, treeOK map[blob.ID]error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch n.Type {
	case tree.File:
		for _, e := range n.Content {
			if e.ID == nil {
				continue
			}
			if pr := bad[*e.ID]; pr != nil {
				pr.note(point, path)
				continue
			}
			if pr := orphan[*e.ID]; pr != nil {
				pr.note(point, path)
			}
			if !v.idx.Has(*e.ID) {
				pr := &Problem{Object: "index", Blob: e.ID.String(), What: "blob not in any index"}
				bad[*e.ID] = pr
				pr.note(point, path)
			}
		}
	case tree.Dir:
		id := *n.Subtree
		if pr := bad[id]; pr != nil {
			pr.note(point, nonEmpty(path))
			return nil
		}
		if pr := orphan[id]; pr != nil {
			pr.note(point, nonEmpty(path))
		}
		t, err := v.LoadTree(ctx, id)
		if err != nil && v.unreadable(ctx, err) {
			loc, _ := v.idx.Lookup(id)
			err = &CorruptError{Object: loc.Pack.ObjectName(), Blob: id.String(), Err: fmt.Errorf("could not be read: %w", err)}
		}
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				return storageError(v.be, err)
			}
			pr := &Problem{Object: ce.Object, Blob: id.String(), What: "tree: " + ce.Err.Error()}
			if ce.Object == "" || strings.HasPrefix(ce.Object, "data/") == false {
				pr.Object = ce.Object
			}
			bad[id] = pr
			pr.note(point, nonEmpty(path))
			return nil
		}
		for _, c := range t.Nodes {
			cp := c.Name
			if path != "" {
				cp = path + "/" + c.Name
			}
			if err := v.checkTree(ctx, point, c, cp, bad, orphan, treeOK); err != nil {
				return err
			}
		}
	}
	return nil
}

func nonEmpty(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// unreadable reports whether a failed read failed for that object alone:
// not found, corrupt or cancelled it is not, and the storage must still
// answer (its config object reads). Check then reports the object as a
// problem, with the points and files it breaks, and goes on; otherwise the
// storage is unavailable and check stops.
func (v *Vault) unreadable(ctx context.Context, err error) bool {
	var ce *CorruptError
	if ctx.Err() != nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, context.Canceled) || errors.As(err, &ce) {
		return false
	}
	_, perr := storage.ReadAll(ctx, v.be, ConfigName)
	return perr == nil
}

// checkPack reads one pack whole and verifies its trailer and blobs. It
// returns the problems and how many blobs it read: -1 if the pack could not
// be read (its blobs are the problems).
func (v *Vault) checkPack(ctx context.Context, p blob.PackID, locs []index.Location) ([]Problem, int, error) {
	name := p.ObjectName()
	data, err := storage.ReadAll(ctx, v.be, name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, 0, nil // reported by the structure pass
	}
	if err != nil {
		if !v.unreadable(ctx, err) {
			return nil, 0, err
		}
		probs := make([]Problem, 0, len(locs))
		for _, l := range locs {
			probs = append(probs, Problem{Object: name, Blob: l.ID.String(), What: "pack could not be read: " + err.Error()})
		}
		return probs, -1, nil
	}
	var probs []Problem
	es, terr := v.readPackTrailer(ctx, p, data)
	if terr != nil {
		probs = append(probs, Problem{Object: name, What: terr.Error()})
	} else {
		inTrailer := map[blob.ID]blob.Entry{}
		for _, e := range es {
			inTrailer[e.ID] = e
		}
		for _, l := range locs {
			if e, ok := inTrailer[l.ID]; !ok || e != l.Entry {
				probs = append(probs, Problem{Object: name, Blob: l.ID.String(), What: "index and pack trailer disagree"})
			}
		}
	}
	n := 0
	for _, l := range locs {
		end := int64(l.Offset) + int64(l.Length)
		if end > int64(len(data)) {
			probs = append(probs, Problem{Object: name, Blob: l.ID.String(), What: "pack truncated"})
			continue
		}
		plain, err := v.openBlob(ctx, l, data[l.Offset:end])
		n++
		if err != nil {
			var ce *CorruptError
			if errors.As(err, &ce) {
				probs = append(probs, Problem{Object: name, Blob: l.ID.String(), What: ce.Err.Error()})
				continue
			}
			return nil, 0, err
		}
		if v.Hash(plain) != l.ID {
			probs = append(probs, Problem{Object: name, Blob: l.ID.String(), What: "content does not hash to its id"})
		}
	}
	return probs, n, nil
}

// markerAndSlotProblems reads every point marker and key slot: a marker
// that does not open makes the point's state unknown (listing points and
// "latest" fail), and a key slot that does not parse opens nothing.
func (v *Vault) markerAndSlotProblems(ctx context.Context) ([]Problem, error) {
	var out []Problem
	var names []string
	if err := v.be.List(ctx, marker.Prefix, func(oi storage.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	}); err != nil {
		return nil, storageError(v.be, err)
	}
	for _, obj := range names {
		base, _ := splitResealed(obj)
		n, err := marker.ParseName(base)
		if err != nil {
			out = append(out, Problem{Object: obj, What: "not a point marker: " + err.Error()})
			continue
		}
		_, err = v.openMarker(ctx, obj, n)
		var ce *CorruptError
		switch {
		case errors.As(err, &ce):
			out = append(out, Problem{Object: obj, What: "point marker does not open (the point's state is unknown; listing points fails): " + ce.Err.Error(), Points: []string{n.Point}})
		case err != nil && !errors.Is(err, storage.ErrNotFound):
			return nil, storageError(v.be, err)
		}
	}
	var slots []string
	if err := v.be.List(ctx, slotPrefix, func(oi storage.ObjectInfo) error {
		if !isFeatureObject(oi.Name) {
			slots = append(slots, oi.Name)
		}
		return nil
	}); err != nil {
		return nil, storageError(v.be, err)
	}
	for _, name := range slots {
		b, err := storage.ReadAll(ctx, v.be, name)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, storageError(v.be, err)
		}
		if _, err := crypto.ParseSlot(b); err != nil {
			out = append(out, Problem{Object: name, What: "key slot does not parse: " + err.Error()})
		}
	}
	return out, nil
}
