package ssh_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/remote/ssh"
)

func TestRestoreSwap(t *testing.T) {
	e := mustEnv(t)
	cl := mustDial(t, e.config())
	dir := sharedDir(t, e)
	target := filepath.Join(dir, "app")
	if err := os.MkdirAll(filepath.Join(target, "old-only"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(target, "a.txt"), []byte("old"), 0o644)
	os.Chmod(filepath.Join(target), 0o777) // root-owned but writable: the SSH user may rename it

	st, err := cl.MkdirStaging(target)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(st) != dir || !strings.HasPrefix(filepath.Base(st), ".lifeboat-staging-app-") {
		t.Errorf("staging %s not next to %s", st, target)
	}
	if fi, err := os.Lstat(st); err != nil || fi.Mode() != os.ModeDir|0o700 {
		t.Fatalf("staging: %v %v", fi.Mode(), err)
	}
	if err := cl.WriteFile(st, "a.txt", 0o640, strings.NewReader("new")); err != nil {
		t.Fatal(err)
	}
	if err := cl.WriteFile(st, "deep/er/b.txt", 0o4755, strings.NewReader("b")); err != nil {
		t.Fatal(err)
	}
	if err := cl.Mkdir(st, "empty", 0o750); err != nil {
		t.Fatal(err)
	}
	if err := cl.WriteFile(st, "a.txt", 0o644, strings.NewReader("again")); err == nil {
		t.Errorf("WriteFile overwrote an existing file")
	}
	for _, bad := range []string{"../escape", "/abs", "a/../../x", "", ".", "a//b"} {
		if err := cl.WriteFile(st, bad, 0o644, strings.NewReader("x")); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
			t.Errorf("WriteFile(%q): %v", bad, err)
		}
	}
	if err := cl.Symlink(st, "deep/link", "er/b.txt"); err != nil {
		t.Fatal(err)
	}
	if err := cl.WriteFile(st, "late.txt", 0o644, strings.NewReader("x")); err == nil {
		t.Errorf("WriteFile after Symlink accepted")
	}
	kept, earlier, err := cl.Swap(st, target, 0o751, "job1")
	if err != nil || len(kept) != 1 || earlier {
		t.Fatal(kept, earlier, err)
	}
	old := kept[0]
	check := func(p, want string) {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", p, b, err, want)
		}
	}
	check(filepath.Join(target, "a.txt"), "new")
	check(filepath.Join(target, "deep/er/b.txt"), "b")
	check(filepath.Join(target, "deep/link"), "b")
	check(filepath.Join(old, "a.txt"), "old")
	modes := map[string]os.FileMode{
		"":              os.ModeDir | 0o751,
		"a.txt":         0o640,
		"deep/er/b.txt": 0o755 | os.ModeSetuid,
		"empty":         os.ModeDir | 0o750,
		"deep/link":     os.ModeSymlink | 0o777,
	}
	for rel, want := range modes {
		if fi, err := os.Lstat(filepath.Join(target, rel)); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v %v, want %v", rel, fi.Mode(), err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(target, "old-only")); err == nil {
		t.Errorf("old content in the restored tree")
	}
	if _, err := os.Lstat(st); !os.IsNotExist(err) {
		t.Errorf("staging still there: %v", err)
	}
	if _, _, err := cl.Swap(st, target, 0o755, "job1"); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Errorf("second Swap: %v", err)
	}

	// A target that does not exist yet: no old tree.
	fresh := filepath.Join(dir, "fresh")
	st, err = cl.MkdirStaging(fresh)
	if err != nil {
		t.Fatal(err)
	}
	cl.WriteFile(st, "f", 0o600, strings.NewReader("f"))
	if kept, earlier, err := cl.Swap(st, fresh, 0o700, "job1"); err != nil || len(kept) != 0 || earlier {
		t.Fatalf("Swap to a new target: %q %v %v", kept, earlier, err)
	}
	check(filepath.Join(fresh, "f"), "f")

	// A retry whose earlier attempt stopped between its two renames (the
	// target moved aside, the restore not in place yet): the kept copy is
	// returned, and earlier set.
	if err := os.Rename(fresh, filepath.Join(dir, ".lifeboat-old-fresh-job1")); err != nil {
		t.Fatal(err)
	}
	st, err = cl.MkdirStaging(fresh)
	if err != nil {
		t.Fatal(err)
	}
	cl.WriteFile(st, "f", 0o600, strings.NewReader("f2"))
	if kept, earlier, err := cl.Swap(st, fresh, 0o700, "job1"); err != nil || !slices.Equal(kept, []string{filepath.Join(dir, ".lifeboat-old-fresh-job1")}) || !earlier {
		t.Fatalf("Swap after an attempt that stopped between its renames: %q %v %v", kept, earlier, err)
	}
	check(filepath.Join(fresh, "f"), "f2")
	check(filepath.Join(dir, ".lifeboat-old-fresh-job1", "f"), "f")
	os.RemoveAll(filepath.Join(dir, ".lifeboat-old-fresh-job1"))

	// The job's retry swaps again: what was there before the job stays
	// kept, and the first attempt's restore, replaced, is kept beside it.
	st, err = cl.MkdirStaging(target)
	if err != nil {
		t.Fatal(err)
	}
	cl.WriteFile(st, "a.txt", 0o640, strings.NewReader("newer"))
	again, earlier, err := cl.Swap(st, target, 0o751, "job1")
	if err != nil || !earlier || len(again) != 2 || again[0] != old || filepath.Dir(again[1]) != dir || !strings.HasPrefix(filepath.Base(again[1]), filepath.Base(old)+"-") {
		t.Fatalf("the retry's Swap: %q %v, want the first kept tree %s, then the replaced one beside it", again, err, old)
	}
	check(filepath.Join(target, "a.txt"), "newer")
	check(filepath.Join(old, "a.txt"), "old")
	check(filepath.Join(again[1], "a.txt"), "new")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if p := filepath.Join(dir, e.Name()); strings.HasPrefix(e.Name(), ".lifeboat-") && p != old && p != again[1] {
			t.Errorf("left beside the target: %s", e.Name())
		}
	}
}

