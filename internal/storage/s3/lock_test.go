package s3_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/s3"
	"github.com/lifeboat-vault/lifeboat/internal/storage/s3/s3test"
)

// TestObjectLock: on a bucket with object lock, a retained object's version
// cannot be removed by anyone before its date, a plain delete only hides it
// behind a delete marker, and removing that marker brings it back.
func TestObjectLock(t *testing.T) {
	srv := s3test.Require(t)
	ctx := context.Background()

	// The plain test bucket has no object lock: said so.
	plain, err := s3.Open(ctx, config(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.ObjectLock(ctx); err == nil || !strings.Contains(err.Error(), "no object lock") {
		t.Errorf("bucket without object lock: %v", err)
	}

	cfg := config(t)
	cfg.Bucket = srv.LockedBucket(t)
	b, err := s3.Open(ctx, cfg) // the open probes (conditional put) work on a versioned bucket
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ObjectLock(ctx); err != nil {
		t.Fatalf("bucket with object lock: %v", err)
	}
	if err := b.Put(ctx, "data/aa/x", []byte("pack")); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "data/aa/x", []byte("other")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second put on a versioned bucket: %v, want exists", err)
	}
	if u, err := b.Retention(ctx, "data/aa/x"); err != nil || !u.IsZero() {
		t.Fatalf("retention of a new object: %v %v, want none", u, err)
	}
	until := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	if err := b.Retain(ctx, "data/aa/x", until); err != nil {
		t.Fatal(err)
	}
	if u, err := b.Retention(ctx, "data/aa/x"); err != nil || !u.Equal(until) {
		t.Fatalf("retention %v %v, want %v", u, err, until)
	}
	if err := b.Retain(ctx, "data/aa/x", until.Add(-time.Hour)); err == nil {
		t.Error("a compliance retention was shortened")
	}
	if err := b.Retain(ctx, "data/aa/x", until.Add(time.Hour)); err != nil {
		t.Errorf("extending a retention: %v", err)
	}

	// Someone with the bucket's keys tries to destroy the object.
	versions := func() []storage.Version {
		var vs []storage.Version
		if err := b.ListVersions(ctx, "data/", func(v storage.Version) error { vs = append(vs, v); return nil }); err != nil {
			t.Fatal(err)
		}
		return vs
	}
	vs := versions()
	if len(vs) != 1 || vs[0].DeleteMarker || !vs[0].Latest || vs[0].Size != 4 {
		t.Fatalf("versions: %+v", vs)
	}
	obj := vs[0]
	raw := srv.Client(t)
	key := cfg.Prefix + "/data/aa/x"
	if err := raw.RemoveObject(ctx, cfg.Bucket, key, minio.RemoveObjectOptions{VersionID: obj.VersionID}); err == nil {
		t.Fatal("a retained version was removed")
	}
	if err := raw.RemoveObject(ctx, cfg.Bucket, key, minio.RemoveObjectOptions{VersionID: obj.VersionID, GovernanceBypass: true}); err == nil {
		t.Fatal("a compliance-retained version was removed with governance bypass")
	}
	if err := b.Delete(ctx, "data/aa/x"); err != nil { // a delete marker
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "data/aa/x"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("after a delete: %v, want not found", err)
	}
	vs = versions()
	var marker *storage.Version
	for i := range vs {
		if vs[i].DeleteMarker {
			marker = &vs[i]
		}
	}
	if len(vs) != 2 || marker == nil || !marker.Latest {
		t.Fatalf("versions after a delete: %+v", vs)
	}
	if err := b.DeleteVersion(ctx, "data/aa/x", marker.VersionID); err != nil {
		t.Fatal(err)
	}
	if got, err := storage.ReadAll(ctx, b, "data/aa/x"); err != nil || string(got) != "pack" {
		t.Fatalf("after removing the delete marker: %q %v", got, err)
	}
	if err := b.DeleteVersion(ctx, "data/aa/x", ""); err == nil {
		t.Error("DeleteVersion without a version id")
	}
}
