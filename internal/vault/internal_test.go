package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
)

var weakKDF = crypto.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 1024, Threads: 1}

func newInternalVault(t *testing.T) *Vault {
	t.Helper()
	v, err := Init(context.Background(), memory.New(), []byte("pw"), Options{KDF: &weakKDF})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// craftPoint stores raw tree JSON (bypassing the encoder's checks) as the
// point's root, the way a malicious vault writer could.
func craftPoint(t *testing.T, v *Vault, trees map[string]string, root string) *manifest.Point {
	t.Helper()
	ctx := context.Background()
	s := v.newSaver(ctx)
	ids := map[string]blob.ID{}
	// Trees may name each other by placeholder {{name}}, saved leaves first.
	for len(ids) < len(trees) {
		for name, js := range trees {
			if _, done := ids[name]; done {
				continue
			}
			ready := true
			for other := range trees {
				if strings.Contains(js, "{{"+other+"}}") {
					if id, ok := ids[other]; ok {
						js = strings.ReplaceAll(js, "{{"+other+"}}", id.String())
					} else {
						ready = false
					}
				}
			}
			if !ready {
				continue
			}
			id, _, err := s.save(blob.Tree, []byte(js))
			if err != nil {
				t.Fatal(err)
			}
			ids[name] = id
		}
	}
	file, _, err := s.save(blob.Data, []byte("evil payload"))
	if err != nil {
		t.Fatal(err)
	}
	_ = file
	if err := s.finish(); err != nil {
		t.Fatal(err)
	}
	p := &manifest.Point{Version: 1, ID: manifest.NewID(v.opts.Now()), Root: ids[root], Time: v.opts.Now()}
	if cond, err := v.commitPoint(ctx, p, nil); err != nil || cond != nil {
		t.Fatal(err)
	}
	return p
}

func TestCraftedTreesCannotEscapeTarget(t *testing.T) {
	v := newInternalVault(t)
	s := v.newSaver(context.Background())
	dataID, _, _ := s.save(blob.Data, []byte("evil payload"))
	s.finish()
	file := `{"name":"%s","type":"file","mode":420,"uid":0,"gid":0,"mtime":0,"size":12,"content":[{"id":"` + dataID.String() + `"}]}`
	dir := `{"name":"%s","type":"dir","mode":493,"uid":0,"gid":0,"mtime":0,"subtree":"{{%s}}"}`
	f := fmt.Sprintf
	cases := map[string]map[string]string{
		"dotdot":     {"root": `{"nodes":[` + f(file, "..") + `]}`},
		"slash":      {"root": `{"nodes":[` + f(file, "../../escape") + `]}`},
		"absolute":   {"root": `{"nodes":[` + f(file, "/tmp/escape") + `]}`},
		"dot":        {"root": `{"nodes":[` + f(file, ".") + `]}`},
		"empty":      {"root": `{"nodes":[` + f(file, "") + `]}`},
		"nul":        {"root": `{"nodes":[` + f(file, `a\u0000b`) + `]}`},
		"duplicate":  {"root": `{"nodes":[` + f(file, "x") + `,` + f(file, "x") + `]}`},
		"unsorted":   {"root": `{"nodes":[` + f(file, "b") + `,` + f(file, "a") + `]}`},
		"link+dir":   {"sub": `{"nodes":[` + f(file, "payload") + `]}`, "root": `{"nodes":[{"name":"x","type":"symlink","mode":0,"uid":0,"gid":0,"mtime":0,"target":"/tmp"},` + f(dir, "x", "sub") + `]}`},
		"nested-bad": {"sub": `{"nodes":[` + f(file, "..") + `]}`, "root": `{"nodes":[` + f(dir, "d", "sub") + `]}`},
		"unknown":    {"root": `{"nodes":[{"name":"dev","type":"chardev","mode":0,"uid":0,"gid":0,"mtime":0}]}`},
		"bad-mode":   {"root": `{"nodes":[{"name":"m","type":"file","mode":99999999,"uid":0,"gid":0,"mtime":0}]}`},
	}
	for name, trees := range cases {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			os.Mkdir(outside, 0o755)
			target := filepath.Join(base, "target")
			wrap := map[string]string{"top": `{"nodes":[` + f(dir, "c", "root") + `]}`}
			for k, v := range trees {
				wrap[k] = v
			}
			p := craftPoint(t, v, wrap, "top")
			res, err := v.Restore(context.Background(), p, RestoreOptions{Target: target})
			if err == nil && len(res.Failed) == 0 {
				t.Fatalf("crafted tree %s restored without error", name)
			}
			if ents, _ := os.ReadDir(outside); len(ents) > 0 {
				t.Fatalf("restore wrote outside the target: %v", ents)
			}
			if _, err := os.Stat("/tmp/escape"); err == nil {
				t.Fatalf("restore wrote /tmp/escape")
			}
			filepath.WalkDir(target, func(p string, d os.DirEntry, err error) error {
				if d != nil && d.Name() == "payload" && strings.Contains(p, "/x/") {
					t.Errorf("payload written through a symlink: %s", p)
				}
				return nil
			})
		})
	}
}

