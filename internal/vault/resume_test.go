package vault_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
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

// resumedBackupRace makes the packs of a failed backup older than the grace
// period, then runs a second backup of the same dump that stalls half-way
// (its data deduped against those packs) while mid runs collections.
func resumedBackupRace(t *testing.T, mid func(gcv *vault.Vault, c *clock)) (race struct {
	be   *memory.Backend
	c    *clock
	o    vault.Options
	dump []byte
	p    *manifest.Point
}, err error) {
	t.Helper()
	ctx := context.Background()
	_, mbe, c, o := newClockVault(t)
	h := &storageHooks{Backend: mbe}
	// 12 MiB: at least 6 chunks (2 MiB at most), so at least 6 data packs.
	a := make([]byte, 12<<20)
	rand.NewChaCha8([32]byte{3}).Read(a)
	b := []byte("the rest of the dump")
	dump := func(r io.ReadCloser) vault.BackupOptions {
		return vault.BackupOptions{Host: "h", Sources: []vault.Source{{Name: "db", Streams: []vault.Stream{{Name: "dump",
			Open: func(context.Context) (io.ReadCloser, error) { return r, nil }}}}}}
	}
	h.onPut = failDataPut(6, false)
	_, err = reopen2(t, h, o).Backup(ctx, dump(io.NopCloser(bytes.NewReader(append(a, b...)))))
	var be *vault.BackupError
	if !errors.As(err, &be) || be.KeptPacks == 0 {
		t.Fatalf("first backup: %v, want one that kept packs", err)
	}
	h.onPut = nil
	c.Add(2 * time.Hour)

	gcv := reopen2(t, mbe, o)
	var rep *vault.CollectReport
	race.be, race.c, race.o, race.dump = mbe, c, o, append(a, b...)
	// A re-encryption copies the backup's manifest as soon as it is
	// written, before the backup finds a pack condemned and withdraws it.
	race.p, err = reopen2(t, &manifestCopier{Backend: mbe}, o).Backup(ctx, dump(&stallReader{first: a, rest: b, mid: func() {
		var err error
		if rep, err = gcv.Collect(ctx, vault.CollectOptions{}); err != nil {
			t.Errorf("collect: %v", err)
		}
		if mid != nil {
			mid(gcv, c)
		}
	}}))
	if rep == nil || rep.PacksCondemned == 0 {
		t.Fatalf("the collection condemned nothing: %+v", rep)
	}
	return race, err
}

// manifestCopier writes a re-encrypted copy (points/<id>.00000002, the same
// bytes: the sealing does not matter to a reader) of the first manifest put
// through it, right after the put: what a re-encryption resealing the
// manifests at that moment leaves.
type manifestCopier struct {
	*memory.Backend
	once sync.Once
}

func (r *manifestCopier) Put(ctx context.Context, name string, data []byte) error {
	err := r.Backend.Put(ctx, name, data)
	if err == nil && strings.HasPrefix(name, "points/") && !strings.Contains(name, ".") {
		r.once.Do(func() { err = r.Backend.Put(ctx, name+".00000002", data) })
	}
	return err
}

