package vault

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/marker"
)

type corruptFixture struct {
	v      *Vault
	be     *memory.Backend
	p      *manifest.Point
	src    string
	packOf map[string]string // file name → pack object of its first blob
}

func newCorruptFixture(t *testing.T) *corruptFixture {
	t.Helper()
	src := filepath.Join(t.TempDir(), "app")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	for _, n := range []string{"a", "b", "sub/c"} {
		b := make([]byte, 300<<10)
		rand.Read(b)
		os.WriteFile(filepath.Join(src, n), b, 0o644)
	}
	be := memory.New()
	ctx := context.Background()
	v, err := Init(ctx, be, []byte("pw"), Options{KDF: &weakKDF, PackSize: 200 << 10})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Backup(ctx, BackupOptions{Sources: []Source{{Path: src}}})
	if err != nil {
		t.Fatal(err)
	}
	f := &corruptFixture{v: v, be: be, p: p, src: src, packOf: map[string]string{}}
	for _, n := range []string{"a", "b", "sub/c"} {
		node, err := v.Lookup(ctx, p, "app/"+n)
		if err != nil {
			t.Fatal(err)
		}
		loc, _ := v.idx.Lookup(*node.Content[0].ID)
		f.packOf[n] = loc.Pack.ObjectName()
	}
	if f.packOf["a"] == f.packOf["b"] {
		t.Fatalf("fixture: a and b share pack %s", f.packOf["a"])
	}
	return f
}

func (f *corruptFixture) reopen(t *testing.T) (*Vault, error) {
	t.Helper()
	return Open(context.Background(), f.be, []byte("pw"), Options{KDF: &weakKDF})
}

func (f *corruptFixture) check(t *testing.T, readData bool) *CheckReport {
	t.Helper()
	v, err := f.reopen(t)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	rep, err := v.Check(context.Background(), CheckOptions{ReadData: readData})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return rep
}

func mentions(rep *CheckReport, object, path string) bool {
	for _, pr := range rep.Problems {
		if pr.Object == object || object == "" {
			for _, p := range pr.Paths {
				if strings.HasSuffix(p, path) {
					return true
				}
			}
		}
	}
	return false
}

func TestCheckCleanVault(t *testing.T) {
	f := newCorruptFixture(t)
	if rep := f.check(t, true); !rep.OK() || rep.BlobsRead == 0 {
		t.Fatalf("clean vault: %+v", rep)
	}
}

func TestCorruptDataPack(t *testing.T) {
	for _, how := range []string{"flip", "truncate", "delete"} {
		t.Run(how, func(t *testing.T) {
			f := newCorruptFixture(t)
			pk := f.packOf["a"]
			switch how {
			case "flip":
				f.be.Mutate(pk, func(b []byte) []byte { b[100] ^= 0xff; return b })
			case "truncate":
				f.be.Mutate(pk, func(b []byte) []byte { return b[:len(b)/3] })
			case "delete":
				f.be.Delete(context.Background(), pk)
			}
			// Structure alone finds missing and truncated packs; read-data finds flips.
			rep := f.check(t, how == "flip")
			if rep.OK() || !mentions(rep, pk, "app/a") {
				t.Fatalf("check did not name %s and app/a: %+v", pk, rep.Problems)
			}
			if mentions(rep, "", "app/b") {
				t.Errorf("check blames app/b: %+v", rep.Problems)
			}
			for _, pr := range rep.Problems {
				if len(pr.Points) != 1 || pr.Points[0] != f.p.ID {
					t.Errorf("problem does not name the point: %+v", pr)
				}
			}
			// Restore: a fails loudly, b and c restore.
			v, _ := f.reopen(t)
			dst := filepath.Join(t.TempDir(), "r")
			res, err := v.Restore(context.Background(), f.p, RestoreOptions{Target: dst, Path: "app"})
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			if len(res.Failed) != 1 || !strings.Contains(res.Failed[0], "/a: ") {
				t.Fatalf("failed: %v", res.Failed)
			}
			if _, err := os.Stat(filepath.Join(dst, "a")); err == nil {
				t.Errorf("damaged file left in place")
			}
			for _, n := range []string{"b", "sub/c"} {
				want, _ := os.ReadFile(filepath.Join(f.src, n))
				got, err := os.ReadFile(filepath.Join(dst, n))
				if err != nil || string(got) != string(want) {
					t.Errorf("%s did not restore: %v", n, err)
				}
			}
		})
	}
}