func TestFileChangedOrVanishedWhileReading(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		act        func(path string)
	}{
		{"changed", "changed while being read", func(p string) { os.WriteFile(p, []byte("different and longer content"), 0o644) }},
		{"vanished", "vanished while being read", func(p string) { os.Remove(p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			os.WriteFile(filepath.Join(src, "victim"), []byte("original"), 0o644)
			os.WriteFile(filepath.Join(src, "bystander"), []byte("fine"), 0o644)
			testHookAfterRead = func(p string) {
				if filepath.Base(p) == "victim" {
					tc.act(p)
				}
			}
			defer func() { testHookAfterRead = nil }()
			v := newInternalVault(t)
			var msgs []string
			p, err := v.Backup(context.Background(), BackupOptions{Sources: []Source{{Path: src}},
				Warn: func(path string, err error) { msgs = append(msgs, path+": "+err.Error()) }})
			if err != nil {
				t.Fatalf("backup failed: %v", err)
			}
			if !p.Partial || len(msgs) != 1 || !strings.Contains(msgs[0], tc.want) {
				t.Fatalf("partial=%v warnings=%q", p.Partial, msgs)
			}
			if p.Stats.Files != 2 {
				t.Errorf("files %d", p.Stats.Files)
			}
		})
	}
}

// A file truncated while being read is captured as read: its recorded size
// is what its extents hold, so a restore gives the bytes read and no tail
// of zeros; a warning says so. Small files (read whole) and large ones
// (chunks in flight on the workers), plain and sparse.
func TestFileShrinksWhileReading(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int64
		sparse bool
	}{
		{"small", 6 << 20, false},
		{"large", 24 << 20, false},
		{"sparse", 24 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			victim := filepath.Join(src, "victim")
			data := make([]byte, tc.size)
			rand.Read(data)
			if tc.sparse {
				clear(data[4<<20 : 8<<20]) // a hole after the first 4 MiB
			}
			f, err := os.Create(victim)
			if err != nil {
				t.Fatal(err)
			}
			for off := int64(0); off < tc.size; off += 1 << 20 {
				if tc.sparse && off >= 4<<20 && off < 8<<20 {
					continue
				}
				f.WriteAt(data[off:off+1<<20], off)
			}
			f.Truncate(tc.size)
			f.Close()
			cut := int64(2 << 20)
			if tc.sparse {
				cut = 12 << 20 // after the hole
			}
			testHookChunk = func(p string, read int64) {
				if filepath.Base(p) == "victim" && read > 0 {
					os.Truncate(p, cut) // a no-op after the first time
				}
			}
			defer func() { testHookChunk = nil }()
			v := newInternalVault(t)
			var msgs []string
			p, err := v.Backup(context.Background(), BackupOptions{Sources: []Source{{Path: src}}, NoParent: true,
				Warn: func(path string, err error) { msgs = append(msgs, path+": "+err.Error()) }})
			if err != nil {
				t.Fatalf("backup failed: %v", err)
			}
			if !p.Partial || len(msgs) == 0 || !strings.Contains(strings.Join(msgs, "\n"), "shrank while being read") {
				t.Fatalf("partial=%v warnings=%q", p.Partial, msgs)
			}
			dst := filepath.Join(t.TempDir(), "r")
			if _, err := v.Restore(context.Background(), p, RestoreOptions{Target: dst}); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dst, filepath.Base(src), "victim"))
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(got)) >= tc.size || int64(len(got)) < cut {
				t.Fatalf("restored %d bytes of a %d-byte file cut to %d while read", len(got), tc.size, cut)
			}
			if !bytes.Equal(got, data[:len(got)]) {
				t.Errorf("the %d bytes restored differ from the file's first %d", len(got), len(got))
			}
		})
	}
}

