// Package local stores a vault in a directory. Put is atomic and never
// overwrites: temp file, write, fsync, rename with RENAME_NOREPLACE (link +
// unlink where unsupported), fsync of the directory; new directories are
// fsynced into their parents. All file system access goes through FS, so the
// power-loss tests run the same code on CrashFS.
//
// local imports storage only.
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

	"github.com/lifeboat-vault/lifeboat/internal/storage"
)

// Options configure a Backend.
type Options struct {
	// FS is the file system; default OSFS.
	FS FS
	// SkipSync is for tests only: it names one fsync site to skip ("file",
	// "dir" or "mkdir-parent") so that the power-loss tests can prove that
	// each fsync on the commit path is needed.
	SkipSync string
}

// Backend is a vault directory.
type Backend struct {
	root string
	fs   FS
	skip string
	dirs sync.Map   // directories known to exist durably
	mkmu sync.Mutex // serialises directory creation
}

var _ storage.Backend = (*Backend)(nil)

// Open opens an existing directory.
func Open(dir string, o Options) (*Backend, error) {
	if o.FS == nil {
		o.FS = OSFS{}
	}
	dir = filepath.Clean(dir)
	fi, err := o.FS.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: vault directory %s: %v", storage.ErrUnavailable, dir, unwrapPath(err))
	}
	if !fi.IsDir {
		return nil, fmt.Errorf("%w: vault location %s is not a directory", storage.ErrUnavailable, dir)
	}
	return &Backend{root: dir, fs: o.FS, skip: o.SkipSync}, nil
}

// Create makes dir (and missing parents, each fsynced into its parent) and opens it.
func Create(dir string, o Options) (*Backend, error) {
	if o.FS == nil {
		o.FS = OSFS{}
	}
	dir = filepath.Clean(dir)
	b := &Backend{root: dir, fs: o.FS, skip: o.SkipSync}
	if err := b.mkdirAll(dir); err != nil {
		return nil, fmt.Errorf("%w: create vault directory %s: %v", storage.ErrUnavailable, dir, unwrapPath(err))
	}
	return Open(dir, o)
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

// Close implements storage.Backend.
func (b *Backend) Close() error { return nil }

// ValidName reports whether name is an acceptable object name.
func ValidName(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") {
		return false
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, ".tmp-") {
			return false
		}
		for _, r := range seg {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
				return false
			}
		}
	}
	return true
}

func (b *Backend) path(name string) (string, error) {
	if !ValidName(name) {
		return "", fmt.Errorf("bad object name %q", name)
	}
	return b.root + "/" + name, nil
}

func (b *Backend) sync(site string, f func() error) error {
	if b.skip == site {
		return nil
	}
	return f()
}

// mkdirAll creates dir and its missing parents, fsyncing each directory into
// its parent so that it survives power loss. A directory found already there
// (made by an earlier process that may have crashed before its fsync) is
// fsynced into its parent too, once per process.
func (b *Backend) mkdirAll(dir string) error {
	if _, ok := b.dirs.Load(dir); ok {
		return nil
	}
	b.mkmu.Lock()
	defer b.mkmu.Unlock()
	return b.mkdirAllLocked(dir)
}

func (b *Backend) mkdirAllLocked(dir string) error {
	if _, ok := b.dirs.Load(dir); ok {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := b.mkdirAllLocked(parent); err != nil {
			return err
		}
	}
	fi, err := b.fs.Stat(dir)
	switch {
	case err == nil && !fi.IsDir:
		return fmt.Errorf("%s is not a directory", dir)
	case err != nil:
		if err := b.fs.Mkdir(dir); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	if parent != dir {
		if err := b.sync("mkdir-parent", func() error { return b.fs.SyncDir(parent) }); err != nil {
			return err
		}
	}
	b.dirs.Store(dir, true)
	return nil
}

var _ storage.Streamer = (*Backend)(nil)

// Put implements storage.Backend.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	w, err := b.create(ctx, name)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return fmt.Errorf("put %s: %w", name, err)
	}
	return w.Commit()
}

