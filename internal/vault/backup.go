package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/chunker"
	"github.com/lifeboat-vault/lifeboat/internal/vault/index"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/tree"
)

// Source is one file tree to capture as a component.
type Source struct {
	Name string // component name; default: base name of Path
	Path string // absolute path on this host
	// Kind is the component kind recorded in the manifest (default "files").
	Kind string
	// Describe is the source recorded in the manifest (default Path): a
	// config component captured from a staging copy names its real files.
	// Parents are matched on it.
	Describe string
	// Excludes and Includes apply to this source only, besides the
	// backup's own.
	Excludes, Includes []string
	// Fixed > 0 cuts this source's files in fixed chunks of that many
	// bytes (database files, page-aligned) instead of content-defined ones.
	Fixed int
	// Remote, instead of Path, captures a tree on another host (Describe
	// names it: ssh://host/path).
	Remote RemoteFS
	// Meta, if set, is called after the component was captured; its JSON
	// is recorded in the manifest (database engine, versions, row counts).
	Meta func() []byte
	// Streams, instead of Path, make the component a directory of files
	// produced while the backup runs (database dumps): each is read once
	// and chunked straight into the vault, no temporary copy.
	Streams []Stream
}

// LinkedDir reports whether path is a symlink to a directory, and that
// directory. A backup captures such a path as the link itself (as tar and
// restic do), not what it points to: a deploy's "current" link gives a
// component of one symlink, which callers should explain.
func LinkedDir(path string) (dir string, ok bool) {
	path = filepath.Clean(path) // "link/" is captured as the link too
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return "", false
	}
	dir, err = filepath.EvalSymlinks(path)
	if err != nil {
		return "", false
	}
	if di, err := os.Stat(dir); err != nil || !di.IsDir() {
		return "", false
	}
	return dir, true
}

// Stream is a file of a stream component.
type Stream struct {
	Name string
	Mode uint32 // permission bits; default 0600
	// Open starts the producer. Close of the reader must report the
	// producer's failure (a dump tool's exit status): the backup then fails.
	Open func(ctx context.Context) (io.ReadCloser, error)
	// Fixed > 0: fixed chunks of that many bytes (see Source.Fixed).
	Fixed int
}

// cutter is a chunker: content-defined or fixed.
type cutter interface {
	Reset(r io.Reader)
	Next() ([]byte, error)
}

// BackupOptions describe one backup.
type BackupOptions struct {
	Sources []Source
	// Globs (see match): without "/" they match a base name at any depth,
	// with "/" the path relative to the source; a trailing "/" matches
	// directories only; "**" spans directories.
	Excludes []string
	// Includes, if set, capture only the files matching one, or under a
	// directory matching one (directories are always walked).
	Includes []string
	// SkipPaths are absolute paths never captured (the vault's own directory
	// when it lies inside a source).
	SkipPaths []string
	Labels    map[string]string
	Host      string // default: os.Hostname
	// App names the app the point belongs to (recorded in the manifest;
	// parents are then taken from the same app's points only).
	App string
	// Parent names the point whose unchanged files are reused without being
	// read; "" picks the newest point of the same host with the same source.
	Parent   string
	NoParent bool
	Progress *Progress
	// Scan counts files and bytes ahead of the backup, for an ETA (costs a
	// second stat of every file; the CLI asks for it only on a terminal).
	Scan bool
	// Warn is told about every item that could not be captured (not fatal).
	Warn func(path string, err error)
}

// Progress is updated atomically while a backup or restore runs.
type Progress struct {
	TotalFiles, TotalBytes atomic.Int64 // from a concurrent scan; ScanDone once known
	ScanDone               atomic.Bool
	Files, Bytes           atomic.Int64 // processed so far
	BytesRead, BytesNew    atomic.Int64
	Warnings               atomic.Int64
}

// maxWarnings kept in a manifest.
const maxWarnings = 50

type result struct {
	node *tree.Node
	err  error // fatal
}

type fileJob struct {
	path string
	node *tree.Node
	st   *unix.Stat_t
	out  chan result
}

type backup struct {
	v    *Vault
	opts BackupOptions
	s    *saver
	// extraPacks and extraBytes: packs (and their sealed bytes) of copies
	// out of condemned packs that index objects name (rescue).
	extraPacks int
	extraBytes int64
	ctx        context.Context
	jobs       chan fileJob
	prog       *Progress
	names      *idNames
	// Parent trees being loaded ahead of the walker.
	treeMu      sync.Mutex
	treeFutures map[blob.ID]chan *tree.Tree
	treeSem     chan struct{}
	prefetched  atomic.Int64 // entries of prefetched parent trees not yet taken
	// walkSem bounds the extra walker goroutines: four per worker, so that
	// sibling directories are listed at once and the workers get files from
	// several subtrees interleaved. Walked one after another, a directory of
	// incompressible uploads kept both workers waiting on the disk, then one
	// of small text files kept them busy compressing; mixed, the two overlap
	// (first backup 5.4-6.5% faster in two runs of 6 and 8 alternating pairs).
	walkSem chan struct{}
	walkers sync.WaitGroup
	listed  atomic.Int64 // entries of the directory listings being walked
	// skipIDs are the device and inode of each SkipPaths directory: a
	// source named through a symlink or a bind mount reaches the vault by
	// another path than the one given.
	skipIDs map[[2]uint64]bool

	// Large files hand their chunks to blob workers through blobs.
	blobs     chan blobJob
	chunkBufs sync.Pool

	mu       sync.Mutex
	stats    manifest.Stats
	warnings []string
	partial  bool
	cur      atomic.Pointer[Source] // the source being captured
	// parentTime is when the current source's parent point was taken (ns;
	// 0: none): files changed that close to it are read again (racy).
	parentTime int64
}

