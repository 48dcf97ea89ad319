package vault_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
)

var otherPass = []byte("an operator's exported slot")

func openWith(t *testing.T, be storage.Backend, pass []byte, o vault.Options) *vault.Vault {
	t.Helper()
	v, err := vault.Open(context.Background(), be, pass, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return v
}

// pointVersion is the data key version a point's manifest is sealed under.
func pointVersion(t *testing.T, be storage.Backend, id string) uint32 {
	t.Helper()
	var vers []uint32
	for n := range listNames(t, be, manifest.ObjectName(id)) {
		b, err := storage.ReadAll(context.Background(), be, n)
		if err != nil {
			t.Fatal(err)
		}
		ver, _ := crypto.KeyVersion(b)
		vers = append(vers, ver)
	}
	if len(vers) != 1 {
		t.Fatalf("point %s has %d manifest objects", id, len(vers))
	}
	return vers[0]
}

// oldObjects scans the storage and names every live sealed object (pack
// trailer or blob, index, manifest, marker, audit segment) whose header
// names a data key version below min.
func oldObjects(t *testing.T, v *vault.Vault, be storage.Backend, min uint32) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for n := range listNames(t, be, "data/") {
		vers, err := vault.PackKeyVersions(ctx, v, n)
		if err != nil {
			t.Fatalf("read %s: %v", n, err)
		}
		if slices.Min(vers) < min {
			out = append(out, fmt.Sprintf("%s (versions %v)", n, vers))
		}
	}
	for _, prefix := range []string{"index/", "points/", "markers/", "audit/"} {
		for n := range listNames(t, be, prefix) {
			b, err := storage.ReadAll(ctx, be, n)
			if err != nil {
				t.Fatal(err)
			}
			ver, ok := crypto.KeyVersion(b)
			if !ok || ver < min {
				out = append(out, fmt.Sprintf("%s (version %d)", n, ver))
			}
		}
	}
	sort.Strings(out)
	return out
}

// TestRotateDataKey: points taken before and after a rotation restore
// exactly through the new key's slot, through a slot written before the
// rotation (it reaches the new key through datakeys/), and through a value
// opened before the rotation (it loads the new key when it meets it).
func TestRotateDataKey(t *testing.T) {
	ctx := context.Background()
	v, be, _, o := newClockVault(t)
	if _, err := v.AddKeySlot(ctx, otherPass); err != nil {
		t.Fatal(err)
	}
	stale := openWith(t, be, otherPass, o) // opened before the rotation
	src := filepath.Join(t.TempDir(), "s")
	randomTree(t, src, 11)
	want1 := snapshot(t, src)
	p1 := mustBackup(t, v, src)

	ver, err := v.RotateDataKey(ctx)
	if err != nil || ver != 2 {
		t.Fatalf("rotate: %d %v", ver, err)
	}
	if got := v.DataKeys(); len(got) != 2 || got[0].Current || !got[1].Current || got[1].Version != 2 || got[1].Created.IsZero() || got[0].Created.IsZero() {
		t.Fatalf("data keys: %+v", got)
	}
	if !listNames(t, be, "datakeys/")["datakeys/00000002"] {
		t.Fatal("no data key object")
	}
	randomTree(t, filepath.Join(src, "more"), 12)
	writeFile(t, filepath.Join(src, "new-file"), []byte("written after the rotation"), 0o644)
	want2 := snapshot(t, src)
	p2 := mustBackup(t, v, src)
	if pointVersion(t, be, p1.ID) != 1 || pointVersion(t, be, p2.ID) != 2 {
		t.Fatalf("manifest versions %d, %d; want 1, 2", pointVersion(t, be, p1.ID), pointVersion(t, be, p2.ID))
	}

	for name, pass := range map[string][]byte{"first slot": testPass, "slot older than the rotation": otherPass} {
		w := openWith(t, be, pass, o)
		if w.CurrentDataKey() != 2 {
			t.Errorf("%s: current data key %d, want 2", name, w.CurrentDataKey())
		}
		mustRestoreEqual(t, w, p1.ID, "s", want1)
		mustRestoreEqual(t, w, p2.ID, "s", want2)
		mustCheckClean(t, w)
	}
	// The value opened before the rotation reads the new data (loading the
	// key when it meets it), and its next backup seals with the new key.
	if got, err := stale.LoadPoint(ctx, p2.ID); err != nil || got.Root != p2.Root {
		t.Fatalf("a value opened before the rotation reads a new manifest: %v", err)
	}
	p3 := mustBackup(t, stale, src)
	if pointVersion(t, be, p3.ID) != 2 {
		t.Errorf("a backup by a value opened before the rotation sealed under version %d", pointVersion(t, be, p3.ID))
	}
	// A second rotation; the collector leaves data keys alone.
	if ver, err := v.RotateDataKey(ctx); err != nil || ver != 3 {
		t.Fatalf("second rotation: %d %v", ver, err)
	}
	mustCollect(t, v, vault.CollectOptions{Grace: time.Nanosecond, SoftDeleteRetention: time.Nanosecond})
	if n := len(listNames(t, be, "datakeys/")); n != 2 {
		t.Errorf("%d data key objects after a collection, want 2", n)
	}
	mustCheckClean(t, reopen2(t, be, o))
}

