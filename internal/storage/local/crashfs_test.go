package local

import (
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fsh wraps an FS for terse tests: every call must succeed.
type fsh struct {
	t *testing.T
	FS
}

func (h fsh) ok(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

// write creates name with content, fsyncing the file if sync.
func (h fsh) write(name, content string, sync bool) File {
	h.t.Helper()
	f, err := h.CreateExcl(name)
	h.ok(err)
	_, err = f.Write([]byte(content))
	h.ok(err)
	if sync {
		h.ok(f.Sync())
	}
	return f
}

// read returns name's content, or "<missing>".
func (h fsh) read(name string) string {
	h.t.Helper()
	f, err := h.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "<missing>"
	}
	h.ok(err)
	defer f.Close()
	fi, err := f.Stat()
	h.ok(err)
	buf := make([]byte, fi.Size)
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		h.t.Fatal(err)
	}
	return string(buf[:n])
}

func TestCrashFSFileContentNeedsFileSync(t *testing.T) {
	c := NewCrashFS()
	h := fsh{t, c}
	f := h.write("/a", "hello", true)
	f.Write([]byte(" world")) // not fsynced
	h.write("/b", "never synced", false)
	h.ok(c.SyncDir("/"))
	if got := h.read("/a"); got != "hello world" {
		t.Fatalf("before the crash: %q", got)
	}
	c.Crash()
	if got := h.read("/a"); got != "hello" {
		t.Errorf("fsynced file after crash: %q, want %q", got, "hello")
	}
	if got := h.read("/b"); got != "" {
		t.Errorf("never-fsynced file after crash: %q, want it empty (its entry was fsynced, its data not)", got)
	}
	if _, err := f.Write([]byte("x")); !errors.Is(err, ErrCrashed) {
		t.Errorf("write through a handle from before the crash: %v", err)
	}
}

func TestCrashFSEntriesNeedDirSync(t *testing.T) {
	c := NewCrashFS()
	h := fsh{t, c}
	h.ok(c.Mkdir("/d"))
	h.ok(c.SyncDir("/"))
	h.write("/d/kept", "k", true)
	h.ok(c.SyncDir("/d"))
	h.write("/d/lost", "l", true) // file fsynced, directory not
	h.ok(c.Remove("/d/kept"))     // removal not fsynced
	c.Crash()
	if got := h.read("/d/lost"); got != "<missing>" {
		t.Errorf("entry whose directory was not fsynced survived: %q", got)
	}
	if got := h.read("/d/kept"); got != "k" {
		t.Errorf("removal whose directory was not fsynced stuck: %q", got)
	}
	h.ok(c.Remove("/d/kept"))
	h.ok(c.SyncDir("/d"))
	c.Crash()
	if got := h.read("/d/kept"); got != "<missing>" {
		t.Errorf("fsynced removal undone: %q", got)
	}
}

func TestCrashFSMkdirNeedsParentSync(t *testing.T) {
	c := NewCrashFS()
	h := fsh{t, c}
	h.ok(c.Mkdir("/a"))
	h.ok(c.Mkdir("/a/b"))
	h.ok(c.SyncDir("/a"))
	h.write("/a/b/f", "data", true)
	h.ok(c.SyncDir("/a/b"))
	// Everything below /a is fsynced, but /a's entry in / is not.
	c.Crash()
	for _, p := range []string{"/a", "/a/b", "/a/b/f"} {
		if _, err := c.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s survived although / was never fsynced: %v", p, err)
		}
	}
	// The same with / fsynced keeps it all.
	h.ok(c.Mkdir("/a"))
	h.ok(c.Mkdir("/a/b"))
	h.ok(c.SyncDir("/"))
	h.ok(c.SyncDir("/a"))
	h.write("/a/b/f", "data", true)
	h.ok(c.SyncDir("/a/b"))
	c.Crash()
	if got := h.read("/a/b/f"); got != "data" {
		t.Errorf("fully fsynced file: %q", got)
	}
}