// Backup captures the sources into one new point and returns its manifest.
// The manifest is written after every pack and index it needs is durable.
func (v *Vault) Backup(ctx context.Context, opts BackupOptions) (*manifest.Point, error) {
	if len(opts.Sources) == 0 {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "nothing to back up: no path given")
	}
	globs := append(append([]string{}, opts.Excludes...), opts.Includes...)
	for _, s := range opts.Sources {
		globs = append(append(globs, s.Excludes...), s.Includes...)
	}
	for _, g := range globs {
		if err := CheckGlob(g); err != nil {
			return nil, err
		}
	}
	if opts.Host == "" {
		opts.Host, _ = os.Hostname()
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	srcs, err := nameSources(opts.Sources)
	if err != nil {
		return nil, err
	}
	start := v.opts.Now()
	var parents map[string]*tree.Node
	if !opts.NoParent {
		parents, err = v.parentNodes(ctx, opts.Host, opts.App, opts.Parent, srcs)
		if err != nil {
			return nil, err
		}
	}
	// Trees are written in the binary encoding: older readers must refuse.
	if err := v.ensureFeature(ctx, featureTrees2); err != nil {
		return nil, err
	}
	// New data keys another process made: new writes use the newest.
	if err := v.refreshDataKeys(ctx); err != nil {
		return nil, err
	}
	// A fresh look at tombstones: never dedup against a condemned pack.
	if err := v.loadCondemned(ctx); err != nil {
		return nil, err
	}

	// A collection leaves the packs of a live session alone, however long
	// it runs (session.go).
	sess, err := v.startSession(ctx)
	if err != nil {
		return nil, err
	}
	defer sess.end(ctx)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b := &backup{v: v, opts: opts, ctx: ctx, jobs: make(chan fileJob, 64), prog: opts.Progress, names: newIDNames(),
		blobs: make(chan blobJob), treeFutures: map[blob.ID]chan *tree.Tree{}, treeSem: make(chan struct{}, v.opts.Workers),
		walkSem: make(chan struct{}, 4*v.opts.Workers)}
	b.chunkBufs.New = func() any { return new([]byte) }
	for _, p := range opts.SkipPaths {
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil {
			if b.skipIDs == nil {
				b.skipIDs = map[[2]uint64]bool{}
			}
			b.skipIDs[[2]uint64{st.Dev, st.Ino}] = true
		}
	}
	var bwg sync.WaitGroup
	for range v.opts.Workers {
		bwg.Add(1)
		go func() { defer bwg.Done(); b.blobWorker() }()
	}
	defer func() { close(b.blobs); bwg.Wait() }()
	b.s = v.newSaver(ctx)
	b.s.checkpointEvery = v.opts.CheckpointEvery

	if opts.Scan {
		go b.scan(ctx, srcs)
	}
	var wg sync.WaitGroup
	for range v.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.worker(chunker.NewWithTable(nil, v.table, v.params))
		}()
	}

	p := &manifest.Point{Version: manifest.Version, ID: manifest.NewID(start), Time: start.UTC(), Host: opts.Host, App: opts.App, Labels: opts.Labels}
	if u, err := user.Current(); err == nil {
		p.User = u.Username
	}
	root := &tree.Tree{}
	var ferr error
	for _, src := range srcs {
		b.mu.Lock()
		b.stats = manifest.Stats{}
		b.mu.Unlock()
		taken := v.opts.Now().UTC()
		cur := src // with the backup's own globs first
		cur.Excludes = append(append([]string{}, opts.Excludes...), src.Excludes...)
		cur.Includes = append(append([]string{}, opts.Includes...), src.Includes...)
		b.cur.Store(&cur)
		b.parentTime = 0
		if pt := parents[parentTimeKey+src.Name]; pt != nil {
			b.parentTime = pt.MTime
		}
		node, err := b.captureSource(src, parents[src.Name])
		if err != nil {
			ferr = err
			break
		}
		b.mu.Lock()
		st := b.stats
		b.mu.Unlock()
		root.Nodes = append(root.Nodes, node)
		comp := manifest.Component{Name: src.Name, Kind: src.Kind, Host: opts.Host, Source: src.Describe, Taken: taken, Stats: st}
		if src.Meta != nil {
			comp.Meta = src.Meta()
		}
		p.Components = append(p.Components, comp)
		p.Stats.Add(st)
	}
	if ferr != nil {
		cancel() // walkers and workers stop at once
	}
	b.walkers.Wait() // no walker may send a job after jobs is closed
	close(b.jobs)
	wg.Wait()
	if ferr == nil {
		if err := ctx.Err(); err != nil {
			ferr = err
		}
	}
	if ferr != nil {
		return nil, b.fail(ferr)
	}
	sort.Slice(root.Nodes, func(i, j int) bool { return root.Nodes[i].Name < root.Nodes[j].Name })
	rb, err := tree.Encode(root)
	if err != nil {
		b.s.abort()
		return nil, err
	}
	p.Root, _, err = b.s.save(blob.Tree, rb)
	if err != nil {
		return nil, b.fail(err)
	}
	if err := b.s.finish(); err != nil {
		return nil, b.fail(err)
	}
	p.Stats.BytesNew = b.s.bytesNew
	p.Stats.BytesNewRaw = b.s.rawNew
	p.Stats.BlobsNew = b.s.blobsNew
	if pp := parents[parentKey]; pp != nil {
		p.Parent = pp.Name
	}
	p.Partial = b.partial
	p.Warnings = b.warnings
	p.Finished = v.opts.Now().UTC()
	testStop("backup-before-commit")
	if err := b.commit(ctx, p); err != nil {
		return nil, b.kept(err) // every pack is indexed by now
	}
	return p, nil
}

// commitAttempts bounds how often a backup copies its blobs out of packs
// condemned under it and writes its manifest again.
const commitAttempts = 3

// commit writes the point's manifest (commitPoint). When a pack the point
// uses was condemned meanwhile by a collection or a re-encryption (it
// deduped against data no point referenced yet: packs a failed backup kept,
// or those of a point just forgotten), the manifest is withdrawn; the point's
// blobs in those packs are then copied into new packs of the backup's own
// write session, still live, and the manifest is written again, under a new
// point id. The old packs need only be readable until then: a collection
// deletes a condemned pack no sooner than the grace period after its
// tombstone. If they are not, the backup fails as before, keeping what it
// stored, and the next one stores that data again.
func (b *backup) commit(ctx context.Context, p *manifest.Point) error {
	used := b.s.usedPks
	for attempt := 1; ; attempt++ {
		cond, err := b.v.commitPoint(ctx, p, used)
		if err != nil || len(cond) == 0 {
			return err
		}
		msg := fmt.Sprintf("pack %s used by point %s was condemned", cond[0], p.ID)
		if len(cond) > 1 {
			msg = fmt.Sprintf("packs %s and %d more used by point %s were condemned", cond[0], len(cond)-1, p.ID)
		}
		msg += " by a concurrent garbage collection or re-encryption"
		if attempt == commitAttempts {
			return lifeboat.Errorf(lifeboat.EUnavailable, "%s (after copying its blobs out of condemned packs %d times); run the backup again", msg, attempt-1)
		}
		if used, err = b.rescue(ctx, p, used, cond); err != nil {
			if ctx.Err() != nil {
				return storageError(b.v.be, ctx.Err()) // interrupted
			}
			return &lifeboat.Error{Code: lifeboat.EUnavailable, Message: fmt.Sprintf("%s, and its blobs could not be copied out: %v; run the backup again", msg, err), Err: err}
		}
		// A new id: the withdrawn manifest's name may not be written again
		// (a versioned bucket keeps a delete marker there, and the S3 server
		// refuses a conditional put over it).
		p.ID = manifest.NewID(b.v.opts.Now())
	}
}