// TestRotateKeySlot: the old passphrase stops working, the new one works,
// the KDF is never lowered, and the vault's only slot cannot be retired.
func TestRotateKeySlot(t *testing.T) {
	ctx := context.Background()
	v, be, _, o := newClockVault(t)
	first := v.OpenedSlot()
	if slots, err := v.KeySlots(ctx); err != nil || len(slots) != 1 || slots[0].ID != first || slots[0].KDF.Salt != nil || slots[0].KDF.Time != fastKDF.Time {
		t.Fatalf("slots: %+v %v", slots, err)
	}
	if _, err := v.RotateKeySlot(ctx, nil, first); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Fatalf("retiring the only slot: %v", err)
	}
	if _, err := v.RotateKeySlot(ctx, []byte("x"), strings.Repeat("0", 32)); lifeboat.ErrorCode(err) != lifeboat.ENotFound {
		t.Fatalf("retiring a slot that does not exist: %v", err)
	}
	if _, err := v.RotateKeySlot(ctx, nil, ""); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Fatalf("nothing to do: %v", err)
	}
	names := listNames(t, be, "keys/")
	maps.DeleteFunc(names, func(name string, _ bool) bool { return vault.IsFeatureObject(name) })
	if n := len(names); n != 1 {
		t.Fatalf("refusals left %d slots", n)
	}
	// A rotated data key survives the KEK rotation.
	src := filepath.Join(t.TempDir(), "s")
	randomTree(t, src, 3)
	if _, err := v.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, src)
	p := mustBackup(t, v, src)

	newPass := []byte("the new passphrase")
	id, err := v.RotateKeySlot(ctx, newPass, first)
	if err != nil {
		t.Fatal(err)
	}
	if id == first || v.OpenedSlot() != id {
		t.Errorf("new slot %s, opened slot %s", id, v.OpenedSlot())
	}
	if _, err := vault.Open(ctx, be, testPass, o); lifeboat.ErrorCode(err) != lifeboat.EAuth {
		t.Fatalf("the retired passphrase: %v", err)
	}
	w := openWith(t, be, newPass, o)
	if w.OpenedSlot() != id || w.CurrentDataKey() != 2 {
		t.Errorf("opened slot %s current %d", w.OpenedSlot(), w.CurrentDataKey())
	}
	mustRestoreEqual(t, w, p.ID, "s", want)

	// Stronger KDF parameters of a retired slot are kept.
	strong := fastKDF
	strong.Time, strong.MemoryKiB = 2, 2048
	so := o
	so.KDF = &strong
	sv := openWith(t, be, newPass, so)
	strongID, err := sv.AddKeySlot(ctx, otherPass)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := w.RotateKeySlot(ctx, []byte("third"), strongID)
	if err != nil {
		t.Fatal(err)
	}
	slots, err := w.KeySlots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if s.ID == strongID {
			t.Error("retired slot still listed")
		}
		if s.ID == rotated && (s.KDF.Time < 2 || s.KDF.MemoryKiB < 2048) {
			t.Errorf("KDF lowered: %+v", s.KDF)
		}
	}
	// A retired slot with more memory but cheaper guesses than the default
	// gets the default, not its memory raised.
	wide, deep := fastKDF, fastKDF
	wide.Time, wide.MemoryKiB = 1, 2048
	deep.Time, deep.MemoryKiB = 4, 1536
	wo, do := o, o
	wo.KDF, do.KDF = &wide, &deep
	wideID, err := openWith(t, be, newPass, wo).AddKeySlot(ctx, otherPass)
	if err != nil {
		t.Fatal(err)
	}
	deepID, err := openWith(t, be, newPass, do).RotateKeySlot(ctx, []byte("fourth"), wideID)
	if err != nil {
		t.Fatal(err)
	}
	if slots, err = w.KeySlots(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if s.ID == deepID && (s.KDF.Time != 4 || s.KDF.MemoryKiB != 1536) {
			t.Errorf("rotated from %+v with default %+v: got %+v", wide, deep, s.KDF)
		}
	}
	if _, err := w.RotateKeySlot(ctx, nil, deepID); err != nil {
		t.Fatal(err)
	}
	// Revoking (no new passphrase) works while another slot remains.
	if _, err := w.RotateKeySlot(ctx, nil, rotated); err != nil {
		t.Fatal(err)
	}
	if _, err := w.RotateKeySlot(ctx, nil, id); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Fatalf("revoking the last slot: %v", err)
	}
	mustRestoreEqual(t, openWith(t, be, newPass, o), p.ID, "s", want)
}