func TestCorruptTreeManifestIndexSlot(t *testing.T) {
	ctx := context.Background()
	t.Run("tree", func(t *testing.T) {
		f := newCorruptFixture(t)
		node, _ := f.v.Lookup(ctx, f.p, "app/sub")
		loc, _ := f.v.idx.Lookup(*node.Subtree)
		f.be.Mutate(loc.Pack.ObjectName(), func(b []byte) []byte { b[loc.Offset+30] ^= 1; return b })
		rep := f.check(t, true)
		if !mentions(rep, loc.Pack.ObjectName(), "app/sub") {
			t.Fatalf("tree damage not attributed: %+v", rep.Problems)
		}
		v, _ := f.reopen(t)
		res, err := v.Restore(ctx, f.p, RestoreOptions{Target: filepath.Join(t.TempDir(), "r"), Path: "app"})
		if err != nil || len(res.Failed) == 0 {
			t.Fatalf("restore of damaged tree: %v %v", err, res)
		}
	})
	t.Run("manifest", func(t *testing.T) {
		f := newCorruptFixture(t)
		name := manifest.ObjectName(f.p.ID)
		f.be.Mutate(name, func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
		rep := f.check(t, false)
		if rep.OK() || rep.Problems[0].Object != name {
			t.Fatalf("manifest damage: %+v", rep.Problems)
		}
		v, _ := f.reopen(t)
		if _, err := v.LoadPoint(ctx, f.p.ID); lifeboat.ErrorCode(err) != lifeboat.ECorrupt {
			t.Fatalf("load damaged point: %v", err)
		}
	})
	t.Run("index", func(t *testing.T) {
		f := newCorruptFixture(t)
		var idx string
		f.be.List(ctx, "index/", func(oi storage.ObjectInfo) error { idx = oi.Name; return nil })
		f.be.Mutate(idx, func(b []byte) []byte { b[40] ^= 1; return b })
		// The vault still opens: the packs' trailers stand in for the index,
		// every point restores, and check names the damaged index.
		v, err := f.reopen(t)
		if err != nil {
			t.Fatalf("open with damaged index: %v", err)
		}
		rep := f.check(t, true)
		if len(rep.Problems) != 1 || rep.Problems[0].Object != idx {
			t.Fatalf("damaged index: %+v", rep.Problems)
		}
		dst := filepath.Join(t.TempDir(), "r")
		if res, err := v.Restore(ctx, f.p, RestoreOptions{Target: dst, Path: "app"}); err != nil || len(res.Failed) > 0 {
			t.Fatalf("restore without its index: %v %v", err, res)
		}
		if got, _ := os.ReadFile(filepath.Join(dst, "b")); len(got) != 300<<10 {
			t.Fatalf("restored b has %d bytes", len(got))
		}
	})
	t.Run("slot", func(t *testing.T) {
		f := newCorruptFixture(t)
		var slot string
		f.be.List(ctx, "keys/", func(oi storage.ObjectInfo) error {
			if !isFeatureObject(oi.Name) {
				slot = oi.Name
			}
			return nil
		})
		f.be.Mutate(slot, func(b []byte) []byte { return b[:len(b)/2] })
		if _, err := f.reopen(t); lifeboat.ErrorCode(err) != lifeboat.ECorrupt || !strings.Contains(err.Error(), slot) {
			t.Fatalf("open with damaged slot: %v", err)
		}
	})
	t.Run("config", func(t *testing.T) {
		f := newCorruptFixture(t)
		f.be.Mutate(ConfigName, func(b []byte) []byte { return []byte("{") })
		if _, err := f.reopen(t); lifeboat.ErrorCode(err) != lifeboat.ECorrupt {
			t.Fatalf("open with damaged config: %v", err)
		}
	})
}

// A re-encryption cut short leaves a manifest and its copy under the new
// key; when that copy is damaged, check names it, and a re-encryption
// keeps the good older copy instead of deleting it (it took the damaged
// copy for a concurrent run's and deleted the only readable one).
func TestDamagedManifestCopy(t *testing.T) {
	ctx := context.Background()
	f := newCorruptFixture(t)
	if _, err := f.v.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	id := f.p.ID
	base := manifest.ObjectName(id)
	orig, _ := storage.ReadAll(ctx, f.be, base)
	plain, err := f.v.openSealed(ctx, base, orig, manifest.Context(id))
	if err != nil {
		t.Fatal(err)
	}
	cp := resealedName(base, 2)
	if err := f.be.Put(ctx, cp, f.v.sealer().Seal(nil, plain, manifest.Context(id))); err != nil {
		t.Fatal(err)
	}
	f.be.Mutate(cp, func(b []byte) []byte { b[len(b)-1] ^= 1; return b })

	rep := f.check(t, false)
	found := false
	for _, p := range rep.Problems {
		found = found || p.Object == cp
	}
	if rep.OK() || !found {
		t.Errorf("check does not name the damaged copy %s: %+v", cp, rep.Problems)
	}
	w, _ := f.reopen(t)
	res, err := w.Reencrypt(ctx, ReencryptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(res.Problems, func(p Problem) bool { return p.Object == cp }) {
		t.Errorf("re-encryption does not report the damaged copy %s: %+v", cp, res.Problems)
	}
	w, _ = f.reopen(t)
	if _, err := w.LoadPoint(ctx, id); err != nil {
		t.Fatalf("the point after the re-encryption: %v", err)
	}
}

// A data key object that is missing is reported even by a key slot that
// holds the key itself (made after the rotation): slots made before it,
// a disaster kit's among them, cannot open what that key sealed.
func TestCheckMissingDataKeyObjectHeldBySlot(t *testing.T) {
	ctx := context.Background()
	be := memory.New()
	v, err := Init(ctx, be, []byte("disaster kit pass"), Options{KDF: &weakKDF})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := v.AddKeySlot(ctx, []byte("server pass")); err != nil {
		t.Fatal(err)
	}
	be.Delete(ctx, dataKeyObject(2))
	w, err := Open(ctx, be, []byte("server pass"), Options{KDF: &weakKDF})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := w.Check(ctx, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Object == dataKeyObject(2) }) {
		t.Errorf("check through the newer slot does not report %s missing: %+v", dataKeyObject(2), rep.Problems)
	}
}

// A point marker that does not open is named by check (listing points and
// "latest" fail on it).
func TestCheckDamagedMarker(t *testing.T) {
	ctx := context.Background()
	f := newCorruptFixture(t)
	if err := f.v.Mark(ctx, f.p.ID, MarkHold, "legal", "me"); err != nil {
		t.Fatal(err)
	}
	var m string
	f.be.List(ctx, marker.Prefix, func(oi storage.ObjectInfo) error { m = oi.Name; return nil })
	f.be.Mutate(m, func(b []byte) []byte { b[len(b)-1] ^= 1; return b })
	rep := f.check(t, false)
	if rep.OK() || !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Object == m && slices.Contains(p.Points, f.p.ID) }) {
		t.Errorf("check does not name the damaged marker %s: %+v", m, rep.Problems)
	}
}

