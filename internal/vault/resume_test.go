package vault_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// resumeSource writes 3 MiB of incompressible files (a dozen packs of the
// test vaults' 256 KiB) and returns their directory.
func resumeSource(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "app")
	r := rand.New(rand.NewPCG(7, 7))
	for _, name := range []string{"a.bin", "b.bin", "c.bin", "sub/d.bin"} {
		writeFile(t, filepath.Join(src, name), randBytes(r, 768<<10), 0o644)
	}
	return src
}

// fullBackupBytes is what a backup of src stores in an empty vault.
func fullBackupBytes(t *testing.T, src string) int64 {
	t.Helper()
	v, _ := newTestVault(t)
	return mustBackup(t, v, src).Stats.BytesNew
}

// newHookedVault makes a vault on a memory storage with hooks.
func newHookedVault(t *testing.T) (*vault.Vault, *storageHooks) {
	t.Helper()
	h := &storageHooks{Backend: memory.New()}
	v, err := vault.Init(context.Background(), h, testPass, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	return v, h
}

// failedBackup backs src up through v while the n-th data pack put fails
// (once), and returns what the failure kept.
func failedBackup(t *testing.T, v *vault.Vault, h *storageHooks, src string, n int64) *vault.BackupError {
	t.Helper()
	h.onPut = failDataPut(n, false)
	_, err := v.Backup(context.Background(), vault.BackupOptions{Sources: []vault.Source{{Path: src}}})
	h.onPut = nil
	var be *vault.BackupError
	if !errors.As(err, &be) {
		t.Fatalf("backup with a failing put: %v, want a BackupError", err)
	}
	return be
}

// failDataPut fails the n-th put of a data pack (counting from 1), once or,
// with after, that one and every put after it (the process died there).
func failDataPut(n int64, after bool) func(string) error {
	var puts atomic.Int64
	var dead atomic.Bool
	return func(name string) error {
		if dead.Load() {
			return errInjected
		}
		if strings.HasPrefix(name, "data/") && puts.Add(1) == n {
			dead.Store(after)
			return errInjected
		}
		return nil
	}
}

// A backup that fails half-way keeps the packs it stored: an index object
// names them, the error says how much is kept, and the next backup stores
// only the rest. (Without the index, the next backup uploaded it all again.)
func TestFailedBackupKeepsItsPacks(t *testing.T) {
	ctx := context.Background()
	src := resumeSource(t)
	full := fullBackupBytes(t, src)
	v, h := newHookedVault(t)
	be := failedBackup(t, v, h, src, 6)
	err := error(be)
	if !errors.Is(err, storage.ErrUnavailable) || lifeboat.ErrorCode(err) != lifeboat.EUnavailable {
		t.Errorf("the error %v no longer says the storage failed", err)
	}
	if packs := listNames(t, h, "data/"); be.KeptPacks != 5 || len(packs) != 5 {
		t.Fatalf("kept %d packs, %d in the storage; want the 5 stored before the failure", be.KeptPacks, len(packs))
	}
	if !strings.Contains(err.Error(), "is kept for the next backup") {
		t.Errorf("the error does not say what is kept: %v", err)
	}
	if ids, _ := v.PointIDs(ctx); len(ids) != 0 {
		t.Fatalf("a failed backup left points %v", ids)
	}

	v2 := reopen(t, h)
	p := mustBackup(t, v2, src)
	// (Trees differ by a few bytes from the whole backup's: times.)
	if p.Stats.BytesNew > full-be.KeptBytes+4<<10 || be.KeptBytes < 5*200<<10 {
		t.Errorf("the second backup stored %d bytes, kept %d, a whole backup %d: the kept packs were not reused", p.Stats.BytesNew, be.KeptBytes, full)
	}
	rep, err := v2.Check(ctx, vault.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check after the resumed backup: %v %+v", err, rep)
	}
	mustRestoreEqual(t, v2, p.ID, "app", snapshot(t, src))
}

// A backup killed after some packs (every later write lost) leaves them
// reusable by the next backup once a checkpoint named them.
func TestBackupCheckpoints(t *testing.T) {
	ctx := context.Background()
	src := resumeSource(t)
	full := fullBackupBytes(t, src)
	for _, c := range []struct {
		every    time.Duration
		reusable bool
	}{{time.Nanosecond, true}, {time.Hour, false}} {
		h := &storageHooks{Backend: memory.New()}
		o := testOpts()
		o.CheckpointEvery = c.every
		v, err := vault.Init(ctx, h, testPass, o)
		if err != nil {
			t.Fatal(err)
		}
		h.onPut = failDataPut(6, true)
		if _, err := v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: src}}}); err == nil {
			t.Fatal("backup into a dead storage succeeded")
		}
		h.onPut = nil
		p := mustBackup(t, reopen2(t, h, o), src)
		if reused := p.Stats.BytesNew < full-64<<10; reused != c.reusable {
			t.Errorf("checkpoint every %s: the second backup stored %d of %d bytes; want reuse %v", c.every, p.Stats.BytesNew, full, c.reusable)
		}
		mustRestoreEqual(t, reopen2(t, h, o), p.ID, "app", snapshot(t, src))
	}
}

