package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
)

// tmpPrefix starts the names of temp files; storage.CheckName allows such
// names, so Backend refuses them itself and List skips them.
const tmpPrefix = ".tmp-"

// Options configure a Backend.
type Options struct {
	// FS is the file system; default OSFS.
	FS FS
	// SkipSync is for tests only: it names one fsync site to skip ("file",
	// "dir" or "mkdir-parent") so that the power-loss tests can prove each
	// fsync is needed. Anything else but "" is refused by Open and Create.
	SkipSync string
}

// Backend is a vault directory.
type Backend struct {
	root string
	fs   FS
	skip string

	dirs     sync.Map    // relative directories known to exist durably
	made     sync.Map    // relative directories known to exist (maybe not yet durably)
	mkmu     sync.Mutex  // serialises directory creation
	noRename atomic.Bool // RENAME_NOREPLACE unsupported: use link + unlink
}

var (
	_ storage.Backend  = (*Backend)(nil)
	_ storage.Streamer = (*Backend)(nil)
)

func (o *Options) defaults() error {
	if o.FS == nil {
		o.FS = OSFS{}
	}
	switch o.SkipSync {
	case "", "file", "dir", "mkdir-parent":
		return nil
	}
	return fmt.Errorf("local.Options.SkipSync %q: want \"file\", \"dir\" or \"mkdir-parent\"", o.SkipSync)
}

// Open opens an existing vault directory. A missing one gives an error
// wrapping storage.ErrUnavailable that names it.
func Open(dir string, o Options) (*Backend, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	fi, err := o.FS.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w: %v", dir, storage.ErrUnavailable, unwrapPath(err))
	}
	if !fi.IsDir {
		return nil, fmt.Errorf("open %s: %w: not a directory", dir, storage.ErrUnavailable)
	}
	return &Backend{root: dir, fs: o.FS, skip: o.SkipSync}, nil
}

// Create makes dir like mkdir -p, fsyncing the parent of every directory it
// creates (and the parent of dir itself, in case an earlier attempt died
// before doing so), then opens it. An existing dir is fine.
func Create(dir string, o Options) (*Backend, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	dir = filepath.Clean(dir)
	b := &Backend{root: dir, fs: o.FS, skip: o.SkipSync}
	if err := b.mkdirAll(dir, true); err != nil {
		return nil, fmt.Errorf("create %s: %w: %w", dir, storage.ErrUnavailable, err)
	}
	return Open(dir, o)
}

