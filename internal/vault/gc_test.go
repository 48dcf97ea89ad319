package vault_test

import (
	"context"
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
	"github.com/lifeboat-vault/lifeboat/internal/storage/local"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
)

// clock is a settable clock shared by the vault (server time) and the
// memory backend (storage time).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newClockVault makes a vault on a memory backend whose timestamps and
// server clock are c.
func newClockVault(t *testing.T) (*vault.Vault, *memory.Backend, *clock, vault.Options) {
	t.Helper()
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	be := memory.New()
	be.Now = c.Now
	o := testOpts()
	o.Now = c.Now
	v, err := vault.Init(context.Background(), be, testPass, o)
	if err != nil {
		t.Fatal(err)
	}
	return v, be, c, o
}

// expiredPoint is a clock vault holding one point, soft-deleted and past
// the retention (the data key rotated after its backup, if asked), so that
// the next collection purges it.
type expiredPoint struct {
	v  *vault.Vault
	be *memory.Backend
	c  *clock
	o  vault.Options
	p  *manifest.Point
}

func newExpiredPoint(t *testing.T, rotate bool) expiredPoint {
	t.Helper()
	f := newMarkedPoint(t, vault.MarkDelete, rotate)
	f.c.Add(15 * 24 * time.Hour)
	return f
}

