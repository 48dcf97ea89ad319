package vault_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/testenv"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// A pwrite that writes less than it was given, or is interrupted by a
// signal, is not an error: the restore writes the rest. Taking the short
// count for the whole left zeros in restored files and reported success.
func TestRestoreShortAndInterruptedWrites(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	randomTree(t, src, 21)
	v, _ := newTestVault(t)
	p := mustBackup(t, v, src)

	var calls, short, interrupted atomic.Int64
	defer vault.SetPwrite(func(fd int, b []byte, off int64) (int, error) {
		switch n := calls.Add(1); {
		case n%3 == 0:
			interrupted.Add(1)
			return 0, unix.EINTR
		case len(b) > 1000:
			short.Add(1)
			return unix.Pwrite(fd, b[:1000-int(n%7)], off)
		}
		return unix.Pwrite(fd, b, off)
	})()

	dst, _ := mustRestore(t, v, p.ID, "")
	compareTrees(t, snapshot(t, src), snapshot(t, filepath.Join(dst, filepath.Base(src))))
	if short.Load() == 0 || interrupted.Load() == 0 {
		t.Fatalf("the fake pwrite cut %d writes short and interrupted %d: the test tested nothing", short.Load(), interrupted.Load())
	}
}

// A restore onto a file system that fills up fails, naming the file and the
// reason, instead of leaving a file with a tail of zeros (real tmpfs).
func TestRestoreOntoFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "mounting a tmpfs needs root")
	}
	src := filepath.Join(t.TempDir(), "src")
	r := rand.New(rand.NewPCG(5, 6))
	writeFile(t, filepath.Join(src, "small.txt"), textBytes(r, 10<<10), 0o644)
	writeFile(t, filepath.Join(src, "big.bin"), randBytes(r, 3<<20), 0o644)
	v, _ := newTestVault(t)
	p := mustBackup(t, v, src)

	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		testenv.Skip(t, "cannot mount a tmpfs: "+err.Error())
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })

	_, err := v.Restore(context.Background(), p, vault.RestoreOptions{Target: filepath.Join(mnt, "restore")})
	if err == nil {
		t.Fatal("restore of 3 MiB onto a 1 MiB file system reported success")
	}
	if !errors.Is(err, unix.ENOSPC) && !strings.Contains(err.Error(), "no space left") {
		t.Errorf("error does not say the disk is full: %v", err)
	}
	// Whichever file the writers were at when the disk filled (they run in
	// parallel: small.txt, once big.bin's blocks took the last page).
	if !strings.Contains(err.Error(), "big.bin") && !strings.Contains(err.Error(), "small.txt") {
		t.Errorf("error does not name the file: %v", err)
	}
}

// Owners that cannot be set (NFS with root squashing) are warnings in the
// result, each naming its path, not lost: the restore otherwise succeeds.
func TestRestoreReportsOwnerFailures(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("a"), 0o644)
	writeFile(t, filepath.Join(src, "sub", "b.txt"), []byte("b"), 0o600)
	v, _ := newTestVault(t)
	p := mustBackup(t, v, src)
	defer vault.SetFchown(func(fd, uid, gid int) error { return unix.EPERM })()
	yes := true
	res, err := v.Restore(context.Background(), p, vault.RestoreOptions{Target: filepath.Join(t.TempDir(), "r"), Owners: &yes})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(res.Warnings, "\n")
	for _, want := range []string{"src/a.txt: chown: operation not permitted", "src/sub/b.txt: chown", "src/sub: chown"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings miss %q:\n%s", want, all)
		}
	}
	if res.Files != 2 || len(res.Failed) != 0 {
		t.Errorf("%d files restored, failed %q", res.Files, res.Failed)
	}
}