// mkdirAll creates dir and its missing parents, fsyncing the parent of each
// directory it creates. If dir exists, its parent is fsynced anyway when
// syncExisting (Create's own directory: an earlier Create may have died
// before that fsync).
func (b *Backend) mkdirAll(dir string, syncExisting bool) error {
	fi, err := b.fs.Stat(dir)
	switch {
	case err == nil && !fi.IsDir:
		return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
	case err == nil && !syncExisting:
		return nil
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		if parent := filepath.Dir(dir); parent != dir {
			if err := b.mkdirAll(parent, false); err != nil {
				return err
			}
		}
		if err := b.fs.Mkdir(dir); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	default:
		return err
	}
	if parent := filepath.Dir(dir); parent != dir {
		return b.sync("mkdir-parent", func() error { return b.fs.SyncDir(parent) })
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Location implements storage.Backend.
func (b *Backend) Location() string { return b.root }

// String returns Location.
func (b *Backend) String() string { return b.root }

// Close implements storage.Backend.
func (b *Backend) Close() error { return nil }

func (b *Backend) sync(site string, f func() error) error {
	if b.skip == site {
		return nil
	}
	return f()
}

// check validates the context and name of an operation and returns the
// object's path.
func (b *Backend) check(ctx context.Context, op, name string) (string, error) {
	if err := storage.CheckName(name); err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	if strings.HasPrefix(name, tmpPrefix) || strings.Contains(name, "/"+tmpPrefix) {
		return "", fmt.Errorf("%s: invalid object name %q: names starting with %q are temp files", op, name, tmpPrefix)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("%s %s: %w", op, name, err)
	}
	return b.root + "/" + name, nil
}

// rootErr returns an error wrapping storage.ErrUnavailable if the root
// directory is gone (an unmounted disk, a deleted directory), else nil.
func (b *Backend) rootErr() error {
	fi, err := b.fs.Stat(b.root)
	if err == nil && !fi.IsDir {
		err = syscall.ENOTDIR
	}
	if err != nil {
		return fmt.Errorf("%w: vault directory %s: %v", storage.ErrUnavailable, b.root, unwrapPath(err))
	}
	return nil
}

// fail wraps err from operation op on name. A name that does not exist is
// ErrNotFound (if notFound) — unless the root itself is gone, which is
// ErrUnavailable: a vault must never conclude that objects are missing when
// the whole vault is. Permission errors and a full or read-only file system
// are ErrUnavailable too: the storage cannot serve the call now.
func (b *Backend) fail(op, name string, err error, notFound bool) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		if rerr := b.rootErr(); rerr != nil {
			return fmt.Errorf("%s %s: %w", op, name, rerr)
		}
		if notFound {
			return fmt.Errorf("%s %s: %w", op, name, storage.ErrNotFound)
		}
	}
	if errors.Is(err, fs.ErrPermission) || isFull(err) || errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("%s %s: %w: %w", op, name, storage.ErrUnavailable, err)
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

// isFull reports whether err says the file system has no room left (space,
// inodes or quota).
func isFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// makeDir makes sure directory rel ("" is the root) and its parents exist,
// creating what is missing without any fsync: an object's directories are
// made durable when it is committed (ensureDir), so that creating an object
// never waits for a directory fsync. A backup creates its packs while it
// holds its packing lock; a first backup into a new vault creates one pack
// directory after another, and an fsync of the parent under that lock
// stalled every worker (0.8 s of a 5 s first backup on a slow disk).
func (b *Backend) makeDir(rel string) error {
	if rel == "" {
		return nil
	}
	if _, ok := b.dirs.Load(rel); ok {
		return nil
	}
	if _, ok := b.made.Load(rel); ok {
		return nil
	}
	parent := relDir(rel)
	if err := b.makeDir(parent); err != nil {
		return err
	}
	full := b.root + "/" + rel
	if err := b.fs.Mkdir(full); errors.Is(err, fs.ErrExist) {
		fi, serr := b.fs.Stat(full)
		switch {
		case serr != nil:
			return serr
		case !fi.IsDir:
			return &fs.PathError{Op: "mkdir", Path: full, Err: syscall.ENOTDIR}
		}
	} else if err != nil {
		return err
	}
	b.made.Store(rel, true)
	return nil
}

// relDir is the directory of a slash-separated relative name, "" for the
// root.
func relDir(name string) string {
	if d := path.Dir(name); d != "." {
		return d
	}
	return ""
}

// ensureDir makes directory rel ("" is the root), which exists (makeDir
// made it, or an object in it was found), durable: every level is fsynced
// into its parent, once per process. A level that was already there is
// fsynced as well: a process that died between its mkdir and that fsync
// left it volatile.
func (b *Backend) ensureDir(rel string) error {
	if rel == "" {
		return nil
	}
	if _, ok := b.dirs.Load(rel); ok {
		return nil
	}
	b.mkmu.Lock()
	defer b.mkmu.Unlock()
	return b.ensureDirLocked(rel)
}

func (b *Backend) ensureDirLocked(rel string) error {
	if rel == "" {
		return nil
	}
	if _, ok := b.dirs.Load(rel); ok {
		return nil
	}
	parent := relDir(rel)
	if err := b.ensureDirLocked(parent); err != nil {
		return err
	}
	pfull := b.root
	if parent != "" {
		pfull += "/" + parent
	}
	if err := b.sync("mkdir-parent", func() error { return b.fs.SyncDir(pfull) }); err != nil {
		return err
	}
	b.dirs.Store(rel, true)
	return nil
}

// Put implements storage.Backend.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	w, err := b.create(ctx, name, false)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return b.fail("put", name, err, false)
	}
	return w.commit(ctx)
}

// Create implements storage.Streamer: the object is written into a temp file
// in its directory and renamed into place by Commit, with Put's guarantees.
// ctx covers the whole write: Commit fails if it is done.
func (b *Backend) Create(ctx context.Context, name string) (storage.ObjectWriter, error) {
	w, err := b.create(ctx, name, true)
	if err != nil {
		return nil, err
	}
	w.ctx = ctx
	return w, nil
}

// create opens the temp file for name; streamed ones (direct) bypass the
// page cache where the file system allows it (see DirectFS).
func (b *Backend) create(ctx context.Context, name string, direct bool) (*objectWriter, error) {
	p, err := b.check(ctx, "put", name)
	if err != nil {
		return nil, err
	}
	rel := relDir(name)
	if err := b.makeDir(rel); err != nil {
		return nil, b.fail("put", name, err, false)
	}
	// Refuse early rather than write a big object for nothing; the rename
	// below is what really guarantees no overwrite.
	dir := path.Dir(p)
	if _, err := b.fs.Stat(p); err == nil {
		return nil, b.exists(name, dir)
	}
	var rnd [12]byte
	rand.Read(rnd[:])
	tmp := dir + "/" + tmpPrefix + hex.EncodeToString(rnd[:])
	var f File
	if dfs, ok := b.fs.(DirectFS); ok && direct {
		f, err = dfs.CreateExclDirect(tmp)
	} else {
		f, err = b.fs.CreateExcl(tmp)
	}
	if err != nil {
		return nil, b.fail("put", name, err, false)
	}
	return &objectWriter{b: b, f: f, tmp: tmp, final: p, dir: dir, rel: rel, name: name}, nil
}

