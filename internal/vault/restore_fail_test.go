package vault

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
)

// openUnder lists this process's descriptors open on paths under dir.
func openUnder(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, dir) {
			out = append(out, l)
		}
	}
	return out
}

// A restore cancelled while files are part-written closes their
// descriptors: a long-lived server would otherwise leak some with each.
func TestRestoreCancelledClosesFiles(t *testing.T) {
	src := filepath.Join(t.TempDir(), "app")
	os.MkdirAll(src, 0o755)
	for i := range 6 {
		b := make([]byte, 1<<20)
		rand.Read(b)
		os.WriteFile(filepath.Join(src, "f"+strconv.Itoa(i)), b, 0o644)
	}
	v, err := Init(context.Background(), memory.New(), []byte("pw"), Options{KDF: &weakKDF, PackSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Backup(context.Background(), BackupOptions{Sources: []Source{{Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	old := pwrite
	pwrite = func(fd int, b []byte, off int64) (int, error) {
		if n.Add(1) == 3 {
			cancel()
		}
		return unix.Pwrite(fd, b, off)
	}
	defer func() { pwrite = old }()
	dst := filepath.Join(t.TempDir(), "r")
	if _, err := v.Restore(ctx, p, RestoreOptions{Target: dst, Path: "app"}); err == nil {
		t.Fatal("a cancelled restore reported success")
	}
	if left := openUnder(t, dst); len(left) > 0 {
		t.Errorf("descriptors left open after the restore returned: %q", left)
	}
}

// A handle opened before another process's backup (a long-lived server's,
// and a CLI backup into its vault) restores that point: the blobs missing
// from its index are found by reading the new index objects, not reported
// as damage.
func TestRestoreWithStaleIndex(t *testing.T) {
	f := newCorruptFixture(t)
	ctx := context.Background()
	v1, err := f.reopen(t)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := f.reopen(t)
	if err != nil {
		t.Fatal(err)
	}
	fresh := make([]byte, 100<<10)
	rand.Read(fresh)
	os.WriteFile(filepath.Join(f.src, "new"), fresh, 0o644)
	p2, err := v2.Backup(ctx, BackupOptions{Sources: []Source{{Path: f.src}}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v1.LoadPoint(ctx, p2.ID)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "r")
	res, err := v1.Restore(ctx, p, RestoreOptions{Target: dst, Path: "app"})
	if err != nil {
		t.Fatalf("restore through the older handle: %v", err)
	}
	if len(res.Failed) > 0 || res.Files != 4 {
		t.Fatalf("restore through the older handle: %d files, failed %q; want 4 and none", res.Files, res.Failed)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "new")); string(got) != string(fresh) {
		t.Errorf("the new file restored wrong (%d bytes)", len(got))
	}
}

// The result counts the files restored, not those planned: a damaged file
// is removed and listed in Failed only.
func TestRestoreCountsOnlyRestoredFiles(t *testing.T) {
	f := newCorruptFixture(t)
	ctx := context.Background()
	f.be.Delete(ctx, f.packOf["a"])
	v, err := f.reopen(t)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "r")
	res, err := v.Restore(ctx, f.p, RestoreOptions{Target: dst, Path: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Failed) == 0 {
		t.Fatal("a's pack deleted, yet nothing failed")
	}
	var present int64
	for _, n := range []string{"a", "b", "sub/c"} {
		if _, err := os.Stat(filepath.Join(dst, n)); err == nil {
			present++
		}
	}
	if res.Files != present {
		t.Errorf("result says %d files restored; %d are there (failed: %q)", res.Files, present, res.Failed)
	}
}