// rescue copies the point's blobs held in the condemned packs into new
// packs (indexed, so that readers prefer them) and returns the packs the
// point uses then. The copies are authenticated and hashed first: a copy
// never launders damage. What it remembers: the trees walked (one id a
// directory) and a location for each blob to copy (the index's own cost
// for those blobs), not every blob of the point.
func (b *backup) rescue(ctx context.Context, p *manifest.Point, used map[blob.PackID]bool, cond []blob.PackID) (map[blob.PackID]bool, error) {
	v := b.v
	condSet := map[blob.PackID]bool{}
	for _, pk := range cond {
		condSet[pk] = true
	}
	var needed []index.Location
	pick := func(id blob.ID) {
		if loc, ok := v.idx.Lookup(id); ok && condSet[loc.Pack] {
			needed = append(needed, loc)
		}
	}
	pick(p.Root)
	trees := map[blob.ID]bool{p.Root: true}
	bad, err := v.walkTrees(ctx, v.idx, []blob.ID{p.Root}, func(id blob.ID, t blob.Type) bool {
		if t == blob.Tree && trees[id] {
			return false
		}
		pick(id)
		if t != blob.Tree {
			return false
		}
		trees[id] = true
		return true
	})
	if err == nil && bad > 0 {
		err = fmt.Errorf("%d trees of the point do not open", bad)
	}
	if err != nil {
		return nil, err
	}
	// In pack order, each blob once (files share blobs).
	sort.Slice(needed, func(i, j int) bool {
		if c := bytes.Compare(needed[i].Pack[:], needed[j].Pack[:]); c != 0 {
			return c < 0
		}
		return needed[i].Offset < needed[j].Offset
	})
	needed = slices.CompactFunc(needed, func(x, y index.Location) bool { return x.Pack == y.Pack && x.Offset == y.Offset })

	s := v.newSaver(ctx)
	s.checkpointEvery = v.opts.CheckpointEvery // kept if it fails half-way
	defer func() {
		b.extraPacks += s.indexed
		b.extraBytes += s.keptBytes
	}()
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(v.opts.Workers)
	for _, loc := range needed {
		g.Go(func() error {
			plain, err := v.readLocated(gctx, loc)
			if err == nil && v.Hash(plain) != loc.ID {
				err = &CorruptError{Object: loc.Pack.ObjectName(), Blob: loc.ID.String(), Err: errors.New("content does not hash to its id")}
			}
			if err != nil {
				return err
			}
			_, n, err := s.saveNew(loc.Type, loc.ID, plain)
			if err != nil {
				return err
			}
			mu.Lock()
			p.Stats.BytesNew += int64(n)
			p.Stats.BytesNewRaw += int64(len(plain))
			p.Stats.BlobsNew++
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if serr := s.abort(); serr != nil && !errors.Is(serr, context.Canceled) {
			err = serr // the storage failure behind the cancellation
		}
		return nil, err
	}
	if err := s.finish(); err != nil {
		_ = s.abort()
		return nil, err
	}
	next := map[blob.PackID]bool{}
	for pk := range used {
		if !condSet[pk] {
			next[pk] = true
		}
	}
	for pk := range s.usedPks {
		next[pk] = true
	}
	return next, nil
}

// fail stops the saver after err and returns the backup's error: the
// storage failure behind a cancellation if there was one, with what the
// backup leaves for the next one.
func (b *backup) fail(err error) error {
	testStop("backup-abort")
	if serr := b.s.abort(); serr != nil && !errors.Is(serr, context.Canceled) {
		err = serr // the storage failure behind the cancellation
	}
	return b.kept(storageError(b.v.be, err))
}

// kept adds to a failed backup's error what it leaves for the next one.
func (b *backup) kept(err error) error {
	if n := b.s.indexed + b.extraPacks; n > 0 {
		return &BackupError{Err: err, KeptPacks: n, KeptBytes: b.s.keptBytes + b.extraBytes}
	}
	return err
}

// BackupError is the error of a backup that failed or was interrupted after
// storing data that index objects name: the next backup dedups against it
// instead of uploading it again (unless a garbage collection removed it
// meanwhile: packs no point references are condemned after its grace period).
type BackupError struct {
	Err       error
	KeptPacks int
	KeptBytes int64 // sealed bytes in those packs
}

func (e *BackupError) Error() string {
	packs := "packs"
	if e.KeptPacks == 1 {
		packs = "pack"
	}
	return fmt.Sprintf("%v; %.1f MiB already stored (%d %s) is kept for the next backup to reuse", e.Err, float64(e.KeptBytes)/(1<<20), e.KeptPacks, packs)
}

func (e *BackupError) Unwrap() error { return e.Err }

// commitPoint writes the manifest, then checks that no pack it references was
// condemned meanwhile by a garbage collector; if one was, the manifest is
// deleted again and those packs are returned (the caller copies their blobs
// or fails), so a point is never reported done while its data may be
// collected.
func (v *Vault) commitPoint(ctx context.Context, p *manifest.Point, used map[blob.PackID]bool) ([]blob.PackID, error) {
	mb, err := manifest.Encode(p)
	if err != nil {
		return nil, err
	}
	name := manifest.ObjectName(p.ID)
	if err := v.putSealed(ctx, name, manifest.Context(p.ID), mb); err != nil {
		return nil, storageError(v.be, fmt.Errorf("write manifest %s: %w", name, err))
	}
	cond, err := v.listCondemned(ctx)
	if err != nil {
		v.withdraw(ctx, p.ID) // unchecked: not to be listed by a backup that failed
		return nil, err
	}
	var hit []blob.PackID
	for pk := range used {
		if cond[pk] {
			hit = append(hit, pk)
		}
	}
	if len(hit) > 0 {
		v.withdraw(ctx, p.ID)
		sort.Slice(hit, func(i, j int) bool { return bytes.Compare(hit[i][:], hit[j][:]) < 0 })
	}
	return hit, nil
}

// withdraw removes the manifest of a point that is not to be reported done,
// in the order a purge does (purgePoint): the purge tombstone first, so that
// a re-encryption that copied the manifest meanwhile deletes its copy, then
// the manifest, then the copies listed after the tombstone. Best effort,
// each step bounded in time on its own. If the manifest cannot be deleted,
// the point stays listed, and its tombstone is removed again: left, it
// would make every hold of the point fail and every re-encryption withdraw
// its copy, and no collection would ever settle it (it has no delete
// marker and an original manifest).
func (v *Vault) withdraw(ctx context.Context, id string) {
	bg := context.WithoutCancel(ctx)
	step := func(f func(context.Context) error) error {
		c, cancel := context.WithTimeout(bg, abortIndexTimeout)
		defer cancel()
		return f(c)
	}
	tomb := purgedName(id)
	tombed := step(func(c context.Context) error { return v.be.Put(c, tomb, nil) }) == nil
	err := step(func(c context.Context) error { return v.be.Delete(c, manifest.ObjectName(id)) })
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		if tombed {
			_ = step(func(c context.Context) error { return v.be.Delete(c, tomb) })
		}
		return
	}
	_ = step(func(c context.Context) error {
		names, err := v.pointCopies(c, id)
		for _, n := range names {
			if err == nil {
				err = v.be.Delete(c, n)
			}
		}
		return err
	})
}

// parentKey is where parentNodes records the parent point's id (in Name).
const (
	parentKey     = "\x00parent"
	parentTimeKey = "\x00time:" // + source name: the parent point's time
)

// parentNodes finds, for each source, the node it had in the newest point of
// this host that captured the same path.
func (v *Vault) parentNodes(ctx context.Context, host, app, parentID string, srcs []Source) (map[string]*tree.Node, error) {
	// Candidates, newest first: the one asked for, or the host's and app's
	// points, read only as far as the sources need.
	var cands []*manifest.Point
	var more func() (*manifest.Point, error)
	if parentID != "" {
		p, err := v.LoadPoint(ctx, parentID)
		if err != nil {
			return nil, err
		}
		cands = []*manifest.Point{p}
		more = func() (*manifest.Point, error) { return nil, nil }
	} else {
		it, err := v.newestPoints(ctx, host, app)
		if err != nil {
			return nil, err
		}
		more = func() (*manifest.Point, error) { return it.next(ctx) }
	}
	out := map[string]*tree.Node{}
	for _, src := range srcs {
		for i := 0; ; i++ {
			if i == len(cands) {
				p, err := more()
				if err != nil {
					return nil, err
				}
				if p == nil {
					break
				}
				cands = append(cands, p)
			}
			p := cands[i]
			var comp *manifest.Component
			for j := range p.Components {
				if p.Components[j].Source == src.Describe {
					comp = &p.Components[j]
				}
			}
			if comp == nil {
				continue
			}
			rt, err := v.LoadTree(ctx, p.Root)
			var ce *CorruptError
			if errors.As(err, &ce) {
				break // a damaged (or collected) parent only costs re-reading
			}
			if err != nil {
				return nil, err
			}
			if n := rt.Find(comp.Name); n != nil {
				out[src.Name] = n
				out[parentTimeKey+src.Name] = &tree.Node{MTime: p.Time.UnixNano()} // when that parent scanned
				if out[parentKey] == nil {
					out[parentKey] = &tree.Node{Name: p.ID}
				}
			}
			break
		}
	}
	return out, nil
}

func nameSources(in []Source) ([]Source, error) {
	seen := map[string]bool{}
	var out []Source
	for _, s := range in {
		if s.Remote != nil {
			if !tree.ValidName(s.Name) || seen[s.Name] || s.Path != "" || s.Describe == "" {
				return nil, lifeboat.Errorf(lifeboat.EInvalid, "remote component %q: needs a unique name, a description and no path", s.Name)
			}
			seen[s.Name] = true
			if s.Kind == "" {
				s.Kind = "files"
			}
			out = append(out, s)
			continue
		}
		if len(s.Streams) > 0 {
			if !tree.ValidName(s.Name) || seen[s.Name] || s.Path != "" {
				return nil, lifeboat.Errorf(lifeboat.EInvalid, "stream component %q: needs a unique name and no path", s.Name)
			}
			names := map[string]bool{}
			for _, st := range s.Streams {
				if !tree.ValidName(st.Name) || names[st.Name] || st.Open == nil || st.Fixed < 0 {
					return nil, lifeboat.Errorf(lifeboat.EInvalid, "stream component %s: bad or duplicate stream %q", s.Name, st.Name)
				}
				names[st.Name] = true
			}
			seen[s.Name] = true
			if s.Kind == "" {
				s.Kind = "stream"
			}
			if s.Describe == "" {
				s.Describe = s.Kind + ":" + s.Name
			}
			out = append(out, s)
			continue
		}
		abs, err := filepath.Abs(s.Path)
		if err != nil {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "path %q: %v", s.Path, err)
		}
		if _, err := os.Lstat(abs); err != nil {
			return nil, lifeboat.Errorf(lifeboat.ENotFound, "cannot back up %s: %v", abs, errors.Unwrap(err))
		}
		name := s.Name
		if name == "" {
			name = filepath.Base(abs)
			if abs == "/" {
				name = "root"
			}
			base := name
			for i := 2; seen[name]; i++ {
				name = base + "-" + strconv.Itoa(i)
			}
		}
		if !tree.ValidName(name) || seen[name] {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "bad or duplicate component name %q", name)
		}
		seen[name] = true
		s.Name, s.Path = name, abs
		if s.Kind == "" {
			s.Kind = "files"
		}
		if s.Describe == "" {
			s.Describe = abs
		}
		out = append(out, s)
	}
	return out, nil
}

