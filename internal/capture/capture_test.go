package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/testenv"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

func TestGuard(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "srv")
	restore := filepath.Join(base, "restores")
	outside := filepath.Join(base, "etc")
	data := filepath.Join(base, "lifeboat-data")
	for _, d := range []string{root + "/app", restore, outside, data} {
		os.MkdirAll(d, 0o755)
	}
	os.Symlink(outside, filepath.Join(root, "escape"))                // a link out of the root
	os.Symlink(filepath.Join(root, "app"), filepath.Join(base, "in")) // a link into it
	os.Symlink(data, filepath.Join(root, "data-link"))
	g := &Guard{DataDir: data, Hosts: map[string]*lifeboat.Host{"local": {Name: "local", Roots: []string{root}, RestoreRoots: []string{restore}}}}
	for _, c := range []struct {
		path string
		ok   bool
	}{
		{root + "/app", true},
		{root + "/app/not-yet-there/x", true},
		{root, true},
		{base + "/in/file", true},
		{outside, false},
		{root + "/escape/passwd", false},
		{root + "/../etc", false},
		{root + "x", false}, // a sibling sharing the prefix
		{root + "/data-link", false},
		{"srv/app", false},
	} {
		err := g.CheckSource("local", c.path)
		if (err == nil) != c.ok {
			t.Errorf("source %s: %v (want ok=%v)", c.path, err, c.ok)
		}
	}
	if err := g.CheckSource("nope", root); err == nil || !strings.Contains(err.Error(), "not registered") {
		t.Errorf("unknown host: %v", err)
	}
	if err := g.CheckTarget("local", restore+"/x"); err != nil {
		t.Error(err)
	}
	if err := g.CheckTarget("local", root+"/app"); err == nil {
		t.Error("a capture root accepted as a restore target")
	}
	for _, h := range []*lifeboat.Host{
		{Name: "h", Roots: []string{data + "/sub"}},
		{Name: "h", Roots: []string{base}}, // contains the data directory
		{Name: "h", RestoreRoots: []string{"relative"}},
	} {
		if err := g.CheckHostRoots(h); err == nil {
			t.Errorf("roots %v %v accepted", h.Roots, h.RestoreRoots)
		}
	}
}

func TestPrepareConfig(t *testing.T) {
	base := t.TempDir()
	env := filepath.Join(base, "app", ".env")
	os.MkdirAll(filepath.Dir(env), 0o755)
	content := "A=1\n# comment\nexport B='two words'\n"
	os.WriteFile(env, []byte(content), 0o640)
	settingsJSON := filepath.Join(base, "app", "settings.json")
	os.WriteFile(settingsJSON, []byte(`{"db":{"port":5432}}`), 0o600)
	g := &Guard{Hosts: map[string]*lifeboat.Host{"local": {Name: "local", Roots: []string{base}}}}
	app := &lifeboat.App{Name: "a", Components: []lifeboat.Component{
		{Name: "config", Kind: "config", Files: []string{env, settingsJSON}, Settings: map[string]any{"FLAG": true}},
		{Name: "data", Kind: "files", Path: filepath.Join(base, "app"), Exclude: []string{"*.tmp"}},
	}}
	staging := filepath.Join(t.TempDir(), "staging")
	p, err := Prepare(context.Background(), app, g, staging)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range p.Settings {
		keys = append(keys, s.Key+"="+s.Value)
	}
	if got := strings.Join(keys, " "); got != "config/.env:A=1 config/.env:B=two words config/FLAG=true config/settings.json:db.port=5432" {
		t.Errorf("settings: %s", got)
	}
	if len(p.Sources) != 2 || p.Sources[0].Kind != "config" || p.Sources[1].Excludes[0] != "*.tmp" {
		t.Errorf("sources: %+v", p.Sources)
	}
	b, err := os.ReadFile(filepath.Join(staging, "config", "files", "0", ".env"))
	if err != nil || string(b) != content {
		t.Errorf("staged copy: %q %v", b, err)
	}
	if st, _ := os.Stat(filepath.Join(staging, "config", "files", "0", ".env")); st.Mode().Perm() != 0o640 {
		t.Errorf("staged mode %o", st.Mode().Perm())
	}
	var meta ConfigMeta
	mb, _ := os.ReadFile(filepath.Join(staging, "config", MetaName))
	if json.Unmarshal(mb, &meta) != nil || len(meta.Files) != 2 || meta.Files[0].Path != env || len(meta.Settings) != 1 {
		t.Errorf("meta: %s", mb)
	}
	p.Close()
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Error("staging not removed")
	}
	// A config file that does not parse names the file and line.
	os.WriteFile(env, []byte("A=1\nthis is not a setting\n"), 0o600)
	if _, err := Prepare(context.Background(), app, g, staging); err == nil || !strings.Contains(err.Error(), env+":2") {
		t.Errorf("bad config file: %v", err)
	}
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Error("staging left after a failure")
	}
}

