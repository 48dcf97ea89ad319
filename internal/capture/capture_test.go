package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
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

// What carryOver moved goes back with undoMoves, for a restore that fails
// after it (here carryOver itself, on an uncaptured entry below a path the
// point has as a file): the staging is then removed, and the live tree
// must have them again. An entry whose directory was replaced by a symlink
// meanwhile is not moved back through it: it stays where it is, reported.
func TestCarryOverUndo(t *testing.T) {
	base := t.TempDir()
	target, staging := filepath.Join(base, "live"), filepath.Join(base, "staging")
	for _, f := range []string{"a.tmp", "sub/b.tmp", "x/y.tmp", "keep.txt"} {
		p := filepath.Join(target, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(f), 0o644)
	}
	os.MkdirAll(filepath.Join(staging, "sub"), 0o755)
	os.WriteFile(filepath.Join(staging, "x"), []byte("x is a file in the point"), 0o644)
	moved, err := carryOver(target, staging, []string{"*.tmp"}, nil)
	if err == nil || len(moved) != 2 {
		t.Fatalf("carryOver: %v %v, want a.tmp and sub/b.tmp moved, then a failure on x/y.tmp", moved, err)
	}
	// The app replaces sub with a symlink to somewhere else meanwhile.
	outside := filepath.Join(base, "outside")
	os.MkdirAll(outside, 0o755)
	os.RemoveAll(filepath.Join(target, "sub"))
	os.Symlink(outside, filepath.Join(target, "sub"))
	left := undoMoves(moved)
	if len(left) != 1 || left[0][1] != filepath.Join(staging, "sub", "b.tmp") {
		t.Fatalf("undo left %v, want only sub/b.tmp", left)
	}
	if b, err := os.ReadFile(filepath.Join(target, "a.tmp")); err != nil || string(b) != "a.tmp" {
		t.Fatalf("a.tmp not back in the live tree: %q %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(outside, "b.tmp")); err == nil {
		t.Fatal("undo moved sub/b.tmp through the symlink")
	}
}

// Commit removes the replaced data and keeps in Old what it could not
// remove, so that the job's result still names it.
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
	if len(sw.Unlisted) != 1 || !strings.Contains(sw.Unlisted[0], "/srv/.old-c: permission denied") {
		t.Errorf("unlisted: %v", sw.Unlisted)
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
	// No globs: nothing listed, everything removed as before.
	sw = &Swap{Old: []string{"/srv/.old-c"}}
	sw.keepUncaptured(context.Background(), rt, nil, nil)
	if len(sw.Old) != 1 || len(sw.Left) != 0 {
		t.Errorf("without globs: %+v", sw)
	}
}
