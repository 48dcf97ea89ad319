package vault_test

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
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

	if _, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app"}); lifeboat.ErrorCode(err) != lifeboat.EExists || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("restore into a non-empty target without resume: %v; want refused, naming --resume", err)
	}
	res, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", Resume: true})
	if err != nil || len(res.Failed) > 0 {
		t.Fatalf("resumed restore: %v %+v", err, res)
	}
	// b.bin (with hard), small.txt: kept; a.bin, sub/c.bin: restored.
	if res.Kept != 2 || res.KeptBytes != 512<<10+6 || res.Files != 4 {
		t.Errorf("resumed restore kept %d files (%d bytes) of %d; want b.bin and small.txt of 4", res.Kept, res.KeptBytes, res.Files)
	}
	got := snapshot(t, target)
	if _, ok := got["extra.txt"]; !ok {
		t.Error("a file not in the point was removed")
	}
	delete(got, "extra.txt")
	compareTrees(t, want, got)

	// Resumed again over a complete restore: everything kept, nothing written.
	res, err = v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", Resume: true})
	if err != nil || res.Kept != 4 || res.Bytes != 0 {
		t.Errorf("resume over a complete restore: %v, kept %d, wrote %d bytes; want all kept", err, res.Kept, res.Bytes)
	}

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
	os.Remove(filepath.Join(target, "a.bin"))
	os.MkdirAll(filepath.Join(target, "a.bin/x"), 0o755)
	if _, err := v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: "app", Resume: true}); lifeboat.ErrorCode(err) != lifeboat.EExists {
		t.Errorf("resume with a directory where a file goes: %v; want refused", err)
	}
	if _, err := os.Stat(filepath.Join(target, "a.bin/x")); err != nil {
		t.Errorf("the directory in the way was touched: %v", err)
	}
}