func TestCrashFSRename(t *testing.T) {
	c := NewCrashFS()
	h := fsh{t, c}
	h.ok(c.SyncDir("/"))
	f := h.write("/tmp1", "v1", true)
	h.ok(c.SyncDir("/"))
	f.Write([]byte("+unsynced"))
	h.ok(c.RenameNoReplace("/tmp1", "/final"))
	// Rename not fsynced: the old name comes back, with its fsynced content.
	c.Crash()
	if got, gone := h.read("/tmp1"), h.read("/final"); got != "v1" || gone != "<missing>" {
		t.Errorf("unsynced rename: tmp1=%q final=%q", got, gone)
	}
	f = h.write("/tmp2", "v2", true)
	f.Write([]byte("+unsynced"))
	h.ok(c.RenameNoReplace("/tmp2", "/final"))
	h.ok(c.SyncDir("/"))
	c.Crash()
	// The durable content of a renamed file is what was fsynced on the file.
	if got := h.read("/final"); got != "v2" {
		t.Errorf("fsynced rename: final=%q, want %q", got, "v2")
	}
	h.write("/tmp3", "v3", true)
	if err := c.RenameNoReplace("/tmp3", "/final"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("rename over an existing name: %v", err)
	}
	if got := h.read("/final"); got != "v2" {
		t.Errorf("rename replaced: %q", got)
	}
	c.SetNoRenameNoReplace(true)
	if err := c.RenameNoReplace("/tmp3", "/other"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("rename on a file system without RENAME_NOREPLACE: %v", err)
	}
}

func TestCrashFSLink(t *testing.T) {
	c := NewCrashFS()
	h := fsh{t, c}
	h.write("/tmp", "x", true)
	h.ok(c.SyncDir("/"))
	h.ok(c.Link("/tmp", "/obj"))
	if err := c.Link("/tmp", "/obj"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("link over an existing name: %v", err)
	}
	h.ok(c.Remove("/tmp"))
	c.Crash()
	if a, b := h.read("/tmp"), h.read("/obj"); a != "x" || b != "<missing>" {
		t.Errorf("unsynced link + unlink: tmp=%q obj=%q", a, b)
	}
	h.ok(c.Link("/tmp", "/obj"))
	h.ok(c.Remove("/tmp"))
	h.ok(c.SyncDir("/"))
	c.Crash()
	if a, b := h.read("/tmp"), h.read("/obj"); a != "<missing>" || b != "x" {
		t.Errorf("fsynced link + unlink: tmp=%q obj=%q", a, b)
	}
}

func TestCrashFSFailAfter(t *testing.T) {
	c := NewCrashFS()
	h := fsh{t, c}
	c.SetFailAfter(2)
	h.ok(c.Mkdir("/x"))
	h.ok(c.SyncDir("/"))
	if err := c.Mkdir("/y"); !errors.Is(err, ErrCrashed) {
		t.Fatalf("third mutating operation after SetFailAfter(2): %v", err)
	}
	if !c.IsDown() {
		t.Error("IsDown is false after the failure point")
	}
	if _, err := c.Stat("/"); !errors.Is(err, ErrCrashed) {
		t.Errorf("reads after the failure point: %v", err)
	}
	if _, err := c.ReadDir("/"); !errors.Is(err, ErrCrashed) {
		t.Errorf("readdir after the failure point: %v", err)
	}
	ops, syncs, _ := c.Counters()
	if ops != 2 || syncs != 1 {
		t.Errorf("counters: %d ops, %d syncs; want 2 and 1", ops, syncs)
	}
	c.Crash()
	if c.IsDown() {
		t.Error("still down after Crash")
	}
	if _, err := c.Stat("/x"); err != nil {
		t.Errorf("fsynced mkdir lost: %v", err)
	}
	h.ok(c.Mkdir("/z")) // usable again, and no failure point any more
	if _, _, crashes := c.Counters(); crashes != 1 {
		t.Errorf("crashes = %d", crashes)
	}
}

