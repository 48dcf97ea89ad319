package vault_test

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// manifestReads counts reads of point manifests.
type manifestReads struct {
	storage.Backend
	n atomic.Int64
}

func (m *manifestReads) Get(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	if strings.HasPrefix(name, "points/") {
		m.n.Add(1)
	}
	return m.Backend.Get(ctx, name, off, n)
}

// A re-backup finds its parent (the newest point of its host and app)
// without reading every manifest of a vault with many points.
func TestParentFoundWithoutReadingEveryManifest(t *testing.T) {
	ctx := context.Background()
	be := &manifestReads{Backend: memory.New()}
	v, err := vault.Init(ctx, be, testPass, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), []byte("content"), 0o644)
	settle()
	backup := func(host string) string {
		t.Helper()
		p, err := v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: src}}, Host: host})
		if err != nil {
			t.Fatal(err)
		}
		return p.ID
	}
	last := map[string]string{}
	for range 24 {
		last["a"] = backup("a")
	}
	for range 5 {
		last["b"] = backup("b")
	}
	for _, host := range []string{"a", "b", "a"} {
		be.n.Store(0)
		p, err := v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: src}}, Host: host})
		if err != nil {
			t.Fatal(err)
		}
		if p.Parent != last[host] {
			t.Errorf("host %s: parent %s, want its newest point %s", host, p.Parent, last[host])
		}
		if p.Stats.UnchangedFiles != 1 {
			t.Errorf("host %s: %d unchanged files, want 1", host, p.Stats.UnchangedFiles)
		}
		if n := be.n.Load(); n > 8 {
			t.Errorf("host %s: %d manifest reads to find the parent among 29+ points, want at most one batch of 8", host, n)
		}
		last[host] = p.ID
	}
}

// A source whose path is not UTF-8 keeps its parent: the second backup
// reads nothing, and the point restores under the same name.
func TestSourcePathNotUTF8IsIncremental(t *testing.T) {
	v, _ := newTestVault(t)
	src := filepath.Join(t.TempDir(), "src\xff")
	writeFile(t, filepath.Join(src, "f\xfe"), []byte("content"), 0o644)
	settle()
	first := mustBackup(t, v, src)
	second := mustBackup(t, v, src)
	if second.Parent != first.ID || second.Stats.UnchangedFiles != 1 || second.Stats.BytesRead != 0 {
		t.Fatalf("second backup: parent %q (want %s), %d unchanged, %d bytes read", second.Parent, first.ID, second.Stats.UnchangedFiles, second.Stats.BytesRead)
	}
	if c := second.Components[0]; c.Name != "src\xff" || c.Source != src {
		t.Fatalf("component recorded as %q from %q", c.Name, c.Source)
	}
	dst, _ := mustRestore(t, reopen(t, v.Backend()), second.ID, "")
	compareTrees(t, snapshot(t, filepath.Dir(src)), snapshot(t, dst))
}
