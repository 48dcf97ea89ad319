package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestServer(t *testing.T, cfg config) (*server, *httptest.Server) {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	s, err := newServer(cfg)
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ts
}

func do(t *testing.T, method, url, token string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestNotes(t *testing.T) {
	_, ts := newTestServer(t, config{Greeting: "hello"})

	if code, body := do(t, "GET", ts.URL+"/healthz", "", nil); code != 200 || string(body) != "ok" {
		t.Fatalf("healthz = %d %q", code, body)
	}
	code, body := do(t, "GET", ts.URL+"/config", "", nil)
	var cfg map[string]string
	if code != 200 || json.Unmarshal(body, &cfg) != nil || cfg["greeting"] != "hello" {
		t.Fatalf("config = %d %s", code, body)
	}

	for _, title := range []string{"first", "second"} {
		code, body := do(t, "POST", ts.URL+"/notes", "", strings.NewReader(`{"title":"`+title+`","body":"b"}`))
		if code != http.StatusCreated {
			t.Fatalf("create = %d %s", code, body)
		}
	}
	if code, _ := do(t, "POST", ts.URL+"/notes", "", strings.NewReader(`{"body":"no title"}`)); code != 400 {
		t.Errorf("create without title = %d, want 400", code)
	}

	code, body = do(t, "GET", ts.URL+"/notes", "", nil)
	var notes []note
	if code != 200 || json.Unmarshal(body, &notes) != nil {
		t.Fatalf("list = %d %s", code, body)
	}
	if len(notes) != 2 || notes[0].Title != "first" || notes[1].Title != "second" || notes[1].CreatedAt == "" {
		t.Fatalf("list = %+v", notes)
	}

	code, body = do(t, "GET", ts.URL+"/notes/2", "", nil)
	var n note
	if code != 200 || json.Unmarshal(body, &n) != nil || n.ID != 2 || n.Title != "second" {
		t.Fatalf("get = %d %s", code, body)
	}
	if code, _ := do(t, "GET", ts.URL+"/notes/99", "", nil); code != 404 {
		t.Errorf("missing note = %d, want 404", code)
	}
	if code, _ := do(t, "DELETE", ts.URL+"/notes/1", "", nil); code != 204 {
		t.Errorf("delete = %d, want 204", code)
	}
	if code, _ := do(t, "GET", ts.URL+"/notes/1", "", nil); code != 404 {
		t.Errorf("deleted note = %d, want 404", code)
	}
}

func TestUploads(t *testing.T) {
	s, ts := newTestServer(t, config{})
	data := bytes.Repeat([]byte("lifeboat\x00"), 10000)
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])

	code, body := do(t, "PUT", ts.URL+"/uploads/photo-1.bin", "", bytes.NewReader(data))
	var u upload
	if code != http.StatusCreated || json.Unmarshal(body, &u) != nil {
		t.Fatalf("put = %d %s", code, body)
	}
	if u.SHA256 != want || u.Size != int64(len(data)) {
		t.Fatalf("put = %+v, want sha256 %s", u, want)
	}

	code, body = do(t, "GET", ts.URL+"/uploads/photo-1.bin", "", nil)
	if got := sha256.Sum256(body); code != 200 || got != sum {
		t.Fatalf("get = %d, %d bytes", code, len(body))
	}

	code, body = do(t, "GET", ts.URL+"/uploads", "", nil)
	var list []upload
	if code != 200 || json.Unmarshal(body, &list) != nil {
		t.Fatalf("list = %d %s", code, body)
	}
	if len(list) != 1 || list[0] != (upload{Name: "photo-1.bin", Size: int64(len(data)), SHA256: want}) {
		t.Fatalf("list = %+v", list)
	}
	if entries, _ := os.ReadDir(s.uploads); len(entries) != 1 {
		t.Errorf("uploads dir has %d entries, want 1 (temp file left?)", len(entries))
	}
	if code, _ := do(t, "GET", ts.URL+"/uploads/missing.txt", "", nil); code != 404 {
		t.Errorf("missing upload = %d, want 404", code)
	}
}

func TestBadUploadNames(t *testing.T) {
	_, ts := newTestServer(t, config{})
	for _, name := range []string{".hidden", ".env", "a%20b", "a*b", "a%2Fb", "..%2F..%2Fnotes.db", "x%00y", "%C3%A9t%C3%A9"} {
		if code, body := do(t, "PUT", ts.URL+"/uploads/"+name, "", strings.NewReader("x")); code != 400 {
			t.Errorf("PUT %q = %d %s, want 400", name, code, body)
		}
		if code, _ := do(t, "GET", ts.URL+"/uploads/"+name, "", nil); code != 400 {
			t.Errorf("GET %q = %d, want 400", name, code)
		}
	}
}