// A collection that runs, past the grace period, while a backup reuses
// the packs an earlier failed backup kept condemns them (no point
// references them yet): the backup fails at its commit, saying to run it
// again, and the retry stores their data again and restores exactly. Never
// a point with data missing.
func TestResumedBackupMeetsCollection(t *testing.T) {
	ctx := context.Background()
	_, mbe, c, o := newClockVault(t)
	defer vault.SetSessionBeat(20 * time.Millisecond)()
	h := &storageHooks{Backend: mbe}
	a := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{3}).Read(a)
	b := []byte("the rest of the dump")
	dump := func(r io.ReadCloser) vault.BackupOptions {
		return vault.BackupOptions{Host: "h", Sources: []vault.Source{{Name: "db", Streams: []vault.Stream{{Name: "dump",
			Open: func(context.Context) (io.ReadCloser, error) { return r, nil }}}}}}
	}
	h.onPut = failDataPut(6, false)
	_, err := reopen2(t, h, o).Backup(ctx, dump(io.NopCloser(bytes.NewReader(append(a, b...)))))
	var be *vault.BackupError
	if !errors.As(err, &be) || be.KeptPacks == 0 {
		t.Fatalf("first backup: %v, want one that kept packs", err)
	}
	h.onPut = nil
	c.Add(2 * time.Hour)

	gcv := reopen2(t, mbe, o)
	var rep *vault.CollectReport
	mid := func() {
		var err error
		if rep, err = gcv.Collect(ctx, vault.CollectOptions{}); err != nil {
			t.Errorf("collect: %v", err)
		}
	}
	_, err = reopen2(t, mbe, o).Backup(ctx, dump(&stallReader{first: a, rest: b, mid: mid}))
	if rep == nil || rep.PacksCondemned == 0 {
		t.Fatalf("the collection condemned nothing: %+v", rep)
	}
	if lifeboat.ErrorCode(err) != lifeboat.EUnavailable || !strings.Contains(fmt.Sprint(err), "run the backup again") {
		t.Fatalf("a backup reusing packs condemned under it: %v; want it refused at its commit, retryable", err)
	}
	p, err := reopen2(t, mbe, o).Backup(ctx, dump(io.NopCloser(bytes.NewReader(append(a, b...)))))
	if err != nil {
		t.Fatalf("the retry: %v", err)
	}
	c.Add(2 * time.Hour)
	mustCollect(t, gcv, vault.CollectOptions{})
	c.Add(2 * time.Hour)
	mustCollect(t, gcv, vault.CollectOptions{})
	v := reopen2(t, mbe, o)
	if rep, err := v.Check(ctx, vault.CheckOptions{ReadData: true}); err != nil || !rep.OK() {
		t.Fatalf("check after the collections: %v %+v", err, rep)
	}
	n, err := v.Lookup(ctx, p, "db/dump")
	if err != nil || n.Size != int64(len(a)+len(b)) {
		t.Fatalf("the retried point's dump: %+v %v", n, err)
	}
}

