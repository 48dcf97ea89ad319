package vault

import (
	"context"
	"errors"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/tree"
)

// PointIDs lists the ids of every manifest in the vault.
func (v *Vault) PointIDs(ctx context.Context) ([]string, error) {
	m, err := v.listPoints(ctx)
	if err != nil {
		return nil, err
	}
	return sortedIDs(m), nil
}

func sortedIDs(m map[string][]string) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Points loads every manifest, oldest first. A manifest that does not open
// is an error naming it (check reports all of them).
func (v *Vault) Points(ctx context.Context) ([]*manifest.Point, error) {
	pts, damaged, err := v.allPoints(ctx)
	if err == nil && len(damaged) > 0 {
		err = storageError(v.be, damaged[0].CorruptError)
	}
	if err != nil {
		return nil, err
	}
	return pts, nil
}

// ReadablePoints loads every manifest that opens, oldest first, and names
// those that do not: one damaged manifest must not hide every point (and
// their ids) in a disaster.
func (v *Vault) ReadablePoints(ctx context.Context) ([]*manifest.Point, []Problem, error) {
	pts, damaged, err := v.allPoints(ctx)
	if err != nil {
		return nil, nil, err
	}
	var problems []Problem
	for _, ce := range damaged {
		problems = append(problems, Problem{Object: ce.Object, What: "manifest does not open: " + ce.Err.Error(), Points: []string{ce.point}})
	}
	return pts, problems, nil
}

// damagedPoint is a manifest that does not open.
type damagedPoint struct {
	*CorruptError
	point string
}

// allPoints loads every manifest that opens, oldest first, and returns
// those that do not.
func (v *Vault) allPoints(ctx context.Context) ([]*manifest.Point, []damagedPoint, error) {
	m, err := v.listPoints(ctx)
	if err != nil {
		return nil, nil, err
	}
	pts, damaged, err := v.loadPoints(ctx, sortedIDs(m), m, true)
	if err != nil {
		return nil, nil, err
	}
	sort.SliceStable(pts, func(i, j int) bool { return pts[i].Time.Before(pts[j].Time) })
	return pts, damaged, nil
}

