package local_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/local"
	"github.com/lifeboat-vault/lifeboat/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := local.Create(filepath.Join(t.TempDir(), "a", "vault"), local.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestConformanceOnCrashFS(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := local.Create("/srv/vault", local.Options{FS: local.NewCrashFS()})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// noRenameFS is the real file system as it looks where renameat2 has no
// RENAME_NOREPLACE (EINVAL), so the backend falls back to link + unlink.
type noRenameFS struct {
	local.OSFS
	renames atomic.Int64 // concurrent puts may all try before the first fails
}

func (f *noRenameFS) RenameNoReplace(oldname, newname string) error {
	f.renames.Add(1)
	return &os.LinkError{Op: "renameat2", Old: oldname, New: newname, Err: errors.ErrUnsupported}
}

func TestConformanceWithLinkFallback(t *testing.T) {
	var fsys *noRenameFS
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		fsys = &noRenameFS{}
		b, err := local.Create(filepath.Join(t.TempDir(), "vault"), local.Options{FS: fsys})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
	if n := fsys.renames.Load(); n != 1 {
		t.Errorf("renameat2 tried %d times in the last subtest, want once (then remembered)", n)
	}
}

// openTemp opens a backend on a new directory and stores data/ab/abcd
// ("x") in it, unless fs refuses.
func openTemp(t *testing.T, fs local.FS) (string, *local.Backend) {
	t.Helper()
	dir := t.TempDir()
	b, err := local.Open(dir, local.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if _, full := fs.(fullFS); !full {
		if err := b.Put(context.Background(), "data/ab/abcd", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	return dir, b
}

func TestObjectLayoutAndTempFiles(t *testing.T) {
	ctx := context.Background()
	dir, b := openTemp(t, local.OSFS{})
	if got, err := os.ReadFile(filepath.Join(dir, "data", "ab", "abcd")); err != nil || string(got) != "x" {
		t.Fatalf("object file: %q, %v", got, err)
	}
	if err := b.Put(ctx, "data/ab/abcd", []byte("y")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second put: %v", err)
	}
	w, err := b.Create(ctx, "data/ab/streamed")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("z"))
	b.Put(ctx, "data/ab/streamed", []byte("first"))
	if err := w.Commit(); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("commit over an existing object: %v", err)
	}
	// Failed and refused puts leave no temp file behind.
	ents, _ := os.ReadDir(filepath.Join(dir, "data", "ab"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "abcd streamed" {
		t.Errorf("directory holds %v", names)
	}
	// A temp file left by a crash, stray files and directories with names
	// that are no object names are not listed; a file where a directory is
	// expected is no error.
	os.WriteFile(filepath.Join(dir, "data", "ab", ".tmp-0123"), []byte("partial"), 0o600)
	os.WriteFile(filepath.Join(dir, "data", "ab", "bad name"), nil, 0o600)
	os.MkdirAll(filepath.Join(dir, "lost+found", "x"), 0o700)
	os.WriteFile(filepath.Join(dir, "lost+found", "x", "y"), nil, 0o600)
	var listed []string
	if err := b.List(ctx, "", func(oi storage.ObjectInfo) error { listed = append(listed, oi.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(listed, " ") != "data/ab/abcd data/ab/streamed" {
		t.Errorf("listed %v", listed)
	}
	if err := b.List(ctx, "data/ab/abcd/", func(storage.ObjectInfo) error { return errors.New("called") }); err != nil {
		t.Errorf("list below a file: %v", err)
	}
	// Temp names are not object names.
	if _, err := b.Stat(ctx, "data/ab/.tmp-0123"); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("stat of a temp name: %v", err)
	}
	// A directory is not an object.
	for _, f := range []func() error{
		func() error { _, err := b.Stat(ctx, "data/ab"); return err },
		func() error { _, err := b.Get(ctx, "data/ab", 0, -1); return err },
		func() error { return b.Delete(ctx, "data/ab") },
	} {
		if err := f(); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a directory as an object: %v", err)
		}
	}
}

func TestBadNames(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := local.Create(filepath.Join(dir, "vault"), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "secret"), []byte("outside"), 0o600)
	for _, n := range []string{"", "/abs", "../secret", "a/../../secret", "a//b", "a/./b", ".", "..", ".tmp-x", "d/.tmp-x", ".tmp-d/x", "a\x00b", "a b", `a\b`, "a/"} {
		err := b.Put(ctx, n, []byte("x"))
		if err == nil || errors.Is(err, storage.ErrExists) {
			t.Errorf("put %q: %v", n, err)
			continue
		}
		if !strings.Contains(err.Error(), strconv.Quote(n)) {
			t.Errorf("put %q: error %q does not name it", n, err)
		}
		if _, err := b.Get(ctx, n, 0, -1); err == nil || errors.Is(err, storage.ErrNotFound) {
			t.Errorf("get %q: %v", n, err)
		}
	}
	if err := b.List(ctx, "../", func(storage.ObjectInfo) error { return nil }); err == nil {
		t.Error("list of ../ accepted")
	}
	var all []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error { all = append(all, p); return nil })
	if len(all) != 3 {
		t.Errorf("bad names created files: %v", all)
	}
}

func TestMissingRoot(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "missing")
	_, err := local.Open(dir, local.Options{})
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), dir) {
		t.Errorf("open a missing directory: %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := local.Open(f, local.Options{}); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("open a file: %v", err)
	}
	if _, err := local.Create(filepath.Join(f, "sub"), local.Options{}); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("create below a file: %v", err)
	}
	if _, err := local.Open(t.TempDir(), local.Options{SkipSync: "fsync"}); err == nil {
		t.Error("an unknown SkipSync site was accepted")
	}

	// The root vanishes under an open backend (unmounted, deleted): every
	// operation reports the storage unavailable, none reports an object
	// missing, and nothing recreates the root.
	dir = filepath.Join(t.TempDir(), "vault")
	b, err := local.Create(dir, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b.Put(ctx, "index/a", []byte("a"))
	os.RemoveAll(dir)
	checks := map[string]error{
		"put":  b.Put(ctx, "data/aa/b", []byte("b")),
		"list": b.List(ctx, "", func(storage.ObjectInfo) error { return nil }),
		"del":  b.Delete(ctx, "index/a"),
	}
	_, checks["get"] = b.Get(ctx, "index/a", 0, -1)
	_, checks["stat"] = b.Stat(ctx, "index/a")
	for op, err := range checks {
		if !errors.Is(err, storage.ErrUnavailable) || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s with the root gone: %v", op, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the root was recreated: %v", err)
	}
}