// TestDataKeyObjectDamage: a corrupt or missing data key object does not
// stop the vault from opening; check names it, and reading what it sealed
// fails naming the version.
func TestDataKeyObjectDamage(t *testing.T) {
	ctx := context.Background()
	for _, damage := range []string{"corrupt", "missing"} {
		t.Run(damage, func(t *testing.T) {
			v, be, _, o := newClockVault(t)
			src := filepath.Join(t.TempDir(), "s")
			writeFile(t, filepath.Join(src, "f"), []byte("before the rotation"), 0o644)
			want1 := snapshot(t, src)
			p1 := mustBackup(t, v, src)
			if _, err := v.RotateDataKey(ctx); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(src, "g"), []byte("after the rotation"), 0o644)
			p2 := mustBackup(t, v, src)
			const obj = "datakeys/00000002"
			b, _ := storage.ReadAll(ctx, be, obj)
			be.Delete(ctx, obj)
			if damage == "corrupt" {
				b[len(b)-1] ^= 1
				be.Put(ctx, obj, b)
			}
			w, err := vault.Open(ctx, be, testPass, o)
			if err != nil {
				t.Fatalf("open with a %s data key object: %v", damage, err)
			}
			if w.CurrentDataKey() != 1 {
				t.Errorf("current version %d, want the highest readable, 1", w.CurrentDataKey())
			}
			mustRestoreEqual(t, w, p1.ID, "s", want1)
			_, err = w.LoadPoint(ctx, p2.ID)
			if err == nil || !strings.Contains(err.Error(), "data key version 2") || !strings.Contains(err.Error(), obj) {
				t.Fatalf("loading a point sealed under the lost key: %v", err)
			}
			rep, err := w.Check(ctx, vault.CheckOptions{ReadData: true})
			if err != nil {
				t.Fatal(err)
			}
			named := false
			for _, pr := range rep.Problems {
				named = named || pr.Object == obj
			}
			if !named || rep.OK() {
				t.Fatalf("check does not name %s: %+v", obj, rep.Problems)
			}
			// A new rotation never reuses the lost version's number.
			if ver, err := w.RotateDataKey(ctx); err != nil || ver != 3 {
				t.Fatalf("rotation after the loss: %d %v", ver, err)
			}
		})
	}
}

