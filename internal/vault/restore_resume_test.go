package vault_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// A restore resumed into what an interrupted or killed one left: files
// found whole are kept, not written again; a file left at full size with
// zeros (a killed restore sets the time last), a missing file, a symlink
// or hard link replaced by something else are restored; the result is the
// point exactly. Without --resume the target is refused; with it, a
// directory or file in the way of the other kind is refused.
func TestResumedRestore(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "app")
	r := rand.New(rand.NewPCG(21, 21))
	for _, n := range []string{"a.bin", "b.bin", "sub/c.bin"} {
		writeFile(t, filepath.Join(src, n), randBytes(r, 512<<10), 0o640)
	}
	writeFile(t, filepath.Join(src, "small.txt"), []byte("small\n"), 0o4755)
	os.Symlink("a.bin", filepath.Join(src, "link"))
	os.Link(filepath.Join(src, "b.bin"), filepath.Join(src, "hard"))
	os.MkdirAll(filepath.Join(src, "empty"), 0o755)
	v, _ := newTestVault(t)
	p := mustBackup(t, v, src)
	want := snapshot(t, src)

	target := filepath.Join(t.TempDir(), "r")
	if _, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app"}); err != nil {
		t.Fatal(err)
	}
	// What an interrupted, then killed, restore left:
	os.Remove(filepath.Join(target, "sub/c.bin"))                                     // not reached
	os.WriteFile(filepath.Join(target, "a.bin"), make([]byte, 512<<10), 0o600)        // full size, zeros
	os.Remove(filepath.Join(target, "link"))                                          //
	os.WriteFile(filepath.Join(target, "link"), []byte("junk"), 0o644)                // a file where a symlink goes
	os.Remove(filepath.Join(target, "hard"))                                          //
	os.WriteFile(filepath.Join(target, "hard"), []byte("another inode"), 0o644)       // not the link
	os.WriteFile(filepath.Join(target, "extra.txt"), []byte("the user's own"), 0o644) // not in the point: left
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(target, "a.bin"), old, old)
	// b.bin, as a power loss can leave a file: its size, mode and time, not
	// its data (here, one byte changed).
	hb := filepath.Join(target, "b.bin")
	st, _ := os.Stat(hb)
	bb, _ := os.ReadFile(hb)
	bb[1000] ^= 1
	os.WriteFile(hb, bb, 0o640)
	os.Chtimes(hb, st.ModTime(), st.ModTime())
	// The killed restore's record.
	writeRecord(t, target, p.ID, "app")

	if _, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app"}); lifeboat.ErrorCode(err) != lifeboat.EExists || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("restore into a non-empty target without resume: %v; want refused, naming --resume", err)
	}
	res, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", Resume: true})
	if err != nil || len(res.Failed) > 0 {
		t.Fatalf("resumed restore: %v %+v", err, res)
	}
	// small.txt: kept; a.bin, b.bin (and hard), sub/c.bin: restored.
	if res.Kept != 1 || res.KeptBytes != 6 || res.Files != 4 {
		t.Errorf("resumed restore kept %d files (%d bytes) of %d; want small.txt of 4", res.Kept, res.KeptBytes, res.Files)
	}
	if _, err := os.Lstat(filepath.Join(target, vault.RestoreRecord)); !os.IsNotExist(err) {
		t.Errorf("the finished restore left its record: %v", err)
	}
	got := snapshot(t, target)
	if _, ok := got["extra.txt"]; !ok {
		t.Error("a file not in the point was removed")
	}
	delete(got, "extra.txt")
	compareTrees(t, want, got)

	// A finished restore leaves nothing to resume; one killed just before
	// it removed its record: everything kept, nothing written.
	if _, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", Resume: true}); lifeboat.ErrorCode(err) != lifeboat.EExists || !strings.Contains(err.Error(), "no unfinished restore") {
		t.Errorf("resume of a finished restore: %v; want refused", err)
	}
	writeRecord(t, target, p.ID, "app")
	res, err = v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", Resume: true})
	if err != nil || res.Kept != 4 || res.Bytes != 0 {
		t.Errorf("resume over a complete restore: %v, kept %d, wrote %d bytes; want all kept", err, res.Kept, res.Bytes)
	}
	// Another point's (or path's) unfinished restore is not this one's.
	writeRecord(t, target, strings.Repeat("e", 32), "app")
	if _, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", Resume: true}); lifeboat.ErrorCode(err) != lifeboat.EExists || !strings.Contains(err.Error(), "something else") {
		t.Errorf("resume over another point's restore: %v; want refused", err)
	}
	writeRecord(t, target, p.ID, "app/sub")
	if _, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", Resume: true}); lifeboat.ErrorCode(err) != lifeboat.EExists {
		t.Errorf("resume over another path's restore: %v; want refused", err)
	}
	writeRecord(t, target, p.ID, "app")

	// The other kind in the way: refused, never replaced.
	os.RemoveAll(filepath.Join(target, "sub"))
	os.WriteFile(filepath.Join(target, "sub"), []byte("a file where a directory goes"), 0o644)
	if _, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", Resume: true}); lifeboat.ErrorCode(err) != lifeboat.EExists {
		t.Errorf("resume with a file where a directory goes: %v; want refused", err)
	}
	os.Remove(filepath.Join(target, "sub"))
	os.Symlink("/etc", filepath.Join(target, "sub"))
	if _, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", Resume: true}); lifeboat.ErrorCode(err) != lifeboat.EExists {
		t.Errorf("resume with a symlink where a directory goes: %v; want refused", err)
	}
	os.Remove(filepath.Join(target, "sub"))
	os.MkdirAll(filepath.Join(target, "sub"), 0o755) // the user's, empty, at a directory of the point
	os.Remove(filepath.Join(target, "a.bin"))
	os.MkdirAll(filepath.Join(target, "a.bin/x"), 0o755)
	if _, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", Resume: true}); lifeboat.ErrorCode(err) != lifeboat.EExists {
		t.Errorf("resume with a directory where a file goes: %v; want refused", err)
	}
	if _, err := os.Stat(filepath.Join(target, "a.bin/x")); err != nil {
		t.Errorf("the directory in the way was touched: %v", err)
	}
	// That failed resume removed no directory it did not make: "empty"
	// (made by the first restore) and "mine" (the user's) stay.
	for _, d := range []string{"empty", "sub"} {
		if st, err := os.Stat(filepath.Join(target, d)); err != nil || !st.IsDir() {
			t.Errorf("a failed resume removed the directory %s it found: %v", d, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(target, vault.RestoreRecord)); err != nil {
		t.Errorf("a failed resume removed the record of what is left: %v", err)
	}
}

func writeRecord(t *testing.T, target, point, path string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(target, vault.RestoreRecord), fmt.Appendf(nil, "point %s\npath %s\n", point, path), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A resumed restore never goes through a symlink put in place of its
// target (it would restore into, and set the modes of, whatever that
// points to).
func TestResumeRefusesSymlinkedTarget(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "app")
	writeFile(t, filepath.Join(src, "conf"), []byte("point"), 0o644)
	v, _ := newTestVault(t)
	p := mustBackup(t, v, src)
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	writeFile(t, filepath.Join(victim, "conf"), []byte("precious"), 0o600)
	writeRecord(t, victim, p.ID, "app") // even with a record there
	os.Chmod(victim, 0o750)
	target := filepath.Join(dir, "r")
	os.Symlink(victim, target)
	if _, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", Resume: true}); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Errorf("resume into a symlinked target: %v; want refused", err)
	}
	if b, _ := os.ReadFile(filepath.Join(victim, "conf")); string(b) != "precious" {
		t.Errorf("the directory behind the symlink was written: %q", b)
	}
	if st, _ := os.Stat(victim); st.Mode().Perm() != 0o750 {
		t.Errorf("the directory behind the symlink got mode %v", st.Mode().Perm())
	}
}

