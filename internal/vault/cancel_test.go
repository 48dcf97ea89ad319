package vault_test

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage/local"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// A backup cancelled while packs stream into temp files leaves no temp file
// and no writer behind, whenever the cancellation comes.
func TestCancelledBackupLeavesNoTempFilesOrWriters(t *testing.T) {
	src := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 12 {
		writeFile(t, filepath.Join(src, "f"+string(rune('a'+i))), randBytes(r, 1<<20), 0o644)
	}
	base := runtime.NumGoroutine()
	for _, after := range []int64{0, 256 << 10, 2 << 20, 5 << 20, 9 << 20} {
		dir := filepath.Join(t.TempDir(), "v")
		be, err := local.Create(dir, local.Options{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := vault.Init(context.Background(), be, testPass, testOpts())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		prog := &vault.Progress{}
		go func() {
			for prog.Bytes.Load() < after && ctx.Err() == nil {
				time.Sleep(100 * time.Microsecond)
			}
			cancel()
		}()
		_, err = v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: src}}, Host: "h", Progress: prog})
		cancel()
		if err == nil {
			continue // finished before the cancellation: nothing to check
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled after %d bytes: %v", after, err)
		}
		var tmps []string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
				tmps = append(tmps, p)
			}
			return nil
		})
		if len(tmps) > 0 {
			t.Errorf("cancelled after %d bytes: temp files left: %v", after, tmps)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base+2 {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines left running, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}