// A garbled key slot does not keep the vault shut when another slot (or
// the disaster kit's copy) opens it; check names the garbled one. With no
// other slot opening, the error names it.
func TestGarbledKeySlot(t *testing.T) {
	ctx := context.Background()
	f := newCorruptFixture(t)
	id, err := f.v.AddKeySlot(ctx, []byte("other"))
	if err != nil {
		t.Fatal(err)
	}
	f.be.Mutate(slotPrefix+id, func(b []byte) []byte { return b[:len(b)/2] })
	v, err := Open(ctx, f.be, []byte("pw"), Options{KDF: &weakKDF})
	if err != nil {
		t.Fatalf("open through the intact slot: %v", err)
	}
	rep, err := v.Check(ctx, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Object == slotPrefix+id }) {
		t.Errorf("check does not name the garbled slot: %+v", rep.Problems)
	}
	_, err = Open(ctx, f.be, []byte("other"), Options{KDF: &weakKDF})
	if lifeboat.ErrorCode(err) != lifeboat.ECorrupt || !strings.Contains(err.Error(), id) {
		t.Errorf("open whose only slot is garbled: %v; want corruption naming %s", err, id)
	}
}

// A lost index object with its packs intact: the points restore (the packs'
// trailers say what they hold), and check names the packs no index object
// names that points need, instead of "blob not in any index".
func TestLostIndexObject(t *testing.T) {
	ctx := context.Background()
	f := newCorruptFixture(t)
	var idx []string
	f.be.List(ctx, "index/", func(oi storage.ObjectInfo) error { idx = append(idx, oi.Name); return nil })
	for _, n := range idx {
		f.be.Delete(ctx, n)
	}
	rep := f.check(t, false)
	if rep.OK() || !slices.ContainsFunc(rep.Problems, func(p Problem) bool {
		return strings.HasPrefix(p.Object, "data/") && strings.Contains(p.What, "no index object") && slices.Contains(p.Points, f.p.ID)
	}) {
		t.Errorf("check: %+v", rep.Problems)
	}
	v, _ := f.reopen(t)
	dst := filepath.Join(t.TempDir(), "r")
	res, err := v.Restore(ctx, f.p, RestoreOptions{Target: dst, Path: "app"})
	if err != nil || len(res.Failed) > 0 {
		t.Fatalf("restore with the index lost: %v, failed %q", err, res.Failed)
	}
	for _, n := range []string{"a", "b", "sub/c"} {
		want, _ := os.ReadFile(filepath.Join(f.src, n))
		if got, _ := os.ReadFile(filepath.Join(dst, n)); string(got) != string(want) {
			t.Errorf("%s restored wrong", n)
		}
	}
}