// TestConcurrentRotateDataKey: values on one storage rotating at once get
// distinct versions, and data sealed under each restores.
func TestConcurrentRotateDataKey(t *testing.T) {
	ctx := context.Background()
	_, be, _, o := newClockVault(t)
	const n = 4
	vs := make([]*vault.Vault, n)
	for i := range vs {
		vs[i] = reopen2(t, be, o)
	}
	vers := make([]uint32, n)
	var wg sync.WaitGroup
	for i := range vs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if vers[i], err = vs[i].RotateDataKey(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got := slices.Sorted(slices.Values(vers))
	if !slices.Equal(got, []uint32{2, 3, 4, 5}) {
		t.Fatalf("versions %v, want 2..5 once each", vers)
	}
	// Each value seals under its own new version until it refreshes (a
	// backup does): an audit segment from each.
	for i, v := range vs {
		if err := v.PutAuditSegment(ctx, int64(i+1), int64(i+1), []byte(fmt.Sprint(vers[i]))); err != nil {
			t.Fatal(err)
		}
	}
	w := reopen2(t, be, o)
	if w.CurrentDataKey() != 5 {
		t.Errorf("current %d after reopening", w.CurrentDataKey())
	}
	segs, err := w.AuditSegments(ctx)
	if err != nil || len(segs) != n {
		t.Fatalf("segments %v %v", segs, err)
	}
	for i, sg := range segs {
		raw, _ := storage.ReadAll(ctx, be, sg.Name)
		got, err := w.AuditSegment(ctx, sg)
		if ver, _ := crypto.KeyVersion(raw); err != nil || string(got) != fmt.Sprint(vers[i]) || fmt.Sprint(ver) != string(got) {
			t.Errorf("segment %d: %q sealed under %d (%v)", i, got, ver, err)
		}
	}
	// Every value now backs up under the newest key, and all of it restores.
	src := filepath.Join(t.TempDir(), "s")
	wants := map[string]map[string]entry{}
	for i, v := range vs {
		writeFile(t, filepath.Join(src, fmt.Sprint(i)), []byte(fmt.Sprintf("value %d", i)), 0o644)
		p := mustBackup(t, v, src)
		if pv := pointVersion(t, be, p.ID); pv != 5 {
			t.Errorf("value %d sealed its backup under %d, want the newest, 5", i, pv)
		}
		wants[p.ID] = snapshot(t, src)
	}
	w = reopen2(t, be, o)
	for id, want := range wants {
		mustRestoreEqual(t, w, id, "s", want)
	}
	mustCheckClean(t, w)
}

// rotFixture is a vault with points before and after a rotation, a
// soft-deleted point, a held one, and audit segments.
type rotFixture struct {
	v     *vault.Vault
	be    *memory.Backend
	c     *clock
	o     vault.Options
	src   string
	wants map[string]map[string]entry // point id → its "s" component
}

func newRotFixture(t *testing.T) *rotFixture {
	t.Helper()
	ctx := context.Background()
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	be := memory.New()
	be.Now = c.Now
	o := testOpts()
	o.Now = c.Now
	o.PackSize = 64 << 10 // many packs from little data: several batches
	v, err := vault.Init(ctx, be, testPass, o)
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "s")
	f := &rotFixture{v: v, be: be, c: c, o: o, src: src, wants: map[string]map[string]entry{}}
	backup := func(seed uint64) *manifest.Point {
		r := rand.New(rand.NewPCG(seed, 1))
		for i := range 14 {
			writeFile(t, filepath.Join(src, fmt.Sprint(seed), fmt.Sprintf("d%d", i%3), fmt.Sprint(i)), randBytes(r, 1+r.IntN(100<<10)), 0o644)
		}
		writeFile(t, filepath.Join(src, fmt.Sprint(seed), "text"), textBytes(r, 300<<10), 0o644)
		want := snapshot(t, src)
		c.Add(time.Minute)
		p := mustBackup(t, v, src)
		f.wants[p.ID] = want
		return p
	}
	p1 := backup(21)
	p2 := backup(22)
	if err := v.Mark(ctx, p1.ID, vault.MarkHold, "legal", "carol"); err != nil {
		t.Fatal(err)
	}
	if err := v.Mark(ctx, p2.ID, vault.MarkDelete, "oops", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := v.PutAuditSegment(ctx, 1, 10, []byte("ten events")); err != nil {
		t.Fatal(err)
	}
	if err := v.RecordLock(ctx, vault.LockRecord{Mode: "governance", MinRetention: 48 * time.Hour, By: "carol"}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	backup(23)
	if err := v.PutAuditSegment(ctx, 11, 12, []byte("two events")); err != nil {
		t.Fatal(err)
	}
	return f
}

// verify: every point restores, states and audit segments are as written,
// check (reading all data) passes.
func (f *rotFixture) verify(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	v := reopen2(t, f.be, f.o)
	for id, want := range f.wants {
		mustRestoreEqual(t, v, id, "s", want)
	}
	mustCheckClean(t, v)
	st, err := v.PointStates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var held, deleted int
	for _, s := range st {
		if s.Held {
			held++
		}
		if s.Deleted && s.Reason == "oops" && s.By == "bob" {
			deleted++
		}
	}
	if held != 1 || deleted != 1 {
		t.Errorf("point states changed: %+v", st)
	}
	segs, err := v.AuditSegments(ctx)
	if err != nil || len(segs) != 2 {
		t.Fatalf("audit segments: %+v %v", segs, err)
	}
	for i, want := range []string{"ten events", "two events"} {
		if b, err := v.AuditSegment(ctx, segs[i]); err != nil || string(b) != want {
			t.Errorf("audit segment %d: %q %v", i, b, err)
		}
	}
}

// TestReencrypt: after a rotation and a re-encryption, and a collection
// past the grace period, no live object is sealed under the old key, and
// everything restores.
func TestReencrypt(t *testing.T) {
	ctx := context.Background()
	f := newRotFixture(t)
	if old := oldObjects(t, f.v, f.be, 2); len(old) == 0 {
		t.Fatal("setup: nothing under the old key")
	}
	var calls int
	var last, total int64
	res, err := f.v.Reencrypt(ctx, vault.ReencryptOptions{Progress: func(d, tt int64) { calls++; last, total = d, tt }})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Version != 2 || res.PacksCondemned == 0 || res.BlobsRewritten == 0 || res.Manifests != 2 || res.Markers != 2 || res.AuditSegments != 1 || res.LockRecords != 1 || len(res.Problems) != 0 {
		t.Fatalf("result: %+v", res)
	}
	if calls < 2 || last != total || total != res.BytesRead {
		t.Errorf("progress: %d calls, last %d of %d; read %d", calls, last, total, res.BytesRead)
	}
	f.verify(t) // before the collection: old packs condemned, still there
	// Within the grace period nothing goes; past it, the old packs and the
	// index objects that named them.
	f.c.Add(30 * time.Minute)
	mustCollect(t, f.v, vault.CollectOptions{})
	if old := oldObjects(t, f.v, f.be, 2); len(old) == 0 {
		t.Fatal("old packs deleted within the grace period")
	}
	f.c.Add(time.Hour)
	rep := mustCollect(t, f.v, vault.CollectOptions{})
	if rep.PacksDeleted != res.PacksCondemned || rep.IndexesDeleted == 0 {
		t.Errorf("collection: %+v", rep)
	}
	if old := oldObjects(t, f.v, f.be, 2); len(old) != 0 {
		t.Fatalf("still under the old key: %v", old)
	}
	f.verify(t)
	// Running it again finds nothing to do.
	res, err = reopen2(t, f.be, f.o).Reencrypt(ctx, vault.ReencryptOptions{})
	if err != nil || res.PacksRead+res.Manifests+res.Markers+res.AuditSegments+res.PacksCondemned != 0 {
		t.Fatalf("second run: %+v %v", res, err)
	}
	// Backups still dedup against the rewritten data.
	v := reopen2(t, f.be, f.o)
	p, err := v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: f.src}}, Host: "testhost", NoParent: true})
	if err != nil || p.Stats.BlobsNew > 1 {
		t.Errorf("backup after re-encryption stored %d new blobs (%v)", p.Stats.BlobsNew, err)
	}
	// Purging the soft-deleted point removes its resealed manifest and
	// markers, and leaves its purge tombstone.
	st, _ := v.PointStates(ctx)
	var doomed string
	for id, s := range st {
		if s.Deleted {
			doomed = id
		}
	}
	f.c.Add(15 * 24 * time.Hour)
	if rep := mustCollect(t, v, vault.CollectOptions{}); len(rep.PointsPurged) != 1 || rep.PointsPurged[0] != doomed {
		t.Fatalf("purge: %+v", rep)
	}
	if n := len(listNames(t, f.be, "points/"+doomed)) + len(listNames(t, f.be, "markers/"+doomed)); n != 0 {
		t.Errorf("%d objects of the purged point left", n)
	}
	if !listNames(t, f.be, "purged/")["purged/"+doomed] {
		t.Error("no purge tombstone")
	}
	delete(f.wants, doomed)
	mustCheckClean(t, reopen2(t, f.be, f.o))
}