func TestRestoreRefusesSymlinks(t *testing.T) {
	e := mustEnv(t)
	cl := mustDial(t, e.config())
	dir := sharedDir(t, e)
	outside := sharedDir(t, e)
	os.WriteFile(filepath.Join(outside, "victim"), []byte("untouched"), 0o666)

	st, err := cl.MkdirStaging(filepath.Join(dir, "app"))
	if err != nil {
		t.Fatal(err)
	}
	// Planted in the staging directory (as if by an earlier entry or another
	// process): a symlinked parent, and a symlink at the file's own name.
	if err := os.Symlink(outside, filepath.Join(st, "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(st, "d"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(st, "d", "deeper")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "victim"), filepath.Join(st, "victim")); err != nil {
		t.Fatal(err)
	}
	err = cl.WriteFile(st, "evil/x", 0o644, strings.NewReader("x"))
	wantCode(t, err, lifeboat.EForbidden, "evil", "symlink")
	err = cl.WriteFile(st, "d/deeper/sub/x", 0o644, strings.NewReader("x"))
	wantCode(t, err, lifeboat.EForbidden, "deeper", "symlink")
	if err := cl.WriteFile(st, "victim", 0o644, strings.NewReader("overwritten")); err == nil {
		t.Errorf("WriteFile through a symlink at the file's name succeeded")
	}
	err = cl.Mkdir(st, "evil/sub", 0o755)
	wantCode(t, err, lifeboat.EForbidden)
	err = cl.Symlink(st, "evil/l", "x")
	wantCode(t, err, lifeboat.EForbidden)
	entries, _ := os.ReadDir(outside)
	if len(entries) != 1 {
		t.Errorf("outside holds %d entries, want just victim", len(entries))
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "victim")); string(b) != "untouched" {
		t.Errorf("victim = %q", b)
	}

	// A target below a symlinked directory is refused up front.
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	_, err = cl.MkdirStaging(filepath.Join(dir, "link", "app"))
	wantCode(t, err, lifeboat.EForbidden, "link")
	// Only this connection's staging directories are accepted.
	err = cl.WriteFile(outside, "x", 0o644, strings.NewReader("x"))
	wantCode(t, err, lifeboat.EInvalid)
	_, err = cl.MkdirStaging("relative/app")
	wantCode(t, err, lifeboat.EInvalid)
	_, _, err = cl.Swap(st, filepath.Join(outside, "app"), 0o755, "job1")
	wantCode(t, err, lifeboat.EInvalid)
}

// TestRestoreSwapFailsKeepingWhatWasThere: the app makes the target anew
// between a swap's two renames, so the restore cannot take its place and
// what the target held cannot go back: the error says where it is, and it
// is still there, whole.
func TestRestoreSwapFailsKeepingWhatWasThere(t *testing.T) {
	e := mustEnv(t)
	cl := mustDial(t, e.config())
	dir := sharedDir(t, e)
	remake := func(target string) {
		os.MkdirAll(filepath.Join(target, "made-by-the-app"), 0o777)
	}
	ssh.SetTestHookAside(remake)
	t.Cleanup(func() { ssh.SetTestHookAside(nil) })
	check := func(name string, err error, keptFile string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: the swap succeeded over the app's new target", name)
		}
		i := strings.Index(err.Error(), "what ")
		if i < 0 || !strings.Contains(err.Error(), "moving it back failed") {
			t.Fatalf("%s: %v, want it to say where the replaced data is", name, err)
		}
		aside := strings.TrimSuffix(err.Error()[strings.LastIndex(err.Error(), " is at ")+len(" is at "):], ")")
		if filepath.Dir(aside) != dir || !strings.HasPrefix(filepath.Base(aside), ".lifeboat-old-") {
			t.Fatalf("%s: kept at %q, want a .lifeboat-old- name in %s", name, aside, dir)
		}
		if b, err := os.ReadFile(filepath.Join(aside, keptFile)); err != nil || string(b) != "old" {
			t.Errorf("%s: %s holds %q %v, want what the target held", name, aside, b, err)
		}
	}

	target := filepath.Join(dir, "app")
	os.MkdirAll(target, 0o777)
	os.WriteFile(filepath.Join(target, "a.txt"), []byte("old"), 0o666)
	st, err := cl.MkdirStaging(target)
	if err != nil {
		t.Fatal(err)
	}
	cl.WriteFile(st, "a.txt", 0o644, strings.NewReader("new"))
	_, _, err = cl.Swap(st, target, 0o755, "job1")
	check("Swap", err, "a.txt")

	file := filepath.Join(dir, "app.db")
	os.WriteFile(file, []byte("old"), 0o666)
	st, err = cl.MkdirStaging(file)
	if err != nil {
		t.Fatal(err)
	}
	cl.WriteFile(st, "app.db", 0o644, strings.NewReader("new"))
	_, _, err = cl.SwapFile(st, "app.db", file, "job1")
	check("SwapFile", err, "")
}