func (b *backup) warn(path string, err error) {
	b.prog.Warnings.Add(1)
	b.mu.Lock()
	b.partial = true
	b.stats.Warnings++
	if len(b.warnings) < maxWarnings {
		b.warnings = append(b.warnings, fmt.Sprintf("%s: %v", path, err))
	}
	b.mu.Unlock()
	if b.opts.Warn != nil {
		b.opts.Warn(path, err)
	}
}

func (b *backup) count(f func(s *manifest.Stats)) {
	b.mu.Lock()
	f(&b.stats)
	b.mu.Unlock()
}

func (b *backup) excluded(rel, name string, isDir bool) bool {
	src := b.cur.Load()
	return Excluded(src.Excludes, src.Includes, rel, name, isDir)
}

// Excluded reports whether a backup with these exclude and include globs
// leaves out the entry at rel (relative to the source, "/"-separated)
// named name. A restore to the original place uses it to keep what the
// backup did not capture.
func Excluded(excludes, includeGlobs []string, rel, name string, isDir bool) bool {
	for _, g := range excludes {
		if match(g, rel, name, isDir) {
			return true
		}
	}
	if len(includeGlobs) > 0 && !isDir {
		for _, g := range includeGlobs {
			if includes(g, rel, name) {
				return false
			}
		}
		return true
	}
	return false
}

