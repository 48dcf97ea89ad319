package vault_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/local"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// fakeRemote is an in-memory remote tree.
type fakeRemote struct {
	entries []vault.RemoteEntry
	data    map[string][]byte
	opens   atomic.Int64
}

func (f *fakeRemote) Scan(context.Context) ([]vault.RemoteEntry, error) {
	return append([]vault.RemoteEntry{}, f.entries...), nil
}

func (f *fakeRemote) Open(_ context.Context, rel string) (io.ReadCloser, error) {
	f.opens.Add(1)
	return io.NopCloser(bytes.NewReader(f.data[rel])), nil
}

func TestRemoteTree(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := now
	o := testOpts()
	o.Now = func() time.Time { return clock }
	v, err := vault.Init(ctx, memory.New(), testPass, o)
	if err != nil {
		t.Fatal(err)
	}
	old := now.Add(-time.Hour).UnixNano()
	big := bytes.Repeat([]byte("remote bytes "), 200000)
	fr := &fakeRemote{data: map[string][]byte{"a.txt": []byte("hello"), "d/b.bin": big, "d/tmp.log": []byte("skip me")}}
	fr.entries = []vault.RemoteEntry{
		{Path: ".", Type: 'd', Mode: 0o755, MTime: old, Precise: true},
		{Path: "a.txt", Type: 'f', Mode: 0o644, Size: 5, MTime: old, CTime: old, Inode: 10, Precise: true},
		{Path: "d", Type: 'd', Mode: 0o700, MTime: old, Precise: true},
		{Path: "d/b.bin", Type: 'f', Mode: 0o600, Size: int64(len(big)), MTime: old, CTime: old, Inode: 11, Precise: true},
		{Path: "d/tmp.log", Type: 'f', Mode: 0o600, Size: 7, MTime: old, Inode: 12, Precise: true},
		{Path: "d/link", Type: 'l', Mode: 0o777, Target: "../a.txt", MTime: old, Precise: true},
		{Path: "d/fifo", Type: 'p', Mode: 0o600, MTime: old, Precise: true},
	}
	src := []vault.Source{{Name: "www", Describe: "ssh://web1/srv/www", Remote: fr, Excludes: []string{"*.log"}}}
	p1, err := v.Backup(ctx, vault.BackupOptions{Host: "lifeboat", Sources: src})
	if err != nil {
		t.Fatal(err)
	}
	if fr.opens.Load() != 2 || p1.Stats.Files != 2 || !p1.Partial { // the fifo is warned about
		t.Errorf("first: %d opens, %+v, partial %v", fr.opens.Load(), p1.Stats, p1.Partial)
	}
	dst := t.TempDir()
	if _, err := v.Restore(ctx, p1, vault.RestoreOptions{Target: filepath.Join(dst, "r"), Path: "www"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "r", "d", "b.bin")); !bytes.Equal(b, big) {
		t.Error("remote file restored differently")
	}
	if l, _ := os.Readlink(filepath.Join(dst, "r", "d", "link")); l != "../a.txt" {
		t.Errorf("symlink %q", l)
	}
	if _, err := os.Stat(filepath.Join(dst, "r", "d", "tmp.log")); !os.IsNotExist(err) {
		t.Error("an excluded file was captured")
	}
	// Unchanged by the precise rule: nothing read.
	fr.entries = fr.entries[:6]
	clock = now.Add(time.Hour)
	fr.opens.Store(0)
	p2, err := v.Backup(ctx, vault.BackupOptions{Host: "lifeboat", Sources: src})
	if err != nil || fr.opens.Load() != 0 || p2.Stats.UnchangedFiles != 2 {
		t.Fatalf("no-change: %v, %d opens, %+v", err, fr.opens.Load(), p2.Stats)
	}
	// A changed ctime (same size and mtime) is read again.
	fr.entries[1].CTime++
	fr.opens.Store(0)
	clock = clock.Add(time.Hour)
	if _, err := v.Backup(ctx, vault.BackupOptions{Host: "lifeboat", Sources: src}); err != nil || fr.opens.Load() != 1 {
		t.Fatalf("ctime change: %v, %d opens", err, fr.opens.Load())
	}
	// Imprecise listing (SFTP): a file whose mtime is within 2 s of the
	// previous scan is read again; older ones are trusted.
	for i := range fr.entries {
		fr.entries[i].Precise, fr.entries[i].CTime, fr.entries[i].Inode = false, 0, 0
	}
	fr.opens.Store(0)
	clock = clock.Add(time.Hour)
	if _, err := v.Backup(ctx, vault.BackupOptions{Host: "lifeboat", Sources: src}); err != nil || fr.opens.Load() != 0 {
		t.Fatalf("imprecise scan, old mtimes: %v, %d opens", err, fr.opens.Load())
	}
	fr.opens.Store(0)
	prev := clock
	clock = clock.Add(time.Hour)
	fr.entries[1].MTime = prev.Add(-time.Second).Truncate(time.Second).UnixNano() // changed just before the last scan
	fr.data["a.txt"] = []byte("hellO")
	p5, err := v.Backup(ctx, vault.BackupOptions{Host: "lifeboat", Sources: src})
	if err != nil || fr.opens.Load() != 1 {
		t.Fatalf("recent mtime: %v, %d opens", err, fr.opens.Load())
	}
	if _, err := v.Restore(ctx, p5, vault.RestoreOptions{Target: filepath.Join(dst, "r5"), Path: "www"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "r5", "a.txt")); string(b) != "hellO" {
		t.Errorf("the recently changed file: %q", b)
	}
}

// failCreate is a local backend whose next fail object creations fail, as
// a disk out of descriptors or space does.
type failCreate struct {
	*local.Backend
	fail atomic.Int64
}

func (b *failCreate) Create(ctx context.Context, name string) (storage.ObjectWriter, error) {
	if b.fail.Add(-1) >= 0 {
		return nil, errors.New("create: too many open files")
	}
	return b.Backend.Create(ctx, name)
}

// A failure to store a remote file's data fails the backup. Taken for a
// warning about that file, it left a point whose other file with the same
// content named a chunk never written.
func TestRemoteStoreFailureFailsBackup(t *testing.T) {
	ctx := context.Background()
	lb, err := local.Create(filepath.Join(t.TempDir(), "vault"), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	be := &failCreate{Backend: lb}
	v, err := vault.Init(ctx, be, testPass, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	same := bytes.Repeat([]byte("x"), 4000)
	fr := &fakeRemote{data: map[string][]byte{"a": same, "b": same}, entries: []vault.RemoteEntry{
		{Path: ".", Type: 'd', Mode: 0o755, Precise: true},
		{Path: "a", Type: 'f', Mode: 0o644, Size: 4000, MTime: 1, CTime: 1, Inode: 1, Precise: true},
		{Path: "b", Type: 'f', Mode: 0o644, Size: 4000, MTime: 1, CTime: 1, Inode: 2, Precise: true},
	}}
	be.fail.Store(1)
	var warned []string
	p, err := v.Backup(ctx, vault.BackupOptions{Host: "h", Sources: []vault.Source{{Name: "r", Describe: "ssh://h/x", Remote: fr}},
		Warn: func(path string, err error) { warned = append(warned, path+": "+err.Error()) }})
	if err == nil {
		t.Fatalf("backup succeeded (point %s, partial %v, warnings %q) although storing a chunk failed", p.ID, p.Partial, warned)
	}
	if !strings.Contains(err.Error(), "too many open files") {
		t.Errorf("error does not say why: %v", err)
	}
}