func TestCreateIsDurable(t *testing.T) {
	c := local.NewCrashFS()
	if _, err := local.Create("/a/b/vault", local.Options{FS: c}); err != nil {
		t.Fatal(err)
	}
	c.Crash()
	if _, err := local.Open("/a/b/vault", local.Options{FS: c}); err != nil {
		t.Fatalf("a created vault directory did not survive power loss: %v", err)
	}
	// Also when Create finds the directory there but not yet durable.
	c = local.NewCrashFS()
	c.Mkdir("/vault")
	if _, err := local.Create("/vault", local.Options{FS: c}); err != nil {
		t.Fatal(err)
	}
	c.Crash()
	if _, err := local.Open("/vault", local.Options{FS: c}); err != nil {
		t.Fatalf("an existing, volatile vault directory did not survive power loss: %v", err)
	}
}

// badStatFS fails Stat of one name with err: EIO as a disk going bad
// answers, ENOENT as if it was deleted between the listing and the stat.
type badStatFS struct {
	local.OSFS
	bad string
	err error
}

func (f *badStatFS) Stat(name string) (local.Info, error) {
	if f.bad != "" && strings.HasSuffix(name, "/"+f.bad) {
		return local.Info{}, &fs.PathError{Op: "stat", Path: name, Err: f.err}
	}
	return f.OSFS.Stat(name)
}

// A listing fails when an object cannot be stat'ed, instead of leaving it
// out: a collection or check would take a left-out object for gone. An
// object deleted meanwhile (ENOENT) is left out without an error.
func TestListFailsOnUnreadableObject(t *testing.T) {
	ctx := context.Background()
	fsys := &badStatFS{}
	b, err := local.Create(filepath.Join(t.TempDir(), "vault"), local.Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"points/a", "points/b"} {
		if err := b.Put(ctx, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	list := func() error {
		names = nil
		return b.List(ctx, "points/", func(oi storage.ObjectInfo) error {
			names = append(names, oi.Name)
			return nil
		})
	}
	fsys.bad, fsys.err = "points/b", syscall.EIO
	if err := list(); err == nil || !errors.Is(err, syscall.EIO) {
		t.Fatalf("list with points/b unreadable: %v (names %q), want an EIO error", err, names)
	}
	fsys.bad, fsys.err = "points/a", syscall.ENOENT
	if err := list(); err != nil || len(names) != 1 || names[0] != "points/b" {
		t.Fatalf("list with points/a deleted meanwhile: %q, %v; want [points/b] and no error", names, err)
	}
}

// Sweep removes the temp files of dead writers (last written more than the
// age ago), keeps a live writer's and every object, and reports what it
// freed.
func TestSweepRemovesOnlyOldTempFiles(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "vault")
	b, err := local.Create(dir, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "data/ab/abcd", []byte("object")); err != nil {
		t.Fatal(err)
	}
	w, err := b.Create(ctx, "data/cd/live") // a writer still at work
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	w.Write([]byte("in progress"))
	dead := filepath.Join(dir, "data", "ab", ".tmp-0123456789abcdef")
	if err := os.WriteFile(dead, []byte("unfinished pack"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-25 * time.Hour)
	if err := os.Chtimes(dead, old, old); err != nil {
		t.Fatal(err)
	}
	n, bytes, err := b.Sweep(ctx, 24*time.Hour)
	if err != nil || n != 1 || bytes != int64(len("unfinished pack")) {
		t.Fatalf("sweep: %d files, %d bytes, %v; want 1, %d", n, bytes, err, len("unfinished pack"))
	}
	if _, err := os.Stat(dead); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the dead writer's temp file is still there: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Errorf("the live writer's object after the sweep: %v", err)
	}
	if got, err := storage.ReadAll(ctx, b, "data/ab/abcd"); err != nil || string(got) != "object" {
		t.Errorf("object after the sweep: %q, %v", got, err)
	}
}

// noReadDirFS refuses to list one directory, as a root-owned lost+found at
// the root of a mounted disk does to any other user.
type noReadDirFS struct {
	local.OSFS
	deny string
}

func (f *noReadDirFS) ReadDir(name string) ([]local.DirEntry, error) {
	if strings.HasSuffix(name, "/"+f.deny) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EACCES}
	}
	return f.OSFS.ReadDir(name)
}