// newMarkedPoint is a clock vault holding one point with one marker of
// kind, the data key rotated after it if asked.
func newMarkedPoint(t *testing.T, kind vault.MarkKind, rotate bool) expiredPoint {
	t.Helper()
	ctx := context.Background()
	v, be, c, o := newClockVault(t)
	src := filepath.Join(t.TempDir(), "s")
	writeFile(t, filepath.Join(src, "f"), []byte("doomed"), 0o644)
	p := mustBackup(t, v, src)
	if err := v.Mark(ctx, p.ID, kind, "", "server"); err != nil {
		t.Fatal(err)
	}
	if rotate {
		if _, err := v.RotateDataKey(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return expiredPoint{v, be, c, o, p}
}

func listNames(t *testing.T, be storage.Backend, prefix string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	if err := be.List(context.Background(), prefix, func(oi storage.ObjectInfo) error { out[oi.Name] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func mustCollect(t *testing.T, v *vault.Vault, o vault.CollectOptions) *vault.CollectReport {
	t.Helper()
	rep, err := v.Collect(context.Background(), o)
	if err != nil {
		t.Fatalf("collect: %v", err)
	}
	return rep
}

func mustCheckClean(t *testing.T, v *vault.Vault) {
	t.Helper()
	rep, err := v.Check(context.Background(), vault.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check: %v %+v", err, rep)
	}
}

func TestCollectFreesExactlyUnreferencedPacks(t *testing.T) {
	ctx := context.Background()
	v, be, c, o := newClockVault(t)
	dir := t.TempDir()
	srcA, srcB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	randomTree(t, srcA, 1)
	randomTree(t, srcB, 2)
	wantA, wantB := snapshot(t, srcA), snapshot(t, srcB)
	pA := mustBackup(t, v, srcA)
	c.Add(time.Minute)
	pB := mustBackup(t, v, srcB)
	c.Add(time.Minute)
	// A second point of A sharing most of its data.
	writeFile(t, filepath.Join(srcA, "added"), []byte("one more file"), 0o644)
	wantA2 := snapshot(t, srcA)
	pA2 := mustBackup(t, v, srcA)

	v = reopen2(t, be, o)
	all := listNames(t, be, "data/")
	keep, err := vault.PacksOf(ctx, v, []*manifest.Point{pA, pA2})
	if err != nil {
		t.Fatal(err)
	}
	var garbage []string
	var garbageBytes int64
	for n := range all {
		if !keep[n] {
			garbage = append(garbage, n)
			oi, _ := be.Stat(ctx, n)
			garbageBytes += oi.Size
		}
	}
	if len(garbage) == 0 || len(keep) == 0 {
		t.Fatalf("test setup: %d packs to keep, %d garbage", len(keep), len(garbage))
	}

	// Nothing is deleted or condemned while every point is live.
	c.Add(2 * time.Hour)
	if rep := mustCollect(t, v, vault.CollectOptions{}); rep.PacksCondemned+rep.PacksDeleted+len(rep.PointsPurged) != 0 {
		t.Fatalf("collect with only live points: %+v", rep)
	}
	if err := v.Mark(ctx, pB.ID, vault.MarkDelete, "test", "tester"); err != nil {
		t.Fatal(err)
	}
	// Soft-deleted within the retention: kept, data and all.
	c.Add(13 * 24 * time.Hour)
	if rep := mustCollect(t, v, vault.CollectOptions{}); rep.PacksCondemned+len(rep.PointsPurged) != 0 {
		t.Fatalf("collect within the retention: %+v", rep)
	}
	mustRestoreEqual(t, v, pB.ID, "b", wantB)
	// Past the retention: purged, its packs condemned, none deleted.
	c.Add(2 * 24 * time.Hour)
	rep := mustCollect(t, v, vault.CollectOptions{})
	if len(rep.PointsPurged) != 1 || rep.PointsPurged[0] != pB.ID || rep.PacksCondemned != len(garbage) || rep.PacksDeleted != 0 {
		t.Fatalf("first collection: %+v (want %d condemned)", rep, len(garbage))
	}
	if got := listNames(t, be, "data/"); len(got) != len(all) {
		t.Fatalf("packs deleted in the condemning run")
	}
	if len(listNames(t, be, "markers/")) != 0 {
		t.Errorf("markers of the purged point left")
	}
	// Within the grace period (storage time): still nothing deleted.
	c.Add(59 * time.Minute)
	rep = mustCollect(t, v, vault.CollectOptions{})
	if rep.PacksDeleted != 0 || rep.PacksWaiting != len(garbage) || rep.PacksCondemned != 0 {
		t.Fatalf("collection within the grace period: %+v", rep)
	}
	// Past it: exactly the garbage goes, tombstones stay.
	c.Add(2 * time.Minute)
	rep = mustCollect(t, v, vault.CollectOptions{})
	if rep.PacksDeleted != len(garbage) || rep.BytesFreed != garbageBytes {
		t.Fatalf("collection after the grace period: %+v (want %d packs, %d bytes)", rep, len(garbage), garbageBytes)
	}
	got := listNames(t, be, "data/")
	for n := range keep {
		if !got[n] {
			t.Errorf("referenced pack %s deleted", n)
		}
	}
	if len(got) != len(keep) {
		t.Errorf("%d packs left, want %d", len(got), len(keep))
	}
	if n := len(listNames(t, be, "condemned/")); n != len(garbage) {
		t.Errorf("%d tombstones left, want %d (kept for late writers)", n, len(garbage))
	}
	if rep := mustCollect(t, v, vault.CollectOptions{}); rep.PacksDeleted+rep.PacksCondemned != 0 {
		t.Errorf("a further collection did something: %+v", rep)
	}
	v = reopen2(t, be, o)
	mustCheckClean(t, v)
	mustRestoreEqual(t, v, pA.ID, "a", wantA)
	mustRestoreEqual(t, v, pA2.ID, "a", wantA2)
	if _, err := v.LoadPoint(ctx, pB.ID); lifeboat.ErrorCode(err) != lifeboat.ENotFound {
		t.Errorf("purged point still loads: %v", err)
	}
	// A new backup of the purged data stores it again and restores.
	pB2 := mustBackup(t, v, srcB)
	if pB2.Stats.BlobsNew == 0 {
		t.Errorf("backup deduped against deleted packs")
	}
	mustCheckClean(t, reopen2(t, be, o))
	mustRestoreEqual(t, reopen2(t, be, o), pB2.ID, "b", wantB)
}

func reopen2(t *testing.T, be storage.Backend, o vault.Options) *vault.Vault {
	t.Helper()
	v, err := vault.Open(context.Background(), be, testPass, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return v
}

func mustRestoreEqual(t *testing.T, v *vault.Vault, id, comp string, want map[string]entry) {
	t.Helper()
	dst, res := mustRestore(t, v, id, comp)
	if len(res.Failed) > 0 {
		t.Fatalf("restore %s: failed %v", id, res.Failed)
	}
	compareTrees(t, want, snapshot(t, dst))
}

func TestHoldAndUndelete(t *testing.T) {
	ctx := context.Background()
	v, be, c, _ := newClockVault(t)
	src := filepath.Join(t.TempDir(), "s")
	writeFile(t, filepath.Join(src, "f"), []byte("held data"), 0o644)
	p1 := mustBackup(t, v, src)
	c.Add(time.Second)
	writeFile(t, filepath.Join(src, "g"), []byte("more"), 0o644)
	p2 := mustBackup(t, v, src)

	// Undelete restores visibility.
	if err := v.Mark(ctx, p2.ID, vault.MarkDelete, "oops", "bob"); err != nil {
		t.Fatal(err)
	}
	st, err := v.PointStates(ctx)
	if err != nil || !st[p2.ID].Deleted || st[p2.ID].Reason != "oops" || st[p2.ID].By != "bob" || !st[p2.ID].DeletedAt.Equal(c.Now()) {
		t.Fatalf("states after delete: %+v %v", st, err)
	}
	if p, err := v.LoadPoint(ctx, "latest"); err != nil || p.ID != p1.ID {
		t.Fatalf("latest skips the deleted point: %v %v", p, err)
	}
	c.Add(time.Second)
	if err := v.Mark(ctx, p2.ID, vault.MarkUndelete, "", "bob"); err != nil {
		t.Fatal(err)
	}
	if st, _ := v.PointStates(ctx); st[p2.ID].Deleted {
		t.Fatalf("undelete did not take: %+v", st)
	}
	if p, err := v.LoadPoint(ctx, "latest"); err != nil || p.ID != p2.ID {
		t.Fatalf("latest after undelete: %v %v", p, err)
	}
	c.Add(30 * 24 * time.Hour)
	if rep := mustCollect(t, v, vault.CollectOptions{}); len(rep.PointsPurged) != 0 {
		t.Fatalf("undeleted point purged: %+v", rep)
	}

	// A held point cannot be deleted, and a deleted one that is held is never purged.
	if err := v.Mark(ctx, p1.ID, vault.MarkHold, "legal", "carol"); err != nil {
		t.Fatal(err)
	}
	if err := v.Mark(ctx, p1.ID, vault.MarkDelete, "", ""); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Fatalf("delete of a held point: %v", err)
	}
	c.Add(time.Second)
	v.Mark(ctx, p1.ID, vault.MarkRelease, "", "")
	c.Add(time.Second)
	if err := v.Mark(ctx, p1.ID, vault.MarkDelete, "", ""); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Second)
	if err := v.Mark(ctx, p1.ID, vault.MarkHold, "", ""); err != nil { // hold after delete
		t.Fatal(err)
	}
	c.Add(30 * 24 * time.Hour)
	if rep := mustCollect(t, v, vault.CollectOptions{}); len(rep.PointsPurged) != 0 {
		t.Fatalf("held point purged: %+v", rep)
	}
	if st, _ := v.PointStates(ctx); !st[p1.ID].Held || !st[p1.ID].Deleted {
		t.Fatalf("states: %+v", st)
	}
	c.Add(time.Second)
	v.Mark(ctx, p1.ID, vault.MarkRelease, "", "")
	if rep := mustCollect(t, v, vault.CollectOptions{}); len(rep.PointsPurged) != 1 || rep.PointsPurged[0] != p1.ID {
		t.Fatalf("released point not purged: %+v", rep)
	}
	// Markers need a manifest; bad ids and kinds are refused.
	if err := v.Mark(ctx, p1.ID, vault.MarkUndelete, "", ""); lifeboat.ErrorCode(err) != lifeboat.ENotFound {
		t.Errorf("mark of a purged point: %v", err)
	}
	if err := v.Mark(ctx, "xyz", vault.MarkHold, "", ""); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Errorf("bad id: %v", err)
	}
	if err := v.Mark(ctx, p2.ID, "purge", "", ""); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Errorf("bad kind: %v", err)
	}
	// A forged marker (not sealed with the vault's key) stops everything
	// that would act on it.
	forged := fmt.Sprintf("markers/%s/%019d-00000000.delete", p2.ID, c.Now().UnixNano())
	if err := be.Put(ctx, forged, []byte(`{"kind":"delete"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Collect(ctx, vault.CollectOptions{}); lifeboat.ErrorCode(err) != lifeboat.ECorrupt || !strings.Contains(err.Error(), forged) {
		t.Fatalf("collect with a forged marker: %v", err)
	}
	if _, err := v.LoadPoint(ctx, p2.ID); err != nil {
		t.Fatalf("forged marker purged the point: %v", err)
	}
}

// slowManifests delays every manifest put by a random time up to max.
type slowManifests struct {
	storage.Backend
	max time.Duration
}

func (b *slowManifests) Put(ctx context.Context, name string, data []byte) error {
	// Half the manifest puts are slow: writers get caught between their
	// index and their manifest; the other half let every writer progress.
	if strings.HasPrefix(name, "points/") && rand.IntN(2) == 0 {
		time.Sleep(rand.N(b.max))
	}
	return b.Backend.Put(ctx, name, data)
}

// condemnHook runs fn once, just before the first tombstone is written.
type condemnHook struct {
	storage.Backend
	once sync.Once
	fn   func()
}

func (h *condemnHook) Put(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, "condemned/") {
		h.once.Do(h.fn)
	}
	return h.Backend.Put(ctx, name, data)
}

// TestReferencedAfterCondemned: a backup that commits between a collector's
// manifest listing and its tombstones succeeds (its check saw no
// tombstone); the next collections must keep the packs it needs (they stay
// condemned), and collect them once a later backup stored the data again.
func TestReferencedAfterCondemned(t *testing.T) {
	ctx := context.Background()
	v, be, c, o := newClockVault(t)
	src := filepath.Join(t.TempDir(), "s")
	randomTree(t, src, 5)
	want := snapshot(t, src)
	p1 := mustBackup(t, v, src)
	if err := v.Mark(ctx, p1.ID, vault.MarkDelete, "", ""); err != nil {
		t.Fatal(err)
	}
	c.Add(15 * 24 * time.Hour)
	var p2 *manifest.Point
	hook := &condemnHook{Backend: be}
	hook.fn = func() {
		w := reopen2(t, be, o)
		var err error
		p2, err = w.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: src}}, Host: "testhost", NoParent: true})
		if err != nil {
			t.Errorf("backup in the window: %v", err)
		}
	}
	hv, err := vault.Open(ctx, hook, testPass, o)
	if err != nil {
		t.Fatal(err)
	}
	rep := mustCollect(t, hv, vault.CollectOptions{})
	if p2 == nil || len(rep.PointsPurged) != 1 || rep.PacksCondemned == 0 {
		t.Fatalf("setup: %+v", rep)
	}
	if p2.Stats.BlobsNew != 0 {
		t.Fatalf("the backup in the window did not dedup: %+v", p2.Stats)
	}
	// The packs p2 needs are condemned: they are kept (never deleted while
	// a point needs them) and stay condemned.
	tombs := len(listNames(t, be, "condemned/"))
	c.Add(2 * time.Hour)
	rep = mustCollect(t, v, vault.CollectOptions{})
	if rep.PacksDeleted != 0 || len(listNames(t, be, "condemned/")) != tombs {
		t.Fatalf("second collection: %+v", rep)
	}
	v = reopen2(t, be, o)
	mustCheckClean(t, v)
	mustRestoreEqual(t, v, p2.ID, "s", want)
	// A new backup of the same data stores it again (no dedup against a
	// condemned pack); then the condemned packs are no longer needed.
	p3 := mustBackup(t, v, src)
	if p3.Stats.BlobsNew == 0 {
		t.Fatalf("the new backup deduped against condemned packs: %+v", p3.Stats)
	}
	c.Add(2 * time.Hour)
	if rep := mustCollect(t, v, vault.CollectOptions{}); rep.PacksDeleted == 0 {
		t.Errorf("condemned packs with healthy copies were not deleted: %+v", rep)
	}
	v = reopen2(t, be, o)
	mustCheckClean(t, v)
	mustRestoreEqual(t, v, p2.ID, "s", want)
}

func TestStorageTimeAndSkew(t *testing.T) {
	v, be, c, o := newClockVault(t)
	got, err := v.StorageTime(context.Background())
	if err != nil || !got.Equal(c.Now()) {
		t.Fatalf("storage time %v, want %v (%v)", got, c.Now(), err)
	}
	if n := len(listNames(t, be, "locks/")); n != 0 {
		t.Errorf("probe left behind")
	}
	skewed := func() time.Time { return c.Now().Add(2 * time.Hour) }
	if _, err := v.Collect(context.Background(), vault.CollectOptions{Now: skewed}); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Fatalf("collect with a skewed clock: %v", err)
	}
	_ = o
}

// TestLeftoversAreCollected: packs of an interrupted backup (no index names
// them) are condemned once older than the grace period, then deleted.
func TestLeftoversAreCollected(t *testing.T) {
	ctx := context.Background()
	v, be, c, _ := newClockVault(t)
	src := filepath.Join(t.TempDir(), "s")
	randomTree(t, src, 6)
	mustBackup(t, v, src)
	// A leftover: a copy of a real pack under a new name, no index.
	var some string
	for n := range listNames(t, be, "data/") {
		some = n
	}
	b, _ := storage.ReadAll(ctx, be, some)
	leftover := "data/ee/ee" + strings.Repeat("0", 30)
	be.Put(ctx, leftover, append([]byte{}, b[:len(b)/2]...)) // not a valid pack
	c.Add(30 * time.Minute)
	if rep := mustCollect(t, v, vault.CollectOptions{}); rep.PacksCondemned != 0 || rep.PacksRecent != 1 {
		t.Fatalf("young leftover condemned, or not counted as recent: %+v", rep)
	}
	c.Add(time.Hour)
	if rep := mustCollect(t, v, vault.CollectOptions{}); rep.PacksCondemned != 1 {
		t.Fatalf("leftover not condemned: %+v", rep)
	}
	c.Add(time.Hour)
	if rep := mustCollect(t, v, vault.CollectOptions{}); rep.PacksDeleted != 1 {
		t.Fatalf("leftover not deleted: %+v", rep)
	}
	if _, err := be.Stat(ctx, leftover); err == nil {
		t.Errorf("leftover still there")
	}
	mustCheckClean(t, v)
}

// raceGrace is short against real time, yet longer than a small backup (even
// under the race detector on a loaded machine): with no grace at all, a
// collector condemns the packs of every backup in flight, and a backup
// longer than the grace may be condemned again on every retry.
const raceGrace = 100 * time.Millisecond

// TestBackupsRaceCollections races many backups against many collections
// (grace 100 ms, retention 1 ns) on one vault. Backups may fail (a pack they
// used was condemned): they are retried. Every point reported as done and
// not forgotten must restore exactly, and check must pass.
func TestBackupsRaceCollections(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	ctx := context.Background()
	// Manifest puts take up to 3 grace periods: writers are caught between
	// their index and their manifest, with their packs old enough to condemn.
	be := &slowManifests{Backend: memory.New(), max: 3 * raceGrace}
	o := testOpts()
	if _, err := vault.Init(ctx, be, testPass, o); err != nil {
		t.Fatal(err)
	}
	type done struct {
		id, comp string
		want     map[string]entry
	}
	var mu sync.Mutex
	var reported []done
	forgotten := map[string]bool{}
	var failed, succeeded, deleted atomic.Int64
	stop := make(chan struct{})
	var wg, cwg sync.WaitGroup
	dir := t.TempDir()
	const writers, rounds, collectors = 4, 12, 3
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 42))
			src := filepath.Join(dir, fmt.Sprintf("w%d", w))
			for j := range 20 {
				writeFile(t, filepath.Join(src, fmt.Sprintf("d%d", j%3), fmt.Sprintf("f%d", j)), randBytes(r, r.IntN(100<<10)), 0o644)
			}
			v, err := vault.Open(ctx, be, testPass, o) // a long-lived handle
			if err != nil {
				t.Error(err)
				return
			}
			for i := range rounds {
				// Change some files, add a shared one (cross-writer dedup).
				for j := range 3 {
					writeFile(t, filepath.Join(src, fmt.Sprintf("c%d", j)), randBytes(r, r.IntN(200<<10)), 0o644)
				}
				// Drop an old file: data only older points hold is never
				// stored again, so a lost pack cannot be healed by a later backup.
				os.Remove(filepath.Join(src, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%d", r.IntN(20))))
				writeFile(t, filepath.Join(src, "shared"), textBytes(rand.New(rand.NewPCG(uint64(i), 1)), 200<<10), 0o644)
				want := snapshot(t, src)
				time.Sleep(time.Duration(r.IntN(150)) * time.Millisecond)
				for attempt := 0; ; attempt++ {
					hv := v
					if attempt%2 == 1 {
						if hv, err = vault.Open(ctx, be, testPass, o); err != nil {
							t.Error(err)
							return
						}
					}
					p, err := hv.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: src}}, Host: fmt.Sprintf("h%d", w)})
					if err == nil {
						succeeded.Add(1)
						mu.Lock()
						reported = append(reported, done{p.ID, filepath.Base(src), want})
						mu.Unlock()
						break
					}
					failed.Add(1)
					if lifeboat.ErrorCode(err) != lifeboat.EUnavailable && !strings.Contains(err.Error(), "condemned") && !strings.Contains(err.Error(), "missing") {
						t.Errorf("writer %d: backup failed oddly: %v", w, err)
					}
					if attempt > 40 {
						t.Errorf("writer %d: backup never succeeds: %v", w, err)
						return
					}
				}
			}
		}()
	}
	for cn := range collectors {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			r := rand.New(rand.NewPCG(uint64(cn), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				v, err := vault.Open(ctx, be, testPass, o)
				if err != nil {
					t.Error(err)
					return
				}
				// Forget one older point now and then: its data becomes garbage.
				mu.Lock()
				var victim string
				if n := len(reported); n > 0 && r.IntN(2) == 0 {
					victim = reported[r.IntN(n)].id
					forgotten[victim] = true
				}
				mu.Unlock()
				if victim != "" {
					if err := v.Mark(ctx, victim, vault.MarkDelete, "race", "test"); err != nil && lifeboat.ErrorCode(err) != lifeboat.ENotFound {
						t.Errorf("forget: %v", err)
					}
				}
				rep, err := v.Collect(ctx, vault.CollectOptions{Grace: raceGrace, SoftDeleteRetention: time.Nanosecond})
				if err != nil {
					t.Errorf("collect: %v", err)
					return
				}
				deleted.Add(int64(rep.PacksDeleted))
				time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	close(stop)
	cwg.Wait()
	t.Logf("%d backups succeeded, %d failed and were retried; %d packs deleted", succeeded.Load(), failed.Load(), deleted.Load())
	if deleted.Load() == 0 {
		t.Fatalf("no pack was deleted: the race proves nothing")
	}
	v := reopen2(t, be, o)
	for range 2 {
		time.Sleep(raceGrace)
		mustCollect(t, v, vault.CollectOptions{Grace: raceGrace, SoftDeleteRetention: time.Nanosecond})
	}
	v = reopen2(t, be, o)
	mustCheckClean(t, v)
	for _, d := range reported {
		if forgotten[d.id] {
			continue
		}
		mustRestoreEqual(t, v, d.id, d.comp, d.want)
	}
}

// A collection of a local vault removes the unfinished pack a killed
// backup left (a temp file not written for vault.TempAge), which List, and
// so the collector's own accounting, never sees; the points still restore.
func TestCollectSweepsDeadWritersTempFiles(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "vault")
	be, err := local.Create(dir, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Init(ctx, be, testPass, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "app")
	randomTree(t, src, 9)
	p := mustBackup(t, v, src)
	dead := filepath.Join(dir, "data", "00", ".tmp-00112233445566778899aabbccddeeff")
	os.MkdirAll(filepath.Dir(dead), 0o700)
	if err := os.WriteFile(dead, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-vault.TempAge - time.Hour)
	os.Chtimes(dead, old, old)
	rep, err := v.Collect(ctx, vault.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.TempDeleted != 1 || rep.TempBytesFreed != 4096 {
		t.Errorf("collection removed %d temp files (%d bytes); want 1 (4096)", rep.TempDeleted, rep.TempBytesFreed)
	}
	if _, err := os.Stat(dead); err == nil {
		t.Error("the dead writer's temp file is still there")
	}
	dst, res := mustRestore(t, reopen(t, be), p.ID, "app")
	if len(res.Failed) > 0 {
		t.Fatalf("restore after the collection: %q", res.Failed)
	}
	compareTrees(t, snapshot(t, src), snapshot(t, dst))
}

// resealRace: the first Get of points/<id> (while armed) behaves as if a
// re-encryption resealed the manifest between the collector's listing and
// its read: the copy points/<id>.0000000N is written, the original deleted.
type resealRace struct {
	*memory.Backend
	target string
	ver    atomic.Int32
	armed  atomic.Bool
}

func (r *resealRace) Get(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	base := "points/" + r.target
	if r.armed.Load() && (name == base || strings.HasPrefix(name, base+".")) {
		r.armed.Store(false)
		b, err := storage.ReadAll(ctx, r.Backend, name)
		if err != nil {
			return nil, err
		}
		v := r.ver.Add(1) + 1
		if err := r.Backend.Put(ctx, base+"."+[]string{"", "", "00000002", "00000003", "00000004"}[v], b); err != nil {
			return nil, err
		}
		if err := r.Backend.Delete(ctx, name); err != nil {
			return nil, err
		}
	}
	return r.Backend.Get(ctx, name, off, n)
}

// A re-encryption replacing a manifest (copy written, original deleted)
// between a collection's listing and its read: the collection lists the
// point's copies again and keeps its packs. It took the point for purged,
// condemned every pack of it, and a later run deleted them.
func TestCollectSurvivesResealRace(t *testing.T) {
	_, mem, c, o := newClockVault(t)
	src := filepath.Join(t.TempDir(), "s")
	randomTree(t, src, 7)
	want := snapshot(t, src)
	be := &resealRace{Backend: mem}
	v := reopen2(t, be, o)
	p := mustBackup(t, v, src)
	be.target = p.ID
	c.Add(2 * time.Hour)

	// Run 1: the manifest is resealed mid-collection.
	be.armed.Store(true)
	rep := mustCollect(t, v, vault.CollectOptions{})
	if rep.PacksCondemned != 0 {
		t.Errorf("run 1 condemned %d packs of a live point: %v", rep.PacksCondemned, listNames(t, mem, "condemned/"))
	}
	c.Add(2 * time.Hour)
	// Run 2: no race.
	mustCollect(t, v, vault.CollectOptions{})
	c.Add(2 * time.Hour)
	// Run 3: resealed again (another re-encryption) mid-collection.
	be.armed.Store(true)
	if rep = mustCollect(t, v, vault.CollectOptions{}); rep.PacksDeleted != 0 {
		t.Errorf("run 3 deleted %d packs of a live point", rep.PacksDeleted)
	}
	mustRestoreEqual(t, reopen2(t, mem, o), p.ID, filepath.Base(src), want)
}

// holdRace runs onPurge once, just before a collection writes a purge
// tombstone: another process placing a hold on the point at that moment.
type holdRace struct {
	*memory.Backend
	onPurge func()
}

func (h *holdRace) Put(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, "purged/") && h.onPurge != nil {
		f := h.onPurge
		h.onPurge = nil
		f()
	}
	return h.Backend.Put(ctx, name, data)
}

// A hold placed while a collection purges the point: the collection reads
// the markers again after its purge tombstone and gives up. (The hold
// returned success, and the point was purged anyway.)
func TestHoldRacingPurgeWins(t *testing.T) {
	ctx := context.Background()
	_, mem, c, o := newClockVault(t)
	be := &holdRace{Backend: mem}
	v := reopen2(t, be, o)
	p := forgottenPoint(t, v)
	c.Add(15 * 24 * time.Hour)
	other := reopen2(t, mem, o) // the server placing a legal hold
	var holdErr error
	be.onPurge = func() { holdErr = other.Mark(ctx, p.ID, vault.MarkHold, "legal", "lawyer") }
	rep := mustCollect(t, v, vault.CollectOptions{})
	if holdErr != nil {
		t.Fatalf("hold: %v", holdErr)
	}
	if len(rep.PointsPurged) != 0 {
		t.Fatalf("the held point was purged: %v", rep.PointsPurged)
	}
	if _, err := other.LoadPoint(ctx, p.ID); err != nil {
		t.Fatalf("the held point: %v", err)
	}
	if names := listNames(t, mem, "purged/"); len(names) != 0 {
		t.Errorf("purge tombstone left after the purge was given up: %v", names)
	}
}

// An undelete from a writer whose clock is behind the one that deleted the
// point still comes after the delete. (It sorted first and lost: the point
// stayed deleted and was purged.)
func TestMarkerOrderIgnoresClocks(t *testing.T) {
	ctx := context.Background()
	v, be, c, o := newClockVault(t)
	src := filepath.Join(t.TempDir(), "s")
	writeFile(t, filepath.Join(src, "f"), []byte("x"), 0o644)
	p := mustBackup(t, v, src)
	c.Add(time.Hour)
	if err := v.Mark(ctx, p.ID, vault.MarkDelete, "prune", "server"); err != nil {
		t.Fatal(err)
	}
	behind := o
	behind.Now = func() time.Time { return c.Now().Add(-2 * time.Minute) }
	c.Add(time.Minute)
	if err := reopen2(t, be, behind).Mark(ctx, p.ID, vault.MarkUndelete, "oops", "admin"); err != nil {
		t.Fatal(err)
	}
	if st, err := v.PointState(ctx, p.ID); err != nil || st.Deleted {
		t.Fatalf("state after the undelete: %+v, %v; want not deleted", st, err)
	}
	c.Add(15 * 24 * time.Hour)
	if rep := mustCollect(t, v, vault.CollectOptions{}); len(rep.PointsPurged) != 0 {
		t.Errorf("the undeleted point was purged: %v", rep.PointsPurged)
	}
}

// stallReader gives first, then runs mid once, then gives rest: a backup
// paused in the middle (a slow remote host, a large first backup).
type stallReader struct {
	first, rest []byte
	mid         func()
	done        bool
}

func (s *stallReader) Read(p []byte) (int, error) {
	if len(s.first) > 0 {
		n := copy(p[:min(len(p), 64<<10)], s.first)
		s.first = s.first[n:]
		return n, nil
	}
	if !s.done {
		s.done = true
		time.Sleep(300 * time.Millisecond) // let the uploader store the full packs
		s.mid()
	}
	if len(s.rest) > 0 {
		n := copy(p, s.rest)
		s.rest = s.rest[n:]
		return n, nil
	}
	return 0, io.EOF
}

func (s *stallReader) Close() error { return nil }

// A backup running longer than the grace period while collections run
// finishes: its write session keeps a collection off its packs. (They were
// condemned after an hour, and the backup failed at commit, again on every
// retry.) A session whose writer died is let go.
func TestLongBackupSurvivesCollection(t *testing.T) {
	ctx := context.Background()
	v, be, c, o := newClockVault(t)
	defer vault.SetSessionBeat(20 * time.Millisecond)()
	gcv := reopen2(t, be, o)
	a := make([]byte, 24<<20)
	b := make([]byte, 64<<10)
	rand.NewChaCha8([32]byte{1}).Read(a)
	rand.NewChaCha8([32]byte{2}).Read(b)
	var rep *vault.CollectReport
	mid := func() {
		for range 9 { // 90 minutes, with the writer's heartbeats in between
			c.Add(10 * time.Minute)
			time.Sleep(60 * time.Millisecond)
		}
		var err error
		if rep, err = gcv.Collect(ctx, vault.CollectOptions{}); err != nil {
			t.Errorf("collect: %v", err)
		}
	}
	src := vault.Source{Name: "db", Streams: []vault.Stream{{Name: "dump", Open: func(context.Context) (io.ReadCloser, error) {
		return &stallReader{first: a, rest: b, mid: mid}, nil
	}}}}
	p, err := v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{src}, Host: "h"})
	if err != nil {
		t.Fatalf("a backup of 90 minutes with a collection in between: %v", err)
	}
	if rep == nil || rep.PacksCondemned != 0 || rep.PacksRecent == 0 {
		t.Fatalf("the collection condemned the live backup's packs, or did not count them as recent: %+v", rep)
	}
	if names := listNames(t, be, "locks/session-"); len(names) != 0 {
		t.Errorf("session objects left after the backup: %v", names)
	}
	if _, err := reopen2(t, be, o).LoadPoint(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
}

// A purge tombstone another collection wrote (it is purging the point) is
// left to it: this collection neither purges the point nor, giving up,
// removes that tombstone (which let the other purge a point just held). A
// tombstone a day old is an abandoned purge and taken over, not sooner,
// whatever the grace period.
func TestPurgeLeftToTheCollectionPurging(t *testing.T) {
	ctx := context.Background()
	v, be, c, _ := newClockVault(t)
	p := forgottenPoint(t, v)
	c.Add(15 * 24 * time.Hour)
	if err := be.Put(ctx, "purged/"+p.ID, nil); err != nil { // the other collection's
		t.Fatal(err)
	}
	if rep := mustCollect(t, v, vault.CollectOptions{}); len(rep.PointsPurged) != 0 {
		t.Fatalf("purged a point another collection is purging: %v", rep.PointsPurged)
	}
	if !listNames(t, be, "purged/")["purged/"+p.ID] {
		t.Fatal("the other collection's tombstone was removed")
	}
	c.Add(2 * time.Hour)
	if rep := mustCollect(t, v, vault.CollectOptions{Grace: time.Nanosecond}); len(rep.PointsPurged) != 0 {
		t.Fatalf("a purge two hours old was taken over (grace 0): %v", rep.PointsPurged)
	}
	c.Add(23 * time.Hour)
	if rep := mustCollect(t, v, vault.CollectOptions{}); len(rep.PointsPurged) != 1 {
		t.Fatalf("an abandoned purge was not taken over: %v", rep.PointsPurged)
	}
}

// storageHooks calls onStat, onDelete, onPut and onGet before the
// backend's Stat, Delete, Put and Get.
type storageHooks struct {
	*memory.Backend
	onStat, onDelete func(name string)
	onPut, onGet     func(name string) error // an error fails the call
}

func (h *storageHooks) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if h.onGet != nil {
		if err := h.onGet(name); err != nil {
			return nil, err
		}
	}
	return h.Backend.Get(ctx, name, offset, length)
}

func (h *storageHooks) Put(ctx context.Context, name string, data []byte) error {
	if h.onPut != nil {
		if err := h.onPut(name); err != nil {
			return err
		}
	}
	return h.Backend.Put(ctx, name, data)
}

func (h *storageHooks) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if h.onStat != nil {
		h.onStat(name)
	}
	return h.Backend.Stat(ctx, name)
}

func (h *storageHooks) Delete(ctx context.Context, name string) error {
	if h.onDelete != nil {
		h.onDelete(name)
	}
	return h.Backend.Delete(ctx, name)
}

// C1 has just written its purge tombstone; C2, run with no grace period a
// second later, must not take that purge over: a hold written while C2
// deletes, which C1 then sees and gives up for (deleting its tombstone),
// would find no tombstone and report success while C2 purged the point.
func TestNoTakeoverOfPurgeInProgress(t *testing.T) {
	ctx := context.Background()
	f := newExpiredPoint(t, false)
	tomb := "purged/" + f.p.ID
	if err := f.be.Put(ctx, tomb, nil); err != nil { // C1's, just written
		t.Fatal(err)
	}
	f.c.Add(time.Second)
	var once sync.Once
	marker := &storageHooks{Backend: f.be}
	marker.onStat = func(name string) {
		if name == tomb {
			once.Do(func() { f.be.Delete(ctx, tomb) }) // C1 saw the hold and gave up
		}
	}
	holder := reopen2(t, marker, f.o)
	var holdErr error
	var held sync.Once
	c2 := &storageHooks{Backend: f.be, onDelete: func(name string) {
		if name == manifest.ObjectName(f.p.ID) {
			held.Do(func() { holdErr = holder.Mark(ctx, f.p.ID, vault.MarkHold, "legal", "carol") })
		}
	}}
	rep, err := reopen2(t, c2, f.o).Collect(ctx, vault.CollectOptions{Grace: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	_, lerr := f.v.LoadPoint(ctx, f.p.ID)
	if holdErr == nil && lerr != nil {
		t.Fatalf("the hold reported success, but the point was purged (C2 purged %v)", rep.PointsPurged)
	}
	if len(rep.PointsPurged) != 0 {
		t.Errorf("C2 took over a purge a second old: %v", rep.PointsPurged)
	}
}

// A damaged marker does not stop a hold from being written.
func TestHoldDespiteDamagedMarker(t *testing.T) {
	ctx := context.Background()
	v, be, _, _ := newClockVault(t)
	p := forgottenPoint(t, v)
	for n := range listNames(t, be, "markers/") {
		be.Mutate(n, func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
	}
	if err := v.Mark(ctx, p.ID, vault.MarkHold, "legal", "lawyer"); err != nil {
		t.Fatalf("hold with a damaged marker beside it: %v", err)
	}
}

// forgottenPoint backs up a one-file tree and soft-deletes the point.
func forgottenPoint(t *testing.T, v *vault.Vault) *manifest.Point {
	t.Helper()
	src := filepath.Join(t.TempDir(), "s")
	writeFile(t, filepath.Join(src, "f"), []byte("x"), 0o644)
	p := mustBackup(t, v, src)
	if err := v.Mark(context.Background(), p.ID, vault.MarkDelete, "old", "t"); err != nil {
		t.Fatal(err)
	}
	return p
}

// A collection stopped between its purge tombstone and its give-up, then an
// undelete that saved the point (and reported a failure): a later
// collection, once the tombstone and the markers are a day old, removes the
// tombstone. (It stayed for good: every hold or undelete of the point
// failed, and re-encryption withdrew its manifest copy.) A tombstoned point
// with its original manifest and no markers is left alone: a purge deletes
// the original first, so it was put back (TestPurgedPointStaysPurged...
// has the leftover of a finished purge).
func TestCollectSettlesAbandonedPurges(t *testing.T) {
	ctx := context.Background()
	v, be, c, _ := newClockVault(t)
	src := filepath.Join(t.TempDir(), "s")
	writeFile(t, filepath.Join(src, "f"), []byte("kept"), 0o644)
	p := mustBackup(t, v, src)
	writeFile(t, filepath.Join(src, "g"), []byte("other"), 0o644)
	q := mustBackup(t, v, src)
	writeFile(t, filepath.Join(src, "h"), []byte("third"), 0o644)
	r := mustBackup(t, v, src)
	for _, m := range []struct {
		id   string
		kind vault.MarkKind
	}{{p.ID, vault.MarkDelete}, {r.ID, vault.MarkDelete}, {r.ID, vault.MarkUndelete}} {
		if err := v.Mark(ctx, m.id, m.kind, "", "server"); err != nil {
			t.Fatal(err)
		}
	}
	c.Add(15 * 24 * time.Hour)
	tomb := "purged/" + p.ID
	if err := be.Put(ctx, tomb, nil); err != nil { // the stopped collection's
		t.Fatal(err)
	}
	c.Add(25 * time.Hour)
	if err := v.Mark(ctx, p.ID, vault.MarkUndelete, "oops", "admin"); lifeboat.ErrorCode(err) != lifeboat.EUnavailable {
		t.Fatalf("undelete racing the purge: %v, want EUnavailable", err)
	}
	// The undelete's marker is younger than a day: kept, with the default
	// grace period or none (a collection run with --grace 0 must not take a
	// purge in progress for abandoned).
	c.Add(2 * time.Hour)
	for _, o := range []vault.CollectOptions{{Grace: time.Nanosecond}, {}} {
		if rep := mustCollect(t, v, o); rep.AbandonedPurges != 0 || !listNames(t, be, "purged/")[tomb] {
			t.Fatalf("tombstone removed while the marker that saved the point is new: %+v", rep)
		}
	}
	// A fresh tombstone stays, on a saved point (a collection about to give
	// up by itself) and on one without markers.
	c.Add(23 * time.Hour)
	for _, id := range []string{q.ID, r.ID} {
		if err := be.Put(ctx, "purged/"+id, nil); err != nil {
			t.Fatal(err)
		}
	}
	rep := mustCollect(t, v, vault.CollectOptions{})
	names := listNames(t, be, "purged/")
	if rep.AbandonedPurges != 1 || names[tomb] || !names["purged/"+q.ID] || !names["purged/"+r.ID] || len(rep.PointsPurged) != 0 {
		t.Fatalf("collection: %+v, tombstones %v; want only %s removed", rep, names, tomb)
	}
	if err := v.Mark(ctx, p.ID, vault.MarkHold, "legal", "carol"); err != nil {
		t.Fatalf("hold after the cleanup: %v", err)
	}
	// A day later: r's tombstone goes; q, with its original manifest and
	// no markers, is left as it is.
	c.Add(25 * time.Hour)
	rep = mustCollect(t, v, vault.CollectOptions{})
	names = listNames(t, be, "purged/")
	if rep.AbandonedPurges != 1 || names["purged/"+r.ID] || !names["purged/"+q.ID] || len(rep.PointsPurged) != 0 {
		t.Fatalf("collection: %+v, tombstones %v; want %s's removed, nothing purged", rep, names, r.ID)
	}
	for _, id := range []string{p.ID, q.ID, r.ID} {
		if _, err := v.LoadPoint(ctx, id); err != nil {
			t.Errorf("saved point %s: %v", id[:8], err)
		}
	}
	dst, _ := mustRestore(t, v, p.ID, "s")
	if b, err := os.ReadFile(filepath.Join(dst, "f")); err != nil || string(b) != "kept" {
		t.Fatalf("restore of the saved point: %q %v", b, err)
	}
}

// listHook runs hook once, when prefix is first listed: before the listing,
// or after it (before the lister reads what it listed) with after.
type listHook struct {
	*memory.Backend
	prefix string
	after  bool
	once   sync.Once
	hook   func()
}

func (h *listHook) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if prefix == h.prefix && !h.after {
		h.once.Do(h.hook)
	}
	err := h.Backend.List(ctx, prefix, fn)
	if prefix == h.prefix && h.after {
		h.once.Do(h.hook)
	}
	return err
}

// A collection that has read an expired point's state and is about to
// delete its manifest while a hold is written: the hold fails and keeps
// failing, whatever another collection does meanwhile (one with no grace
// period, or one a day later), unless the purge gives up. Never both: a
// hold that succeeds keeps the point.
func TestHoldNeverLosesToPurgeInFlight(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pause time.Duration
		other vault.CollectOptions
	}{{"grace 0", time.Second, vault.CollectOptions{Grace: time.Nanosecond}}, {"stalled a day", 25 * time.Hour, vault.CollectOptions{}}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := newExpiredPoint(t, false)
			v, be, c, o, p := f.v, f.be, f.c, f.o, f.p
			var holdErr error
			h := &listHook{Backend: be, prefix: manifest.ObjectName(p.ID), hook: func() {
				if err := v.Mark(ctx, p.ID, vault.MarkHold, "legal", "carol"); lifeboat.ErrorCode(err) != lifeboat.EUnavailable {
					t.Errorf("hold during the purge: %v, want EUnavailable", err)
				}
				c.Add(tc.pause)
				mustCollect(t, v, tc.other)
				holdErr = v.Mark(ctx, p.ID, vault.MarkHold, "legal", "carol")
			}}
			if _, err := reopen2(t, h, o).Collect(ctx, vault.CollectOptions{}); err != nil {
				t.Fatal(err)
			}
			_, lerr := v.LoadPoint(ctx, p.ID)
			t.Logf("hold retried: %v; point: %v", holdErr, lerr)
			if holdErr == nil && lerr != nil {
				t.Fatal("the hold reported success, but the point was purged")
			}
		})
	}
}

// A point a hold or an undelete saved from an abandoned purge, whose
// markers a re-encryption replaces with copies between a collection's
// listing of them and its reads: the collection still sees them, and
// neither takes the point for a finished purge's leftover nor purges it.
// (Markers gone since the listing were dropped: a held point was purged.)
func TestMarkersReplacedMidCollection(t *testing.T) {
	for _, saver := range []vault.MarkKind{vault.MarkUndelete, vault.MarkHold} {
		t.Run(string(saver), func(t *testing.T) {
			ctx := context.Background()
			f := newExpiredPoint(t, false)
			if err := f.be.Put(ctx, "purged/"+f.p.ID, nil); err != nil { // a stopped collection's
				t.Fatal(err)
			}
			if err := f.v.Mark(ctx, f.p.ID, saver, "saved", "admin"); lifeboat.ErrorCode(err) != lifeboat.EUnavailable {
				t.Fatalf("%s during the purge: %v", saver, err)
			}
			f.c.Add(25 * time.Hour)
			if _, err := f.v.RotateDataKey(ctx); err != nil {
				t.Fatal(err)
			}
			h := &listHook{Backend: f.be, prefix: "markers/" + f.p.ID + "/", after: true, hook: func() {
				if res, err := f.v.Reencrypt(ctx, vault.ReencryptOptions{}); err != nil || res.Markers == 0 {
					t.Errorf("re-encryption during the collection: %+v %v", res, err)
				}
			}}
			rep, err := reopen2(t, h, f.o).Collect(ctx, vault.CollectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.v.LoadPoint(ctx, f.p.ID); err != nil || len(rep.PointsPurged) != 0 {
				t.Fatalf("the saved point was purged (%v): %v", rep.PointsPurged, err)
			}
			st, err := f.v.PointState(ctx, f.p.ID)
			if err != nil || (saver == vault.MarkUndelete && st.Deleted) || (saver == vault.MarkHold && !st.Held) {
				t.Errorf("state after: %+v %v", st, err)
			}
		})
	}
}

// A purged point's manifest put back from an old copy of the vault (rsync
// without --delete) is not purged again: a purge deletes the original
// first, so an original is no leftover.
func TestPutBackManifestNotPurgedAgain(t *testing.T) {
	ctx := context.Background()
	f := newExpiredPoint(t, false)
	name := manifest.ObjectName(f.p.ID)
	saved, err := storage.ReadAll(ctx, f.be, name)
	if err != nil {
		t.Fatal(err)
	}
	if rep := mustCollect(t, f.v, vault.CollectOptions{}); len(rep.PointsPurged) != 1 {
		t.Fatalf("purge: %+v", rep)
	}
	f.c.Add(25 * time.Hour)
	if err := f.be.Put(ctx, name, saved); err != nil {
		t.Fatal(err)
	}
	if rep := mustCollect(t, f.v, vault.CollectOptions{}); len(rep.PointsPurged) != 0 {
		t.Fatalf("the manifest put back was purged again: %v", rep.PointsPurged)
	}
}

// A marker replaced by its re-encrypted copy between the listing and the
// read is read from the copy, not dropped: a hold being re-encrypted stays
// a hold to a collection reading states then.
func TestMarkerReadFromCopyWhenReplaced(t *testing.T) {
	ctx := context.Background()
	f := newMarkedPoint(t, vault.MarkHold, true)
	v, be, o, p := f.v, f.be, f.o, f.p
	h := &listHook{Backend: be, prefix: "markers/" + p.ID + "/", after: true, hook: func() {
		if res, err := v.Reencrypt(ctx, vault.ReencryptOptions{}); err != nil || res.Markers != 1 {
			t.Errorf("re-encryption between the listing and the read: %+v %v", res, err)
		}
	}}
	st, err := reopen2(t, h, o).PointState(ctx, p.ID)
	if err != nil || !st.Held {
		t.Fatalf("state read while its hold was re-encrypted: %+v %v; want held", st, err)
	}
}