func TestCrashRandomKeepsSyncedAndVariesTheRest(t *testing.T) {
	seenEntry := map[bool]bool{}
	lengths := map[int]bool{}
	for seed := range uint64(200) {
		c := NewCrashFS()
		h := fsh{t, c}
		h.ok(c.Mkdir("/d"))
		h.ok(c.SyncDir("/"))
		f := h.write("/d/synced", "0123", true)
		h.ok(c.SyncDir("/d"))
		f.Write([]byte("4567")) // volatile tail
		h.write("/d/volatile", "v", true)
		c.CrashRandom(rand.New(rand.NewPCG(seed, 1)))
		got := h.read("/d/synced")
		if !strings.HasPrefix("01234567", got) || len(got) < 4 {
			t.Fatalf("seed %d: fsynced file became %q", seed, got)
		}
		lengths[len(got)] = true
		v := h.read("/d/volatile")
		seenEntry[v != "<missing>"] = true
		if v != "<missing>" && v != "v" {
			t.Fatalf("seed %d: volatile entry with content %q", seed, v)
		}
		// What survived a random crash is durable now.
		c.Crash()
		if again := h.read("/d/synced"); again != got {
			t.Fatalf("seed %d: %q after a second crash, %q after the first", seed, again, got)
		}
	}
	if len(seenEntry) != 2 {
		t.Errorf("a volatile entry always or never survived: %v", seenEntry)
	}
	if len(lengths) < 4 {
		t.Errorf("an appended file kept only lengths %v", lengths)
	}
}

// TestCrashFSBehavesLikeOSFS runs the same operations on the real file
// system and on CrashFS (no crash) and compares results, so that what the
// backend is tested against is what it runs on.
func TestCrashFSBehavesLikeOSFS(t *testing.T) {
	type result struct {
		err  string
		data string
	}
	class := func(err error) string {
		for _, e := range []error{fs.ErrNotExist, fs.ErrExist, syscall.ENOTDIR, syscall.ENOTEMPTY, syscall.EISDIR, errors.ErrUnsupported} {
			if errors.Is(err, e) {
				return e.Error()
			}
		}
		if err != nil {
			return "other: " + err.Error()
		}
		return ""
	}
	run := func(fsys FS, root string) []result {
		h := fsh{t, fsys}
		var out []result
		rec := func(err error) { out = append(out, result{err: class(err)}) }
		rec(fsys.Mkdir(root + "/d"))
		rec(fsys.Mkdir(root + "/d"))
		rec(fsys.Mkdir(root + "/missing/d"))
		f, err := fsys.CreateExcl(root + "/d/f")
		rec(err)
		f.Write([]byte("abc"))
		rec(f.Sync())
		rec(f.Close())
		_, err = fsys.CreateExcl(root + "/d/f")
		rec(err)
		_, err = fsys.CreateExcl(root + "/d/f/g")
		rec(err)
		rec(fsys.RenameNoReplace(root+"/d/f", root+"/d/f"))
		h.write(root+"/d/g", "xyz", true)
		rec(fsys.RenameNoReplace(root+"/d/g", root+"/d/f"))
		rec(fsys.RenameNoReplace(root+"/d/g", root+"/d/h"))
		rec(fsys.RenameNoReplace(root+"/d/g", root+"/d/i"))
		rec(fsys.Link(root+"/d/h", root+"/d/f"))
		rec(fsys.Link(root+"/d/h", root+"/d/j"))
		rec(fsys.Remove(root + "/d"))
		rec(fsys.Remove(root + "/d/nothing"))
		rec(fsys.SyncDir(root + "/d"))
		rec(fsys.SyncDir(root + "/d/nothing"))
		_, err = fsys.Stat(root + "/d/f/x")
		rec(err)
		_, err = fsys.ReadDir(root + "/d/f")
		rec(err)
		d, err := fsys.Open(root + "/d")
		rec(err)
		_, err = d.ReadAt(make([]byte, 1), 0)
		rec(err)
		fi, err := d.Stat()
		out = append(out, result{err: class(err), data: map[bool]string{true: "dir", false: "file"}[fi.IsDir]})
		d.Close()
		ents, err := fsys.ReadDir(root + "/d")
		var names []string
		for _, e := range ents {
			names = append(names, e.Name)
		}
		out = append(out, result{err: class(err), data: strings.Join(names, ",")})
		for _, n := range []string{"f", "h", "j"} {
			out = append(out, result{data: h.read(root + "/d/" + n)})
		}
		return out
	}
	got := run(NewCrashFS(), "")
	want := run(OSFS{}, filepath.ToSlash(t.TempDir()))
	if len(got) != len(want) {
		t.Fatalf("%d results on CrashFS, %d on the OS", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("step %d: CrashFS %+v, OS %+v", i, got[i], want[i])
		}
	}
}
