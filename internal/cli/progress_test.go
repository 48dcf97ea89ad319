package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	p := &vault.Progress{}
	p.TotalFiles.Store(10)
	p.TotalBytes.Store(100 << 20)
	p.ScanDone.Store(true)
	p.Files.Store(4)
	p.Bytes.Store(40 << 20)
	b := &progressBar{w: &buf, p: p, verb: "backup", start: time.Now().Add(-2 * time.Second), on: true}
	b.draw()
	line := buf.String()
	for _, want := range []string{"backup", "4/10 files", "40.0 MiB/100.0 MiB", "(40%)", "MiB/s", "ETA 0:03"} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line %q lacks %q", line, want)
		}
	}
}

// TestQuietInPipes: with stderr not a terminal, a backup prints only its
// result on stdout and nothing on stderr.
func TestQuietInPipes(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "f"), []byte("data"), 0o644)
	var out, errb bytes.Buffer
	env := Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == "LIFEBOAT_PASSPHRASE" {
			return "pipe passphrase"
		}
		return ""
	}}
	code := Main(context.Background(), []string{"vault", "backup", "--init", "--vault", filepath.Join(t.TempDir(), "v"), "-o", "json", src}, env)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), `"id"`) {
		t.Errorf("no JSON result: %q", out.String())
	}
	if errb.Len() != 0 {
		t.Errorf("stderr in a pipe: %q", errb.String())
	}
	// Usage errors exit 2 with one line.
	errb.Reset()
	if code := Main(context.Background(), []string{"vault", "backup", "--vault", "x", "--label", "nokey", src}, env); code != 2 || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("bad label: exit %d, %q", code, errb.String())
	}
}