// A pack cut short inside its trailer, or with bytes after it, keeps its
// blobs: structure-only check names it all the same (it passed), read-data
// names it once, and everything restores.
func TestCheckPackTrailerDamage(t *testing.T) {
	for _, how := range []string{"cut", "appended"} {
		t.Run(how, func(t *testing.T) {
			f := newCorruptFixture(t)
			pk := f.packOf["a"]
			switch how {
			case "cut":
				f.be.Mutate(pk, func(b []byte) []byte { return b[:len(b)-20] })
			case "appended":
				f.be.Mutate(pk, func(b []byte) []byte { return append(b, "junk"...) })
			}
			for _, readData := range []bool{false, true} {
				rep := f.check(t, readData)
				n := 0
				for _, pr := range rep.Problems {
					if pr.Object == pk && pr.Blob == "" {
						n++
					} else {
						t.Errorf("read data %v: problem with something else: %+v", readData, pr)
					}
				}
				if n != 1 {
					t.Errorf("read data %v: %d problems name %s, want 1: %+v", readData, n, pk, rep.Problems)
				}
			}
			v, _ := f.reopen(t)
			dst := filepath.Join(t.TempDir(), "r")
			res, err := v.Restore(context.Background(), f.p, RestoreOptions{Target: dst, Path: "app"})
			if err != nil || len(res.Failed) != 0 {
				t.Fatalf("restore: %v %v", err, res.Failed)
			}
		})
	}
}
