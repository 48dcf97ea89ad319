package vault_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage/s3"
	"github.com/lifeboat-vault/lifeboat/internal/storage/s3/s3test"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// On the real S3 server, plain and versioned with object lock (where a
// delete only adds a delete marker): a backup whose parent's packs a
// collection condemns while it runs withdraws its manifest, copies its
// blobs out, writes the same manifest name again (a conditional put after
// the delete) and succeeds; later collections delete the condemned packs
// and the point restores exactly.
func TestBackupCopiesOutOfCondemnedPacksOnS3(t *testing.T) {
	srv := s3test.Require(t)
	for _, c := range []struct {
		name   string
		bucket func() string
		lock   bool
	}{
		{"plain", func() string { return srv.Bucket }, false},
		{"object-lock", func() string { return srv.LockedBucket(t) }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer vault.SetSessionBeat(50 * time.Millisecond)()
			ctx := context.Background()
			be, err := s3.Open(ctx, s3.Config{Endpoint: srv.Endpoint, AccessKey: srv.Access, SecretKey: srv.Secret, Bucket: c.bucket(),
				Prefix: fmt.Sprintf("rescue-%d", time.Now().UnixNano())})
			if err != nil {
				t.Fatal(err)
			}
			v, err := vault.Init(ctx, be, testPass, testOpts())
			if err != nil {
				t.Fatal(err)
			}
			if c.lock {
				if err := v.ObjectLock(ctx); err != nil {
					t.Fatal(err)
				}
			}
			a := make([]byte, 4<<20)
			rand.NewChaCha8([32]byte{5}).Read(a)
			b := []byte("the rest of the dump")
			want := append(append([]byte{}, a...), b...)
			dump := func(r io.Reader) vault.BackupOptions {
				return vault.BackupOptions{Host: "h", Sources: []vault.Source{{Name: "db", Streams: []vault.Stream{{Name: "dump",
					Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(r), nil }}}}}}
			}
			p1, err := v.Backup(ctx, dump(bytes.NewReader(want)))
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Mark(ctx, p1.ID, vault.MarkDelete, "", ""); err != nil {
				t.Fatal(err)
			}
			// Storage times are whole seconds: 2.5 s is past a 1 s grace.
			gc := vault.CollectOptions{SoftDeleteRetention: time.Nanosecond, Grace: time.Second}
			time.Sleep(2500 * time.Millisecond)
			var rep *vault.CollectReport
			p2, err := reopen2(t, be, testOpts()).Backup(ctx, dump(&stallReader{first: a, rest: b, mid: func() {
				var err error
				if rep, err = reopen2(t, be, testOpts()).Collect(ctx, gc); err != nil {
					t.Errorf("collect: %v", err)
				}
			}}))
			if rep == nil || len(rep.PointsPurged) != 1 || rep.PacksCondemned == 0 {
				t.Fatalf("the collection during the backup: %+v", rep)
			}
			if err != nil {
				t.Fatalf("a backup whose packs were condemned under it: %v; want its blobs copied out and the point committed", err)
			}
			if p2.Stats.BytesNewRaw < int64(len(want)) {
				t.Errorf("the backup stored %d bytes of a %d-byte dump: not its blobs from the condemned packs", p2.Stats.BytesNewRaw, len(want))
			}
			deleted := 0
			for range 2 {
				time.Sleep(2500 * time.Millisecond)
				r, err := reopen2(t, be, testOpts()).Collect(ctx, gc)
				if err != nil {
					t.Fatal(err)
				}
				deleted += r.PacksDeleted
			}
			if deleted == 0 {
				t.Error("the condemned packs were never deleted: the point still needs them")
			}
			v = reopen2(t, be, testOpts())
			mustCheckClean(t, v)
			mustRestoreDump(t, v, p2, want)
		})
	}
}