// match reports whether glob g matches the entry at rel (relative to the
// source, "/"-separated) whose base name is name. Without a "/" (other than
// a trailing one) g matches base names at any depth; with one, the whole
// relative path (a leading "/" is the source's root). A trailing "/"
// matches directories only. "*" stays within a name, "**" spans
// directories, "{a,b}" is either; CheckGlob tells a bad pattern.
func match(g, rel, name string, isDir bool) bool {
	if strings.HasSuffix(g, "/") {
		if !isDir {
			return false
		}
		g = strings.TrimSuffix(g, "/")
	}
	if strings.Contains(g, "/") {
		return doublestar.MatchUnvalidated(strings.TrimPrefix(g, "/"), rel)
	}
	return doublestar.MatchUnvalidated(g, name)
}

// includes reports whether include glob g takes the file at rel: the file
// matches, or one of the directories above it does ("--include config"
// takes all of config/).
func includes(g, rel, name string) bool {
	if match(g, rel, name, false) {
		return true
	}
	for dir := rel; ; {
		i := strings.LastIndexByte(dir, '/')
		if i < 0 {
			return false
		}
		dir = dir[:i]
		if match(g, dir, dir[strings.LastIndexByte(dir, '/')+1:], true) {
			return true
		}
	}
}

// CheckGlob reports a pattern that can never match as written (an
// unclosed "[" or "{", a trailing "\\"), which would otherwise silently
// exclude or include nothing.
func CheckGlob(g string) error {
	p := strings.TrimPrefix(strings.TrimSuffix(g, "/"), "/")
	if p == "" || !doublestar.ValidatePattern(p) {
		return lifeboat.Errorf(lifeboat.EInvalid, "bad glob %q: want a pattern such as *.log, cache/, logs/*.gz or **/node_modules", g)
	}
	return nil
}

// captureStreams reads a stream component: a directory of produced files.
func (b *backup) captureStreams(src Source) (*tree.Node, error) {
	now := b.v.opts.Now()
	dir := &tree.Node{Name: src.Name, Type: tree.Dir, Mode: 0o700, MTime: now.UnixNano(), UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	b.count(func(s *manifest.Stats) { s.Dirs++ })
	t := &tree.Tree{}
	cdc := chunker.NewWithTable(nil, b.v.table, b.v.params)
	for _, st := range src.Streams {
		node := &tree.Node{Name: st.Name, Type: tree.File, Mode: st.Mode, MTime: now.UnixNano(), UID: dir.UID, GID: dir.GID}
		if node.Mode == 0 {
			node.Mode = 0o600
		}
		var c cutter = cdc
		if st.Fixed > 0 {
			c = chunker.NewFixed(st.Fixed)
		}
		rc, err := st.Open(b.ctx)
		if err != nil {
			return nil, fmt.Errorf("component %s, %s: %w", src.Name, st.Name, err)
		}
		n, err := b.readStream(c, rc, node)
		cerr := rc.Close()
		if err == nil && cerr != nil {
			err = fmt.Errorf("component %s, %s: %w", src.Name, st.Name, cerr)
		}
		if err != nil {
			return nil, err
		}
		node.Size = n
		b.count(func(s *manifest.Stats) { s.Files++; s.Bytes += n; s.BytesRead += n })
		b.prog.Files.Add(1)
		t.Nodes = append(t.Nodes, node)
	}
	sort.Slice(t.Nodes, func(i, j int) bool { return t.Nodes[i].Name < t.Nodes[j].Name })
	enc, err := tree.Encode(t)
	if err != nil {
		return nil, err
	}
	id, _, err := b.s.save(blob.Tree, enc)
	if err != nil {
		return nil, err
	}
	dir.Subtree = &id
	return dir, nil
}

// readStream chunks r into blobs (stored in parallel by the blob workers)
// and returns the bytes read.
func (b *backup) readStream(c cutter, r io.Reader, node *tree.Node) (int64, error) {
	c.Reset(r)
	q := &chunkQueue{b: b}
	defer q.drain(0, nil)
	var n int64
	for {
		chunk, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
		n += int64(len(chunk))
		b.prog.Bytes.Add(int64(len(chunk)))
		if err := q.push(chunk); err != nil {
			return n, &storeError{err}
		}
		if err := q.drain(parallelChunks, node); err != nil {
			return n, &storeError{err}
		}
	}
	if err := q.drain(0, node); err != nil {
		return n, &storeError{err}
	}
	return n, nil
}

// storeError is a failure to store what was read (the vault's storage, not
// the file): it fails the backup. Taken for a warning about one file, it
// left a point whose other files could name chunks never written.
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// captureSource captures one source path into a node named src.Name.
func (b *backup) captureSource(src Source, parent *tree.Node) (*tree.Node, error) {
	if len(src.Streams) > 0 {
		return b.captureStreams(src)
	}
	if src.Remote != nil {
		var prev time.Time
		if parent != nil {
			prev = time.Unix(0, b.parentTime)
		}
		return b.captureRemote(src, parent, prev)
	}
	var st unix.Stat_t
	if err := unix.Lstat(src.Path, &st); err != nil {
		return nil, lifeboat.Errorf(lifeboat.ENotFound, "cannot back up %s: %v", src.Path, err)
	}
	var ch <-chan result
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		var pt *tree.Tree
		if parent != nil && parent.Type == tree.Dir {
			pt = b.loadParentTree(parent)
		}
		ch = b.walkDir(src.Path, "", src.Name, &st, pt)
	} else {
		ch = b.entry(src.Path, src.Name, src.Name, &st, parent)
		if ch == nil {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "cannot back up %s: not a file, directory or symlink", src.Path)
		}
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		if r.node == nil {
			return nil, lifeboat.Errorf(lifeboat.EPartial, "cannot back up %s: it could not be read", src.Path)
		}
		return r.node, nil
	case <-b.ctx.Done():
		return nil, b.ctx.Err()
	}
}

func (b *backup) loadParentTree(n *tree.Node) *tree.Tree {
	if n == nil || n.Subtree == nil || !b.v.idx.Has(*n.Subtree) {
		return nil
	}
	b.treeMu.Lock()
	f, ok := b.treeFutures[*n.Subtree]
	delete(b.treeFutures, *n.Subtree)
	b.treeMu.Unlock()
	if ok {
		t := <-f
		b.unprefetch(t)
		return t
	}
	t, err := b.v.LoadTree(b.ctx, *n.Subtree)
	if err != nil {
		return nil // a damaged parent only costs re-reading
	}
	return t
}