// afterPut runs fn once, after the n-th put of an object under prefix.
type afterPut struct {
	*memory.Backend
	prefix string
	n      int
	fn     func()
	mu     sync.Mutex
}

func (a *afterPut) Put(ctx context.Context, name string, data []byte) error {
	err := a.Backend.Put(ctx, name, data)
	a.mu.Lock()
	defer a.mu.Unlock()
	if strings.HasPrefix(name, a.prefix) {
		if a.n--; a.n == 0 {
			a.fn()
		}
	}
	return err
}

// A re-encryption whose batch outlasts the collector's grace period keeps
// its new packs, though no index names them yet and no write session covers
// them: they hold only blobs that points reference, and the collector reads
// the trailers of packs no index names. (Were they condemned, the points'
// only copies would go once the old packs are deleted too.)
func TestLongReencryptSurvivesCollection(t *testing.T) {
	ctx := context.Background()
	f := newRotFixture(t)
	gcv := reopen2(t, f.be, f.o)
	var rep *vault.CollectReport
	hook := &afterPut{Backend: f.be, prefix: "data/", n: 6, fn: func() { // inside the first batch: not yet indexed
		f.c.Add(2 * time.Hour)
		var err error
		if rep, err = gcv.Collect(ctx, vault.CollectOptions{}); err != nil {
			t.Errorf("collect: %v", err)
		}
	}}
	res, err := reopen2(t, hook, f.o).Reencrypt(ctx, vault.ReencryptOptions{})
	if err != nil {
		t.Fatalf("re-encrypt: %v", err)
	}
	if rep == nil || rep.PacksCondemned != 0 {
		t.Fatalf("the collection during the re-encryption condemned packs: %+v", rep)
	}
	if rep.PacksReferenced <= res.PacksCondemned {
		t.Errorf("the collection counted %d referenced packs, the old ones alone are %d", rep.PacksReferenced, res.PacksCondemned)
	}
	for range 2 {
		f.c.Add(2 * time.Hour)
		mustCollect(t, f.v, vault.CollectOptions{})
	}
	if res.PacksCondemned == 0 || len(oldObjects(t, f.v, f.be, 2)) != 0 {
		t.Fatalf("re-encryption incomplete: %+v", res)
	}
	f.verify(t)
}

// faultyOps fails every mutating call (Put or Delete) after the first n.
type faultyOps struct {
	*memory.Backend
	mu   sync.Mutex
	left int
}

func (f *faultyOps) take() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left--
	return f.left >= 0
}

