package vault_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
)

var testPass = []byte("correct horse battery staple")

// fastKDF keeps unit tests quick; the CLI always uses crypto.DefaultKDF.
var fastKDF = crypto.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 1024, Threads: 1}

func testOpts() vault.Options { return vault.Options{KDF: &fastKDF, PackSize: 256 << 10} }

func newTestVault(t *testing.T) (*vault.Vault, storage.Backend) {
	t.Helper()
	be := memory.New()
	v, err := vault.Init(context.Background(), be, testPass, testOpts())
	if err != nil {
		t.Fatalf("init: %v", err)
	}
	return v, be
}

func reopen(t *testing.T, be storage.Backend) *vault.Vault {
	t.Helper()
	v, err := vault.Open(context.Background(), be, testPass, testOpts())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return v
}

// settle waits until files just written are old enough for a backup's
// successor to trust them unchanged (see vault.RacySlack).
func settle() { time.Sleep(vault.RacySlack + 50*time.Millisecond) }

func mustBackup(t *testing.T, v *vault.Vault, paths ...string) *manifest.Point {
	t.Helper()
	var srcs []vault.Source
	for _, p := range paths {
		srcs = append(srcs, vault.Source{Path: p})
	}
	p, err := v.Backup(context.Background(), vault.BackupOptions{Sources: srcs, Host: "testhost"})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return p
}

func mustRestore(t *testing.T, v *vault.Vault, id, path string) (string, *vault.RestoreResult) {
	t.Helper()
	ctx := context.Background()
	p, err := v.LoadPoint(ctx, id)
	if err != nil {
		t.Fatalf("load point %s: %v", id, err)
	}
	dst := filepath.Join(t.TempDir(), "restore")
	res, err := v.Restore(ctx, p, vault.RestoreOptions{Target: dst, Path: path})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	return dst, res
}

// entry is what the comparison checks of one file system object.
type entry struct {
	Type   string
	Mode   uint32
	UID    uint32
	GID    uint32
	Size   int64
	MTime  int64
	Hash   string
	Target string
	Sparse bool
	LinkID int // hard-link group, numbered by first appearance; 0 if single
}

// snapshot describes a tree: relative path → entry. Directory mtimes are
// compared too (restore sets them after their children).
func snapshot(t *testing.T, root string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	inodes := map[uint64]int{}
	var walk func(dir, rel string)
	walk = func(dir, rel string) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatalf("readdir %s: %v", dir, err)
		}
		for _, de := range ents {
			p := filepath.Join(dir, de.Name())
			r := de.Name()
			if rel != "" {
				r = rel + "/" + de.Name()
			}
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				t.Fatalf("lstat %s: %v", p, err)
			}
			e := entry{Mode: st.Mode & 07777, UID: st.Uid, GID: st.Gid, MTime: st.Mtim.Nano()}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFDIR:
				e.Type = "dir"
				walk(p, r)
			case unix.S_IFLNK:
				e.Type = "symlink"
				e.Target, _ = os.Readlink(p)
				e.Mode = 0
			case unix.S_IFREG:
				e.Type = "file"
				e.Size = st.Size
				e.Sparse = st.Blocks*512 < st.Size
				if st.Nlink > 1 {
					if _, ok := inodes[st.Ino]; !ok {
						inodes[st.Ino] = len(inodes) + 1
					}
					e.LinkID = inodes[st.Ino]
				}
				e.Hash = contentHash(t, p, st.Size)
			}
			out[r] = e
		}
	}
	walk(root, "")
	return out
}

func compareTrees(t *testing.T, want, got map[string]entry) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	bad := 0
	for _, k := range keys {
		w, okw := want[k]
		g, okg := got[k]
		if okw != okg || w != g {
			if bad < 10 {
				t.Errorf("%q:\n  want %+v (present %v)\n   got %+v (present %v)", k, w, okw, g, okg)
			}
			bad++
		}
	}
	if bad > 10 {
		t.Errorf("... %d differences in all", bad)
	}
}

