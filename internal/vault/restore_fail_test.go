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

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
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
	// Every file left is whole: part-written ones (at their full size,
	// zeros where blobs were still to come) are removed. (The restore's
	// record stays with them, for --resume.)
	ents, _ := os.ReadDir(dst)
	for _, e := range ents {
		if e.Name() == RestoreRecord {
			continue
		}
		got, _ := os.ReadFile(filepath.Join(dst, e.Name()))
		want, _ := os.ReadFile(filepath.Join(src, e.Name()))
		if string(got) != string(want) {
			t.Errorf("%s left part-written after the cancelled restore", e.Name())
		}
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
	// A blob v1 looked for in vain just before: its next refresh is held
	// back for a while, which must not matter to a restore.
	if _, ok, err := v1.lookupFresh(ctx, blob.ID{1, 2, 3}); ok || err != nil {
		t.Fatalf("lookup of a made-up blob: %v, %v", ok, err)
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

// A tree with more directories than the process may open descriptors
// restores exactly: directories over the budget are opened again when
// needed instead of held ("too many open files" failed the restore).
func TestRestoreMoreDirectoriesThanDescriptors(t *testing.T) {
	src := filepath.Join(t.TempDir(), "app")
	for i := range 400 {
		d := filepath.Join(src, "d"+strconv.Itoa(i%20), "e"+strconv.Itoa(i))
		os.MkdirAll(d, 0o750)
		os.WriteFile(filepath.Join(d, "f"), []byte(d), 0o640)
		if i%50 == 0 {
			os.Symlink("f", filepath.Join(d, "link"))
			os.Link(filepath.Join(d, "f"), filepath.Join(d, "hard"))
		}
	}
	big := make([]byte, 3<<20) // blobs in several packs: written piece by piece
	rand.Read(big)
	os.WriteFile(filepath.Join(src, "d7", "big"), big, 0o600)
	v, err := Init(context.Background(), memory.New(), []byte("pw"), Options{KDF: &weakKDF, PackSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Backup(context.Background(), BackupOptions{Sources: []Source{{Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = 128
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "r")
	res, err := v.Restore(context.Background(), p, RestoreOptions{Target: dst, Path: "app"})
	unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	if err != nil {
		t.Fatalf("restore with 128 descriptors: %v", err)
	}
	if len(res.Failed) > 0 || len(res.Warnings) > 0 || res.Dirs != 421 {
		t.Fatalf("restore: %d dirs, failed %q, warnings %q", res.Dirs, res.Failed, res.Warnings)
	}
	for _, rel := range []string{"d7/big", "d0/e0/f", "d19/e399/f"} {
		want, _ := os.ReadFile(filepath.Join(src, rel))
		got, err := os.ReadFile(filepath.Join(dst, rel))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s restored wrong: %v", rel, err)
		}
	}
	for _, rel := range []string{"d0/e0", "d19/e399"} {
		st, err := os.Stat(filepath.Join(dst, rel))
		if err != nil || st.Mode().Perm() != 0o750 {
			t.Errorf("%s: mode %v, %v; want 0750 (directory metadata is set through a reopened descriptor)", rel, st.Mode(), err)
		}
	}
	if l, err := os.Readlink(filepath.Join(dst, "d10/e50/link")); err != nil || l != "f" {
		t.Errorf("symlink: %q, %v", l, err)
	}
	if a, b := statIno(t, filepath.Join(dst, "d0/e100/f")), statIno(t, filepath.Join(dst, "d0/e100/hard")); a != b {
		t.Error("hard link restored as two files")
	}
}

func statIno(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// A restore that fails before any file is whole leaves nothing: the files
// begun are removed, then the directories left empty, then the target if
// the restore made it; one given empty stays, empty. So running it again
// into the same place works. (A skeleton of empty directories was left,
// and the retry was refused as "not empty".) A full target is the target
// unavailable (exit 6), not bad input.
func TestFailedRestoreLeavesNoSkeleton(t *testing.T) {
	src := filepath.Join(t.TempDir(), "app")
	for _, d := range []string{"a/b/c", "a/d", "e"} {
		os.MkdirAll(filepath.Join(src, d), 0o755)
		b := make([]byte, 100<<10)
		rand.Read(b)
		os.WriteFile(filepath.Join(src, d, "f"), b, 0o644)
	}
	v, err := Init(context.Background(), memory.New(), []byte("pw"), Options{KDF: &weakKDF})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Backup(context.Background(), BackupOptions{Sources: []Source{{Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	old := pwrite
	defer func() { pwrite = old }()
	pwrite = func(fd int, b []byte, off int64) (int, error) { return 0, unix.ENOSPC }
	given := filepath.Join(t.TempDir(), "given")
	os.Mkdir(given, 0o755)
	made := filepath.Join(t.TempDir(), "made")
	for _, dst := range []string{made, given} {
		_, err := v.Restore(context.Background(), p, RestoreOptions{Target: dst, Path: "app"})
		if lifeboat.ErrorCode(err) != lifeboat.EUnavailable {
			t.Fatalf("restore into a full %s: %v, want EUnavailable", dst, err)
		}
	}
	if _, err := os.Stat(made); !os.IsNotExist(err) {
		t.Errorf("the target the failed restore made is still there: %v", err)
	}
	if ents, err := os.ReadDir(given); err != nil || len(ents) != 0 {
		t.Errorf("the target given: %v %v; want it there and empty", ents, err)
	}
	for _, c := range []struct {
		err  error
		code lifeboat.Code
	}{{unix.ENOSPC, lifeboat.EUnavailable}, {unix.EDQUOT, lifeboat.EUnavailable}, {unix.EROFS, lifeboat.EUnavailable}, {unix.ENAMETOOLONG, lifeboat.EInvalid}, {unix.EACCES, lifeboat.EInvalid}} {
		if got := lifeboat.ErrorCode(targetError("restore x: mkdir", c.err)); got != c.code {
			t.Errorf("a target failing with %v: %v, want %v", c.err, got, c.code)
		}
	}
	// Again, with room: it works into the same place.
	pwrite = old
	if _, err := v.Restore(context.Background(), p, RestoreOptions{Target: given, Path: "app"}); err != nil {
		t.Fatalf("restore again: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(given, "a/b/c/f")); len(b) != 100<<10 {
		t.Errorf("restored file: %d bytes", len(b))
	}
}