// mustRestoreDump restores a point's db/dump and compares it with want.
func mustRestoreDump(t *testing.T, v *vault.Vault, p *manifest.Point, want []byte) {
	t.Helper()
	dst, res := mustRestore(t, v, p.ID, "db/dump")
	if len(res.Failed) > 0 {
		t.Fatalf("restore %s: failed %v", p.ID, res.Failed)
	}
	got, err := os.ReadFile(filepath.Join(dst, "dump"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("restored dump: %d bytes, want %d (%v)", len(got), len(want), err)
	}
}

// A collection that runs, past the grace period, while a backup reuses the
// packs an earlier failed backup kept condemns them (no point references
// them yet). The backup withdraws its manifest, copies its blobs out of the
// condemned packs into new ones and commits again: it succeeds, and once
// the collector has deleted the condemned packs the point still restores
// exactly. (It used to fail, saying to run it again.)
func TestResumedBackupMeetsCollection(t *testing.T) {
	defer vault.SetSessionBeat(20 * time.Millisecond)()
	r, err := resumedBackupRace(t, nil)
	if err != nil {
		t.Fatalf("a backup reusing packs condemned under it: %v; want its blobs copied out and the point committed", err)
	}
	// Its first manifest was withdrawn with the copy a re-encryption made.
	if names := listNames(t, r.be, "points/"); len(names) != 1 || !names["points/"+r.p.ID] {
		t.Errorf("manifests after the backup: %v, want only points/%s", names, r.p.ID)
	}
	// What it deduped against the condemned packs it stored again.
	if r.p.Stats.BytesNewRaw < int64(len(r.dump)) {
		t.Errorf("the backup stored %d bytes of a %d-byte dump: not its blobs from the condemned packs", r.p.Stats.BytesNewRaw, len(r.dump))
	}
	tombs := listNames(t, r.be, "condemned/")
	gcv := reopen2(t, r.be, r.o)
	for range 2 {
		r.c.Add(2 * time.Hour)
		mustCollect(t, gcv, vault.CollectOptions{})
	}
	for name := range tombs {
		hex := strings.TrimPrefix(name, "condemned/")
		if _, err := r.be.Stat(context.Background(), "data/"+hex[:2]+"/"+hex); err == nil {
			t.Errorf("condemned pack %s not deleted: the point still needs it", hex)
		}
	}
	v := reopen2(t, r.be, r.o)
	if rep, err := v.Check(context.Background(), vault.CheckOptions{ReadData: true}); err != nil || !rep.OK() {
		t.Fatalf("check after the collections: %v %+v", err, rep)
	}
	mustRestoreDump(t, v, r.p, r.dump)
}

// When the condemned packs are gone before the backup commits (a second
// collection deleted them: its tombstones were older than the grace
// period), nothing can be copied out: the backup fails, saying to run it
// again, leaves no manifest, and the retry stores the data again.
func TestResumedBackupMeetsDeletion(t *testing.T) {
	defer vault.SetSessionBeat(20 * time.Millisecond)()
	ctx := context.Background()
	var deleted int
	r, err := resumedBackupRace(t, func(gcv *vault.Vault, c *clock) {
		c.Add(2 * time.Hour)
		rep, err := gcv.Collect(ctx, vault.CollectOptions{})
		if err != nil {
			t.Errorf("second collect: %v", err)
			return
		}
		deleted = rep.PacksDeleted
	})
	if deleted == 0 {
		t.Fatal("setup: the second collection deleted nothing")
	}
	if lifeboat.ErrorCode(err) != lifeboat.EUnavailable || !strings.Contains(fmt.Sprint(err), "could not be copied out") || !strings.Contains(fmt.Sprint(err), "run the backup again") {
		t.Fatalf("a backup whose condemned packs were deleted: %v; want it refused, retryable", err)
	}
	if names := listNames(t, r.be, "points/"); len(names) != 0 {
		t.Fatalf("manifests left by the failed commit (a re-encryption's copy among them): %v", names)
	}
	mustCheckClean(t, reopen2(t, r.be, r.o))
	v := reopen2(t, r.be, r.o)
	p, err := v.Backup(ctx, vault.BackupOptions{Host: "h", Sources: []vault.Source{{Name: "db", Streams: []vault.Stream{{Name: "dump",
		Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(r.dump)), nil }}}}}})
	if err != nil {
		t.Fatalf("the retry: %v", err)
	}
	mustRestoreDump(t, reopen2(t, r.be, r.o), p, r.dump)
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

// tombstoneListFails fails every listing of condemned/ once a manifest is
// written: the backup cannot check its packs after its manifest.
type tombstoneListFails struct {
	*memory.Backend
	armed atomic.Bool
}

func (f *tombstoneListFails) Put(ctx context.Context, name string, data []byte) error {
	err := f.Backend.Put(ctx, name, data)
	if err == nil && strings.HasPrefix(name, "points/") {
		f.armed.Store(true)
	}
	return err
}

func (f *tombstoneListFails) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if f.armed.Load() && strings.HasPrefix(prefix, "condemned/") {
		return fmt.Errorf("list %s: %w", prefix, errInjected)
	}
	return f.Backend.List(ctx, prefix, fn)
}

// A backup that cannot check the tombstones after writing its manifest
// fails, and withdraws the manifest: a backup reported failed leaves no
// point. (The manifest stayed, unchecked.)
func TestCommitCheckFailureWithdraws(t *testing.T) {
	_, mbe, _, o := newClockVault(t)
	src := filepath.Join(t.TempDir(), "s")
	randomTree(t, src, 3)
	f := &tombstoneListFails{Backend: mbe}
	_, err := reopen2(t, f, o).Backup(context.Background(), vault.BackupOptions{Sources: []vault.Source{{Path: src}}, Host: "h"})
	if !errors.Is(err, errInjected) {
		t.Fatalf("backup whose tombstone check failed: %v", err)
	}
	if names := listNames(t, mbe, "points/"); len(names) != 0 {
		t.Fatalf("the failed backup left its manifest: %v", names)
	}
}

// manifestStays refuses to delete manifests.
type manifestStays struct{ *tombstoneListFails }

func (m manifestStays) Delete(ctx context.Context, name string) error {
	if strings.HasPrefix(name, "points/") {
		return fmt.Errorf("delete %s: %w", name, errInjected)
	}
	return m.Backend.Delete(ctx, name)
}

// A withdrawal whose manifest the storage will not delete leaves the point
// listed, as nothing else can, but not its purge tombstone: left, the
// tombstone would make every hold of the point fail and no collection
// would ever settle it.
func TestWithdrawalThatCannotDeleteLeavesNoTombstone(t *testing.T) {
	_, mbe, _, o := newClockVault(t)
	src := filepath.Join(t.TempDir(), "s")
	randomTree(t, src, 3)
	f := manifestStays{&tombstoneListFails{Backend: mbe}}
	_, err := reopen2(t, f, o).Backup(context.Background(), vault.BackupOptions{Sources: []vault.Source{{Path: src}}, Host: "h"})
	if !errors.Is(err, errInjected) {
		t.Fatalf("backup whose tombstone check failed: %v", err)
	}
	if names := listNames(t, mbe, "purged/"); len(names) != 0 {
		t.Fatalf("a purge tombstone left beside a manifest that stays: %v", names)
	}
}
