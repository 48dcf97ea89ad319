package local

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/testenv"
)

// fdFlags reads the open flags of fd from /proc.
func fdFlags(t *testing.T, fd uintptr) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(int(fd)))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 8, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
	}
	t.Fatalf("no flags in fdinfo of %d", fd)
	return 0
}

// directDir is a temporary directory on a file system that takes O_DIRECT:
// the test's temp dir, else one next to the test's sources (where TMPDIR is
// a tmpfs, the checkout is usually on disk).
func directDir(t *testing.T) string {
	t.Helper()
	if dir := t.TempDir(); directSupported(t, dir) {
		return dir
	}
	dir, err := os.MkdirTemp(".", ".direct-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if !directSupported(t, dir) {
		testenv.Skip(t, "neither the temp dir nor the source dir takes O_DIRECT; nothing to fall back from")
	}
	return dir
}

// directSupported probes whether dir's file system takes O_DIRECT.
func directSupported(t *testing.T, dir string) bool {
	f, err := os.OpenFile(filepath.Join(dir, "probe"), os.O_WRONLY|os.O_CREATE|unix.O_DIRECT, 0o600)
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(filepath.Join(dir, "probe"))
	return true
}

func TestDirectFileRoundTrip(t *testing.T) {
	sizes := []int{0, 1, directAlign - 1, directAlign, directBlock - 1, directBlock, directBlock + 1, 2 * directBlock, 3*directBlock + 12345}
	dir := t.TempDir()
	direct := directSupported(t, dir)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range sizes {
		want := make([]byte, size)
		for i := range want {
			want[i] = byte(rng.Uint32())
		}
		name := filepath.Join(dir, "f"+strconv.Itoa(size))
		f, err := OSFS{}.CreateExclDirect(name)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := f.(*directFile); ok != direct {
			t.Fatalf("size %d: direct file %v, but the file system takes O_DIRECT: %v", size, ok, direct)
		} else if ok && fdFlags(t, d.f.Fd())&unix.O_DIRECT == 0 {
			t.Fatalf("size %d: file open without O_DIRECT", size)
		}
		// Writes of random lengths, crossing block boundaries.
		for p := want; len(p) > 0; {
			n := min(len(p), 1+rng.IntN(300_000))
			if m, err := f.Write(p[:n]); err != nil || m != n {
				t.Fatalf("size %d: write %d: %d, %v", size, n, m, err)
			}
			p = p[n:]
		}
		if err := f.Sync(); err != nil {
			t.Fatalf("size %d: sync: %v", size, err)
		}
		if _, err := f.Write([]byte("x")); err == nil {
			t.Fatalf("size %d: write after sync accepted", size)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("size %d: read back %d bytes, not what was written", size, len(got))
		}
	}
}

func TestDirectFileCloseWithoutSync(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	f, err := OSFS{}.CreateExclDirect(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, directBlock+5)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(name); err != nil || fi.Size() > directBlock {
		t.Fatalf("after close without sync: %v, %v (the unsynced tail must not be written)", fi, err)
	}
}

// A write error in the background surfaces on a later Write or Sync.
func TestDirectFileWriteErrorSurfaces(t *testing.T) {
	of, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	f := newDirectFile(of)
	of.Close() // the goroutine's first write fails
	block := make([]byte, directBlock)
	var werr error
	for range 4 {
		if _, werr = f.Write(block); werr != nil {
			break
		}
	}
	serr := f.Sync()
	if serr == nil || !errors.Is(serr, os.ErrClosed) {
		t.Fatalf("sync after a failed background write: %v (write: %v), want the write's error", serr, werr)
	}
	f.Close()
}

// On a file system that refuses O_DIRECT (ramfs), streamed objects are
// written the ordinary way: created once, committed, read back exactly.
func TestDirectFallsBackWhereRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "mounting a ramfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("ramfs", dir, "ramfs", 0, ""); err != nil {
		testenv.Skip(t, "cannot mount a ramfs: "+err.Error())
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if directSupported(t, dir) {
		t.Fatal("ramfs took O_DIRECT: this test no longer tests the fallback")
	}
	f, err := OSFS{}.CreateExclDirect(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatalf("create where O_DIRECT is refused: %v", err)
	}
	if _, ok := f.(*directFile); ok {
		t.Fatal("a direct file where O_DIRECT is refused")
	}
	f.Close()

	b, err := Create(filepath.Join(dir, "vault"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	want := make([]byte, 3*directBlock+5)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	w, err := b.Create(ctx, "data/ab/abcd")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := storage.ReadAll(ctx, b, "data/ab/abcd")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
}

// A file system that took O_DIRECT at open but refuses a write with EINVAL
// (after part of it, even) gets that block's rest and every later one
// written the ordinary way: the file ends up exactly as written.
func TestDirectFallsBackOnWriteEINVAL(t *testing.T) {
	dir := directDir(t)
	refused := 0
	writeAt = func(f *os.File, b []byte, off int64) (int, error) {
		fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
		if err == nil && fl&unix.O_DIRECT != 0 && off >= directBlock {
			// The second block: half of it goes, then the refusal.
			refused++
			n, err := f.WriteAt(b[:len(b)/2], off)
			if err != nil {
				return n, err
			}
			return n, unix.EINVAL
		}
		return f.WriteAt(b, off)
	}
	defer func() { writeAt = (*os.File).WriteAt }()
	name := filepath.Join(dir, "f")
	f, err := OSFS{}.CreateExclDirect(name)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := f.(*directFile)
	if !ok {
		t.Fatal("not a direct file on a file system that takes O_DIRECT")
	}
	want := make([]byte, 4*directBlock+777)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	if _, err := f.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("sync: %v (the EINVAL must be taken as a refusal of O_DIRECT, not an error)", err)
	}
	if d.direct || fdFlags(t, d.f.Fd())&unix.O_DIRECT != 0 {
		t.Error("O_DIRECT still set after the file system refused a direct write")
	}
	f.Close()
	if refused != 1 {
		t.Errorf("direct writes refused %d times; want 1 (later blocks go buffered)", refused)
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes, want %d, or not what was written", len(got), len(want))
	}
}
