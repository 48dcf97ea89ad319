package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lifeboat-vault/lifeboat/internal/storage/local"
	"github.com/lifeboat-vault/lifeboat/internal/testenv"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// These tests run the real binary, built once, as a user would.

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lifeboat-bin-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "lifeboat")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type run struct {
	stdout, stderr string
	code           int
}

func lifeboat(t *testing.T, env []string, args ...string) run {
	t.Helper()
	return lifeboatIn(t, env, "", args...)
}

// lifeboatIn runs the CLI with stdin.
func lifeboatIn(t *testing.T, env []string, stdin string, args ...string) run {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return run{so.String(), se.String(), code}
}

func mustRun(t *testing.T, env []string, args ...string) run {
	t.Helper()
	r := lifeboat(t, env, args...)
	if r.code != 0 {
		t.Fatalf("lifeboat %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func passEnv() []string { return []string{"LIFEBOAT_PASSPHRASE=test passphrase"} }

func writeTree(t *testing.T, root string, r *rand.Rand, files int) {
	t.Helper()
	for i := range files {
		p := filepath.Join(root, fmt.Sprintf("d%d", i%7), fmt.Sprintf("f%d.txt", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		n := r.IntN(64 << 10)
		if i%20 == 0 {
			n = 1<<20 + r.IntN(2<<20)
		}
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCLIRoundTripAndErrors(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app")
	writeTree(t, src, rand.New(rand.NewPCG(1, 2)), 50)
	os.Symlink("d0", filepath.Join(src, "link"))
	vlt := filepath.Join(dir, "vault")
	env := passEnv()

	// Missing vault: exit 4, one line naming the place.
	r := lifeboat(t, env, "vault", "points", "--vault", vlt)
	if r.code != 4 || !strings.Contains(r.stderr, vlt) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("points on missing vault: %d %q", r.code, r.stderr)
	}
	// No passphrase: exit 2.
	if r := lifeboat(t, nil, "vault", "init", "--vault", vlt); r.code != 2 || !strings.Contains(r.stderr, "LIFEBOAT_PASSPHRASE") {
		t.Fatalf("init without passphrase: %d %q", r.code, r.stderr)
	}
	// A new vault wants 12 characters or more; nothing is created.
	short := []string{"LIFEBOAT_PASSPHRASE=hunter2"}
	for _, args := range [][]string{{"vault", "init", "--vault", vlt}, {"vault", "backup", "--init", "--vault", vlt, src}} {
		if r := lifeboat(t, short, args...); r.code != 2 || !strings.Contains(r.stderr, "at least 12 characters") {
			t.Fatalf("%v with a 7-character passphrase: %d %q", args[:2], r.code, r.stderr)
		}
		if _, err := os.Stat(vlt); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%v with a short passphrase created %s: %v", args[:2], vlt, err)
		}
	}
	mustRun(t, env, "vault", "init", "--vault", vlt)
	if r := lifeboat(t, env, "vault", "init", "--vault", vlt); r.code != 8 {
		t.Fatalf("second init: %d %q", r.code, r.stderr)
	}
	// Wrong passphrase: exit 5, nothing changed.
	before := listFiles(t, vlt)
	if r := lifeboat(t, []string{"LIFEBOAT_PASSPHRASE=nope"}, "vault", "backup", "--vault", vlt, src); r.code != 5 || !strings.Contains(r.stderr, "wrong passphrase") {
		t.Fatalf("wrong passphrase: %d %q", r.code, r.stderr)
	}
	if after := listFiles(t, vlt); after != before {
		t.Fatalf("a failed backup changed the vault")
	}
	// Passphrase file must be private.
	pf := filepath.Join(dir, "pass")
	os.WriteFile(pf, []byte("test passphrase\n"), 0o644)
	if r := lifeboat(t, nil, "vault", "points", "--vault", vlt, "--passphrase-file", pf); r.code != 2 || !strings.Contains(r.stderr, "0600") {
		t.Fatalf("world-readable passphrase file: %d %q", r.code, r.stderr)
	}
	os.Chmod(pf, 0o600)
	// A passphrase command (a secret manager's CLI): its output is the
	// passphrase; a failing one is a clear error that shows none of it.
	mustRun(t, nil, "vault", "points", "--vault", vlt, "--passphrase-command", "cat "+pf)
	mustRun(t, []string{"LIFEBOAT_PASSPHRASE_COMMAND=printf 'test passphrase'"}, "vault", "points", "--vault", vlt)
	if r := lifeboat(t, nil, "vault", "points", "--vault", vlt, "--passphrase-command", "echo leaked-output; exit 3"); r.code != 2 || !strings.Contains(r.stderr, "passphrase command failed: exit status 3") || strings.Contains(r.stderr, "leaked-output") {
		t.Fatalf("failing passphrase command: %d %q", r.code, r.stderr)
	}
	if r := lifeboat(t, nil, "vault", "points", "--vault", vlt, "--passphrase-command", "echo wrong"); r.code != 5 {
		t.Fatalf("a command printing the wrong passphrase: %d %q", r.code, r.stderr)
	}
	if r := lifeboat(t, nil, "vault", "points", "--vault", vlt, "--passphrase-command", "true", "--passphrase-file", pf); r.code != 2 {
		t.Fatalf("both passphrase sources: %d %q", r.code, r.stderr)
	}

	r = mustRun(t, nil, "vault", "backup", "--vault", vlt, "--passphrase-file", pf, "--label", "reason=test", "-o", "json", src)
	var pt struct {
		ID     string
		Labels map[string]string
		Stats  struct{ Files, BytesRead int64 }
	}
	if err := json.Unmarshal([]byte(r.stdout), &pt); err != nil {
		t.Fatalf("backup json: %v\n%s", err, r.stdout)
	}
	if pt.Labels["reason"] != "test" || pt.Stats.Files != 50 {
		t.Fatalf("backup result: %+v", pt)
	}
	if r.stderr != "" {
		t.Errorf("backup wrote to stderr in a pipe: %q", r.stderr)
	}
	// Re-backup reads nothing.
	r = mustRun(t, env, "vault", "backup", "--vault", vlt, "-o", "json", src)
	var pt2 struct{ Stats struct{ BytesRead int64 } }
	json.Unmarshal([]byte(r.stdout), &pt2)
	if pt2.Stats.BytesRead != 0 {
		t.Errorf("unchanged re-backup read %d bytes", pt2.Stats.BytesRead)
	}
	r = mustRun(t, env, "vault", "points", "--vault", vlt, "-o", "json")
	var pts []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &pts); err != nil || len(pts) != 2 {
		t.Fatalf("points: %v %s", err, r.stdout)
	}
	// A vault inside the source is not captured into itself.
	inner := filepath.Join(src, ".vault")
	mustRun(t, env, "vault", "backup", "--init", "--vault", inner, src)
	r = mustRun(t, env, "vault", "ls", "--vault", inner, "latest", "app")
	if strings.Contains(r.stdout, ".vault") {
		t.Errorf("the vault captured itself:\n%s", r.stdout)
	}
	os.RemoveAll(inner)
	r = mustRun(t, env, "vault", "ls", "--vault", vlt, pt.ID[:8], "app/d1")
	if !strings.Contains(r.stdout, "f1.txt") {
		t.Errorf("ls: %s", r.stdout)
	}
	dst := filepath.Join(dir, "restored")
	mustRun(t, env, "vault", "restore", "--vault", vlt, "latest", "--to", dst)
	if diff := diffDirs(t, src, filepath.Join(dst, "app")); diff != "" {
		t.Fatalf("restore differs: %s", diff)
	}
	// Back to where it came from, with nothing but the vault.
	moved := src + ".moved"
	os.Rename(src, moved)
	mustRun(t, env, "vault", "restore", "--vault", vlt, "latest", "--to-original")
	if diff := diffDirs(t, moved, src); diff != "" {
		t.Fatalf("restore to the original place differs: %s", diff)
	}
	if r := lifeboat(t, env, "vault", "restore", "--vault", vlt, "latest", "--to-original"); r.code != 8 || !strings.Contains(r.stderr, src) {
		t.Errorf("restore to an occupied original place: %d %q", r.code, r.stderr)
	}
	// A finished restore leaves nothing to resume: refused, nothing changed.
	if r := lifeboat(t, env, "vault", "restore", "--vault", vlt, "latest", "--to-original", "--resume"); r.code != 8 || !strings.Contains(r.stderr, "no unfinished restore") || strings.Contains(r.stderr, "incomplete") {
		t.Errorf("--to-original --resume over a finished restore: %d %q", r.code, r.stderr)
	}
	if diff := diffDirs(t, moved, src); diff != "" {
		t.Fatalf("a refused --resume changed the original place: %s", diff)
	}
	if r := lifeboat(t, env, "vault", "restore", "--vault", vlt, "latest", "--to-original", "--to", dst); r.code != 2 {
		t.Errorf("--to with --to-original: %d", r.code)
	}
	if r := lifeboat(t, env, "vault", "restore", "--vault", vlt, "latest", "--to", dst); r.code != 8 {
		t.Errorf("restore into non-empty dir: %d %q", r.code, r.stderr)
	}
	if r := lifeboat(t, env, "vault", "restore", "--vault", vlt, "ffffffff", "--to", filepath.Join(dir, "x")); r.code != 4 {
		t.Errorf("restore of unknown point: %d %q", r.code, r.stderr)
	}
	if r := lifeboat(t, env, "vault", "restore", "--vault", vlt, "zz", "--to", filepath.Join(dir, "x")); r.code != 2 {
		t.Errorf("restore of bad point id: %d %q", r.code, r.stderr)
	}
	r = mustRun(t, env, "vault", "check", "--vault", vlt, "--read-data")
	if !strings.Contains(r.stdout, "no problems found") {
		t.Errorf("check: %s", r.stdout)
	}
	r = mustRun(t, env, "vault", "check", "--vault", vlt, "--read-data=50%", "-o", "json")
	var rep struct {
		Packs     int `json:"packs"`
		PacksRead int `json:"packs_read"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.PacksRead == 0 || rep.PacksRead > rep.Packs {
		t.Errorf("check --read-data=50%%: %v %s", err, r.stdout)
	}
	if r := lifeboat(t, env, "vault", "check", "--vault", vlt, "--read-data=150"); r.code != 2 {
		t.Errorf("check bad percent: %d", r.code)
	}
	if r := lifeboat(t, env, "vault", "points", "--vault", "ftp://x/y"); r.code != 2 {
		t.Errorf("unknown scheme: %d %q", r.code, r.stderr)
	}
	if r := lifeboat(t, env, "vault", "frobnicate"); r.code != 2 {
		t.Errorf("unknown command: %d", r.code)
	}
}

func listFiles(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if fi != nil {
			fmt.Fprintf(&b, "%s %d\n", p, fi.Size())
		}
		return nil
	})
	return b.String()
}

// diffDirs compares two trees by content, mode and symlink target.
func diffDirs(t *testing.T, a, b string) string {
	t.Helper()
	sa, sb := dirState(t, a), dirState(t, b)
	for k, v := range sa {
		if sb[k] != v {
			return fmt.Sprintf("%s: want %q got %q", k, v, sb[k])
		}
	}
	for k := range sb {
		if _, ok := sa[k]; !ok {
			return fmt.Sprintf("%s: unexpected", k)
		}
	}
	return ""
}

func dirState(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			tg, _ := os.Readlink(p)
			m[rel] = "link:" + tg
		case fi.IsDir():
			m[rel] = fmt.Sprintf("dir %v %d", fi.Mode(), fi.ModTime().UnixNano())
		default:
			b, _ := os.ReadFile(p)
			m[rel] = fmt.Sprintf("file %v %d %x", fi.Mode(), fi.ModTime().UnixNano(), hashOf(b))
		}
		return nil
	})
	return m
}

func hashOf(b []byte) uint64 {
	var h uint64 = 1469598103934665603
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

// TestCrashKillDuringBackup kills real backup processes with SIGKILL at
// random moments. The vault must never be broken: check passes, a new backup
// works, and every point a process reported as done restores exactly.
// newTreeVault writes a random tree of n files (seeded by s1, s2) and
// creates a vault beside it; it returns the tree, the vault, the
// environment that opens it, and the random source, for more changes.
func newTreeVault(t *testing.T, s1, s2 uint64, n int) (src, vlt string, env []string, r *rand.Rand) {
	t.Helper()
	dir := t.TempDir()
	src, vlt = filepath.Join(dir, "app"), filepath.Join(dir, "vault")
	r = rand.New(rand.NewPCG(s1, s2))
	writeTree(t, src, r, n)
	env = passEnv()
	mustRun(t, env, "vault", "init", "--vault", vlt)
	return src, vlt, env, r
}

func TestCrashKillDuringBackup(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	src, vlt, env, r := newTreeVault(t, 9, 9, 120)
	type done struct {
		id    string
		state map[string]string
	}
	var reported []done
	killed := 0
	for i := range 24 {
		// Change a few files between runs so that every run has new data.
		for j := 0; j < 5; j++ {
			p := filepath.Join(src, fmt.Sprintf("d%d", r.IntN(7)), fmt.Sprintf("new%d-%d.bin", i, j))
			b := make([]byte, 256<<10+r.IntN(1<<20))
			for k := range b {
				b[k] = byte(r.Uint32())
			}
			os.WriteFile(p, b, 0o644)
		}
		state := dirState(t, src)
		cmd := exec.Command(bin, "vault", "backup", "--vault", vlt, "-o", "json", src)
		cmd.Env = append(os.Environ(), env...)
		var so bytes.Buffer
		cmd.Stdout = &so
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Key derivation takes ~0.1-0.3 s; kill anywhere from before it to after the end.
		delay := time.Duration(r.IntN(900)) * time.Millisecond
		timer := time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGKILL) })
		err := cmd.Wait()
		timer.Stop()
		if err == nil {
			var p struct{ ID string }
			if jerr := json.Unmarshal(so.Bytes(), &p); jerr != nil || p.ID == "" {
				t.Fatalf("run %d: finished but no point reported: %q", i, so.String())
			}
			reported = append(reported, done{p.ID, state})
		} else {
			killed++
		}
	}
	t.Logf("%d runs killed, %d finished", killed, len(reported))
	if killed == 0 {
		t.Fatalf("no run was killed: the test proves nothing")
	}
	res := lifeboat(t, env, "vault", "check", "--vault", vlt, "--read-data")
	if res.code != 0 {
		t.Fatalf("check after kills: %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	mustRun(t, env, "vault", "backup", "--vault", vlt, src)
	for i, d := range reported {
		dst := filepath.Join(t.TempDir(), fmt.Sprintf("restore%d", i))
		mustRun(t, env, "vault", "restore", "--vault", vlt, d.id, "--to", dst, "--path", "app")
		got := dirState(t, dst)
		for k, v := range d.state {
			if got[k] != v {
				t.Fatalf("point %s: %s: want %q got %q", d.id, k, v, got[k])
			}
		}
		if len(got) != len(d.state) {
			t.Fatalf("point %s: %d entries, want %d", d.id, len(got), len(d.state))
		}
	}
}

// TestCLIOnS3 runs the disaster-kit commands against the real S3 server.
func TestCLIOnS3(t *testing.T) {
	env := testenv.Require(t, "LIFEBOAT_TEST_S3_ENDPOINT", "LIFEBOAT_TEST_S3_ACCESS", "LIFEBOAT_TEST_S3_SECRET", "LIFEBOAT_TEST_S3_BUCKET")
	dir := t.TempDir()
	src := filepath.Join(dir, "site")
	writeTree(t, src, rand.New(rand.NewPCG(3, 4)), 40)
	loc := fmt.Sprintf("s3://%s/cli-%d", env["LIFEBOAT_TEST_S3_BUCKET"], time.Now().UnixNano())
	secret := env["LIFEBOAT_TEST_S3_SECRET"]
	e := append(passEnv(), "AWS_ENDPOINT_URL=http://"+env["LIFEBOAT_TEST_S3_ENDPOINT"],
		"AWS_ACCESS_KEY_ID="+env["LIFEBOAT_TEST_S3_ACCESS"], "AWS_SECRET_ACCESS_KEY="+secret)
	all := ""
	for _, args := range [][]string{
		{"vault", "init", "--vault", loc},
		{"vault", "backup", "--vault", loc, "--label", "reason=s3", src},
		{"vault", "backup", "--vault", loc, src},
		{"vault", "points", "--vault", loc},
		{"vault", "ls", "--vault", loc, "latest", "site"},
		{"vault", "check", "--vault", loc, "--read-data"},
		{"vault", "restore", "--vault", loc, "latest", "--to", filepath.Join(dir, "out")},
	} {
		r := mustRun(t, e, args...)
		all += r.stdout + r.stderr
	}
	if d := diffDirs(t, src, filepath.Join(dir, "out", "site")); d != "" {
		t.Fatalf("S3 restore differs: %s", d)
	}
	// Credentials from a 0600 file work too.
	cf := filepath.Join(dir, "creds")
	os.WriteFile(cf, []byte("access_key_id="+env["LIFEBOAT_TEST_S3_ACCESS"]+"\nsecret_access_key="+secret+"\n"), 0o600)
	r := mustRun(t, append(passEnv(), "AWS_ENDPOINT_URL=http://"+env["LIFEBOAT_TEST_S3_ENDPOINT"]), "vault", "points", "--vault", loc, "--s3-credentials-file", cf)
	all += r.stdout + r.stderr
	// Wrong secret and unreachable endpoint: one clear line, no secret in it.
	bad := append(passEnv(), "AWS_ENDPOINT_URL=http://"+env["LIFEBOAT_TEST_S3_ENDPOINT"],
		"AWS_ACCESS_KEY_ID="+env["LIFEBOAT_TEST_S3_ACCESS"], "AWS_SECRET_ACCESS_KEY=not-the-secret-xyz")
	if r := lifeboat(t, bad, "vault", "points", "--vault", loc); r.code != 6 || strings.Contains(r.stderr, "not-the-secret-xyz") {
		t.Errorf("wrong secret: %d %q", r.code, r.stderr)
	}
	down := append(passEnv(), "AWS_ENDPOINT_URL=http://127.0.0.1:1", "AWS_ACCESS_KEY_ID=x", "AWS_SECRET_ACCESS_KEY="+secret)
	if r := lifeboat(t, down, "vault", "points", "--vault", loc); r.code != 6 || strings.Contains(r.stderr, secret) || !strings.Contains(r.stderr, loc) {
		t.Errorf("unreachable endpoint: %d %q", r.code, r.stderr)
	} else {
		all += r.stderr
	}
	if strings.Contains(all, secret) {
		t.Errorf("the S3 secret appeared in output")
	}
}

// TestLsJSONKeepsNonUTF8Names: names and link targets that are not UTF-8
// appear in `vault ls -o json` as U+FFFD in path/target (JSON strings cannot
// hold the bytes) and exactly in path_raw/target_raw.
func TestLsJSONKeepsNonUTF8Names(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app")
	bad := "caf\xe9.txt" // Latin-1, as an old upload might be named
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, bad), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("to-\xff", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "plain.txt"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	vlt := filepath.Join(dir, "vault")
	env := passEnv()
	mustRun(t, env, "vault", "backup", "--init", "--vault", vlt, src)
	r := mustRun(t, env, "vault", "ls", "-o", "json", "--vault", vlt, "latest", "app")
	var list []struct {
		Path      string `json:"path"`
		Target    string `json:"target"`
		PathRaw   []byte `json:"path_raw"`
		TargetRaw []byte `json:"target_raw"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("ls -o json: %v\n%s", err, r.stdout)
	}
	got := map[string]bool{}
	for _, e := range list {
		name := e.Path
		if e.PathRaw != nil {
			if !strings.ContainsRune(e.Path, utf8.RuneError) {
				t.Errorf("%q has path_raw but its path shows no U+FFFD", e.Path)
			}
			name = string(e.PathRaw)
		}
		got[name] = true
		switch name {
		case "app/link":
			if string(e.TargetRaw) != "to-\xff" {
				t.Errorf("link target_raw = %q, want %q", e.TargetRaw, "to-\xff")
			}
		case "app/plain.txt":
			if e.PathRaw != nil || e.TargetRaw != nil {
				t.Errorf("a UTF-8 name got raw fields: %+v", e)
			}
		}
	}
	for _, want := range []string{"app/" + bad, "app/link", "app/plain.txt"} {
		if !got[want] {
			t.Errorf("ls -o json lost %q; got %v", want, got)
		}
	}
}

// A PATH that is a symlink to a directory (a deploy's "current" link) is
// captured as the link, and the user is told so instead of getting a point
// of 0 files with no word.
func TestBackupNotesSymlinkSource(t *testing.T) {
	dir := t.TempDir()
	release := filepath.Join(dir, "releases", "42")
	if err := os.MkdirAll(release, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(release, "index.php"), []byte("<?php"), 0o644); err != nil {
		t.Fatal(err)
	}
	current := filepath.Join(dir, "current")
	if err := os.Symlink("releases/42", current); err != nil {
		t.Fatal(err)
	}
	vlt := filepath.Join(dir, "vault")
	r := mustRun(t, passEnv(), "vault", "backup", "--init", "-q", "--vault", vlt, current)
	if !strings.Contains(r.stderr, "is a symlink to the directory") || !strings.Contains(r.stderr, release) {
		t.Errorf("no note about the symlinked source; stderr:\n%s", r.stderr)
	}
	// With a trailing slash too: the link is what is captured.
	r = mustRun(t, passEnv(), "vault", "backup", "-q", "--vault", vlt, current+"/")
	if !strings.Contains(r.stderr, "is a symlink to the directory") {
		t.Errorf("no note about the symlinked source given as %s/; stderr:\n%s", current, r.stderr)
	}
	r = mustRun(t, passEnv(), "vault", "backup", "-q", "--vault", vlt, release)
	if strings.Contains(r.stderr, "symlink") {
		t.Errorf("a note for a real directory; stderr:\n%s", r.stderr)
	}
}

// A vault inside the tree it backs up is never captured into itself, even
// when --vault names it through a symlink (or a bind mount) and the walk
// reaches it by its real path.
func TestBackupSkipsVaultReachedByAnotherPath(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "real", "app")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("a"), 0o644)
	if err := os.Symlink(filepath.Join(base, "real"), filepath.Join(base, "alias")); err != nil {
		t.Fatal(err)
	}
	vlt := filepath.Join(base, "alias", "app", "vault")
	mustRun(t, passEnv(), "vault", "backup", "--init", "--vault", vlt, src)
	r := mustRun(t, passEnv(), "vault", "ls", "--vault", vlt, "-o", "json", "latest", "app")
	var list []struct{ Path string }
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("ls: %v\n%s", err, r.stdout)
	}
	var paths []string
	for _, e := range list {
		paths = append(paths, e.Path)
	}
	if !slices.Contains(paths, "app/a.txt") || slices.ContainsFunc(paths, func(p string) bool { return strings.HasPrefix(p, "app/vault") }) {
		t.Errorf("point holds %q; want app/a.txt and nothing of the vault", paths)
	}
}

// One damaged manifest does not hide the other points: `points` lists
// them, names the damaged one on stderr and exits 7; `restore latest`
// restores the newest point that opens; a forgotten point is marked.
func TestPointsListedPastDamagedManifest(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("one"), 0o644)
	vlt := filepath.Join(dir, "vault")
	env := passEnv()
	first := gcBackupID(t, mustRun(t, env, "vault", "backup", "--init", "--vault", vlt, "-q", "-o", "json", src).stdout)
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("two"), 0o644)
	second := gcBackupID(t, mustRun(t, env, "vault", "backup", "--vault", vlt, "-q", "-o", "json", src).stdout)
	third := gcBackupID(t, mustRun(t, env, "vault", "backup", "--vault", vlt, "-q", "-o", "json", src).stdout)
	mustRun(t, env, "vault", "forget", "--vault", vlt, third)
	m := filepath.Join(vlt, "points", first)
	b, err := os.ReadFile(m)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	os.Chmod(m, 0o600)
	if err := os.WriteFile(m, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r := lifeboat(t, env, "vault", "points", "--vault", vlt)
	if r.code != 7 || !strings.Contains(r.stdout, second[:8]) || !strings.Contains(r.stderr, first[:8]) {
		t.Fatalf("points with a damaged manifest: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, third[:8]+" (forgotten)") {
		t.Errorf("the forgotten point is not marked:\n%s", r.stdout)
	}
	to := filepath.Join(dir, "restored")
	mustRun(t, env, "vault", "restore", "--vault", vlt, "latest", "--to", to)
	if got, _ := os.ReadFile(filepath.Join(to, "app", "a.txt")); string(got) != "two" {
		t.Errorf("restore latest gave %q, want the newest point that opens and is not forgotten", got)
	}
	// A collection that deletes nothing because a manifest does not open
	// says so in its exit code, for the cron job that runs it.
	if r := lifeboat(t, env, "vault", "gc", "--vault", vlt); r.code != 7 || !strings.Contains(r.stderr, "nothing was deleted") {
		t.Errorf("gc with a damaged manifest: exit %d: %s", r.code, r.stderr)
	}
}

// Bad input to backup --init is refused before a vault is created, and
// --to-original checks every target before it writes any.
func TestRefusalsChangeNothing(t *testing.T) {
	dir := t.TempDir()
	env := passEnv()
	for i, args := range [][]string{
		{filepath.Join(dir, "does-not-exist")},
		{"--exclude", "[", dir},
		{"--parent", "zzzz", dir},
	} {
		vlt := filepath.Join(dir, fmt.Sprintf("v%d", i))
		r := lifeboat(t, env, append([]string{"vault", "backup", "--init", "--vault", vlt}, args...)...)
		if r.code == 0 {
			t.Fatalf("backup %q succeeded", args)
		}
		if _, err := os.Stat(vlt); err == nil {
			t.Errorf("backup %q (exit %d: %s) created a vault anyway", args, r.code, strings.TrimSpace(r.stderr))
		}
	}

	if r := lifeboat(t, nil, "key", "list"); r.code != 2 || !strings.Contains(r.stderr, "--vault") {
		t.Errorf("key list without --vault: exit %d: %s", r.code, r.stderr)
	}

	// A vault location that is a file: bad input (exit 2), for every command.
	afile := filepath.Join(dir, "afile")
	os.WriteFile(afile, []byte("not a vault"), 0o644)
	for _, args := range [][]string{{"vault", "init", "--vault", afile}, {"vault", "points", "--vault", afile}, {"vault", "backup", "--init", "--vault", afile, dir}} {
		if r := lifeboat(t, env, args...); r.code != 2 || !strings.Contains(r.stderr, "is a file, not a directory") {
			t.Errorf("%v onto a file: exit %d: %s", args[:2], r.code, r.stderr)
		}
	}

	// init into live data: refused, nothing written there.
	live := filepath.Join(dir, "live")
	os.MkdirAll(live, 0o755)
	os.WriteFile(filepath.Join(live, "app.db"), []byte("data"), 0o644)
	if r := lifeboat(t, env, "vault", "init", "--vault", live); r.code != 8 {
		t.Errorf("init into a non-empty directory: exit %d: %s", r.code, r.stderr)
	}
	if ents, _ := os.ReadDir(live); len(ents) != 1 {
		t.Errorf("init into a non-empty directory wrote into it: %v", ents)
	}
	// The root of a fresh disk holds lost+found: that is fine.
	disk := filepath.Join(dir, "disk")
	os.MkdirAll(filepath.Join(disk, "lost+found"), 0o700)
	mustRun(t, env, "vault", "init", "--vault", disk)

	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.MkdirAll(a, 0o755)
	os.MkdirAll(b, 0o755)
	os.WriteFile(filepath.Join(a, "fa"), []byte("a"), 0o644)
	os.WriteFile(filepath.Join(b, "fb"), []byte("b"), 0o644)
	vlt := filepath.Join(dir, "vault")
	mustRun(t, env, "vault", "backup", "--init", "--vault", vlt, a, b)
	os.RemoveAll(a)
	os.WriteFile(filepath.Join(b, "new"), []byte("n"), 0o644)
	r := lifeboat(t, env, "vault", "restore", "--vault", vlt, "latest", "--to-original")
	if r.code != 8 || !strings.Contains(r.stderr, b) {
		t.Fatalf("--to-original onto a non-empty %s: exit %d: %s", b, r.code, r.stderr)
	}
	if _, err := os.Stat(a); err == nil {
		t.Errorf("%s was restored although the restore was refused", a)
	}

	// Components from nested paths: refused before anything is written.
	outer := filepath.Join(dir, "site")
	inner := filepath.Join(outer, "config")
	os.MkdirAll(inner, 0o755)
	os.WriteFile(filepath.Join(inner, "app.yaml"), []byte("x"), 0o644)
	nested := filepath.Join(dir, "nested-vault")
	mustRun(t, env, "vault", "backup", "--init", "--vault", nested, outer, inner)
	os.RemoveAll(outer)
	r = lifeboat(t, env, "vault", "restore", "--vault", nested, "latest", "--to-original")
	if r.code != 2 || !strings.Contains(r.stderr, "nested paths") {
		t.Fatalf("--to-original of nested components: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(outer); err == nil {
		t.Errorf("%s was restored although the restore was refused", outer)
	}
	// Nested through a symlink: the same.
	os.MkdirAll(inner, 0o755)
	os.WriteFile(filepath.Join(inner, "app.yaml"), []byte("x"), 0o644)
	alias := filepath.Join(dir, "alias")
	os.Symlink(outer, alias)
	viaLink := filepath.Join(dir, "link-vault")
	mustRun(t, env, "vault", "backup", "--init", "--vault", viaLink, outer, filepath.Join(alias, "config"))
	os.RemoveAll(outer)
	os.MkdirAll(outer, 0o755)
	r = lifeboat(t, env, "vault", "restore", "--vault", viaLink, "latest", "--to-original")
	if r.code != 2 || !strings.Contains(r.stderr, "nested paths") {
		t.Fatalf("--to-original of components nested through a symlink: exit %d: %s", r.code, r.stderr)
	}
	if ents, _ := os.ReadDir(outer); len(ents) != 0 {
		t.Errorf("%s was written although the restore was refused: %v", outer, ents)
	}
}

// A LIFEBOAT_PASSPHRASE ending in a line break (a secret file mounted into
// the variable) is the passphrase without it, as from --passphrase-file;
// a vault created before that, with the break, still opens with it.
func TestPassphraseEnvTrailingNewline(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	vlt := filepath.Join(dir, "vault")
	mustRun(t, []string{"LIFEBOAT_PASSPHRASE=test passphrase\n"}, "vault", "backup", "--init", "--vault", vlt, src)
	pf := filepath.Join(dir, "pass")
	os.WriteFile(pf, []byte("test passphrase\n"), 0o600)
	mustRun(t, nil, "vault", "points", "--vault", vlt, "--passphrase-file", pf)
	mustRun(t, passEnv(), "vault", "points", "--vault", vlt)

	// A vault whose key slot was made with the line break (before it was
	// cut), through the engine: the variable with the break still opens it.
	old := filepath.Join(dir, "old")
	be, err := local.Create(old, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vault.Init(context.Background(), be, []byte("test passphrase\n"), vault.Options{}); err != nil {
		t.Fatal(err)
	}
	mustRun(t, []string{"LIFEBOAT_PASSPHRASE=test passphrase\n"}, "vault", "points", "--vault", old)

	// A vault made with a short passphrase (before new vaults needed 12
	// characters) still opens with it, --init or not.
	shortVault := filepath.Join(dir, "short")
	be, err = local.Create(shortVault, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vault.Init(context.Background(), be, []byte("pw"), vault.Options{}); err != nil {
		t.Fatal(err)
	}
	mustRun(t, []string{"LIFEBOAT_PASSPHRASE=pw"}, "vault", "backup", "--init", "--vault", shortVault, src)
	mustRun(t, []string{"LIFEBOAT_PASSPHRASE=pw"}, "vault", "points", "--vault", shortVault)
}