// A handle whose backup failed (a server's, long-lived) reuses what it
// kept in its next backup, and restores points that other processes made
// reusing it: the kept packs' entries are loaded, not only marked seen.
// (The next backup through it uploaded everything again, and, once its one
// scan for unindexed packs was spent, its restores of such points failed
// with "blob not in any index".)
func TestKeptPacksLoadedByTheSameHandle(t *testing.T) {
	ctx := context.Background()
	src := resumeSource(t)
	full := fullBackupBytes(t, src)
	v, h := newHookedVault(t)
	be := failedBackup(t, v, h, src, 6)
	if p := mustBackup(t, v, src); p.Stats.BytesNew > full-be.KeptBytes+4<<10 {
		t.Errorf("the same handle stored %d of %d bytes again: it did not reuse the %d it kept", p.Stats.BytesNew, full, be.KeptBytes)
	}

	for round, seed := range []uint64{11, 12} {
		src := filepath.Join(t.TempDir(), "app")
		r := rand.New(rand.NewPCG(seed, seed))
		for _, name := range []string{"a.bin", "b.bin", "c.bin"} {
			writeFile(t, filepath.Join(src, name), randBytes(r, 768<<10), 0o644)
		}
		failedBackup(t, v, h, src, 5)
		p := mustBackup(t, reopen(t, h), src) // another process, reusing the kept packs
		lp, err := v.LoadPoint(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		res, err := v.Restore(ctx, lp, vault.RestoreOptions{Target: filepath.Join(t.TempDir(), "r"), Path: "app"})
		if err != nil || len(res.Failed) > 0 {
			t.Fatalf("round %d: the handle whose backup failed cannot restore %s, which reuses what it kept: %v %v", round+1, p.ID[:8], err, res)
		}
	}
}

// A checkpointing backup that started under the old data key, while the key
// is rotated and the vault re-encrypted: re-encryption leaves the packs of
// the live backup alone (indexed by its checkpoints, referenced by no point
// yet), as it did when they were unindexed, and the backup commits. (They
// were condemned as old garbage, and the backup failed at its commit.)
func TestCheckpointedBackupDuringReencrypt(t *testing.T) {
	ctx := context.Background()
	defer vault.SetSessionBeat(20 * time.Millisecond)()
	mbe := memory.New()
	o := testOpts()
	o.CheckpointEvery = time.Nanosecond
	if _, err := vault.Init(ctx, mbe, testPass, o); err != nil {
		t.Fatal(err)
	}
	a := make([]byte, 8<<20)
	rand.NewChaCha8([32]byte{5}).Read(a)
	other := reopen2(t, mbe, o)
	var res *vault.ReencryptResult
	mid := func() {
		if _, err := other.RotateDataKey(ctx); err != nil {
			t.Errorf("rotate: %v", err)
		}
		var err error
		if res, err = other.Reencrypt(ctx, vault.ReencryptOptions{}); err != nil {
			t.Errorf("reencrypt: %v", err)
		}
	}
	v := reopen2(t, mbe, o)
	p, err := v.Backup(ctx, vault.BackupOptions{Host: "h",
		Sources: []vault.Source{{Name: "db", Streams: []vault.Stream{{Name: "dump", Open: func(context.Context) (io.ReadCloser, error) {
			return &stallReader{first: a, rest: []byte("tail"), mid: mid}, nil
		}}}}}})
	if err != nil {
		t.Fatalf("a checkpointing backup across a rotation and a re-encryption: %v (re-encryption: %+v)", err, res)
	}
	// A re-encryption after it takes the point's old packs.
	res2, err := reopen2(t, mbe, o).Reencrypt(ctx, vault.ReencryptOptions{})
	if err != nil || res2.PacksCondemned == 0 {
		t.Fatalf("re-encryption after the backup: %+v, %v; want the point's old packs taken", res2, err)
	}
	if _, err := reopen2(t, mbe, o).LoadPoint(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	rep, err := reopen2(t, mbe, o).Check(ctx, vault.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
}