// Create implements storage.Streamer: the object is written into a temp file
// in its directory and renamed into place by Commit.
func (b *Backend) Create(ctx context.Context, name string) (storage.ObjectWriter, error) {
	return b.create(ctx, name)
}

func (b *Backend) create(ctx context.Context, name string) (*objectWriter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := b.path(name)
	if err != nil {
		return nil, fmt.Errorf("put: %w", err)
	}
	dir := path.Dir(p)
	if err := b.mkdirAll(dir); err != nil {
		return nil, fmt.Errorf("put %s: %w", name, err)
	}
	if _, err := b.fs.Stat(p); err == nil {
		return nil, fmt.Errorf("put %s: %w", name, storage.ErrExists)
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := dir + "/.tmp-" + hex.EncodeToString(rnd[:])
	f, err := b.fs.CreateExcl(tmp)
	if err != nil {
		return nil, fmt.Errorf("put %s: %w", name, err)
	}
	return &objectWriter{b: b, f: f, tmp: tmp, final: p, dir: dir, name: name}, nil
}

type objectWriter struct {
	b                     *Backend
	f                     File
	tmp, final, dir, name string
	err                   error
}

func (w *objectWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.f.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// Commit: fsync the file, close, rename without replacing, fsync the directory.
func (w *objectWriter) Commit() error {
	werr := w.err
	if werr == nil {
		werr = w.b.sync("file", w.f.Sync)
	}
	if cerr := w.f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = w.b.fs.RenameNoReplace(w.tmp, w.final)
	}
	if werr != nil {
		_ = w.b.fs.Remove(w.tmp)
		if errors.Is(werr, fs.ErrExist) {
			return fmt.Errorf("put %s: %w", w.name, storage.ErrExists)
		}
		return fmt.Errorf("put %s: %w", w.name, werr)
	}
	if err := w.b.sync("dir", func() error { return w.b.fs.SyncDir(w.dir) }); err != nil {
		return fmt.Errorf("put %s: sync directory: %w", w.name, err)
	}
	return nil
}

func (w *objectWriter) Abort() error {
	w.f.Close()
	return w.b.fs.Remove(w.tmp)
}

func notFound(op, name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s %s: %w", op, name, storage.ErrNotFound)
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

type sectionReadCloser struct {
	*io.SectionReader
	f File
}

func (s sectionReadCloser) Close() error { return s.f.Close() }

// Get implements storage.Backend.
func (b *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := b.path(name)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset", name)
	}
	f, err := b.fs.Open(p)
	if err != nil {
		return nil, notFound("get", name, err)
	}
	if length < 0 {
		fi, err := b.fs.Stat(p)
		if err != nil {
			f.Close()
			return nil, notFound("get", name, err)
		}
		length = max(fi.Size-offset, 0)
	}
	return sectionReadCloser{io.NewSectionReader(f, offset, length), f}, nil
}

// Stat implements storage.Backend.
func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	p, err := b.path(name)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("stat: %w", err)
	}
	fi, err := b.fs.Stat(p)
	if err != nil {
		return storage.ObjectInfo{}, notFound("stat", name, err)
	}
	return storage.ObjectInfo{Name: name, Size: fi.Size, ModTime: fi.ModTime}, nil
}

// List implements storage.Backend.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	base := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		base = prefix[:i]
	}
	var walk func(rel string) error
	walk = func(rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		dir := b.root
		if rel != "" {
			dir += "/" + rel
		}
		ents, err := b.fs.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && rel == base {
				return nil
			}
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name, ".tmp-") {
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
			if err != nil {
				continue // deleted meanwhile
			}
			if err := fn(storage.ObjectInfo{Name: name, Size: fi.Size, ModTime: fi.ModTime}); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(base)
}

// Delete implements storage.Backend.
func (b *Backend) Delete(ctx context.Context, name string) error {
	p, err := b.path(name)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := b.fs.Remove(p); err != nil {
		return notFound("delete", name, err)
	}
	if err := b.sync("dir", func() error { return b.fs.SyncDir(path.Dir(p)) }); err != nil {
		return fmt.Errorf("delete %s: sync directory: %w", name, err)
	}
	return nil
}
