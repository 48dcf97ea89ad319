package vault_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

type failingCloser struct {
	io.Reader
	err error
}

func (f failingCloser) Close() error { return f.err }

// TestStreamComponent: a component of produced files (a dump) is chunked
// straight into the vault and restores byte for byte; a producer that fails
// fails the backup; fixed chunking stores only the changed pages again.
func TestStreamComponent(t *testing.T) {
	ctx := context.Background()
	be := memory.New()
	v, err := vault.Init(ctx, be, testPass, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	db := make([]byte, 16<<20) // a 16 MiB "database" of 4 KiB pages
	for i := range db {
		db[i] = byte(r.IntN(16)) // compressible, not trivially
	}
	dump := []byte(strings.Repeat("INSERT INTO t VALUES (1, 'x');\n", 100000))
	streams := func(db, dump []byte) []vault.Stream {
		return []vault.Stream{
			{Name: "app.sqlite", Fixed: 64 << 10, Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(db)), nil }},
			{Name: "dump.sql", Mode: 0o640, Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(dump)), nil }},
		}
	}
	p1, err := v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Name: "db", Kind: "sqlite", Describe: "sqlite:/srv/app.sqlite", Streams: streams(db, dump)}}, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if p1.Components[0].Kind != "sqlite" || p1.Components[0].Source != "sqlite:/srv/app.sqlite" || p1.Stats.Files != 2 {
		t.Errorf("manifest: %+v %+v", p1.Components[0], p1.Stats)
	}
	dst := t.TempDir()
	if _, err := v.Restore(ctx, p1, vault.RestoreOptions{Target: filepath.Join(dst, "r1"), Path: "db"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]byte{"app.sqlite": db, "dump.sql": dump} {
		got, err := os.ReadFile(filepath.Join(dst, "r1", name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s restored: %d bytes, %v", name, len(got), err)
		}
	}
	if st, _ := os.Stat(filepath.Join(dst, "r1", "dump.sql")); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %o", st.Mode().Perm())
	}
	// Change 1% of the pages: fixed 64 KiB chunks store at most one chunk
	// per changed page.
	db2 := bytes.Clone(db)
	changed := map[int]bool{}
	for range len(db) / 4096 / 100 {
		pg := r.IntN(len(db) / 4096)
		changed[pg/16] = true
		copy(db2[pg*4096:], bytes.Repeat([]byte{0xee}, 4096))
	}
	p2, err := v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Name: "db", Kind: "sqlite", Streams: streams(db2, dump)}}, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if p2.Stats.BlobsNew != int64(len(changed))+2 { // + the component tree and the root tree
		t.Errorf("second backup stored %d blobs, want %d changed chunks and a tree", p2.Stats.BlobsNew, len(changed))
	}
	// A producer that fails fails the backup; nothing is committed.
	boom := errors.New("pg_dump: exit status 1")
	_, err = v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Name: "db", Streams: []vault.Stream{
		{Name: "x", Open: func(context.Context) (io.ReadCloser, error) { return failingCloser{bytes.NewReader(dump), boom}, nil }},
	}}}, Host: "h"})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "component db, x") {
		t.Errorf("failing producer: %v", err)
	}
	pts, _ := v.Points(ctx)
	if len(pts) != 2 {
		t.Errorf("%d points after a failed backup", len(pts))
	}
	if _, err := v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Name: "db", Path: "/x", Streams: streams(db, dump)}}}); err == nil {
		t.Error("a stream component with a path was accepted")
	}
}

func TestOpenFile(t *testing.T) {
	ctx := context.Background()
	v, err := vault.Init(ctx, memory.New(), testPass, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("dump line\n"), 500000) // 5 MB, several chunks
	p, err := v.Backup(ctx, vault.BackupOptions{Host: "h", Sources: []vault.Source{{Name: "pg", Streams: []vault.Stream{
		{Name: "shop.pgdump", Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}}}}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := v.Lookup(ctx, p, "pg/shop.pgdump")
	if err != nil {
		t.Fatal(err)
	}
	r, err := v.OpenFile(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("OpenFile: %d bytes, %v", len(got), err)
	}
}