// prefetchBudget bounds the entries of prefetched parent trees held before
// their directories are walked (a decoded entry costs about 300 bytes):
// every subdirectory's parent tree was loaded at once, and a re-backup of
// 120,000 files in 400 directories held 37 MB of them (2 MB now, in the
// same time). Over the budget, parent trees are loaded when their
// directory is walked. testHookPrefetch sees the count after each change.
// A prefetch reserves prefetchGuess entries when it starts (its size is
// known once loaded), so that a burst of starts stays within the budget.
var (
	prefetchBudget   int64 = 4096
	prefetchGuess    int64 = 64
	testHookPrefetch func(held int64)
)

// holdPrefetched adds n to the entries held by prefetched trees.
func (b *backup) holdPrefetched(n int64) {
	held := b.prefetched.Add(n)
	if testHookPrefetch != nil {
		testHookPrefetch(held)
	}
}

// unprefetch counts a prefetched tree as taken.
func (b *backup) unprefetch(t *tree.Tree) {
	if t != nil {
		b.holdPrefetched(-int64(len(t.Nodes)))
	}
}

// dropPrefetched lets go of the prefetched trees of pt's subdirectories
// that the walk of their directory did not take (excluded, or gone since
// the parent point).
func (b *backup) dropPrefetched(pt *tree.Tree) {
	if pt == nil {
		return
	}
	for _, n := range pt.Nodes {
		if n.Type != tree.Dir || n.Subtree == nil {
			continue
		}
		b.treeMu.Lock()
		f, ok := b.treeFutures[*n.Subtree]
		delete(b.treeFutures, *n.Subtree)
		b.treeMu.Unlock()
		if ok {
			go func() { b.unprefetch(<-f) }()
		}
	}
}

// prefetchParentTrees starts loading, in the background, the parent trees of
// a directory's subdirectories, so that the walker finds them ready.
func (b *backup) prefetchParentTrees(pt *tree.Tree) {
	if pt == nil {
		return
	}
	for _, n := range pt.Nodes {
		if n.Type != tree.Dir || n.Subtree == nil {
			continue
		}
		if b.prefetched.Load() >= prefetchBudget {
			return
		}
		id := *n.Subtree
		b.treeMu.Lock()
		_, dup := b.treeFutures[id]
		f := make(chan *tree.Tree, 1)
		if !dup {
			b.treeFutures[id] = f
		}
		b.treeMu.Unlock()
		if dup {
			continue
		}
		b.holdPrefetched(prefetchGuess)
		go func() {
			b.treeSem <- struct{}{}
			defer func() { <-b.treeSem }()
			t, err := b.v.LoadTree(b.ctx, id)
			if err != nil {
				t = nil
			}
			n := int64(0)
			if t != nil {
				n = int64(len(t.Nodes))
			}
			b.holdPrefetched(n - prefetchGuess)
			f <- t
		}()
	}
}

func done(n *tree.Node, err error) <-chan result {
	ch := make(chan result, 1)
	ch <- result{node: n, err: err}
	return ch
}

// entry handles one non-directory entry; nil means "skip it".
func (b *backup) entry(path, rel, name string, st *unix.Stat_t, parent *tree.Node) <-chan result {
	node := b.nodeFromStat(name, st)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		node.Type = tree.File
		node.Size = st.Size
		b.count(func(s *manifest.Stats) { s.Files++; s.Bytes += st.Size })
		if parent != nil && parent.Type == tree.File && parent.Size == st.Size && parent.MTime == node.MTime &&
			parent.Inode == node.Inode && parent.CTime == node.CTime && !b.racy(node.CTime) && b.allKnown(parent.Content) {
			node.Content = parent.Content
			node.Sparse = parent.Sparse
			b.count(func(s *manifest.Stats) { s.UnchangedFiles++ })
			b.prog.Files.Add(1)
			b.prog.Bytes.Add(st.Size)
			return done(node, nil)
		}
		out := make(chan result, 1)
		select {
		case b.jobs <- fileJob{path: path, node: node, st: st, out: out}:
		case <-b.ctx.Done():
			return done(nil, b.ctx.Err())
		}
		return out
	case unix.S_IFLNK:
		target, err := os.Readlink(path)
		if err != nil {
			b.warn(path, err)
			return done(nil, nil)
		}
		node.Type = tree.Symlink
		node.Target = target
		b.count(func(s *manifest.Stats) { s.Symlinks++ })
		return done(node, nil)
	default:
		b.warn(path, errors.New("skipped: not a regular file, directory or symlink"))
		return nil
	}
}

// racySlack is how close to the parent point's start a file's last change
// must be for the unchanged test not to be trusted. File times advance in
// ticks (a few ms on Linux before 6.13; whole seconds, and two on FAT,
// where ctime has no fraction): a file the parent read, then rewritten at
// the same size in the same tick, keeps size, times and inode.
const (
	racySlack       = 100 * time.Millisecond
	racySlackSecond = 2 * time.Second
)

// racy reports whether a file changed at ctime (ns) may have changed again,
// unseen, after the parent point read it: it is read again.
func (b *backup) racy(ctime int64) bool {
	slack := racySlack
	if ctime%int64(time.Second) == 0 {
		slack = racySlackSecond
	}
	return b.parentTime != 0 && ctime >= b.parentTime-int64(slack)
}

func (b *backup) allKnown(exts []tree.Extent) bool {
	for _, e := range exts {
		if e.ID != nil && !b.s.use(*e.ID) {
			return false
		}
	}
	return true
}

func (b *backup) nodeFromStat(name string, st *unix.Stat_t) *tree.Node {
	n := &tree.Node{Name: name, Mode: st.Mode & 07777, UID: st.Uid, GID: st.Gid,
		MTime: st.Mtim.Nano(), CTime: st.Ctim.Nano(), Inode: st.Ino, Dev: st.Dev}
	if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		n.Links = uint64(st.Nlink)
	}
	n.User, n.Group = b.names.user(st.Uid), b.names.group(st.Gid)
	return n
}

