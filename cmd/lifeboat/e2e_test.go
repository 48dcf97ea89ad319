package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	examplesMu  sync.Mutex
	exampleBins = map[string]string{} // examples/NAME -> binary
	exampleErrs = map[string]error{}
)

// buildExample builds the example app examples/NAME once, next to bin.
func buildExample(t *testing.T, name string) string {
	t.Helper()
	examplesMu.Lock()
	defer examplesMu.Unlock()
	if _, done := exampleBins[name]; !done {
		exampleBins[name] = filepath.Join(filepath.Dir(bin), name)
		out, err := exec.Command("go", "build", "-o", exampleBins[name], "../../examples/"+name).CombinedOutput()
		if err != nil {
			exampleErrs[name] = fmt.Errorf("build %s: %v\n%s", name, err, out)
		}
	}
	if err := exampleErrs[name]; err != nil {
		t.Fatal(err)
	}
	return exampleBins[name]
}

// buildNotes builds the example notes app once.
func buildNotes(t *testing.T) string { return buildExample(t, "notes") }

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a long-running child process with its output in a file.
type proc struct {
	cmd *exec.Cmd
	out *bytes.Buffer
	mu  *sync.Mutex
}

type lockedBuf struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func start(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{out: &bytes.Buffer{}, mu: &sync.Mutex{}}
	p.cmd = exec.Command(name, args...)
	p.cmd.Env = env
	w := lockedBuf{p.mu, p.out}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

func (p *proc) output() string { p.mu.Lock(); defer p.mu.Unlock(); return p.out.String() }

// stop sends SIGTERM and returns the exit code.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("%s did not stop on SIGTERM:\n%s", p.cmd.Path, p.output())
	}
	return p.cmd.ProcessState.ExitCode()
}

func waitHTTP(t *testing.T, url string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if p.cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not answer:\n%s", url, p.output())
}

func httpJSON(t *testing.T, method, url, token string, body []byte, out any) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, url, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

// story is a running `lifeboat serve` (real process, fresh data directory)
// and the CLI bound to it.
type story struct {
	t       *testing.T
	addr    string
	env     []string
	srv     *proc
	token   string
	outputs []string // everything the CLI printed, for the secret checks
}

func startStory(t *testing.T, home, dataDir string, serveArgs ...string) *story {
	t.Helper()
	st := &story{t: t, addr: freePort(t)}
	st.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LIFEBOAT_DATA_DIR=" + dataDir, "LIFEBOAT_SERVER=http://" + st.addr}
	st.srv = start(t, st.env, bin, append([]string{"serve", "--listen", st.addr}, serveArgs...)...)
	waitHTTP(t, "http://"+st.addr+"/healthz", st.srv)
	tokenB, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	st.token = strings.TrimSpace(string(tokenB))
	return st
}