func (f *faultyOps) Put(ctx context.Context, name string, data []byte) error {
	if !f.take() {
		return errInjected
	}
	return f.Backend.Put(ctx, name, data)
}

func (f *faultyOps) Delete(ctx context.Context, name string) error {
	if !f.take() {
		return errInjected
	}
	return f.Backend.Delete(ctx, name)
}

// TestReencryptFaults: storage failing at any put or delete of a
// re-encryption leaves a vault that checks clean and restores every point;
// running it again finishes the work.
func TestReencryptFaults(t *testing.T) {
	ctx := context.Background()
	f := newRotFixture(t)
	// Count the mutating calls of a whole run on a copy.
	count := &faultyOps{Backend: cloneBackend(t, f.be), left: 1 << 30}
	if _, err := openWith(t, count, testPass, f.o).Reencrypt(ctx, vault.ReencryptOptions{}); err != nil {
		t.Fatal(err)
	}
	ops := 1<<30 - count.left
	t.Logf("a re-encryption makes %d puts and deletes", ops)
	step := max(1, ops/12)
	for n := 0; n < ops; n += step {
		be := &faultyOps{Backend: cloneBackend(t, f.be), left: 1 << 30}
		v := openWith(t, be, testPass, f.o)
		be.left = n
		_, err := v.Reencrypt(ctx, vault.ReencryptOptions{})
		be.left = 1 << 30
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Fatalf("n=%d: error %v does not say the storage failed", n, err)
		}
		g := &rotFixture{v: v, be: be.Backend, c: f.c, o: f.o, wants: f.wants}
		g.verify(t)
		// Again, to the end; then collect: nothing old is left.
		if _, err := reopen2(t, be, f.o).Reencrypt(ctx, vault.ReencryptOptions{}); err != nil {
			t.Fatalf("n=%d: second run: %v", n, err)
		}
		f.c.Add(2 * time.Hour)
		mustCollect(t, reopen2(t, be, f.o), vault.CollectOptions{})
		if old := oldObjects(t, v, be, 2); len(old) != 0 {
			t.Fatalf("n=%d: still under the old key: %v", n, old)
		}
		g.verify(t)
	}
}

// cloneBackend copies a memory backend, timestamps included.
func cloneBackend(t *testing.T, be *memory.Backend) *memory.Backend {
	t.Helper()
	ctx := context.Background()
	out := memory.New()
	var mod time.Time
	out.Now = func() time.Time { return mod }
	if err := be.List(ctx, "", func(oi storage.ObjectInfo) error {
		b, err := storage.ReadAll(ctx, be, oi.Name)
		if err != nil {
			return err
		}
		mod = oi.ModTime
		return out.Put(ctx, oi.Name, b)
	}); err != nil {
		t.Fatal(err)
	}
	out.Now = be.Now
	return out
}