// Parent trees prefetched ahead of the walk stay within prefetchBudget
// entries, whatever the number of subdirectories, and those of
// subdirectories gone since the parent point are let go; every unchanged
// file is still found unchanged.
func TestPrefetchBounded(t *testing.T) {
	src := t.TempDir()
	for d := range 200 {
		for f := range 5 {
			p := filepath.Join(src, fmt.Sprintf("d%03d", d), fmt.Sprintf("f%d", f))
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte(p), 0o644)
		}
	}
	time.Sleep(racySlack + 50*time.Millisecond)
	v := newInternalVault(t)
	if _, err := v.Backup(context.Background(), BackupOptions{Sources: []Source{{Path: src}}}); err != nil {
		t.Fatal(err)
	}
	for d := range 50 {
		os.RemoveAll(filepath.Join(src, fmt.Sprintf("d%03d", d*4)))
	}
	old := prefetchBudget
	prefetchBudget = 30
	var max, last atomic.Int64
	testHookPrefetch = func(held int64) {
		last.Store(held)
		for m := max.Load(); held > m && !max.CompareAndSwap(m, held); m = max.Load() {
		}
	}
	defer func() { prefetchBudget, testHookPrefetch = old, nil }()
	p, err := v.Backup(context.Background(), BackupOptions{Sources: []Source{{Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Stats.UnchangedFiles != 750 || p.Stats.BytesRead != 0 {
		t.Errorf("%d unchanged files, %d bytes read; want 750 and 0", p.Stats.UnchangedFiles, p.Stats.BytesRead)
	}
	if limit := prefetchBudget + prefetchGuess + int64(v.opts.Workers+1)*5; max.Load() > limit || max.Load() == 0 {
		t.Errorf("prefetched trees held up to %d entries; want some, at most %d", max.Load(), limit)
	}
	deadline := time.Now().Add(5 * time.Second)
	for last.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if last.Load() != 0 {
		t.Errorf("%d entries of prefetched trees never let go", last.Load())
	}
}

func TestCommitRefusesCondemnedPack(t *testing.T) {
	v := newInternalVault(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644)
	p1, err := v.Backup(context.Background(), BackupOptions{Sources: []Source{{Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	// A collector condemns every pack right after the backup started deduping.
	for _, pk := range v.idx.Packs() {
		if err := v.be.Put(context.Background(), "condemned/"+pk.String(), nil); err != nil {
			t.Fatal(err)
		}
	}
	// The next backup must not dedup against condemned packs: it stores again.
	p2, err := v.Backup(context.Background(), BackupOptions{Sources: []Source{{Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	if p2.Stats.BlobsNew == 0 {
		t.Errorf("backup deduped against condemned packs")
	}
	_ = p1
	// And a point whose referenced pack gets condemned after its manifest is
	// written is withdrawn.
	used := map[blob.PackID]bool{v.idx.Packs()[0]: true}
	p3 := &manifest.Point{Version: 1, ID: manifest.NewID(v.opts.Now()), Root: p2.Root}
	cond, err := v.commitPoint(context.Background(), p3, used)
	if err != nil || len(cond) != 1 || !used[cond[0]] {
		t.Fatalf("commit with condemned pack: %v %v", cond, err)
	}
	if _, err := v.be.Stat(context.Background(), manifest.ObjectName(p3.ID)); err == nil {
		t.Errorf("manifest left behind")
	}
}

// readDirStat lists only a real directory: a symlink swapped in for one
// (after the walk lstat'ed it) is refused, not followed.
func TestReadDirStatRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "secret"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if names, _, err := readDirStat(real); err != nil || len(names) != 1 {
		t.Fatalf("a real directory: %v, %v", names, err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	// Linux answers ENOTDIR (O_DIRECTORY on the unfollowed link); ELOOP
	// would do as well.
	names, _, err := readDirStat(link)
	if !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.ELOOP) {
		t.Fatalf("a symlink to a directory: listed %v, error %v; want it refused", names, err)
	}
}

// Sibling directories are walked by extra goroutines only while the
// listings held stay under walkListBudget; with no budget at all the walk
// is inline, and either way the point is the same.
func TestWalkerBudget(t *testing.T) {
	src := t.TempDir()
	for d := range 5 {
		dir := filepath.Join(src, fmt.Sprintf("d%d", d), "sub")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range 200 {
			if err := os.WriteFile(filepath.Join(filepath.Dir(dir), fmt.Sprintf("f%03d", f)), []byte(fmt.Sprint(d, f)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	v := newInternalVault(t)
	var walkers atomic.Int32
	testHookWalker = func() { walkers.Add(1) }
	defer func() { testHookWalker = nil }()
	backup := func(budget int64) (manifest.Point, int32) {
		old := walkListBudget
		walkListBudget = budget
		defer func() { walkListBudget = old }()
		walkers.Store(0)
		p, err := v.Backup(context.Background(), BackupOptions{Sources: []Source{{Path: src}}, NoParent: true})
		if err != nil {
			t.Fatal(err)
		}
		return *p, walkers.Load()
	}
	free, n := backup(1 << 16)
	if n == 0 {
		t.Fatal("no walker goroutine started under the default budget: the test shows nothing")
	}
	none, n := backup(0)
	if n != 0 {
		t.Errorf("%d walker goroutines started with no budget", n)
	}
	if free.Root != none.Root || free.Stats.Files != 1000 || none.Stats.Files != 1000 {
		t.Errorf("points differ: root %v (%d files) with walkers, %v (%d files) inline", free.Root, free.Stats.Files, none.Root, none.Stats.Files)
	}
}