// A restore to the original place carries over what the backup left out,
// matched by the backup's own glob rules (a trailing "/", "**", an
// included directory): with rules of its own it dropped live cache/ and
// node_modules/ directories, which the swap then deleted.
func TestCarryOverUsesBackupGlobs(t *testing.T) {
	base := t.TempDir()
	target, staging := filepath.Join(base, "live"), filepath.Join(base, "staging")
	for _, f := range []string{"cache/x", "web/node_modules/m.js", "web/app.js", "config/app.yml", "notes.txt"} {
		p := filepath.Join(target, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(f), 0o644)
	}
	os.MkdirAll(staging, 0o755)
	if _, err := carryOver(target, staging, []string{"cache/", "**/node_modules"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"cache/x", "web/node_modules/m.js"} {
		if _, err := os.Stat(filepath.Join(staging, f)); err != nil {
			t.Errorf("excluded %s not carried over: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(staging, "web/app.js")); err == nil {
		t.Error("web/app.js, which the backup captured, was carried over")
	}
	staging2 := filepath.Join(base, "staging2")
	os.MkdirAll(staging2, 0o755)
	if _, err := carryOver(target, staging2, nil, []string{"config"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(staging2, "config/app.yml")); err == nil {
		t.Error("config/app.yml, which --include config captures, was carried over")
	}
	if _, err := os.Stat(filepath.Join(staging2, "notes.txt")); err != nil {
		t.Errorf("notes.txt, which the include leaves out, not carried over: %v", err)
	}
}

// What carryOver cannot carry stays in the live tree, counted (here x/y.tmp,
// below a path the point has as a file, and z.tmp, which the point has
// too: the restored one wins). What it moved goes back with undo, for a
// restore that fails after it, each directory opened again from the two
// roots without following symlinks: an entry whose directory was replaced
// by a symlink, or renamed, meanwhile is not moved back; it stays in the
// staging, named.
func TestCarryOverUndo(t *testing.T) {
	base := t.TempDir()
	target, staging := filepath.Join(base, "live"), filepath.Join(base, "staging")
	for _, f := range []string{"a.tmp", "sub/b.tmp", "moved/c.tmp", "x/y.tmp", "z.tmp", "keep.txt"} {
		p := filepath.Join(target, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(f), 0o644)
	}
	os.MkdirAll(filepath.Join(staging, "sub"), 0o755)
	os.WriteFile(filepath.Join(staging, "x"), []byte("x is a file in the point"), 0o644)
	os.WriteFile(filepath.Join(staging, "z.tmp"), []byte("restored"), 0o644)
	moved, err := carryOver(target, staging, []string{"*.tmp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer moved.close()
	got := slices.Sorted(slices.Values(moved.moves))
	if !slices.Equal(got, []string{"a.tmp", "moved/c.tmp", "sub/b.tmp"}) || moved.leftN != 2 || !strings.Contains(moved.why, "y.tmp") && !strings.Contains(moved.why, "z.tmp") {
		t.Fatalf("carryOver: moved %v, left %d (%s); want a.tmp, sub/b.tmp and moved/c.tmp moved, x/y.tmp and z.tmp left", got, moved.leftN, moved.why)
	}
	if b, _ := os.ReadFile(filepath.Join(staging, "z.tmp")); string(b) != "restored" {
		t.Errorf("the restored z.tmp was replaced: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(staging, "moved", "c.tmp")); string(b) != "moved/c.tmp" {
		t.Errorf("moved/c.tmp not carried: %q", b)
	}
	// The app replaces sub with a symlink to somewhere else, and renames
	// moved, meanwhile.
	outside := filepath.Join(base, "outside")
	os.MkdirAll(outside, 0o755)
	os.RemoveAll(filepath.Join(target, "sub"))
	os.Symlink(outside, filepath.Join(target, "sub"))
	os.Rename(filepath.Join(target, "moved"), filepath.Join(target, "renamed"))
	if left := slices.Sorted(slices.Values(moved.undo())); !slices.Equal(left, []string{"moved/c.tmp", "sub/b.tmp"}) {
		t.Fatalf("undo left %v, want moved/c.tmp and sub/b.tmp", left)
	}
	for f, want := range map[string]string{"a.tmp": "a.tmp", "x/y.tmp": "x/y.tmp", "z.tmp": "z.tmp"} {
		if b, err := os.ReadFile(filepath.Join(target, f)); err != nil || string(b) != want {
			t.Errorf("%s not back in the live tree: %q %v", f, b, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(outside, "b.tmp")); err == nil {
		t.Fatal("undo moved sub/b.tmp through the symlink")
	}
	if b, _ := os.ReadFile(filepath.Join(staging, "sub", "b.tmp")); string(b) != "sub/b.tmp" {
		t.Errorf("sub/b.tmp not left in the staging: %q", b)
	}
}

// carryOver never follows a symlink: not one the live tree has where it
// walks (an app user's link out of its tree is not walked, only carried
// as a link if excluded), nor one the restored tree has where the live
// tree has a directory (what is below it stays, named). Directories it
// creates in the restored tree take the live ones' modes.
func TestCarryOverFollowsNoSymlink(t *testing.T) {
	base := t.TempDir()
	target, staging, outside := filepath.Join(base, "live"), filepath.Join(base, "staging"), filepath.Join(base, "outside")
	for _, f := range []string{"outside/secret.tmp", "live/logs/app.tmp", "live/new/deep/n.tmp"} {
		p := filepath.Join(base, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(f), 0o644)
	}
	os.Chmod(filepath.Join(target, "new"), 0o750|fs.ModeSetgid)
	os.Symlink(outside, filepath.Join(target, "escape"))
	os.MkdirAll(staging, 0o755)
	os.Symlink(outside, filepath.Join(staging, "logs")) // the point has logs as a link
	moved, err := carryOver(target, staging, []string{"*.tmp"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer moved.close()
	if moved.leftN != 1 || !strings.HasPrefix(moved.why, "logs/app.tmp: ") {
		t.Errorf("left %d (%s), want logs/app.tmp", moved.leftN, moved.why)
	}
	if _, err := os.Stat(filepath.Join(outside, "secret.tmp")); err != nil {
		t.Errorf("a file was moved out of the directory a live symlink points to: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(outside, "app.tmp")); err == nil {
		t.Error("logs/app.tmp was moved through the restored tree's symlink")
	}
	if b, _ := os.ReadFile(filepath.Join(staging, "new", "deep", "n.tmp")); string(b) != "live/new/deep/n.tmp" {
		t.Errorf("new/deep/n.tmp not carried: %q", b)
	}
	if st, err := os.Stat(filepath.Join(staging, "new")); err != nil || st.Mode()&(fs.ModePerm|fs.ModeSetgid) != 0o750|fs.ModeSetgid {
		t.Errorf("created directory: %v %v, want the live one's mode", st.Mode(), err)
	}
}

// Commit removes the replaced data and keeps in Old what it could not
// remove, so that the job's result still names it.
// TestSwapCommitRemovesLastFirst: a kept database's log, after it in Old,
// goes first, so that a commit stopped half-way never leaves a log whose
// database is gone; one that cannot be removed keeps its database.
func TestSwapCommitRemovesLastFirst(t *testing.T) {
	var order []string
	sw := &Swap{Old: []string{"/srv/.lifeboat-old-x-app.db", "/srv/.lifeboat-old-x-app.db-wal"}, remove: func(p string) error {
		order = append(order, p)
		return nil
	}}
	if err := sw.Commit(); err != nil || !slices.Equal(order, []string{"/srv/.lifeboat-old-x-app.db-wal", "/srv/.lifeboat-old-x-app.db"}) || len(sw.Old) != 0 {
		t.Errorf("removed %q (%v), left %q", order, err, sw.Old)
	}
	// A log that cannot be removed keeps its database.
	order = nil
	sw.Old = []string{"/srv/.lifeboat-old-x-app.db", "/srv/.lifeboat-old-x-app.db-wal", "/srv/.lifeboat-old-x-other"}
	sw.remove = func(p string) error {
		order = append(order, p)
		if strings.HasSuffix(p, "-wal") {
			return errors.New("connection lost")
		}
		return nil
	}
	if err := sw.Commit(); err == nil || !slices.Equal(sw.Old, []string{"/srv/.lifeboat-old-x-app.db", "/srv/.lifeboat-old-x-app.db-wal"}) || len(order) != 2 {
		t.Errorf("removed %q (%v), left %q: want the log and its database left", order, err, sw.Old)
	}
}

func TestSwapCommitKeepsWhatItCouldNotRemove(t *testing.T) {
	sw := &Swap{Old: []string{"/kept/a", "/kept/b"}, remove: func(p string) error {
		if p == "/kept/b" {
			return errors.New("refused")
		}
		return nil
	}}
	if err := sw.Commit(); err == nil || len(sw.Old) != 1 || sw.Old[0] != "/kept/b" {
		t.Fatalf("Commit: %v, Old %v; want an error and /kept/b still named", err, sw.Old)
	}
}

// listOnly is a RemoteTarget that can only list (a fixed tree, or an error).
type listOnly struct {
	RemoteTarget
	trees map[string][]vault.RemoteEntry
}

func (l listOnly) List(_ context.Context, root string) ([]vault.RemoteEntry, error) {
	es, ok := l.trees[root]
	if !ok {
		return nil, errors.New("permission denied")
	}
	return es, nil
}

// TestKeepUncaptured: a replaced tree on an SSH host that holds files the
// component's globs leave out is kept (never removed) and they are named;
// one without (an empty excluded directory is nothing) is removed as
// before; one that cannot be listed is kept.
func TestKeepUncaptured(t *testing.T) {
	ent := func(p string, typ byte) vault.RemoteEntry { return vault.RemoteEntry{Path: p, Type: typ} }
	rt := listOnly{trees: map[string][]vault.RemoteEntry{
		"/srv/.old-a": { // listed out of walk order on purpose
			ent("cache/x/1", 'f'), ent(".", 'd'), ent("index.html", 'f'), ent("logs", 'd'), ent("logs/app.log", 'f'),
			ent("cache", 'd'), ent("cache/x", 'd'), ent("cache/2", 'l'), ent("tmp", 'd'), ent("img/a.png", 'f'), ent("img", 'd'),
			ent("img/a.png.bak", 'f'),
		},
		"/srv/.old-b": {ent(".", 'd'), ent("index.html", 'f'), ent("tmp", 'd'), ent("tmp/empty", 'd')},
	}}
	sw := &Swap{Old: []string{"/srv/.old-a", "/srv/.old-b", "/srv/.old-c"}}
	sw.keepUncaptured(context.Background(), rt, []string{"cache/", "tmp/", "*.log", "*.bak"}, nil)
	if want := []string{"/srv/.old-b"}; !slices.Equal(sw.Old, want) {
		t.Errorf("removed after the health check: %v, want %v", sw.Old, want)
	}
	if want := []string{"/srv/.old-a", "/srv/.old-c"}; !slices.Equal(sw.Left, want) {
		t.Errorf("kept for good: %v, want %v", sw.Left, want)
	}
	if want := []string{"/srv/.old-a/cache", "/srv/.old-a/img/a.png.bak", "/srv/.old-a/logs/app.log"}; !slices.Equal(sw.Uncaptured, want) || sw.UncapturedN != 3 {
		t.Errorf("named: %v (%d), want %v", sw.Uncaptured, sw.UncapturedN, want)
	}
	if len(sw.Notes) != 2 || !strings.Contains(sw.Notes[0], "3 entries") || !strings.Contains(sw.Notes[1], "/srv/.old-c, never removed: it could not be listed") || !strings.Contains(sw.Notes[1], "permission denied") {
		t.Errorf("notes: %q", sw.Notes)
	}
	if k := sw.Kept(); len(k) != 3 || k[0] != "/srv/.old-b" {
		t.Errorf("Kept: %v", k)
	}
	// Includes: a file they leave out is uncaptured; directories never are.
	sw = &Swap{Old: []string{"/srv/.old-a"}}
	sw.keepUncaptured(context.Background(), rt, nil, []string{"img", "index.html", "cache"})
	// (img/a.png.bak is under img: included.)
	if want := []string{"/srv/.old-a/logs/app.log"}; !slices.Equal(sw.Uncaptured, want) || sw.UncapturedN != 1 {
		t.Errorf("with includes, named: %v, want %v", sw.Uncaptured, want)
	}
	// Many: at most maxUncaptured named, all counted.
	var many []vault.RemoteEntry
	for i := range 30 {
		many = append(many, ent(fmt.Sprintf("f%02d.log", i), 'f'))
	}
	rt.trees["/srv/.old-m"] = many
	sw = &Swap{Old: []string{"/srv/.old-m"}}
	sw.keepUncaptured(context.Background(), rt, []string{"*.log"}, nil)
	if len(sw.Uncaptured) != maxUncaptured || sw.UncapturedN != 30 || sw.Uncaptured[0] != "/srv/.old-m/f00.log" {
		t.Errorf("many: %d named of %d, first %q", len(sw.Uncaptured), sw.UncapturedN, sw.Uncaptured[0])
	}
	// No globs: a tree is kept only for what a nested component's restore
	// kept in it (.lifeboat-*).
	rt.trees["/srv/.old-n"] = []vault.RemoteEntry{ent(".", 'd'), ent("index.html", 'f'), ent(".lifeboat-old-1234abcd-uploads", 'd'), ent(".lifeboat-old-1234abcd-uploads/cat.jpg", 'f')}
	sw = &Swap{Old: []string{"/srv/.old-b", "/srv/.old-n"}}
	sw.keepUncaptured(context.Background(), rt, nil, nil)
	if !slices.Equal(sw.Old, []string{"/srv/.old-b"}) || !slices.Equal(sw.Uncaptured, []string{"/srv/.old-n/.lifeboat-old-1234abcd-uploads"}) {
		t.Errorf("without globs: %+v", sw)
	}
}

// carryOver holds descriptors per level of depth, not per directory it
// carried from: under a limit of 200 open files it carries out of 600
// directories (it kept two per directory, and ran out).
func TestCarryOverBoundsDescriptors(t *testing.T) {
	base := t.TempDir()
	target, staging := filepath.Join(base, "live"), filepath.Join(base, "staging")
	for i := range 600 {
		p := filepath.Join(target, fmt.Sprintf("d%03d", i), "s", "x.tmp")
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
	}
	os.MkdirAll(staging, 0o755)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = 200
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	moved, err := carryOver(target, staging, []string{"*.tmp"}, nil)
	unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	if err != nil {
		t.Fatal(err)
	}
	defer moved.close()
	if len(moved.moves) != 600 || moved.leftN != 0 {
		t.Fatalf("moved %d, left %d (%s)", len(moved.moves), moved.leftN, moved.why)
	}
	if left := moved.undo(); len(left) != 0 {
		t.Fatalf("undo left %d (first %s)", len(left), left[0])
	}
}

// uncapturedIn finds, without following symlinks, what the globs leave
// out of a tree: files and links, and excluded directories holding some
// (named once); not empty directories, sockets or FIFOs.
func TestUncapturedIn(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "kept"), filepath.Join(base, "outside")
	for _, f := range []string{"index.html", "app.log", "cache/a/1", "web/old.log", "outside/secret.log"} {
		p := filepath.Join(root, f)
		if strings.HasPrefix(f, "outside/") {
			p = filepath.Join(base, f)
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(f), 0o644)
	}
	os.MkdirAll(filepath.Join(root, "tmp", "empty", "deeper"), 0o755)
	os.Symlink(outside, filepath.Join(root, "escape")) // not walked
	os.Symlink("index.html", filepath.Join(root, "latest.log"))
	if err := unix.Mkfifo(filepath.Join(root, "queue.log"), 0o644); err != nil {
		t.Fatal(err)
	}
	names, n, err := uncapturedIn(root, []string{"*.log", "cache/", "tmp/"}, nil)
	if want := []string{"app.log", "cache", "latest.log", "web/old.log"}; err != nil || n != 4 || !slices.Equal(names, want) {
		t.Errorf("uncapturedIn = %v %d %v, want %v", names, n, err, want)
	}
	if names, n, err := uncapturedIn(root, nil, nil); err != nil || n != 0 || names != nil {
		t.Errorf("without globs: %v %d %v", names, n, err)
	}
	// What a nested component's restore kept in the tree counts.
	os.MkdirAll(filepath.Join(root, "media", ".lifeboat-old-1234abcd-uploads"), 0o755)
	os.WriteFile(filepath.Join(root, "media", ".lifeboat-old-1234abcd-uploads", "cat.jpg"), []byte("meow"), 0o644)
	if names, n, err := uncapturedIn(root, nil, nil); err != nil || n != 1 || !slices.Equal(names, []string{"media/.lifeboat-old-1234abcd-uploads"}) {
		t.Errorf("a nested component's kept copy: %v %d %v", names, n, err)
	}
	if _, _, err := uncapturedIn(filepath.Join(root, "escape"), []string{"*.log"}, nil); err == nil {
		t.Error("a symlink root was followed")
	}
}

// mountsUnder reads the kernel's mount table: mount points strictly inside
// a directory, with escaped names (a space is \040), symlinks in the
// directory's own path resolved.
func TestMountsUnder(t *testing.T) {
	base, _ := filepath.EvalSymlinks(t.TempDir())
	os.MkdirAll(filepath.Join(base, "data"), 0o755)
	os.MkdirAll(filepath.Join(base, "data2"), 0o755)
	os.Symlink(filepath.Join(base, "data"), filepath.Join(base, "link"))
	table := filepath.Join(t.TempDir(), "mountinfo")
	os.WriteFile(table, []byte(strings.Join([]string{
		"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
		"40 22 0:40 / " + base + "/data/uploads rw,relatime - tmpfs tmpfs rw",
		"41 22 0:41 / " + base + "/data/with\\040space rw - tmpfs tmpfs rw",
		"42 22 0:42 / " + base + "/data2 rw - tmpfs tmpfs rw",
		"43 22 0:43 / " + base + "/data2/x rw - tmpfs tmpfs rw",
		"44 22 0:44 / " + base + "/data22 rw - tmpfs tmpfs rw",
	}, "\n")+"\n"), 0o644)
	defer func(old string) { mountinfo = old }(mountinfo)
	mountinfo = table
	for _, dir := range []string{filepath.Join(base, "data"), filepath.Join(base, "link")} {
		got, err := mountsUnder(dir)
		if want := []string{base + "/data/uploads", base + "/data/with space"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("mountsUnder(%s) = %q %v, want %q", dir, got, err, want)
		}
	}
	if err := RefuseMounts("data", filepath.Join(base, "data")); err == nil || !strings.Contains(err.Error(), base+"/data/uploads is a mount point inside") || lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Errorf("RefuseMounts: %v", err)
	}
	// A mount point itself (with another inside, or not) cannot be swapped.
	if err := RefuseMounts("data2", filepath.Join(base, "data2")); err == nil || !strings.Contains(err.Error(), base+"/data2 is a mount point: ") {
		t.Errorf("RefuseMounts of a mount point: %v", err)
	}
	os.MkdirAll(filepath.Join(base, "plain"), 0o755)
	if err := RefuseMounts("plain", filepath.Join(base, "plain")); err != nil {
		t.Errorf("no mount at or inside: %v", err)
	}
}

// A replaced tree with a file system mounted inside is not removed: that
// would delete what the mounted one holds (a real tmpfs, as root).
func TestRemoveTreeSparesMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "mounting a tmpfs needs root")
	}
	tree := filepath.Join(t.TempDir(), "kept")
	mnt := filepath.Join(tree, "uploads")
	os.MkdirAll(mnt, 0o755)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		testenv.Skip(t, "cannot mount a tmpfs here: "+err.Error())
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	os.WriteFile(filepath.Join(mnt, "cat.jpg"), []byte("meow"), 0o644)
	os.WriteFile(filepath.Join(tree, "index.html"), []byte("old"), 0o644)
	sw := &Swap{Old: []string{tree}}
	if err := sw.Commit(); err == nil || !strings.Contains(err.Error(), "mount point") || !slices.Equal(sw.Old, []string{tree}) {
		t.Fatalf("Commit: %v, Old %v", err, sw.Old)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "cat.jpg")); err != nil || string(b) != "meow" {
		t.Errorf("the mounted file system's content: %q %v", b, err)
	}
	if err := RefuseMounts("data", tree); err == nil {
		t.Error("a restore over a tree with a mount inside was not refused")
	}
	unix.Unmount(mnt, 0)
	if err := sw.Commit(); err != nil || len(sw.Old) != 0 {
		t.Errorf("Commit once unmounted: %v %v", err, sw.Old)
	}
}
