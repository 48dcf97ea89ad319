package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAccessCLI: users, groups, roles, tokens and sign-in through the
// binary: a user signs in with a password, sees only what her group's
// role allows, access check explains both answers (exit 9 for no), an
// app's own token backs it up until revoked, and no password or token is
// ever printed where it should not be.
func TestAccessCLI(t *testing.T) {
	st, tmp := siteStory(t, "  - name: site\n    environment: production\n    owners: [site-team]\n    components:\n      - {name: www, kind: files, path: SRC}\n  - name: blog\n    environment: staging\n    components:\n      - {name: www, kind: files, path: SRC}\n")
	defer st.srv.stop(t)

	st.cli(0, "user", "add", "ann")
	st.cli(0, "group", "add", "site-team")
	st.cli(0, "group", "member", "add", "site-team", "ann")
	// A role for ann herself on the production app is refused; for her group, fine.
	if r := st.cli(2, "access", "grant", "ann", "reader", "app:site"); !strings.Contains(r.stderr, "production app site") {
		t.Errorf("user assignment refused how? %s", r.stderr)
	}
	st.cli(0, "access", "grant", "site-team", "restore-operator", "app:site")
	if r := st.cli(0, "access", "report"); !strings.Contains(r.stdout, "Orphaned apps: 1") || !strings.Contains(r.stdout, "blog: no owner group") {
		t.Errorf("access report:\n%s", r.stdout)
	}
	const pw = "ann's long password 42"
	if r := lifeboatIn(t, st.env, pw+"\n", "user", "passwd", "ann"); r.code != 0 {
		t.Fatalf("user passwd: %d %s", r.code, r.stderr)
	}
	annHome := filepath.Join(tmp, "ann-home")
	os.MkdirAll(annHome, 0o700)
	annEnv := []string{"HOME=" + annHome, "LIFEBOAT_SERVER=" + "http://" + st.addr}
	if r := lifeboatIn(t, annEnv, "not her password\n", "login", "--server", "http://"+st.addr, "--user", "ann"); r.code != 5 {
		t.Errorf("login with a wrong password: exit %d, want 5: %s", r.code, r.stderr)
	}
	if r := lifeboatIn(t, annEnv, pw+"\n", "login", "--server", "http://"+st.addr, "--user", "ann"); r.code != 0 || !strings.Contains(r.stdout, "as ann") {
		t.Fatalf("login --user ann: %d %s %s", r.code, r.stdout, r.stderr)
	}
	// Her own password: the current one first (stdin: line 1), then the new.
	if r := lifeboatIn(t, annEnv, "a wrong current one\nann's new password 43\n", "user", "passwd", "ann"); r.code != 9 || !strings.Contains(r.stderr, "current password") {
		t.Errorf("own passwd with a wrong current password: exit %d %s", r.code, r.stderr)
	}
	if r := lifeboatIn(t, annEnv, pw+"\nann's new password 43\n", "user", "passwd", "ann"); r.code != 0 {
		t.Errorf("own passwd: exit %d %s", r.code, r.stderr)
	}
	// Ann sees the app her group may restore, not the other one.
	r := lifeboat(t, annEnv, "app", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "site") || strings.Contains(r.stdout, "blog") {
		t.Errorf("ann's app list (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := lifeboat(t, annEnv, "host", "list"); r.code != 9 || !strings.Contains(r.stderr, "forbidden") {
		t.Errorf("ann lists hosts: exit %d %s", r.code, r.stderr)
	}
	if r := lifeboat(t, annEnv, "access", "check", "restore.run", "app:site"); r.code != 0 || !strings.Contains(r.stdout, "ALLOWED") || !strings.Contains(r.stdout, "group site-team") {
		t.Errorf("access check restore.run app:site: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := lifeboat(t, annEnv, "access", "check", "restore.run", "app:blog"); r.code != 9 || !strings.Contains(r.stdout, "DENIED") {
		t.Errorf("access check restore.run app:blog: exit %d\n%s", r.code, r.stdout)
	}

	// The app's own token, for a pipeline: back up, then revoked.
	tr := st.cli(0, "token", "create", "--for", "app:site", "--ttl", "1h")
	appToken := strings.TrimSpace(tr.stdout)
	if !strings.HasPrefix(appToken, "lbt_") || strings.Contains(tr.stderr, appToken) {
		t.Fatalf("token create: %q / %q", tr.stdout, tr.stderr)
	}
	pipeline := []string{"HOME=" + annHome + "-none", "LIFEBOAT_SERVER=http://" + st.addr, "LIFEBOAT_TOKEN=" + appToken}
	if r := lifeboat(t, pipeline, "backup", "--app", "site", "--wait"); r.code != 0 {
		t.Errorf("the app's identity backs up: exit %d %s", r.code, r.stderr)
	}
	if r := lifeboat(t, pipeline, "backup", "--app", "blog", "--wait"); r.code != 9 {
		t.Errorf("the app's identity backs up another app: exit %d %s", r.code, r.stderr)
	}
	list := st.cli(0, "token", "list", "--all")
	if strings.Contains(list.stdout, appToken) || !strings.Contains(list.stdout, "app:site") {
		t.Errorf("token list:\n%s", list.stdout)
	}
	var id string
	for _, line := range strings.Split(list.stdout, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "app:site" {
			id = f[0]
		}
	}
	st.cli(0, "token", "revoke", id)
	if r := lifeboat(t, pipeline, "backup", "--app", "site", "--wait"); r.code != 5 {
		t.Errorf("a revoked token backs up: exit %d %s", r.code, r.stderr)
	}
	// The audit trail: ann's refused host list is in it, exported as CSV and
	// JSON lines, and the chain verifies (the server copies it to the vault
	// when it stops, at the latest; verify reads the catalog's chain).
	if r := st.cli(0, "audit", "list", "--principal", "ann", "--action", "read"); !strings.Contains(r.stdout, "denied") {
		t.Errorf("audit list of ann's refusals:\n%s", r.stdout)
	}
	csvOut := filepath.Join(tmp, "audit.csv")
	st.cli(0, "audit", "export", "--format", "csv", "--to", csvOut, "--since", "1h")
	if b, _ := os.ReadFile(csvOut); !strings.HasPrefix(string(b), "seq,time,principal,action") || !strings.Contains(string(b), "session.create") {
		t.Errorf("csv export: %.300s", b)
	}
	st.cli(2, "audit", "export", "--format", "csv", "--to", csvOut) // never overwrites
	if r := st.cli(0, "audit", "export", "--app", "site"); !strings.Contains(r.stdout, `"target":"site"`) || strings.Contains(r.stdout, `"target":"blog"`) {
		t.Errorf("jsonl export for site:\n%.500s", r.stdout)
	}
	if r := st.cli(0, "audit", "verify"); !strings.Contains(r.stdout, "chain intact") {
		t.Errorf("audit verify:\n%s", r.stdout)
	}
	// Key rotation through the binary: a new server key and data key, the
	// old data rewritten, and the app still backs up and lists its points.
	if r := st.cli(0, "key", "rotate", "--vault", "default", "--data-key", "--reencrypt", "--wait"); !strings.Contains(r.stdout, "Re-encrypted vault default under data key 2") {
		t.Errorf("key rotate:\n%s%s", r.stdout, r.stderr)
	}
	if r := st.cli(0, "key", "list", "--vault", "default"); strings.Count(r.stdout, "data key") != 2 || !strings.Contains(r.stdout, "the server's") {
		t.Errorf("key list:\n%s", r.stdout)
	}
	st.cli(0, "backup", "--app", "site", "--wait")
	// Nothing secret printed by the CLI except the token create's stdout.
	for _, out := range st.outputs {
		if strings.Contains(out, pw) || (out != tr.stdout && strings.Contains(out, appToken)) {
			t.Errorf("a secret in the CLI's output: %.200s", out)
		}
	}
	if strings.Contains(st.srv.output(), pw) || strings.Contains(st.srv.output(), appToken) {
		t.Error("a secret in the server's log")
	}
}

// siteStory starts a server (startStory) with a host whose root holds a
// one-page site at SRC, and applies apps (YAML list items, SRC replaced by
// the site's directory). It returns the story and its temporary directory.
func siteStory(t *testing.T, apps string) (*story, string) {
	t.Helper()
	tmp := t.TempDir()
	home := filepath.Join(tmp, "home")
	os.MkdirAll(home, 0o700)
	src := filepath.Join(tmp, "srv", "site")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "index.html"), []byte("<h1>site</h1>"), 0o644)
	st := startStory(t, home, filepath.Join(tmp, "data"))
	doc := "hosts:\n  - name: local\n    roots: [" + filepath.Join(tmp, "srv") + "]\napps:\n" + strings.ReplaceAll(apps, "SRC", src)
	os.WriteFile(filepath.Join(tmp, "lifeboat.yaml"), []byte(doc), 0o600)
	st.cli(0, "apply", "-f", filepath.Join(tmp, "lifeboat.yaml"))
	return st, tmp
}