// A resumed restore whose hard-link group's first file fails (damaged
// data) removes what is at the other names: they are not the point's.
func TestResumeRemovesLinksOfAFailedFile(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "app")
	writeFile(t, filepath.Join(src, "a"), randBytes(rand.New(rand.NewPCG(3, 3)), 300<<10), 0o644)
	os.Link(filepath.Join(src, "a"), filepath.Join(src, "h"))
	v, be := newTestVault(t)
	p := mustBackup(t, v, src)
	target := filepath.Join(t.TempDir(), "r")
	if _, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app"}); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(target, "a"))
	os.Remove(filepath.Join(target, "h"))
	os.WriteFile(filepath.Join(target, "h"), []byte("NOT THE POINT"), 0o644)
	writeRecord(t, target, p.ID, "app")
	// Damage a's data (the largest pack; the tree's is small): a fails.
	largest, size := "", int64(0)
	be.List(ctx, "data/", func(oi storage.ObjectInfo) error {
		if oi.Size > size {
			largest, size = oi.Name, oi.Size
		}
		return nil
	})
	be.(*memory.Backend).Mutate(largest, func(b []byte) []byte { b[100] ^= 1; return b })
	res, err := reopen(t, be).Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", Resume: true})
	if err != nil || len(res.Failed) != 2 {
		t.Fatalf("resume with a damaged file and its link: %v %+v; want both failed", err, res)
	}
	if b, err := os.ReadFile(filepath.Join(target, "h")); err == nil {
		t.Errorf("the link of a failed file still holds %q", b)
	}
}

// A restore holds a lock on its record while it runs: another restore
// resuming into the same target meanwhile (a second server that took over
// the job, a second terminal) is refused as unavailable, writing nothing;
// once the lock is gone it resumes. With KeepRecord a finished restore
// leaves its record, a resume then keeps every file, and
// RemoveRestoreRecord removes it.
func TestRestoreRecordLockAndKeep(t *testing.T) {
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "app")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("first file\n"), 0o644)
	writeFile(t, filepath.Join(src, "sub", "b.txt"), []byte("second file\n"), 0o644)
	v, _ := newTestVault(t)
	p := mustBackup(t, v, src)

	target := filepath.Join(t.TempDir(), "r")
	if _, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", KeepRecord: true}); err != nil {
		t.Fatal(err)
	}
	rec := filepath.Join(target, vault.RestoreRecord)
	f, err := os.Open(rec)
	if err != nil {
		t.Fatalf("KeepRecord: the record is gone: %v", err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("the finished restore still holds its lock: %v", err)
	}
	os.Remove(filepath.Join(target, "a.txt"))
	_, err = v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", Resume: true})
	if lifeboat.ErrorCode(err) != lifeboat.EUnavailable || !strings.Contains(fmt.Sprint(err), "another restore is writing into it") {
		t.Fatalf("resume while another restore holds the record: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(target, "a.txt")); err == nil {
		t.Fatal("the refused restore wrote a file")
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	res, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", Resume: true, KeepRecord: true})
	if err != nil || res.Kept != 1 || res.Files != 2 {
		t.Fatalf("resume once the lock is gone: %+v %v", res, err)
	}
	if b, err := os.ReadFile(filepath.Join(target, "a.txt")); err != nil || string(b) != "first file\n" {
		t.Fatalf("a.txt: %q %v", b, err)
	}
	if err := vault.RemoveRestoreRecord(target); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(rec); err == nil {
		t.Fatal("RemoveRestoreRecord left the record")
	}
}