// objectWriter is an object being written into its temp file.
type objectWriter struct {
	b                     *Backend
	ctx                   context.Context // Create's, checked by Commit
	f                     File
	tmp, final, dir, name string
	rel                   string // dir, relative to the root
	err                   error  // first write error
	done                  bool
}

func (w *objectWriter) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("put %s: write after commit or abort", w.name)
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.f.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// Commit implements storage.ObjectWriter.
func (w *objectWriter) Commit() error { return w.commit(w.ctx) }

// commit: fsync the file, close it, rename without replacing, fsync the
// directory. On any failure before the rename the temp file is removed.
func (w *objectWriter) commit(ctx context.Context) error {
	if w.done {
		return fmt.Errorf("put %s: commit after commit or abort", w.name)
	}
	w.done = true
	b := w.b
	err := w.err
	if err == nil {
		err = b.sync("file", w.f.Sync)
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil && ctx != nil {
		if err = ctx.Err(); err != nil {
			b.fs.Remove(w.tmp)
			return fmt.Errorf("put %s: %w", w.name, err)
		}
	}
	if err == nil {
		err = b.rename(w.tmp, w.final)
	}
	if err != nil {
		b.fs.Remove(w.tmp) // best effort: List skips temp files anyway
		if errors.Is(err, fs.ErrExist) {
			return b.exists(w.name, w.dir)
		}
		return b.fail("put", w.name, err, false)
	}
	if err := b.sync("dir", func() error { return b.fs.SyncDir(w.dir) }); err != nil {
		return fmt.Errorf("put %s: sync directory: %w", w.name, err)
	}
	if err := b.ensureDir(w.rel); err != nil {
		return fmt.Errorf("put %s: sync directories: %w", w.name, err)
	}
	return nil
}

// exists returns ErrExists for name, in dir, once the directory entry is
// durable: a writer that died between its rename and its fsync of the
// directory left the object volatile, and a caller told ErrExists takes the
// object as stored (deduplication).
func (b *Backend) exists(name, dir string) error {
	if err := b.sync("dir", func() error { return b.fs.SyncDir(dir) }); err != nil {
		return fmt.Errorf("put %s: exists; sync directory: %w", name, err)
	}
	if rel := relDir(name); rel != "" {
		if err := b.ensureDir(rel); err != nil {
			return fmt.Errorf("put %s: exists; sync directories: %w", name, err)
		}
	}
	return fmt.Errorf("put %s: %w", name, storage.ErrExists)
}

// rename moves tmp to final unless final exists: renameat2 with
// RENAME_NOREPLACE, or where the file system lacks it, link(2) (which never
// replaces either) and unlink of the temp name.
func (b *Backend) rename(tmp, final string) error {
	if !b.noRename.Load() {
		err := b.fs.RenameNoReplace(tmp, final)
		if !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
		b.noRename.Store(true)
	}
	if err := b.fs.Link(tmp, final); err != nil {
		return err
	}
	// The object is in place; a temp name left behind by a failed unlink
	// is garbage that List skips.
	b.fs.Remove(tmp)
	return nil
}

// Abort implements storage.ObjectWriter.
func (w *objectWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.f.Close()
	if err := w.b.fs.Remove(w.tmp); err != nil {
		return fmt.Errorf("abort put %s: %w", w.name, err)
	}
	return nil
}

type sectionReadCloser struct {
	*io.SectionReader
	f File
}

func (s sectionReadCloser) Close() error { return s.f.Close() }

// Get implements storage.Backend with a ranged read of the open file.
func (b *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	p, err := b.check(ctx, "get", name)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", name, offset)
	}
	f, err := b.fs.Open(p)
	if err != nil {
		return nil, b.fail("get", name, err, true)
	}
	fi, err := f.Stat()
	if err == nil && (fi.IsDir || fi.Special) {
		err = syscall.ENOENT // a directory or a FIFO is no object
	}
	if err != nil {
		f.Close()
		return nil, b.fail("get", name, err, true)
	}
	n := max(fi.Size-offset, 0)
	if length >= 0 {
		n = min(n, length)
	}
	return sectionReadCloser{io.NewSectionReader(f, offset, n), f}, nil
}