// cli runs the CLI against the server and checks its exit code.
func (st *story) cli(wantCode int, args ...string) run {
	st.t.Helper()
	r := lifeboat(st.t, st.env, args...)
	st.outputs = append(st.outputs, r.stdout, r.stderr)
	if r.code != wantCode {
		st.t.Fatalf("lifeboat %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, wantCode, r.stdout, r.stderr)
	}
	return r
}

type note struct {
	ID    int64  `json:"id"`
	Title string `json:"title"`
	Body  string `json:"body"`
}

type upload struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// TestEndToEndStory is the seed's story with real processes: lifeboat
// serve, the example notes app, the CLI. Back up, damage the app (delete
// uploads, corrupt the database, change a setting), restore the latest
// point, restart the app, and check through HTTP that every record, file
// and setting is back — and that no secret leaked anywhere.
func TestEndToEndStory(t *testing.T) {
	notes := buildNotes(t)
	tmp := t.TempDir()
	home := filepath.Join(tmp, "home")
	dataDir := filepath.Join(tmp, "lifeboat-data")
	appDir := filepath.Join(tmp, "srv", "notes")
	os.MkdirAll(filepath.Join(appDir, "data"), 0o755)
	os.MkdirAll(home, 0o700)
	apiKey := "notes-api-key-" + fmt.Sprint(time.Now().UnixNano())
	envFile := filepath.Join(appDir, "notes.env")
	os.WriteFile(envFile, []byte("NOTES_GREETING=hello from the story\nNOTES_API_KEY=\""+apiKey+"\"\n"), 0o600)

	yml, err := os.ReadFile("../../examples/notes/lifeboat.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ymlText := strings.ReplaceAll(string(yml), "/srv/notes", appDir)
	ymlText = strings.ReplaceAll(ymlText, "/srv/restores", filepath.Join(tmp, "restores"))
	yamlPath := filepath.Join(tmp, "lifeboat.yaml")
	os.WriteFile(yamlPath, []byte(ymlText), 0o644)

	st := startStory(t, home, dataDir)
	addr, env, srv, token, cli := st.addr, st.env, st.srv, st.token, st.cli

	r := cli(0, "apply", "-f", yamlPath, "--dry-run")
	if !strings.Contains(r.stdout, "+ app notes") || !strings.Contains(r.stdout, "Dry run") {
		t.Errorf("dry run: %s", r.stdout)
	}
	cli(0, "apply", "-f", yamlPath)
	if r := cli(0, "apply", "-f", yamlPath); !strings.Contains(r.stdout, "No changes") {
		t.Errorf("second apply: %s", r.stdout)
	}

	// The app runs and gets data.
	appAddr := freePort(t)
	appEnv := []string{"PATH=" + os.Getenv("PATH")}
	startApp := func() *proc {
		p := start(t, appEnv, notes, "-config", envFile, "-data", filepath.Join(appDir, "data"), "-addr", appAddr)
		waitHTTP(t, "http://"+appAddr+"/config", p)
		return p
	}
	app := startApp()
	base := "http://" + appAddr
	var want []note
	for i := range 5 {
		var n note
		b, _ := json.Marshal(map[string]string{"title": fmt.Sprintf("note %d", i), "body": strings.Repeat("text ", i+1)})
		if code := httpJSON(t, "POST", base+"/notes", apiKey, b, &n); code != 201 {
			t.Fatalf("create note: %d", code)
		}
		want = append(want, n)
	}
	var wantUploads []upload
	for i := range 3 {
		data := bytes.Repeat([]byte{byte(i), 0xfe, byte(i * 7)}, 100000+i)
		var u upload
		if code := httpJSON(t, "PUT", fmt.Sprintf("%s/uploads/file-%d.bin", base, i), apiKey, data, &u); code != 201 {
			t.Fatalf("upload: %d", code)
		}
		sum := sha256.Sum256(data)
		if u.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("upload sha256 %s", u.SHA256)
		}
		wantUploads = append(wantUploads, u)
	}
	// Back up while the app runs and keeps writing: the database is
	// captured live, in one consistent snapshot.
	writing := make(chan struct{})
	var extra []note
	go func() {
		defer close(writing)
		for i := 0; i < 40; i++ {
			var n note
			b, _ := json.Marshal(map[string]string{"title": fmt.Sprintf("during backup %d", i), "body": "x"})
			if code := httpJSON(t, "POST", base+"/notes", apiKey, b, &n); code != 201 {
				t.Errorf("write during the backup: %d", code)
				return
			}
			extra = append(extra, n)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	r = cli(0, "backup", "--app", "notes", "--reason", "pre-deploy", "--label", "release=1.4.2", "--wait")
	if !strings.Contains(r.stdout, "Point ") {
		t.Errorf("backup output: %s", r.stdout)
	}
	<-writing
	if code := app.stop(t); code != 0 {
		t.Fatalf("app exit %d: %s", code, app.output())
	}
	r = cli(0, "points", "--app", "notes", "-o", "json")
	var pts []struct {
		ID         string            `json:"id"`
		Labels     map[string]string `json:"labels"`
		Components []struct {
			Name string `json:"name"`
			Kind string `json:"kind"`
		} `json:"components"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &pts); err != nil || len(pts) != 1 || pts[0].Labels["reason"] != "pre-deploy" || pts[0].Labels["release"] != "1.4.2" {
		t.Fatalf("points: %v %s", err, r.stdout)
	}
	first := pts[0].ID

	// Damage: uploads deleted and a setting changed; a backup of that, then
	// diff names what changed.
	os.RemoveAll(filepath.Join(appDir, "data", "uploads"))
	os.WriteFile(envFile, []byte("NOTES_GREETING=oops\nNOTES_API_KEY=\""+apiKey+"\"\n"), 0o600)
	cli(0, "backup", "--app", "notes", "--wait", "-q")
	r = cli(0, "points", "--app", "notes", "-o", "json")
	json.Unmarshal([]byte(r.stdout), &pts)
	r = cli(0, "diff", "--app", "notes", first[:8], pts[0].ID[:8])
	for _, w := range []string{`NOTES_GREETING: "hello from the story" -> "oops"`, "- file data/uploads/file-0.bin"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("diff misses %q:\n%s", w, r.stdout)
		}
	}
	// Then the database is corrupted: the app is unhealthy, and a backup
	// refuses to capture a file that is not a database.
	os.WriteFile(filepath.Join(appDir, "data", "notes.db"), bytes.Repeat([]byte("garbage!"), 4096), 0o644)
	app = startApp()
	var cfg map[string]string
	httpJSON(t, "GET", base+"/config", "", nil, &cfg)
	if cfg["greeting"] != "oops" {
		t.Fatalf("damage not visible: %v", cfg)
	}
	if code := httpJSON(t, "GET", base+"/healthz", "", nil, nil); code != 500 {
		t.Fatalf("corrupt database still healthy: %d", code)
	}
	app.stop(t)
	if r := cli(1, "backup", "--app", "notes", "--wait", "-q"); !strings.Contains(r.stderr, "notes.db is not a SQLite database") {
		t.Errorf("backup of a corrupt database: %s", r.stderr)
	}

	// Restore the pre-deploy point to the original place.
	r = cli(0, "restore", "--app", "notes", "--point", first[:8], "--to", "original", "--dry-run")
	if !strings.Contains(r.stdout, "overwrite") {
		t.Errorf("restore plan: %s", r.stdout)
	}
	r = cli(0, "restore", "--app", "notes", "--point", first[:8], "--to", "original")
	if !strings.Contains(r.stdout, "safety point") {
		t.Errorf("restore output: %s", r.stdout)
	}

	// Restart and check everything through HTTP.
	app = startApp()
	if code := httpJSON(t, "GET", base+"/healthz", "", nil, nil); code != 200 {
		t.Fatalf("health after restore: %d", code)
	}
	httpJSON(t, "GET", base+"/config", "", nil, &cfg)
	if cfg["greeting"] != "hello from the story" {
		t.Errorf("setting after restore: %v", cfg)
	}
	// Every note written before the backup is back, and of those written
	// during it, a prefix: a consistent snapshot has no hole.
	var got []note
	httpJSON(t, "GET", base+"/notes", "", nil, &got)
	if len(got) < len(want) || len(got) > len(want)+len(extra) {
		t.Fatalf("notes after restore: %d, want %d to %d", len(got), len(want), len(want)+len(extra))
	}
	all := append(append([]note{}, want...), extra...)
	for i := range got {
		if got[i].ID != all[i].ID || got[i].Title != all[i].Title || got[i].Body != all[i].Body {
			t.Errorf("note %d: %+v, want %+v", i, got[i], all[i])
		}
	}
	t.Logf("%d notes restored: %d from before the backup, %d written during it", len(got), len(want), len(got)-len(want))
	var gotUploads []upload
	httpJSON(t, "GET", base+"/uploads", "", nil, &gotUploads)
	if fmt.Sprint(gotUploads) != fmt.Sprint(wantUploads) {
		t.Errorf("uploads after restore: %v, want %v", gotUploads, wantUploads)
	}
	// The API key still guards writes (the secret setting came back too).
	if code := httpJSON(t, "POST", base+"/notes", "wrong", []byte(`{"title":"x","body":"y"}`), nil); code != 401 {
		t.Errorf("write with a wrong key: %d", code)
	}
	app.stop(t)

	// CLI errors: exit codes and one clear line.
	if r := cli(4, "points", "--app", "nope"); !strings.Contains(r.stderr, "app nope not found") {
		t.Errorf("unknown app: %s", r.stderr)
	}
	bad := filepath.Join(tmp, "bad.yaml")
	os.WriteFile(bad, []byte("apps:\n  - name: x\n    colour: red\n"), 0o644)
	if r := cli(2, "apply", "-f", bad); !strings.Contains(r.stderr, "bad.yaml") || !strings.Contains(r.stderr, "line 3") || !strings.Contains(r.stderr, "colour") {
		t.Errorf("unknown YAML field: %s", r.stderr)
	}
	os.WriteFile(bad, []byte("policies:\n  - name: p\n    schedule: {cron: \"0 25 * * *\"}\n"), 0o644)
	if r := cli(2, "apply", "-f", bad); !strings.Contains(r.stderr, "0 25 * * *") {
		t.Errorf("invalid cron: %s", r.stderr)
	}
	if r := lifeboat(t, append(env[:len(env):len(env)], "LIFEBOAT_TOKEN=lbt_bad"), "points", "--app", "notes"); r.code != 5 {
		t.Errorf("bad token: exit %d %s", r.code, r.stderr)
	}

	// login saves the server and token; then no token file is needed.
	loginEnv := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "LIFEBOAT_DATA_DIR=" + filepath.Join(tmp, "elsewhere")}
	if r := lifeboat(t, loginEnv, "status"); r.code != 5 {
		t.Errorf("status without any token: exit %d", r.code)
	}
	lc := exec.Command(bin, "login", "--server", "http://"+addr)
	lc.Env = loginEnv
	lc.Stdin = strings.NewReader(token + "\n")
	if out, err := lc.CombinedOutput(); err != nil || !strings.Contains(string(out), "as admin") {
		t.Fatalf("login: %v %s", err, out)
	}
	if st, err := os.Stat(filepath.Join(home, ".config", "lifeboat", "cli.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("saved login: %v", err)
	}
	r = lifeboat(t, loginEnv, "status")
	if r.code != 0 || !strings.Contains(r.stdout, "NOT EXPORTED") {
		t.Errorf("status after login: %d %s %s", r.code, r.stdout, r.stderr)
	}
	st.outputs = append(st.outputs, r.stdout, r.stderr)

	// Key export: with the typed passphrase and the storage alone, the
	// offline disaster kit restores the point.
	kitFile := filepath.Join(tmp, "disaster-kit.txt")
	kc := exec.Command(bin, "key", "export", "--vault", "default", "--kit", kitFile)
	kc.Env = env
	kc.Stdin = strings.NewReader("offline passphrase 1\noffline passphrase 1\n")
	out, err := kc.CombinedOutput()
	if err != nil || !strings.Contains(string(out), filepath.Join(dataDir, "vaults", "default")) {
		t.Fatalf("key export: %v %s", err, out)
	}
	if r := cli(0, "status"); strings.Contains(r.stdout, "NOT EXPORTED") {
		t.Errorf("status still says not exported: %s", r.stdout)
	}
	passFile := filepath.Join(tmp, "offline.pass")
	os.WriteFile(passFile, []byte("offline passphrase 1\n"), 0o600)
	offline := filepath.Join(tmp, "offline-restore")
	cli(0, "vault", "restore", "--vault", filepath.Join(dataDir, "vaults", "default"), "--passphrase-file", passFile, first, "--to", offline)
	if b, err := os.ReadFile(filepath.Join(offline, "config", "files", "0", "notes.env")); err != nil || !strings.Contains(string(b), "hello from the story") {
		t.Errorf("offline restore of the config: %v %q", err, b)
	}
	// The disaster kit's one command, run as printed, restores the newest point.
	kitText, err := os.ReadFile(kitFile)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(kitFile); st.Mode().Perm() != 0o600 || strings.Contains(string(kitText), "offline passphrase 1") {
		t.Errorf("the kit is %v, or holds the passphrase", st.Mode())
	}
	var kitCmd []string
	for _, line := range strings.Split(string(kitText), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == "lifeboat" && f[2] == "restore" {
			kitCmd = f[1:]
		}
	}
	kitDir := filepath.Join(tmp, "kit-restore")
	for i, a := range kitCmd {
		kitCmd[i] = strings.NewReplacer("PASSPHRASE-FILE", passFile, "KIT-FILE", kitFile, "DIR", kitDir).Replace(a)
	}
	if len(kitCmd) == 0 {
		t.Fatalf("no restore command in the kit:\n%s", kitText)
	}
	cli(0, kitCmd...)
	if _, err := os.Stat(filepath.Join(kitDir, "config", "files", "0", "notes.env")); err != nil {
		t.Errorf("the kit's command restored nothing: %v", err)
	}
	// The kit carries its own copy of the key slot: a copy of the vault
	// with every key slot deleted still restores with it, and not without.
	vaultCopy := filepath.Join(tmp, "vault-without-slots")
	if out, err := exec.Command("cp", "-a", filepath.Join(dataDir, "vaults", "default"), vaultCopy).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	var slots []string
	ents, _ := os.ReadDir(filepath.Join(vaultCopy, "keys"))
	for _, e := range ents {
		if len(e.Name()) == 32 && !strings.HasPrefix(e.Name(), "feature-") {
			slots = append(slots, e.Name())
			os.Remove(filepath.Join(vaultCopy, "keys", e.Name()))
		}
	}
	if len(slots) < 2 {
		t.Fatalf("key slots in the vault copy: %v", slots)
	}
	noSlots := []string{"vault", "restore", "--vault", vaultCopy, "--passphrase-file", passFile, "latest", "--to", filepath.Join(tmp, "no-slots")}
	if r := cli(7, noSlots...); !strings.Contains(r.stderr, "--key-slot-file") {
		t.Errorf("a vault without key slots: %s", r.stderr)
	}
	cli(0, append(noSlots, "--key-slot-file", kitFile)...)
	if _, err := os.Stat(filepath.Join(tmp, "no-slots", "config", "files", "0", "notes.env")); err != nil {
		t.Errorf("restore with the kit's key slot: %v", err)
	}
	// A backup through the kit too (it ignored --key-slot-file).
	cli(0, "vault", "backup", "--vault", vaultCopy, "--passphrase-file", passFile, "--key-slot-file", kitFile, "-q", filepath.Join(tmp, "no-slots"))
	kc = exec.Command(bin, "key", "export", "--vault", "default")
	kc.Env = env
	kc.Stdin = strings.NewReader("one passphrase xx\nanother one xxx\n")
	if out, err := kc.CombinedOutput(); err == nil || !strings.Contains(string(out), "differ") {
		t.Errorf("mismatched passphrases: %v %s", err, out)
	}

	// Audit events and API answers, as a reader sees them.
	var audit struct {
		Items []map[string]any `json:"items"`
	}
	httpJSON(t, "GET", "http://"+addr+"/api/v1/audit?limit=1000", token, nil, &audit)
	auditJSON, _ := json.Marshal(audit)
	if !strings.Contains(string(auditJSON), "point.restore") {
		t.Errorf("audit trail misses the restore")
	}
	r = cli(0, "jobs", "list", "-o", "json")
	st.outputs = append(st.outputs, string(auditJSON))

	// SIGTERM: the server drains and exits 0.
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", srv.cmd.Process.Pid))
	if code := srv.stop(t); code != 0 {
		t.Errorf("serve exit %d:\n%s", code, srv.output())
	}
	logs := srv.output()
	if !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", logs)
	}
	vaultPass, _ := os.ReadFile(filepath.Join(dataDir, "vault-keys", "default.passphrase"))
	secrets := map[string]string{"the app's API key": apiKey, "the admin token": token, "the vault passphrase": strings.TrimSpace(string(vaultPass))}
	for what, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("%s is in the server log", what)
		}
		if strings.Contains(string(cmdline), secret) {
			t.Errorf("%s is on the server's command line", what)
		}
		for _, o := range st.outputs {
			if strings.Contains(o, secret) {
				t.Errorf("%s was printed: %s", what, o)
			}
		}
	}
}
