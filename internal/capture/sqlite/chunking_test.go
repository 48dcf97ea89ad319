package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
)

// BenchmarkChunkingAfterOnePercent measures what a second backup of a
// SQLite database stores after 1% of its pages changed, for content-defined
// chunks (the vault's default) and page-aligned fixed chunks of 1, 4 and 16
// pages. Reported: new raw bytes of the second backup (MiB), and chunks of
// the database (index entries). `go test -run '^$' -bench ChunkingAfter
// ./internal/capture/sqlite/` (docs/benchmarks.md, "SQLite chunking").
func BenchmarkChunkingAfterOnePercent(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	src := filepath.Join(dir, "app.db")
	db, err := sql.Open("sqlite", "file:"+src+"?_pragma=journal_mode(wal)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	db.Exec(`CREATE TABLE posts (id INTEGER PRIMARY KEY, author INTEGER, title TEXT, body TEXT, views INTEGER)`)
	db.Exec(`CREATE INDEX posts_author ON posts (author)`)
	r := rand.New(rand.NewPCG(1, 1))
	words := []string{"lorem", "ipsum", "dolor", "sit", "amet", "backup", "vault", "restore", "point", "page"}
	tx, _ := db.Begin()
	const rows = 120000
	for i := 0; i < rows; i++ {
		body := ""
		for j := 0; j < 40+r.IntN(60); j++ {
			body += words[r.IntN(len(words))] + " "
		}
		tx.Exec(`INSERT INTO posts (author, title, body, views) VALUES (?, ?, ?, ?)`, r.IntN(5000), fmt.Sprint("title ", i), body, r.IntN(1000))
	}
	tx.Commit()
	db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	var pages int
	db.QueryRow(`PRAGMA page_count`).Scan(&pages)
	snap := func(name string) string {
		p := filepath.Join(dir, name)
		os.Remove(p)
		if _, err := Snapshot(ctx, src, p); err != nil {
			b.Fatal(err)
		}
		return p
	}
	first := snap("first.db")
	// Change rows until about 1% of the pages differ: updates of random
	// rows (each touches its table page and, for some, an index page).
	for i := 0; i < pages/250; i++ {
		db.Exec(`UPDATE posts SET views = views + 1, author = ? WHERE id = ?`, r.IntN(5000), 1+r.IntN(rows))
	}
	db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	second := snap("second.db")
	changed := diffPages(b, first, second, 4096)
	b.Logf("database: %d pages of 4 KiB (%.1f MiB); %d pages changed (%.2f%%)", pages, float64(pages)*4096/(1<<20), changed, 100*float64(changed)/float64(pages))
	for _, c := range []struct {
		name  string
		fixed int
	}{{"cdc", 0}, {"fixed-4KiB", 4096}, {"fixed-16KiB", 16384}, {"fixed-64KiB", 65536}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				v, err := vault.Init(ctx, memory.New(), []byte("pw"), vault.Options{KDF: &crypto.KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 1024, Threads: 1}})
				if err != nil {
					b.Fatal(err)
				}
				var stats [2]int64
				var blobs int64
				for i, path := range []string{first, second} {
					p, err := v.Backup(ctx, vault.BackupOptions{Host: "h", Sources: []vault.Source{{Name: "db", Streams: []vault.Stream{{Name: "app.db", Fixed: c.fixed,
						Open: func(context.Context) (io.ReadCloser, error) { return os.Open(path) }}}}}})
					if err != nil {
						b.Fatal(err)
					}
					stats[i] = p.Stats.BytesNewRaw
					if i == 0 {
						blobs = p.Stats.BlobsNew
					}
				}
				b.ReportMetric(float64(stats[1])/(1<<20), "MiB-second")
				b.ReportMetric(float64(stats[0])/(1<<20), "MiB-first")
				b.ReportMetric(float64(blobs), "chunks")
			}
		})
	}
}

func diffPages(b *testing.B, a, c string, size int) int {
	x, _ := os.ReadFile(a)
	y, _ := os.ReadFile(c)
	n := 0
	for off := 0; off < len(x) && off < len(y); off += size {
		if string(x[off:min(off+size, len(x))]) != string(y[off:min(off+size, len(y))]) {
			n++
		}
	}
	return n
}