func TestUploadTooLarge(t *testing.T) {
	_, ts := newTestServer(t, config{})
	big := io.LimitReader(zeroReader{}, maxUploadSize+1)
	if code, _ := do(t, "PUT", ts.URL+"/uploads/big.bin", "", big); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized upload = %d, want 413", code)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestAuth(t *testing.T) {
	const key = "s3cret-key"
	_, ts := newTestServer(t, config{APIKey: key, Greeting: "hi"})
	note := `{"title":"t","body":"b"}`
	for _, tok := range []string{"", "wrong"} {
		if code, _ := do(t, "POST", ts.URL+"/notes", tok, strings.NewReader(note)); code != 401 {
			t.Errorf("POST with token %q = %d, want 401", tok, code)
		}
		if code, _ := do(t, "PUT", ts.URL+"/uploads/a.txt", tok, strings.NewReader("x")); code != 401 {
			t.Errorf("PUT with token %q = %d, want 401", tok, code)
		}
		if code, _ := do(t, "DELETE", ts.URL+"/notes/1", tok, nil); code != 401 {
			t.Errorf("DELETE with token %q = %d, want 401", tok, code)
		}
	}
	if code, _ := do(t, "POST", ts.URL+"/notes", key, strings.NewReader(note)); code != 201 {
		t.Errorf("POST with key = %d, want 201", code)
	}
	if code, _ := do(t, "GET", ts.URL+"/notes", "", nil); code != 200 {
		t.Errorf("GET without key = %d, want 200", code)
	}
	if _, body := do(t, "GET", ts.URL+"/config", "", nil); strings.Contains(string(body), key) {
		t.Errorf("/config leaks the API key: %s", body)
	}
}

func TestHealthzFailsOnCorruptDatabase(t *testing.T) {
	dir := t.TempDir()
	s, err := newServer(config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	do(t, "POST", ts.URL+"/notes", "", strings.NewReader(`{"title":"t","body":"b"}`))
	ts.Close()
	s.Close()

	dbPath := filepath.Join(dir, "notes.db")
	if _, err := os.Stat(dbPath + "-journal"); !os.IsNotExist(err) {
		t.Errorf("journal file left behind after close: %v", err)
	}
	if err := os.WriteFile(dbPath, bytes.Repeat([]byte("garbage!"), 1024), 0o644); err != nil {
		t.Fatal(err)
	}

	_, ts2 := newTestServer(t, config{DataDir: dir})
	if code, body := do(t, "GET", ts2.URL+"/healthz", "", nil); code != 500 {
		t.Fatalf("healthz on corrupt db = %d %s, want 500", code, body)
	}
}

func TestLoadEnvFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.env")
	content := "# comment\n\nNOTES_GREETING=\"hello world\"\nNOTES_API_KEY = abc=def \n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	env, err := loadEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if env["NOTES_GREETING"] != "hello world" || env["NOTES_API_KEY"] != "abc=def" || len(env) != 2 {
		t.Fatalf("env = %v", env)
	}
	if err := os.WriteFile(path, []byte("NOEQUALS\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadEnvFile(path); err == nil {
		t.Fatal("expected error for line without '='")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestRunShutsDownAndHidesKey(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "notes.env")
	if err := os.WriteFile(envFile, []byte("NOTES_ADDR=127.0.0.1:1\nNOTES_API_KEY=\"top-secret-key\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-config", envFile, "-data", filepath.Join(dir, "data"), "-addr", "127.0.0.1:0"}, &stderr)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stderr.String(), "listening") {
		if time.Now().After(deadline) {
			t.Fatalf("server did not start; stderr:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	out := stderr.String()
	if strings.Contains(out, "top-secret-key") {
		t.Errorf("stderr leaks the API key:\n%s", out)
	}
	if strings.Contains(out, "addr=127.0.0.1:1 ") || !strings.Contains(out, "stopped") {
		t.Errorf("unexpected log output:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "notes.db")); err != nil {
		t.Errorf("notes.db not created: %v", err)
	}
}

func TestRunRequiresData(t *testing.T) {
	if err := run(context.Background(), nil, io.Discard); err == nil {
		t.Fatal("run without -data succeeded")
	}
}