// TestReencryptRacesBackupsAndCollections: backups (retried when a pack
// they used was condemned meanwhile) and collections run while the vault
// is re-encrypted; every point reported done restores exactly, check
// passes, and after a final run and collection nothing old is left.
func TestReencryptRacesBackupsAndCollections(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	ctx := context.Background()
	be := memory.New()
	o := testOpts()
	v0, err := vault.Init(ctx, be, testPass, o)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	type done struct {
		id, comp string
		want     map[string]entry
	}
	var mu sync.Mutex
	var reported []done
	const writers = 3
	srcs := make([]string, writers)
	rs := make([]*rand.Rand, writers)
	for w := range writers {
		srcs[w] = filepath.Join(dir, fmt.Sprintf("w%d", w))
		rs[w] = rand.New(rand.NewPCG(uint64(w), 9))
		for j := range 12 {
			writeFile(t, filepath.Join(srcs[w], fmt.Sprintf("f%d", j)), randBytes(rs[w], rs[w].IntN(150<<10)), 0o644)
		}
		p, err := v0.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: srcs[w]}}, Host: fmt.Sprint(w)})
		if err != nil {
			t.Fatal(err)
		}
		reported = append(reported, done{p.ID, filepath.Base(srcs[w]), snapshot(t, srcs[w])})
	}
	if _, err := v0.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg, bg sync.WaitGroup
	var retries int
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := vault.Open(ctx, be, testPass, o) // opened before the re-encryption
			if err != nil {
				t.Error(err)
				return
			}
			for i := range 6 {
				writeFile(t, filepath.Join(srcs[w], fmt.Sprintf("c%d", i%2)), randBytes(rs[w], rs[w].IntN(200<<10)), 0o644)
				want := snapshot(t, srcs[w])
				for attempt := 0; ; attempt++ {
					p, err := v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: srcs[w]}}, Host: fmt.Sprint(w)})
					if err == nil {
						mu.Lock()
						reported = append(reported, done{p.ID, filepath.Base(srcs[w]), want})
						mu.Unlock()
						break
					}
					mu.Lock()
					retries++
					mu.Unlock()
					if lifeboat.ErrorCode(err) != lifeboat.EUnavailable && !strings.Contains(err.Error(), "condemned") && !strings.Contains(err.Error(), "missing") || attempt > 20 {
						t.Errorf("writer %d: %v", w, err)
						return
					}
				}
			}
		}()
	}
	bg.Add(1)
	go func() { // collections with a tiny grace period
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			v, err := vault.Open(ctx, be, testPass, o)
			if err == nil {
				_, err = v.Collect(ctx, vault.CollectOptions{Grace: raceGrace})
			}
			if err != nil {
				t.Errorf("collect: %v", err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	runs := 0
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	for running := true; running; {
		v, err := vault.Open(ctx, be, testPass, o)
		if err == nil {
			_, err = v.Reencrypt(ctx, vault.ReencryptOptions{})
		}
		if err != nil {
			t.Errorf("re-encrypt: %v", err)
			break
		}
		runs++
		select {
		case <-finished:
			running = false
		case <-time.After(20 * time.Millisecond):
		}
	}
	<-finished
	close(stop)
	bg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d re-encryptions, %d backups retried", runs, retries)
	// Backups that deduped against old packs just before they were
	// condemned left blobs there: one more run, then collections past the
	// grace period.
	v := reopen2(t, be, o)
	if _, err := v.Reencrypt(ctx, vault.ReencryptOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		time.Sleep(2 * raceGrace)
		mustCollect(t, v, vault.CollectOptions{Grace: raceGrace})
	}
	v = reopen2(t, be, o)
	mustCheckClean(t, v)
	for _, d := range reported {
		mustRestoreEqual(t, v, d.id, d.comp, d.want)
	}
	if old := oldObjects(t, v, be, 2); len(old) != 0 {
		t.Errorf("still under the old key: %v", old)
	}
}

// resealHook runs fn once, just before the first put (or, with onDelete,
// delete) of an object whose name starts with prefix.
type resealHook struct {
	storage.Backend
	prefix   string
	onDelete bool
	once     sync.Once
	fn       func()
}

func (h *resealHook) Put(ctx context.Context, name string, data []byte) error {
	if !h.onDelete && strings.HasPrefix(name, h.prefix) {
		h.once.Do(h.fn)
	}
	return h.Backend.Put(ctx, name, data)
}

func (h *resealHook) Delete(ctx context.Context, name string) error {
	if h.onDelete && strings.HasPrefix(name, h.prefix) {
		h.once.Do(h.fn)
	}
	return h.Backend.Delete(ctx, name)
}

// TestReencryptRacesPurge: a point purged by the collector while its
// manifest is being re-encrypted stays purged, whether the purge comes
// before the copy is written or after.
func TestReencryptRacesPurge(t *testing.T) {
	ctx := context.Background()
	for _, onDelete := range []bool{false, true} {
		t.Run(fmt.Sprintf("purge before the %s", map[bool]string{false: "copy", true: "delete of the original"}[onDelete]), func(t *testing.T) {
			f := newExpiredPoint(t, true)
			be, o, p := f.be, f.o, f.p
			prefix := manifest.ObjectName(p.ID)
			if !onDelete {
				prefix += "." // the copy
			}
			h := &resealHook{Backend: be, prefix: prefix, onDelete: onDelete}
			h.fn = func() {
				rep := mustCollect(t, reopen2(t, be, o), vault.CollectOptions{})
				if len(rep.PointsPurged) != 1 {
					t.Errorf("not purged: %+v", rep)
				}
			}
			res, err := openWith(t, h, testPass, o).Reencrypt(ctx, vault.ReencryptOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !onDelete && res.Withdrawn != 1 {
				t.Errorf("copy not withdrawn: %+v", res)
			}
			if n := listNames(t, be, "points/"); len(n) != 0 {
				t.Fatalf("purged point came back: %v", n)
			}
			if ids, _ := reopen2(t, be, o).PointIDs(ctx); len(ids) != 0 {
				t.Fatalf("points %v", ids)
			}
		})
	}
}

// TestFeatureObjects: a vault using a feature this code does not know is
// refused; key slot listings skip feature objects.
func TestFeatureObjects(t *testing.T) {
	ctx := context.Background()
	v, be, _, o := newClockVault(t)
	if _, err := v.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	if !listNames(t, be, "keys/")["keys/feature-datakeys"] {
		t.Fatal("rotation wrote no feature object")
	}
	if slots, err := v.KeySlots(ctx); err != nil || len(slots) != 1 {
		t.Fatalf("slots: %+v %v", slots, err)
	}
	be.Put(ctx, "keys/feature-time-travel", []byte("{}"))
	if _, err := vault.Open(ctx, be, testPass, o); lifeboat.ErrorCode(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "time-travel") {
		t.Fatalf("open with an unknown feature: %v", err)
	}
}

// noIndex fails every put of an index object: a write session that dies
// after its packs are durable, before its index.
type noIndex struct{ storage.Backend }

func (b noIndex) Put(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, "index/") {
		return errInjected
	}
	return b.Backend.Put(ctx, name, data)
}

// TestCollectKeepsCondemnedPackWhoseCopyIsUnindexed: a condemned pack
// holding the only indexed copy of a referenced blob is kept even when a
// pack no index names (readers cannot find it) holds another copy.
func TestCollectKeepsCondemnedPackWhoseCopyIsUnindexed(t *testing.T) {
	ctx := context.Background()
	v, be, c, o := newClockVault(t)
	src := filepath.Join(t.TempDir(), "s")
	writeFile(t, filepath.Join(src, "f"), randBytes(rand.New(rand.NewPCG(1, 2)), 50<<10), 0o644)
	want := snapshot(t, src)
	p := mustBackup(t, v, src)
	for n := range listNames(t, be, "data/") {
		be.Put(ctx, "condemned/"+filepath.Base(n), nil) // condemned while p needs it
	}
	// The same data stored again, but the session dies before its index.
	w := openWith(t, noIndex{be}, testPass, o)
	if _, err := w.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: src}}, Host: "testhost", NoParent: true}); err == nil {
		t.Fatal("backup without an index succeeded")
	}
	c.Add(2 * time.Hour)
	rep := mustCollect(t, v, vault.CollectOptions{})
	if rep.PacksDeleted != 0 {
		t.Fatalf("deleted the only indexed copy: %+v", rep)
	}
	v = reopen2(t, be, o)
	mustRestoreEqual(t, v, p.ID, "s", want)
	mustCheckClean(t, v)
}