// walkDir reads a directory, hands its files to the workers and returns a
// future of its node; the tree blob is saved once every child is done.
func (b *backup) walkDir(path, rel, name string, st *unix.Stat_t, parent *tree.Tree) <-chan result {
	node := b.nodeFromStat(name, st)
	node.Type = tree.Dir
	b.count(func(s *manifest.Stats) { s.Dirs++ })
	names, sts, err := readDirStat(path)
	if err != nil {
		b.warn(path, err)
	}
	// The listing is held until the loop below has handed every entry on.
	b.listed.Add(int64(len(names)))
	defer b.listed.Add(-int64(len(names)))
	b.prefetchParentTrees(parent)
	var children []<-chan result
	for i, n := range names {
		if b.ctx.Err() != nil {
			break
		}
		cpath := filepath.Join(path, n)
		crel := n
		if rel != "" {
			crel = rel + "/" + n
		}
		if sts[i].err != nil { // vanished since the listing, or not stat-able
			b.warn(cpath, sts[i].err)
			continue
		}
		cst := &sts[i].st
		isDir := cst.Mode&unix.S_IFMT == unix.S_IFDIR
		if b.excluded(crel, n, isDir) || slices.Contains(b.opts.SkipPaths, cpath) || (isDir && b.skipIDs[[2]uint64{cst.Dev, cst.Ino}]) {
			continue
		}
		var pn *tree.Node
		if parent != nil {
			pn = parent.Find(n)
		}
		if isDir {
			var pt *tree.Tree
			if pn != nil && pn.Type == tree.Dir {
				pt = b.loadParentTree(pn)
			}
			children = append(children, b.walkSubdir(cpath, crel, n, cst, pt))
			continue
		}
		if ch := b.entry(cpath, crel, n, cst, pn); ch != nil {
			children = append(children, ch)
		}
	}
	b.dropPrefetched(parent)
	out := make(chan result, 1)
	go func() {
		t := &tree.Tree{Nodes: make([]*tree.Node, 0, len(children))}
		for _, ch := range children {
			var r result
			select {
			case r = <-ch:
			case <-b.ctx.Done():
				out <- result{err: b.ctx.Err()}
				return
			}
			if r.err != nil {
				out <- r
				return
			}
			if r.node != nil {
				t.Nodes = append(t.Nodes, r.node)
			}
		}
		enc, err := tree.Encode(t)
		if err != nil {
			out <- result{err: fmt.Errorf("encode tree of %s: %w", path, err)}
			return
		}
		id, _, err := b.s.save(blob.Tree, enc)
		if err != nil {
			out <- result{err: err}
			return
		}
		node.Subtree = &id
		out <- result{node: node}
	}()
	return out
}

// entryStat is the lstat of one directory entry, or why it failed.
type entryStat struct {
	st  unix.Stat_t
	err error
}

// readDirStat lists a directory, sorted, and lstats every entry relative
// to it (one path component each, not the whole path again); the directory
// is closed before returning, so a deep walk holds no descriptors. The
// descriptor is opened blocking (os.NewFile leaves it out of the runtime's
// poller, which refuses directories anyway): os.Open would spend four fcntl
// calls and a failing epoll_ctl on each of a tree's directories.
func readDirStat(path string) ([]string, []entryStat, error) {
	// O_NOFOLLOW: path was lstat'ed as a directory; a symlink swapped in
	// since then must not lead the walk elsewhere (ENOTDIR, a warning).
	fd, err := openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(names)
	sts := make([]entryStat, len(names))
	for i, n := range names {
		sts[i].err = fstatat(fd, n, &sts[i].st, unix.AT_SYMLINK_NOFOLLOW)
	}
	return names, sts, nil
}

// walkListBudget: no walker goroutine starts while the listings being
// walked hold this many entries (a listing costs about 200 bytes an entry:
// sibling directories of millions of files each must not all be held at
// once). testHookWalker runs when a walker goroutine starts.
var (
	walkListBudget int64 = 1 << 16
	testHookWalker func()
)

// walkSubdir walks a subdirectory on another goroutine when a walker slot is
// free and the listings held are under walkListBudget (several directories
// are read and stat'ed at once), else inline.
func (b *backup) walkSubdir(path, rel, name string, st *unix.Stat_t, parent *tree.Tree) <-chan result {
	if b.listed.Load() >= walkListBudget {
		return b.walkDir(path, rel, name, st, parent)
	}
	select {
	case b.walkSem <- struct{}{}:
	default:
		return b.walkDir(path, rel, name, st, parent)
	}
	if testHookWalker != nil {
		testHookWalker()
	}
	st2 := *st
	out := make(chan result, 1)
	b.walkers.Add(1)
	go func() {
		defer b.walkers.Done()
		f := b.walkDir(path, rel, name, &st2, parent)
		<-b.walkSem // the slot covers the walking, not the waiting for files
		out <- <-f
	}()
	return out
}

func (b *backup) worker(c *chunker.Chunker) {
	for j := range b.jobs {
		if b.ctx.Err() != nil {
			j.out <- result{err: b.ctx.Err()}
			continue
		}
		ok, err := b.readFile(c, j.path, j.node, j.st)
		switch {
		case err != nil:
			j.out <- result{err: err}
		case !ok:
			j.out <- result{} // warned; skipped
		default:
			j.out <- result{node: j.node}
		}
		b.prog.Files.Add(1)
	}
}

// fileChangedError reports a file that changed or vanished while being read.
type fileChangedError struct{ what string }

func (e *fileChangedError) Error() string { return e.what }

