package vault_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

func TestRoundTripNastyTree(t *testing.T) {
	src := filepath.Join(t.TempDir(), "app")
	nastyTree(t, src, 1)
	v, be := newTestVault(t)
	p := mustBackup(t, v, src)
	if p.Partial {
		t.Fatalf("point partial: %v", p.Warnings)
	}
	// A fresh handle: everything must come from storage.
	v2 := reopen(t, be)
	dst, res := mustRestore(t, v2, p.ID, "")
	if len(res.Failed) > 0 {
		t.Fatalf("failed: %v", res.Failed)
	}
	compareTrees(t, snapshot(t, src), snapshot(t, filepath.Join(dst, "app")))
	// The component directory itself keeps its mode and mtime.
	var a, b unix.Stat_t
	unix.Lstat(src, &a)
	unix.Lstat(filepath.Join(dst, "app"), &b)
	if a.Mode != b.Mode || a.Mtim != b.Mtim {
		t.Errorf("component dir: mode %o mtime %v, want %o %v", b.Mode, b.Mtim, a.Mode, a.Mtim)
	}
	// The large sparse file stays sparse.
	var st unix.Stat_t
	unix.Lstat(filepath.Join(dst, "app", "huge-sparse"), &st)
	if st.Blocks*512 > 64<<20 {
		t.Errorf("huge-sparse restored with %d bytes allocated", st.Blocks*512)
	}
	if res.HardLinks != 2 {
		t.Errorf("hard links restored: %d, want 2", res.HardLinks)
	}
}

func TestRoundTripRandomTrees(t *testing.T) {
	for seed := uint64(2); seed < 5; seed++ {
		src := filepath.Join(t.TempDir(), "tree")
		randomTree(t, src, seed)
		v, _ := newTestVault(t)
		p := mustBackup(t, v, src)
		dst, res := mustRestore(t, v, p.ID, "tree")
		if len(res.Failed) > 0 {
			t.Fatalf("seed %d: failed: %v", seed, res.Failed)
		}
		compareTrees(t, snapshot(t, src), snapshot(t, dst))
	}
}

// A file changed just before its parent point started may have changed
// again in the same timestamp tick after that point read it, leaving size,
// times and inode alike: the next backup reads it again, and the one after
// trusts it.
func TestRacyFileReadAgain(t *testing.T) {
	v, _ := newTestVault(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), []byte("content"), 0o644)
	mustBackup(t, v, src)
	settle()
	p2 := mustBackup(t, v, src)
	if p2.Stats.UnchangedFiles != 0 || p2.Stats.BytesRead != 7 {
		t.Errorf("a file changed right before its parent started was trusted: %d unchanged, %d bytes read", p2.Stats.UnchangedFiles, p2.Stats.BytesRead)
	}
	p3 := mustBackup(t, v, src)
	if p3.Stats.UnchangedFiles != 1 || p3.Stats.BytesRead != 0 {
		t.Errorf("a file last changed long before its parent was read again: %d unchanged, %d bytes read", p3.Stats.UnchangedFiles, p3.Stats.BytesRead)
	}
}

func TestIncrementalReadsNothingUnchanged(t *testing.T) {
	src := filepath.Join(t.TempDir(), "app")
	nastyTree(t, src, 7)
	settle()
	v, be := newTestVault(t)
	p1 := mustBackup(t, v, src)
	v = reopen(t, be)
	p2 := mustBackup(t, v, src)
	if p2.Stats.BytesRead != 0 || p2.Stats.UnchangedFiles != p2.Stats.Files || p2.Stats.BlobsNew != 0 {
		t.Fatalf("unchanged re-backup: %+v", p2.Stats)
	}
	if p2.Parent != p1.ID || p2.Root != p1.Root {
		t.Errorf("parent %s root %s, want %s and the same root", p2.Parent, p2.Root, p1.ID)
	}
	// Change one file: only it is read.
	writeFile(t, filepath.Join(src, "wide", "f0001"), []byte("changed content"), 0o644)
	p3 := mustBackup(t, v, src)
	if p3.Stats.BytesRead != int64(len("changed content")) || p3.Stats.UnchangedFiles != p3.Stats.Files-1 {
		t.Fatalf("one change: %+v", p3.Stats)
	}
	dst, _ := mustRestore(t, v, p3.ID, "app")
	compareTrees(t, snapshot(t, src), snapshot(t, dst))
	// The older point still restores as it was.
	dst1, _ := mustRestore(t, v, p1.ID, "app/wide/f0001")
	if b, _ := os.ReadFile(filepath.Join(dst1, "f0001")); string(b) == "changed content" {
		t.Errorf("old point shows the new content")
	}
}