// writeFile writes a file with content and mode.
func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// textBytes is compressible pseudo-text.
func textBytes(r *rand.Rand, n int) []byte {
	words := []string{"lifeboat ", "vault ", "backup ", "restore ", "config ", "database ", "{\"k\": 1}\n", "SELECT * FROM t;\n"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

// nastyTree builds a tree with the cases the issue lists.
func nastyTree(t *testing.T, root string, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x9e37))
	writeFile(t, filepath.Join(root, "empty"), nil, 0o644)
	writeFile(t, filepath.Join(root, "one"), []byte("x"), 0o600)
	writeFile(t, filepath.Join(root, "text.txt"), textBytes(r, 300<<10), 0o644)
	writeFile(t, filepath.Join(root, "random.bin"), randBytes(r, 3<<20+17), 0o640)
	writeFile(t, filepath.Join(root, "dup-a"), bytes.Repeat([]byte("same"), 100000), 0o644)
	writeFile(t, filepath.Join(root, "dup-b"), bytes.Repeat([]byte("same"), 100000), 0o644)
	writeFile(t, filepath.Join(root, "setuid"), []byte("#!/bin/sh\n"), 0o4755)
	writeFile(t, filepath.Join(root, "setgid"), []byte("#!/bin/sh\n"), 0o2750)
	os.MkdirAll(filepath.Join(root, "sticky"), 0o755)
	os.Chmod(filepath.Join(root, "sticky"), 0o1777)
	os.MkdirAll(filepath.Join(root, "empty-dir"), 0o700)
	os.MkdirAll(filepath.Join(root, "ro-dir"), 0o755)
	writeFile(t, filepath.Join(root, "ro-dir", "inside"), []byte("read only dir"), 0o444)
	os.Chmod(filepath.Join(root, "ro-dir"), 0o555)
	// Unicode and odd names, and names that are not UTF-8 (two that JSON
	// would both turn into U+FFFD).
	for _, n := range []string{"ünïcødé-名前.txt", "spaces in name", "-dash", "new\nline", "tab\there", "quote'\"", "back\\slash", "*glob?[x]", "\x01ctl", strings.Repeat("L", 255), "latin1-\xe9t\xe9", "\xff", "\xfe"} {
		writeFile(t, filepath.Join(root, "odd", n), []byte(n), 0o644)
	}
	// Deep.
	deep := root
	for i := range 40 {
		deep = filepath.Join(deep, fmt.Sprintf("d%02d", i))
	}
	writeFile(t, filepath.Join(deep, "bottom"), []byte("deep"), 0o644)
	// Wide.
	for i := range 500 {
		writeFile(t, filepath.Join(root, "wide", fmt.Sprintf("f%04d", i)), textBytes(r, r.IntN(2000)), 0o644)
	}
	// Symlinks: relative, absolute, dangling, to dir, loop.
	os.Symlink("text.txt", filepath.Join(root, "link-rel"))
	os.Symlink("/etc/passwd", filepath.Join(root, "link-abs"))
	os.Symlink("does/not/exist", filepath.Join(root, "link-dangling"))
	os.Symlink("wide", filepath.Join(root, "link-dir"))
	os.Symlink("link-loop", filepath.Join(root, "link-loop"))
	os.Symlink("odd/\xff", filepath.Join(root, "link-\xfe"))
	// Hard links.
	writeFile(t, filepath.Join(root, "hard1"), []byte("hard linked content"), 0o644)
	os.Link(filepath.Join(root, "hard1"), filepath.Join(root, "odd", "hard2"))
	os.Link(filepath.Join(root, "hard1"), filepath.Join(root, "hard3"))
	// Sparse: a hole, some data, a hole; and a large sparse file.
	sp, err := os.Create(filepath.Join(root, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	sp.WriteAt([]byte("middle"), 5<<20)
	sp.WriteAt(randBytes(r, 100000), 9<<20)
	sp.Truncate(12 << 20)
	sp.Close()
	big, err := os.Create(filepath.Join(root, "huge-sparse"))
	if err != nil {
		t.Fatal(err)
	}
	big.WriteAt([]byte("start"), 0)
	big.WriteAt([]byte("end"), 3<<30)
	big.Close()
	// Owners other than the test's (restored when running as root).
	if os.Geteuid() == 0 {
		os.Lchown(filepath.Join(root, "one"), 1234, 5678)
		os.Lchown(filepath.Join(root, "link-rel"), 4321, 8765)
		os.Lchown(filepath.Join(root, "empty-dir"), 1111, 2222)
		os.Chown(filepath.Join(root, "setuid"), 1234, 5678)
		os.Chmod(filepath.Join(root, "setuid"), 0o4755) // chown clears setuid
	}
	// Times: old, future, with nanoseconds.
	setTimes(t, filepath.Join(root, "one"), 946684800_123456789)
	setTimes(t, filepath.Join(root, "text.txt"), 4102444800_000000001)
	// Directory times last (writing into them changed them).
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			setTimes(t, p, 1600000000_000000000+int64(len(p)))
		}
		return nil
	})
}

func setTimes(t *testing.T, p string, ns int64) {
	t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(ns), unix.NsecToTimespec(ns)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}

// contentHash hashes a file's logical content in 1 MiB blocks, skipping holes
// with SEEK_DATA so that multi-GiB sparse files hash quickly; the result does
// not depend on where the file system put its holes.
func contentHash(t *testing.T, p string, size int64) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		return "unreadable"
	}
	defer f.Close()
	const blk = 1 << 20
	h := sha256.New()
	buf := make([]byte, blk)
	zero := make([]byte, blk)
	for off := int64(0); off < size; {
		d, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
		if err != nil { // no more data: the rest is zeros
			d = size
		}
		for ; off+blk <= d; off += blk {
			fmt.Fprintf(h, "Z%d;", off)
		}
		if off >= size {
			break
		}
		n := min(int64(blk), size-off)
		if _, err := f.ReadAt(buf[:n], off); err != nil && err != io.EOF {
			t.Fatalf("read %s: %v", p, err)
		}
		if n == blk && bytes.Equal(buf, zero) {
			fmt.Fprintf(h, "Z%d;", off)
		} else {
			h.Write(buf[:n])
		}
		off += n
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// randomTree makes a random tree of dirs, files of random sizes and kinds, symlinks.
func randomTree(t *testing.T, root string, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 77))
	dirs := []string{root}
	os.MkdirAll(root, 0o755)
	for i := range 300 {
		d := dirs[r.IntN(len(dirs))]
		switch k := r.IntN(10); {
		case k < 2:
			nd := filepath.Join(d, fmt.Sprintf("dir%d", i))
			os.Mkdir(nd, os.FileMode(0o700+r.IntN(0o77)))
			dirs = append(dirs, nd)
		case k < 3:
			os.Symlink(fmt.Sprintf("target%d", r.IntN(100)), filepath.Join(d, fmt.Sprintf("sym%d", i)))
		default:
			var data []byte
			switch r.IntN(3) {
			case 0:
				data = randBytes(r, r.IntN(200<<10))
			case 1:
				data = textBytes(r, r.IntN(1<<20))
			}
			writeFile(t, filepath.Join(d, fmt.Sprintf("file%d", i)), data, os.FileMode(0o400+r.IntN(0o377)))
			setTimes(t, filepath.Join(d, fmt.Sprintf("file%d", i)), r.Int64N(4e18))
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		setTimes(t, dirs[i], r.Int64N(4e18))
	}
}