// loadPoints reads the manifests of ids (names from a listing), 8 at a
// time, leaving out points purged or withdrawn since the listing. A
// manifest that does not open fails the call, or with lenient is returned
// among the damaged.
func (v *Vault) loadPoints(ctx context.Context, ids []string, names map[string][]string, lenient bool) ([]*manifest.Point, []damagedPoint, error) {
	pts := make([]*manifest.Point, len(ids))
	bad := make([]*CorruptError, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, id := range ids {
		g.Go(func() error {
			p, err := v.loadListedPoint(gctx, id, names[id])
			var ce *CorruptError
			switch {
			case errors.Is(err, storage.ErrNotFound):
				return nil // purged since the listing
			case lenient && errors.As(err, &ce):
				bad[i] = ce
				return nil
			}
			pts[i] = p
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, storageError(v.be, err)
	}
	var damaged []damagedPoint
	for i, ce := range bad {
		if ce != nil {
			damaged = append(damaged, damagedPoint{ce, ids[i]})
		}
	}
	return slices.DeleteFunc(pts, func(p *manifest.Point) bool { return p == nil }), damaged, nil
}

// loadPoint reads a point's manifest: the original object, or else (it was
// re-encrypted, or does not open) the newest copy that opens.
func (v *Vault) loadPoint(ctx context.Context, id string) (*manifest.Point, error) {
	name := manifest.ObjectName(id)
	plain, err := v.getSealed(ctx, name, manifest.Context(id))
	if err == nil {
		return decodePoint(name, plain, id)
	}
	var ce *CorruptError
	if !errors.Is(err, storage.ErrNotFound) && !errors.As(err, &ce) {
		return nil, err
	}
	names, lerr := v.pointCopies(ctx, id)
	if lerr != nil {
		return nil, lerr
	}
	if len(names) == 0 || len(names) == 1 && names[0] == name {
		return nil, err
	}
	return v.loadPointFrom(ctx, id, names)
}

// loadListedPoint reads a point's manifest from the copies a listing found
// (names). When none of them is there any more, the copies are listed
// again: a re-encryption may have replaced them since (written a copy,
// deleted the original). Only a point with no copy left is not found
// (purged or withdrawn); a collector that took a re-encrypted point for
// purged left its packs unreferenced.
func (v *Vault) loadListedPoint(ctx context.Context, id string, names []string) (*manifest.Point, error) {
	p, err := v.loadPointFrom(ctx, id, names)
	if !errors.Is(err, storage.ErrNotFound) {
		return p, err
	}
	again, lerr := v.pointCopies(ctx, id)
	if lerr != nil {
		return nil, lerr
	}
	if len(again) == 0 {
		return nil, err
	}
	return v.loadPointFrom(ctx, id, again)
}

// loadPointFrom reads a point's manifest from the newest of its copies
// names that opens.
func (v *Vault) loadPointFrom(ctx context.Context, id string, names []string) (*manifest.Point, error) {
	plain, name, _, err := v.readCopies(ctx, names, manifest.Context(id))
	if err != nil {
		return nil, err
	}
	return decodePoint(name, plain, id)
}

func decodePoint(name string, plain []byte, id string) (*manifest.Point, error) {
	p, err := manifest.Decode(plain, id)
	if err != nil {
		return nil, &CorruptError{Object: name, Err: err}
	}
	return p, nil
}

// LoadPoint resolves "latest" (the newest point not soft-deleted whose
// manifest opens), a full id
// or a unique id prefix (4+ hex digits; soft-deleted points included: they
// stay restorable until collected).
func (v *Vault) LoadPoint(ctx context.Context, ref string) (*manifest.Point, error) {
	if ref == "latest" {
		// The newest point whose manifest opens: a damaged manifest (check
		// names it) must not stand between a restore and the others.
		pts, _, err := v.ReadablePoints(ctx)
		if err != nil {
			return nil, err
		}
		states, err := v.PointStates(ctx)
		if err != nil {
			return nil, err
		}
		for i := len(pts) - 1; i >= 0; i-- {
			if !states[pts[i].ID].Deleted {
				return pts[i], nil
			}
		}
		return nil, lifeboat.Errorf(lifeboat.ENotFound, "the vault at %s has no point yet (or every point is deleted)", v.be.Location())
	}
	if err := CheckPointRef(ref); err != nil {
		return nil, err
	}
	ref = strings.ToLower(ref)
	ids, err := v.PointIDs(ctx)
	if err != nil {
		return nil, err
	}
	var match []string
	for _, id := range ids {
		if strings.HasPrefix(id, ref) {
			match = append(match, id)
		}
	}
	switch len(match) {
	case 0:
		return nil, lifeboat.Errorf(lifeboat.ENotFound, "no point %s in the vault at %s", ref, v.be.Location())
	case 1:
		p, err := v.loadPoint(ctx, match[0])
		if err != nil {
			return nil, storageError(v.be, err)
		}
		return p, nil
	}
	return nil, lifeboat.Errorf(lifeboat.EInvalid, "point id %s is ambiguous: %d points start with it", ref, len(match))
}

// CheckPointRef checks the shape of a point reference LoadPoint takes:
// "latest", or 4 or more hex digits of an id.
func CheckPointRef(ref string) error {
	if ref == "latest" {
		return nil
	}
	if len(ref) < 4 || strings.Trim(strings.ToLower(ref), "0123456789abcdef") != "" {
		return lifeboat.Errorf(lifeboat.EInvalid, "bad point id %q: want \"latest\" or 4 or more hex digits", ref)
	}
	return nil
}

// LoadTree reads and decodes a tree blob.
func (v *Vault) LoadTree(ctx context.Context, id blob.ID) (*tree.Tree, error) {
	b, err := v.readBlob(ctx, id)
	if err != nil {
		return nil, err
	}
	t, err := tree.Decode(b)
	if err != nil {
		loc, _ := v.idx.Lookup(id)
		return nil, &CorruptError{Object: loc.Pack.ObjectName(), Blob: id.String(), Err: err}
	}
	return t, nil
}

// Lookup finds the node at a slash-separated path in a point ("" is the root,
// a directory node whose children are the components).
func (v *Vault) Lookup(ctx context.Context, p *manifest.Point, path string) (*tree.Node, error) {
	root := &tree.Node{Name: "", Type: tree.Dir, Mode: 0o755, Subtree: &p.Root, MTime: p.Time.UnixNano()}
	n := root
	for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
		if part == "" || part == "." {
			continue
		}
		if n.Type != tree.Dir {
			return nil, lifeboat.Errorf(lifeboat.ENotFound, "%s not found in point %s: %s is not a directory", path, p.ID[:8], n.Name)
		}
		t, err := v.LoadTree(ctx, *n.Subtree)
		if err != nil {
			return nil, storageError(v.be, err)
		}
		c := t.Find(part)
		if c == nil {
			return nil, lifeboat.Errorf(lifeboat.ENotFound, "%s not found in point %s", path, p.ID[:8])
		}
		n = c
	}
	return n, nil
}

// Walk calls fn for every node under n (n itself first) in depth-first name
// order, with slash-separated paths relative to n's parent.
func (v *Vault) Walk(ctx context.Context, n *tree.Node, path string, fn func(path string, n *tree.Node) error) error {
	if err := fn(path, n); err != nil {
		return err
	}
	if n.Type != tree.Dir {
		return nil
	}
	t, err := v.LoadTree(ctx, *n.Subtree)
	if err != nil {
		return err
	}
	for _, c := range t.Nodes {
		cp := c.Name
		if path != "" {
			cp = path + "/" + c.Name
		}
		if err := v.Walk(ctx, c, cp, fn); err != nil {
			return err
		}
	}
	return nil
}

// MaxReadFile bounds ReadFile: it is for small files (settings, metadata).
const MaxReadFile = 64 << 20

// ReadFile returns the content of a small regular file node, authenticated.
func (v *Vault) ReadFile(ctx context.Context, n *tree.Node) ([]byte, error) {
	if n.Type != tree.File {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "%s is a %s, not a file", n.Name, n.Type)
	}
	if n.Size > MaxReadFile {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "%s is %d bytes; too large to read in memory", n.Name, n.Size)
	}
	out := make([]byte, 0, n.Size)
	for _, e := range n.Content {
		if e.ID == nil {
			out = append(out, make([]byte, e.Hole)...)
			continue
		}
		b, err := v.readBlob(ctx, *e.ID)
		if err != nil {
			return nil, storageError(v.be, err)
		}
		out = append(out, b...)
	}
	if int64(len(out)) != n.Size {
		return nil, lifeboat.Errorf(lifeboat.ECorrupt, "file %s: content is %d bytes, the tree says %d", n.Name, len(out), n.Size)
	}
	return out, nil
}