// readFile chunks one file into blobs. It returns ok=false (after a warning)
// when the file could not be read; err is for fatal (storage) errors only.
func (b *backup) readFile(cdc *chunker.Chunker, path string, node *tree.Node, st *unix.Stat_t) (ok bool, err error) {
	var c cutter = cdc
	if fixed := b.cur.Load().Fixed; fixed > 0 {
		c = chunker.NewFixed(fixed)
	}
	fd, oerr := openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	if oerr == unix.EPERM {
		fd, oerr = openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	if oerr != nil {
		b.warn(path, fmt.Errorf("open: %w", oerr))
		return false, nil
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var fst unix.Stat_t
	if err := fstat(fd, &fst); err != nil || fst.Ino != st.Ino || fst.Mode&unix.S_IFMT != unix.S_IFREG {
		b.warn(path, &fileChangedError{"replaced while being read; skipped"})
		return false, nil
	}
	size := fst.Size
	node.Size = size
	var regions [][2]int64 // data regions [start, end)
	if fst.Blocks*512 < size {
		node.Sparse = true
		regions = dataRegions(fd, size)
	} else {
		regions = [][2]int64{{0, size}}
	}
	var read int64
	q := &chunkQueue{b: b}
	defer q.drain(0, nil) // on early return: wait for (and drop) chunks in flight
	pos := int64(0)       // the end of what the extents so far describe
	short := false        // a region ended early: the file shrank while being read
	for _, r := range regions {
		holeAt := len(node.Content)
		if r[0] > pos {
			node.Content = append(node.Content, tree.Extent{Hole: r[0] - pos})
		}
		start := read
		c.Reset(io.NewSectionReader(f, r[0], r[1]-r[0]))
		for {
			chunk, cerr := c.Next()
			if cerr == io.EOF {
				break
			}
			if cerr != nil {
				b.warn(path, fmt.Errorf("read: %w", cerr))
				return false, nil
			}
			read += int64(len(chunk))
			if testHookChunk != nil {
				testHookChunk(path, read)
			}
			if size < parallelFileSize {
				id, n, err := b.s.save(blob.Data, chunk)
				if err != nil {
					return false, err
				}
				b.saved(len(chunk), n)
				idc := id
				node.Content = append(node.Content, tree.Extent{ID: &idc})
				continue
			}
			// Large file: hash, compress and seal its chunks on the blob
			// workers while this worker reads and chunks on.
			if err := q.push(chunk); err != nil {
				return false, err
			}
			if err := q.drain(parallelChunks, node); err != nil {
				return false, err
			}
		}
		if err := q.drain(0, node); err != nil {
			return false, err
		}
		got := read - start
		if got == 0 && r[1] > r[0] {
			// The file now ends before this region: its hole too.
			node.Content = node.Content[:holeAt]
			short = true
			break
		}
		pos = r[0] + got
		if got < r[1]-r[0] {
			short = true
			break
		}
	}
	if !short && pos < size {
		node.Content = append(node.Content, tree.Extent{Hole: size - pos})
		pos = size
	}
	b.count(func(s *manifest.Stats) { s.BytesRead += read })
	if testHookAfterRead != nil {
		testHookAfterRead(path)
	}
	var after unix.Stat_t
	if err := fstat(fd, &after); err == nil && (after.Size != size || after.Mtim != fst.Mtim) {
		b.warn(path, &fileChangedError{"changed while being read; the copy may be inconsistent"})
	} else if err := unix.Lstat(path, &after); err != nil {
		b.warn(path, &fileChangedError{"vanished while being read; captured as read"})
	}
	if short {
		// What was read is what is kept: the size the extents describe,
		// not the size at open (a restore would pad it with zeros).
		b.warn(path, &fileChangedError{fmt.Sprintf("shrank while being read: read %d of %d bytes; captured as read, %d bytes long", read, sumData(regions), pos)})
		node.Size = pos
	}
	return true, nil
}

// Files of parallelFileSize bytes or more have up to parallelChunks chunks
// in flight on the blob workers.
const (
	parallelFileSize = 8 << 20
	parallelChunks   = 3
)

func (b *backup) saved(n, stored int) {
	b.prog.Bytes.Add(int64(n))
	b.prog.BytesRead.Add(int64(n))
	b.prog.BytesNew.Add(int64(stored))
}

type blobJob struct {
	id  blob.ID
	buf *[]byte
	res chan blobRes
}

type blobRes struct {
	id     blob.ID
	n, new int
	err    error
}

// blobWorker compresses, seals and packs new chunks handed over by large files.
func (b *backup) blobWorker() {
	for j := range b.blobs {
		id, n, err := b.s.saveNew(blob.Data, j.id, *j.buf)
		j.res <- blobRes{id: id, n: len(*j.buf), new: n, err: err}
		b.chunkBufs.Put(j.buf)
	}
}

// chunkQueue keeps one file's chunks in order while they are stored in parallel.
type chunkQueue struct {
	b       *backup
	pending []chan blobRes
}

func (q *chunkQueue) push(chunk []byte) error {
	// Hash here: a chunk already stored (most of a changed large file) needs
	// no copy and no trip to a blob worker.
	id := q.b.v.Hash(chunk)
	if q.b.s.use(id) {
		res := make(chan blobRes, 1)
		res <- blobRes{id: id, n: len(chunk)}
		q.pending = append(q.pending, res)
		return nil
	}
	buf := q.b.chunkBufs.Get().(*[]byte)
	if cap(*buf) < len(chunk) {
		*buf = make([]byte, 0, len(chunk)) // sized to chunks seen, not to the maximum
	}
	*buf = append((*buf)[:0], chunk...)
	res := make(chan blobRes, 1)
	select {
	case q.b.blobs <- blobJob{id: id, buf: buf, res: res}:
	case <-q.b.ctx.Done():
		q.b.chunkBufs.Put(buf)
		return q.b.ctx.Err()
	}
	q.pending = append(q.pending, res)
	return nil
}

// drain waits until at most keep chunks are in flight, appending the ids of
// the finished ones to node (nil: discard).
func (q *chunkQueue) drain(keep int, node *tree.Node) error {
	var first error
	for len(q.pending) > keep {
		r := <-q.pending[0]
		q.pending = q.pending[1:]
		if r.err != nil {
			if first == nil {
				first = r.err
			}
			continue
		}
		if node != nil {
			q.b.saved(r.n, r.new)
			id := r.id
			node.Content = append(node.Content, tree.Extent{ID: &id})
		}
	}
	return first
}

func sumData(rs [][2]int64) int64 {
	var n int64
	for _, r := range rs {
		n += r[1] - r[0]
	}
	return n
}

// dataRegions lists a sparse file's data with SEEK_DATA/SEEK_HOLE.
func dataRegions(fd int, size int64) [][2]int64 {
	var rs [][2]int64
	off := int64(0)
	for off < size {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err != nil { // ENXIO: no more data
			break
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			h = size
		}
		if h > size {
			h = size
		}
		rs = append(rs, [2]int64{d, h})
		off = h
	}
	return rs
}

// scan counts files and bytes ahead of the backup, for the ETA.
func (b *backup) scan(ctx context.Context, srcs []Source) {
	for _, src := range srcs {
		if src.Path == "" {
			continue // a stream component: its size is not known ahead
		}
		_ = filepath.WalkDir(src.Path, func(p string, d os.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil || d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			if fi, err := d.Info(); err == nil {
				b.prog.TotalFiles.Add(1)
				b.prog.TotalBytes.Add(fi.Size())
			}
			return nil
		})
	}
	b.prog.ScanDone.Store(true)
}

// idNames caches uid/gid → name lookups.
type idNames struct {
	mu     sync.Mutex
	users  map[uint32]string
	groups map[uint32]string
}

func newIDNames() *idNames { return &idNames{users: map[uint32]string{}, groups: map[uint32]string{}} }

func (c *idNames) user(id uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.users[id]; ok {
		return n
	}
	n := ""
	if u, err := user.LookupId(strconv.FormatUint(uint64(id), 10)); err == nil {
		n = u.Username
	}
	c.users[id] = n
	return n
}

func (c *idNames) group(id uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.groups[id]; ok {
		return n
	}
	n := ""
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(id), 10)); err == nil {
		n = g.Name
	}
	c.groups[id] = n
	return n
}

// testHookAfterRead runs after a file's data is read (tests change or remove
// the file there).
var testHookAfterRead func(path string)

// testHookChunk runs after each chunk of a file is read, with the bytes read
// so far (tests shrink the file part-way).
var testHookChunk func(path string, read int64)