func TestSubPathRestoreAndLookup(t *testing.T) {
	src := filepath.Join(t.TempDir(), "site")
	writeFile(t, filepath.Join(src, "a", "b", "c.txt"), []byte("c"), 0o644)
	writeFile(t, filepath.Join(src, "a", "d.txt"), []byte("d"), 0o644)
	v, _ := newTestVault(t)
	p := mustBackup(t, v, src)
	dst, _ := mustRestore(t, v, "latest", "site/a/b")
	if b, err := os.ReadFile(filepath.Join(dst, "c.txt")); err != nil || string(b) != "c" {
		t.Fatalf("sub-path restore: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "d.txt")); err == nil {
		t.Errorf("sibling outside the sub-path restored")
	}
	dst2, _ := mustRestore(t, v, p.ID[:6], "/site/a/d.txt")
	if b, _ := os.ReadFile(filepath.Join(dst2, "d.txt")); string(b) != "d" {
		t.Errorf("single-file restore: %q", b)
	}
	_, err := v.Lookup(context.Background(), p, "site/nope")
	if lifeboat.ErrorCode(err) != lifeboat.ENotFound {
		t.Errorf("missing path: %v", err)
	}
}

func TestRestoreTargetMustBeEmpty(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), []byte("x"), 0o644)
	v, _ := newTestVault(t)
	p := mustBackup(t, v, src)
	dst := t.TempDir()
	writeFile(t, filepath.Join(dst, "keep"), []byte("mine"), 0o644)
	_, err := v.Restore(context.Background(), p, vault.RestoreOptions{Target: dst})
	if lifeboat.ErrorCode(err) != lifeboat.EExists {
		t.Fatalf("restore into non-empty dir: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "keep")); string(b) != "mine" {
		t.Errorf("existing file touched")
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	_, err := vault.Open(ctx, memory.New(), testPass, testOpts())
	if lifeboat.ErrorCode(err) != lifeboat.ENotFound {
		t.Errorf("open empty storage: %v", err)
	}
	_, be := newTestVault(t)
	_, err = vault.Open(ctx, be, []byte("wrong"), testOpts())
	if lifeboat.ErrorCode(err) != lifeboat.EAuth {
		t.Errorf("wrong passphrase: %v", err)
	}
	_, err = vault.Init(ctx, be, testPass, testOpts())
	if lifeboat.ErrorCode(err) != lifeboat.EExists {
		t.Errorf("second init: %v", err)
	}
}

func TestExcludeInclude(t *testing.T) {
	src := filepath.Join(t.TempDir(), "app")
	writeFile(t, filepath.Join(src, "keep.txt"), []byte("k"), 0o644)
	writeFile(t, filepath.Join(src, "drop.log"), []byte("d"), 0o644)
	writeFile(t, filepath.Join(src, "cache", "x.txt"), []byte("c"), 0o644)
	writeFile(t, filepath.Join(src, "sub", "y.txt"), []byte("y"), 0o644)
	writeFile(t, filepath.Join(src, "sub", "y.bin"), []byte("y"), 0o644)
	v, _ := newTestVault(t)
	p, err := v.Backup(context.Background(), vault.BackupOptions{
		Sources: []vault.Source{{Path: src}}, Excludes: []string{"*.log", "cache"}, Includes: []string{"*.txt"}})
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := mustRestore(t, v, p.ID, "app")
	got := snapshot(t, dst)
	for _, want := range []string{"keep.txt", "sub/y.txt"} {
		if _, ok := got[want]; !ok {
			t.Errorf("%s missing", want)
		}
	}
	for _, not := range []string{"drop.log", "cache", "sub/y.bin"} {
		if _, ok := got[not]; ok {
			t.Errorf("%s captured", not)
		}
	}
	_, err = v.Backup(context.Background(), vault.BackupOptions{Sources: []vault.Source{{Path: src}}, Excludes: []string{"[bad"}})
	if lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Errorf("bad glob: %v", err)
	}
}