// A directory Sweep may not read is passed over: it does not stop the
// sweep (nor, so, every collection of the vault).
func TestSweepPassesOverUnreadableDirectory(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "vault")
	fsys := &noReadDirFS{deny: "lost+found"}
	b, err := local.Create(dir, local.Options{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "lost+found"), 0o700)
	dead := filepath.Join(dir, "data", "ab", ".tmp-0123456789abcdef")
	os.MkdirAll(filepath.Dir(dead), 0o700)
	os.WriteFile(dead, []byte("x"), 0o600)
	old := time.Now().Add(-25 * time.Hour)
	os.Chtimes(dead, old, old)
	if n, _, err := b.Sweep(ctx, 24*time.Hour); err != nil || n != 1 {
		t.Fatalf("sweep with an unreadable lost+found: %d removed, %v; want 1 and no error", n, err)
	}
}

// A FIFO where an object was (a mistake, or a prank) is no object: Get and
// Stat say so at once. (Get opened it blocking and waited forever for a
// writer, Ctrl-C or not.)
func TestFIFOIsNoObject(t *testing.T) {
	ctx := context.Background()
	dir, b := openTemp(t, local.OSFS{})
	p := filepath.Join(dir, "data", "ab", "abcd")
	os.Remove(p)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		r, err := b.Get(ctx, "data/ab/abcd", 0, -1)
		if err == nil {
			r.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("get of a FIFO: %v, want not found", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("get of a FIFO still waiting after 10 s")
	}
	if _, err := b.Stat(ctx, "data/ab/abcd"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("stat of a FIFO: %v, want not found", err)
	}
	b.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		if oi.Name == "data/ab/abcd" {
			t.Error("a FIFO is listed as an object")
		}
		return nil
	})
	// Objects still read as before.
	if err := b.Put(ctx, "data/ab/abce", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if got, err := storage.ReadAll(ctx, b, "data/ab/abce"); err != nil || string(got) != "y" {
		t.Fatalf("read after: %q %v", got, err)
	}
}

// fullFS is a file system with no room left: every write fails with ENOSPC.
type fullFS struct{ local.OSFS }

type fullFile struct{ local.File }

func (f fullFile) Write(p []byte) (int, error) { return 0, syscall.ENOSPC }

func (f fullFS) CreateExcl(name string) (local.File, error) {
	file, err := f.OSFS.CreateExcl(name)
	if err != nil {
		return nil, err
	}
	return fullFile{file}, nil
}

func (f fullFS) CreateExclDirect(name string) (local.File, error) {
	file, err := f.OSFS.CreateExclDirect(name)
	if err != nil {
		return nil, err
	}
	return fullFile{file}, nil
}

// A full file system makes puts fail as storage unavailable (the CLI's exit
// 6, naming the storage), not as an unknown error (exit 1, "internal
// error"); no temp file is left.
func TestFullFileSystemIsUnavailable(t *testing.T) {
	ctx := context.Background()
	dir, b := openTemp(t, fullFS{})
	err := b.Put(ctx, "data/ab/abcd", []byte("x"))
	if !errors.Is(err, storage.ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("put on a full file system: %v, want unavailable (ENOSPC)", err)
	}
	w, err := b.Create(ctx, "data/ab/streamed")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("z"))
	if err := w.Commit(); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("streamed put on a full file system: %v, want unavailable", err)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "data", "ab"))
	if len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}
