package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/api"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
)

var weakKDF = crypto.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 1024, Threads: 1}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testServer struct {
	*Server
	c       *api.Client
	url     string
	token   string
	dataDir string
	logs    *syncBuffer
	stop    func()
}

type testOpts struct {
	dataDir string
	catalog string
	lease   time.Duration
	now     func() time.Time
	hook    func(ctx context.Context, j *lifeboat.Job) error
	// restoreHook runs after each component a restore job restored.
	restoreHook func(j *lifeboat.Job, component string) error
	// softDelete overrides the 14-day soft-delete retention.
	softDelete time.Duration
}

func newTestServer(t *testing.T, o testOpts) *testServer {
	t.Helper()
	return newTestServerCfg(t, o, nil)
}

// newTestServerCfg is newTestServer with a last change to the Config.
func newTestServerCfg(t *testing.T, o testOpts, change func(*Config)) *testServer {
	t.Helper()
	if o.dataDir == "" {
		o.dataDir = filepath.Join(t.TempDir(), "data")
	}
	logs := &syncBuffer{}
	cfg := Config{DataDir: o.dataDir, Catalog: o.catalog, Workers: 2, Lease: o.lease, Tick: time.Hour, VaultKDF: &weakKDF, HealthWait: 2 * time.Second, JobTries: 1,
		Log: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Now: o.now, SoftDelete: o.softDelete}
	if change != nil {
		change(&cfg)
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.testHook = o.hook
	s.testRestoreHook = o.restoreHook
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	for !s.ready.Load() {
		time.Sleep(time.Millisecond)
	}
	tok, err := os.ReadFile(filepath.Join(o.dataDir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Server: s, url: "http://" + ln.Addr().String(), token: strings.TrimSpace(string(tok)), dataDir: o.dataDir, logs: logs}
	ts.c = api.New(ts.url, ts.token)
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) do(t *testing.T, method, path string, body, out any, headers ...string) error {
	t.Helper()
	return ts.c.Do(context.Background(), method, path, body, out, headers...)
}

func (ts *testServer) must(t *testing.T, method, path string, body, out any, headers ...string) {
	t.Helper()
	if err := ts.do(t, method, path, body, out, headers...); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
}

// rawDo returns the status and body of a request (token optional).
func (ts *testServer) rawDo(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.url+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (ts *testServer) waitJob(t *testing.T, id string) *lifeboat.Job {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var j lifeboat.Job
		ts.must(t, "GET", "/api/v1/jobs/"+id, nil, &j)
		if lifeboat.JobDone(j.State) {
			return &j
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("job %s did not finish", id)
	return nil
}

// fixture is an app on disk: a config file, inline settings and files.
type fixture struct {
	root, restoreRoot string
	envFile, dataDir  string
	secret            string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{root: filepath.Join(base, "srv"), restoreRoot: filepath.Join(base, "restores"), secret: "s3cr3t-" + randomHex(8)}
	f.envFile = filepath.Join(f.root, "shop", "app.env")
	f.dataDir = filepath.Join(f.root, "shop", "data")
	for _, d := range []string{f.dataDir + "/uploads", f.restoreRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, f.envFile, "GREETING=hello\nDB_PASSWORD="+f.secret+"\n")
	write(t, filepath.Join(f.dataDir, "uploads", "cat.jpg"), strings.Repeat("meow", 5000))
	write(t, filepath.Join(f.dataDir, "notes.db"), "database bytes")
	return f
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) doc() Document {
	return Document{
		Hosts:    []lifeboat.Host{{Name: "local", Roots: []string{f.root}, RestoreRoots: []string{f.restoreRoot}}},
		Policies: []lifeboat.Policy{{Name: "daily", Schedule: lifeboat.Schedule{Cron: "0 2 * * *", TimeZone: "Europe/Paris"}, Retention: lifeboat.Retention{Last: 3}, Apps: []string{"shop"}}},
		Apps: []lifeboat.App{{Name: "shop", Environment: "production", Public: []string{"GREETING"}, Components: []lifeboat.Component{
			{Name: "config", Kind: "config", Files: []string{f.envFile}, Settings: map[string]any{"FEATURE_X": true}},
			{Name: "data", Kind: "files", Path: f.dataDir, Exclude: []string{"*.tmp"}},
		}}},
	}
}

func (ts *testServer) backup(t *testing.T, app string) *lifeboat.Job {
	t.Helper()
	var j lifeboat.Job
	ts.must(t, "POST", "/api/v1/apps/"+app+"/backups", BackupRequest{}, &j)
	done := ts.waitJob(t, j.ID)
	if done.State != lifeboat.JobSucceeded {
		t.Fatalf("backup: %s: %s", done.State, done.Error)
	}
	return done
}

func result[T any](t *testing.T, j *lifeboat.Job) T {
	t.Helper()
	var r T
	if err := json.Unmarshal(j.Result, &r); err != nil {
		t.Fatalf("job result: %v (%s)", err, j.Result)
	}
	return r
}

func codeOf(err error) lifeboat.Code {
	var le *lifeboat.Error
	if errors.As(err, &le) {
		return le.Code
	}
	return ""
}