// reencryptLeftover runs before the first put of a manifest copy, then
// fails the first delete of one: a re-encryption that cannot withdraw the
// copy it wrote of a point purged meanwhile.
type reencryptLeftover struct {
	*memory.Backend
	copyPrefix string
	before     sync.Once
	beforeFn   func()
	failDel    atomic.Bool
}

func (h *reencryptLeftover) Put(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, h.copyPrefix) {
		h.before.Do(h.beforeFn)
	}
	return h.Backend.Put(ctx, name, data)
}

func (h *reencryptLeftover) Delete(ctx context.Context, name string) error {
	if strings.HasPrefix(name, h.copyPrefix) && h.failDel.CompareAndSwap(true, false) {
		return errInjected
	}
	return h.Backend.Delete(ctx, name)
}

// A point purged while a re-encryption writes a copy of its manifest, the
// copy's withdrawal failing, and a hold written during the purge (which
// failed): the copy would bring the point back. A collection a day later
// finishes the purge: the point has no delete marker left.
func TestPurgedPointStaysPurgedAfterFailedWithdrawal(t *testing.T) {
	ctx := context.Background()
	f := newExpiredPoint(t, true)
	v, be, c, o, p := f.v, f.be, f.c, f.o, f.p
	h := &reencryptLeftover{Backend: be, copyPrefix: manifest.ObjectName(p.ID) + "."}
	h.beforeFn = func() {
		during := &listHook{Backend: be, prefix: manifest.ObjectName(p.ID), hook: func() {
			if err := v.Mark(ctx, p.ID, vault.MarkHold, "legal", "carol"); lifeboat.ErrorCode(err) != lifeboat.EUnavailable {
				t.Errorf("hold during the purge: %v, want EUnavailable", err)
			}
		}}
		if rep := mustCollect(t, reopen2(t, during, o), vault.CollectOptions{}); len(rep.PointsPurged) != 1 {
			t.Errorf("the purge: %+v", rep)
		}
		h.failDel.Store(true)
	}
	if _, err := reopen2(t, h, o).Reencrypt(ctx, vault.ReencryptOptions{}); err == nil {
		t.Fatal("re-encryption succeeded though it could not withdraw its copy")
	}
	if ids, _ := v.PointIDs(ctx); !slices.Contains(ids, p.ID) {
		t.Fatal("setup: no copy of the purged point was left")
	}
	c.Add(25 * time.Hour)
	if rep := mustCollect(t, v, vault.CollectOptions{}); !slices.Equal(rep.PointsPurged, []string{p.ID}) {
		t.Fatalf("collection a day later: %+v; want %s purged", rep, p.ID[:8])
	}
	if ids, _ := reopen2(t, be, o).PointIDs(ctx); slices.Contains(ids, p.ID) {
		t.Errorf("purged point %s is back", p.ID[:8])
	}
	if n := len(listNames(t, be, "markers/"+p.ID)); n != 0 {
		t.Errorf("%d markers of the purged point left", n)
	}
}