// Stat implements storage.Backend.
func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	p, err := b.check(ctx, "stat", name)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	fi, err := b.fs.Stat(p)
	if err == nil && (fi.IsDir || fi.Special) {
		err = syscall.ENOENT
	}
	if err != nil {
		return storage.ObjectInfo{}, b.fail("stat", name, err, true)
	}
	return storage.ObjectInfo{Name: name, Size: fi.Size, ModTime: fi.ModTime}, nil
}

// List implements storage.Backend: it walks only the directories that can
// hold names starting with prefix, and skips temp files and anything that
// is not a valid object name.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := storage.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	base := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		base = prefix[:i]
	}
	var walk func(rel string) error
	walk = func(rel string) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		dir := b.root
		if rel != "" {
			dir += "/" + rel
		}
		ents, err := b.fs.ReadDir(dir)
		if err != nil {
			// No such directory (or a file where the prefix wants one): no
			// names below — unless the root itself is gone.
			if rel != "" && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) && b.rootErr() == nil {
				return nil
			}
			return b.fail("list", prefix, err, false)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name, tmpPrefix) || storage.CheckName(e.Name) != nil {
				continue
			}
			name := e.Name
			if rel != "" {
				name = rel + "/" + e.Name
			}
			if e.IsDir {
				// Descend only where names below can match the prefix.
				if strings.HasPrefix(name+"/", prefix) || strings.HasPrefix(prefix, name+"/") {
					if err := walk(name); err != nil {
						return err
					}
				}
				continue
			}
			if !strings.HasPrefix(name, prefix) {
				continue
			}
			fi, err := b.fs.Stat(b.root + "/" + name)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				continue // deleted meanwhile
			case err != nil:
				// An object that cannot be read now (EIO, ESTALE, EACCES)
				// still exists: a listing without it would let a collection
				// or a check take it for gone.
				return b.fail("list", prefix, err, false)
			case fi.IsDir || fi.Special:
				continue // a link to a directory, a FIFO: no object, as Get says
			}
			if err := fn(storage.ObjectInfo{Name: name, Size: fi.Size, ModTime: fi.ModTime}); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(base)
}

// Sweep implements storage.Sweeper: it removes the temp files that writers
// killed or cut by power loss left behind, last written more than
// olderThan ago (a live writer writes its temp file as it goes; one
// suspended that long loses its object and fails, losing nothing else).
// Directories it cannot read and files it cannot remove are passed over. Without
// it, each dead backup's unfinished pack stayed on disk, invisible to List
// and so to the collector. No fsync: a removal lost to power loss is done
// again next time.
func (b *Backend) Sweep(ctx context.Context, olderThan time.Duration) (n int, bytes int64, err error) {
	cutoff := time.Now().Add(-olderThan)
	var walk func(dir string) error
	walk = func(dir string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := b.fs.ReadDir(dir)
		if err != nil {
			if dir != b.root {
				// Removed meanwhile, or not ours to read (a lost+found
				// at the root of a mounted disk): nothing to sweep there.
				return nil
			}
			return b.fail("sweep", dir, err, false)
		}
		for _, e := range ents {
			p := dir + "/" + e.Name
			switch {
			case e.IsDir:
				if err := walk(p); err != nil {
					return err
				}
			case strings.HasPrefix(e.Name, tmpPrefix):
				fi, err := b.fs.Stat(p)
				if err != nil || fi.IsDir || !fi.ModTime.Before(cutoff) {
					continue // gone meanwhile, or a live writer's
				}
				if err := b.fs.Remove(p); err != nil {
					continue // gone meanwhile, or not ours to remove
				}
				n++
				bytes += fi.Size
			}
		}
		return nil
	}
	err = walk(b.root)
	return n, bytes, err
}

// Delete implements storage.Backend: remove, then fsync the directory so
// that the deletion survives power loss too.
func (b *Backend) Delete(ctx context.Context, name string) error {
	p, err := b.check(ctx, "delete", name)
	if err != nil {
		return err
	}
	fi, err := b.fs.Stat(p)
	if err == nil && fi.IsDir {
		err = syscall.ENOENT
	}
	if err == nil {
		err = b.fs.Remove(p)
	}
	if err != nil {
		return b.fail("delete", name, err, true)
	}
	if err := b.sync("dir", func() error { return b.fs.SyncDir(path.Dir(p)) }); err != nil {
		return fmt.Errorf("delete %s: sync directory: %w", name, err)
	}
	return nil
}