// The glob forms a user writes: a trailing "/" for directories only, "**"
// across directories, an include naming a directory taking what is under
// it; patterns that can never match are refused, not silently ignored.
func TestGlobForms(t *testing.T) {
	src := filepath.Join(t.TempDir(), "app")
	for _, f := range []string{"cache/x.txt", "a/cache/y.txt", "cache.txt", "web/node_modules/m.js", "web/app.js",
		"config/app.yml", "config/sub/db.yml", "README.md", "logs/old/a.gz", "logs/b.gz"} {
		writeFile(t, filepath.Join(src, f), []byte(f), 0o644)
	}
	v, _ := newTestVault(t)
	for _, tc := range []struct {
		name               string
		excludes, includes []string
		want               []string
	}{
		{"dir only", []string{"cache/"}, nil,
			[]string{"cache.txt", "web/node_modules/m.js", "web/app.js", "config/app.yml", "config/sub/db.yml", "README.md", "logs/old/a.gz", "logs/b.gz"}},
		{"double star", []string{"**/node_modules", "logs/**/*.gz"}, nil,
			[]string{"cache/x.txt", "a/cache/y.txt", "cache.txt", "web/app.js", "config/app.yml", "config/sub/db.yml", "README.md"}},
		{"include a directory", nil, []string{"config"},
			[]string{"config/app.yml", "config/sub/db.yml"}},
		{"include a directory, slash", nil, []string{"config/", "*.md"},
			[]string{"config/app.yml", "config/sub/db.yml", "README.md"}},
		{"include anchored", nil, []string{"/logs/*.gz"},
			[]string{"logs/b.gz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Backup(context.Background(), vault.BackupOptions{Sources: []vault.Source{{Path: src}}, Excludes: tc.excludes, Includes: tc.includes, NoParent: true})
			if err != nil {
				t.Fatal(err)
			}
			dst, _ := mustRestore(t, v, p.ID, "app")
			var got []string
			for k, e := range snapshot(t, dst) {
				if e.Type == "file" {
					got = append(got, k)
				}
			}
			sort.Strings(got)
			want := append([]string{}, tc.want...)
			sort.Strings(want)
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("captured %q\nwant     %q", got, want)
			}
		})
	}
	for _, bad := range []string{"[abc", "{a,b", "/", "logs\\"} {
		_, err := v.Backup(context.Background(), vault.BackupOptions{Sources: []vault.Source{{Path: src}}, Excludes: []string{bad}})
		if lifeboat.ErrorCode(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), bad) {
			t.Errorf("bad glob %q: %v", bad, err)
		}
	}
}

func TestSpecialFileIsReportedNotFatal(t *testing.T) {
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "ok"), []byte("fine"), 0o644)
	if err := unix.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	v, _ := newTestVault(t)
	var warned []string
	p, err := v.Backup(context.Background(), vault.BackupOptions{Sources: []vault.Source{{Path: src}},
		Warn: func(path string, err error) { warned = append(warned, path) }})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Partial || len(warned) != 1 || filepath.Base(warned[0]) != "fifo" {
		t.Errorf("partial %v, warned %v", p.Partial, warned)
	}
}

func TestMissingSourceIsNotFound(t *testing.T) {
	v, _ := newTestVault(t)
	_, err := v.Backup(context.Background(), vault.BackupOptions{Sources: []vault.Source{{Path: "/nonexistent/lifeboat"}}})
	if lifeboat.ErrorCode(err) != lifeboat.ENotFound {
		t.Errorf("got %v", err)
	}
	var le *lifeboat.Error
	if !errors.As(err, &le) {
		t.Errorf("not a lifeboat error: %T", err)
	}
}

// putThenFail stores an object and then reports a failure, as a local put
// whose directory fsync fails after the rename, or an S3 put whose answer
// is lost, does.
type putThenFail struct {
	*memory.Backend
	name string
}

func (b *putThenFail) Put(ctx context.Context, name string, data []byte) error {
	if name == b.name {
		if err := b.Backend.Put(ctx, name, data); err != nil {
			return err
		}
		return fmt.Errorf("put %s: sync directory: %w", name, unix.EIO)
	}
	return b.Backend.Put(ctx, name, data)
}

// An init whose config put failed after the config became visible keeps
// its key slot: removing it left a vault that could neither be created
// again ("already exists") nor opened (no key slot).
func TestInitConfigPutFailedAfterWriting(t *testing.T) {
	ctx := context.Background()
	be := &putThenFail{Backend: memory.New(), name: vault.ConfigName}
	if _, err := vault.Init(ctx, be, testPass, testOpts()); err == nil {
		t.Fatal("init reported success although its config put failed")
	}
	if _, err := vault.Open(ctx, be.Backend, testPass, testOpts()); err != nil {
		t.Fatalf("the vault the failed init left does not open: %v", err)
	}
}