// OpenFile returns a reader of a file node's content, blob by blob, every
// byte authenticated (a database dump is read this way, never whole into
// memory). A damaged blob ends the reader with the error.
func (v *Vault) OpenFile(ctx context.Context, n *tree.Node) (io.Reader, error) {
	if n.Type != tree.File {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "%s is a %s, not a file", n.Name, n.Type)
	}
	return &fileReader{ctx: ctx, v: v, exts: n.Content, size: n.Size}, nil
}

type fileReader struct {
	ctx  context.Context
	v    *Vault
	exts []tree.Extent
	buf  []byte
	hole int64
	read int64
	size int64
}

func (r *fileReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 && r.hole == 0 {
		if len(r.exts) == 0 {
			if r.read != r.size {
				return 0, lifeboat.Errorf(lifeboat.ECorrupt, "file content is %d bytes, the tree says %d", r.read, r.size)
			}
			return 0, io.EOF
		}
		e := r.exts[0]
		r.exts = r.exts[1:]
		if e.ID == nil {
			r.hole = e.Hole
			continue
		}
		b, err := r.v.readBlob(r.ctx, *e.ID)
		if err != nil {
			return 0, storageError(r.v.be, err)
		}
		r.buf = b
	}
	if r.hole > 0 {
		n := int(min(int64(len(p)), r.hole))
		clear(p[:n])
		r.hole -= int64(n)
		r.read += int64(n)
		return n, nil
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	r.read += int64(n)
	return n, nil
}

// newestPoints yields the points of one host and app, newest (by the
// point's time) first, reading manifests only as far as needed: they are
// read in batches, most recently written first, and a point is yielded once
// no manifest left unread can be newer. That rests on a manifest being
// written after its point's time (a point's time is when its backup
// started); storage and writer clocks that disagree only make the search
// read further or, at worst, pick an older parent, which costs re-reading
// files and never correctness.
type newestPoints struct {
	v         *Vault
	host, app string
	names     map[string][]string // manifest objects of every point listed
	pending   []writtenPoint      // unread, most recently written first
	ready     []*manifest.Point   // read and matching, newest first
}

type writtenPoint struct {
	id      string
	written time.Time
}

// newestPointsBatch is how many manifests are read at once.
const newestPointsBatch = 8

func (v *Vault) newestPoints(ctx context.Context, host, app string) (*newestPoints, error) {
	m, written, err := v.listPointsWritten(ctx)
	if err != nil {
		return nil, err
	}
	it := &newestPoints{v: v, host: host, app: app, names: m, pending: make([]writtenPoint, 0, len(m))}
	for id := range m {
		it.pending = append(it.pending, writtenPoint{id: id, written: written[id]})
	}
	sort.Slice(it.pending, func(i, j int) bool {
		a, b := it.pending[i], it.pending[j]
		if !a.written.Equal(b.written) {
			return a.written.After(b.written)
		}
		return a.id < b.id
	})
	return it, nil
}

// next returns the next newest point, or nil when there is none.
func (it *newestPoints) next(ctx context.Context) (*manifest.Point, error) {
	for {
		if len(it.ready) > 0 && (len(it.pending) == 0 || it.ready[0].Time.After(it.pending[0].written)) {
			p := it.ready[0]
			it.ready = it.ready[1:]
			return p, nil
		}
		if len(it.pending) == 0 {
			return nil, nil
		}
		batch := it.pending[:min(newestPointsBatch, len(it.pending))]
		it.pending = it.pending[len(batch):]
		ids := make([]string, len(batch))
		for i, wp := range batch {
			ids[i] = wp.id
		}
		pts, _, err := it.v.loadPoints(ctx, ids, it.names, false)
		if err != nil {
			return nil, err
		}
		for _, p := range pts {
			if p.Host == it.host && p.App == it.app {
				it.ready = append(it.ready, p)
			}
		}
		sort.SliceStable(it.ready, func(i, j int) bool { return it.ready[i].Time.After(it.ready[j].Time) })
	}
}
