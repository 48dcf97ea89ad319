package vault_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/s3"
	"github.com/lifeboat-vault/lifeboat/internal/storage/s3/s3test"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// TestRetainPoints: on a bucket with object lock, every object a point
// needs gets its retain-until date (packs reused by a later point are
// extended), key slots get none, and after someone with the bucket's keys
// deletes everything, Undelete brings the vault back and the point
// restores.
func TestRetainPoints(t *testing.T) {
	srv := s3test.Require(t)
	ctx := context.Background()
	bucket := srv.LockedBucket(t)
	be, err := s3.Open(ctx, s3.Config{Endpoint: srv.Endpoint, AccessKey: srv.Access, SecretKey: srv.Secret, Bucket: bucket, Prefix: "v"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Init(ctx, be, testPass, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	if err := v.ObjectLock(ctx); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "tree")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	randomTree(t, src, 7)
	p1 := mustBackup(t, v, src)
	want1 := snapshot(t, src)
	names := func(prefix string) []string {
		var out []string
		if err := be.List(ctx, prefix, func(oi storage.ObjectInfo) error { out = append(out, oi.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	p1Packs := names("data/")
	p1Indexes := names("index/")
	writeFile(t, filepath.Join(src, "new.txt"), []byte("a file of the second point"), 0o644)
	p2 := mustBackup(t, v, src)

	retention := func(name string) time.Time {
		u, err := be.Retention(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	t1 := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	rep, err := v.RetainPoints(ctx, map[string]time.Time{p1.ID: t1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Extended != rep.Objects || rep.Objects < 5 {
		t.Fatalf("first retention: %+v", rep)
	}
	for _, n := range append(append(p1Packs, p1Indexes...), "points/"+p1.ID, vault.ConfigName) {
		if u := retention(n); u.Before(t1) {
			t.Errorf("%s retained until %v, want %v", n, u, t1)
		}
	}
	for _, n := range names("datakeys/") {
		if u := retention(n); u.Before(t1) {
			t.Errorf("data key %s retained until %v, want %v", n, u, t1)
		}
	}
	if u := retention("points/" + p2.ID); !u.IsZero() {
		t.Errorf("point 2 retained (until %v) though not asked", u)
	}
	slots := names("keys/")
	for _, n := range slots {
		if u := retention(n); !u.IsZero() && !strings.HasPrefix(n, "keys/feature-") {
			t.Errorf("key slot %s retained until %v: slots must stay deletable", n, u)
		}
	}
	// The second point reuses point 1's packs: they are extended.
	t2 := t1.Add(time.Hour)
	rep, err = v.RetainPoints(ctx, map[string]time.Time{p2.ID: t2})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range append(names("data/"), "points/"+p2.ID) {
		if u := retention(n); u.Before(t2) {
			t.Errorf("%s retained until %v after point 2, want %v", n, u, t2)
		}
	}
	if rep.Extended < len(p1Packs) {
		t.Errorf("point 2: %+v, want at least the %d reused packs extended", rep, len(p1Packs))
	}
	if rep, err = v.RetainPoints(ctx, map[string]time.Time{p1.ID: t1, p2.ID: t2}); err != nil || rep.Extended != 0 {
		t.Errorf("again: %+v %v, want nothing extended", rep, err)
	}
	if _, err := v.RetainPoints(ctx, map[string]time.Time{"0123456789abcdef0123456789abcdef": t2}); lifeboat.ErrorCode(err) != lifeboat.ENotFound {
		t.Errorf("unknown point: %v", err)
	}

	kitSlot, err := v.KeySlotData(ctx, v.OpenedSlot()) // what a disaster kit keeps
	if err != nil {
		t.Fatal(err)
	}

	// Someone with the bucket's keys destroys what they can.
	raw := srv.Client(t)
	destroyed := 0
	for oi := range raw.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "v/", Recursive: true, WithVersions: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		err := raw.RemoveObject(ctx, bucket, oi.Key, minio.RemoveObjectOptions{VersionID: oi.VersionID, GovernanceBypass: true})
		if err == nil {
			destroyed++
			if k := strings.TrimPrefix(oi.Key, "v/"); !strings.HasPrefix(k, "keys/") && !strings.HasPrefix(k, "locks/") {
				t.Errorf("%s (version %s) was destroyed", k, oi.VersionID)
			}
		}
		raw.RemoveObject(ctx, bucket, oi.Key, minio.RemoveObjectOptions{}) // a delete marker
	}
	if destroyed == 0 {
		t.Fatal("not even the key slots could be destroyed: the test proves nothing")
	}
	if _, err := vault.Open(ctx, be, testPass, testOpts()); err == nil {
		t.Fatal("the vault opens after everything was deleted")
	}
	rep2, err := vault.Undelete(ctx, be, time.Time{}, true)
	if err != nil || len(rep2.Restored) == 0 {
		t.Fatalf("dry run: %+v %v", rep2, err)
	}
	if _, err := be.Stat(ctx, "points/"+p1.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a dry run undeleted: %v", err)
	}
	rep2, err = vault.Undelete(ctx, be, time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := be.Stat(ctx, "points/"+p1.ID); err != nil {
		t.Fatalf("after undelete: %v (%+v)", err, rep2)
	}
	for _, n := range p1Packs {
		if _, err := be.Stat(ctx, n); err != nil {
			t.Errorf("pack %s after undelete: %v", n, err)
		}
	}
	// The key slots were destroyed for good (they are never locked): the
	// disaster kit's copy of one opens the vault.
	if _, err := vault.Open(ctx, be, testPass, testOpts()); err == nil || !strings.Contains(err.Error(), "no key slot") {
		t.Fatalf("open without slots: %v", err)
	}
	opts := testOpts()
	opts.KeySlot = kitSlot
	v2, err := vault.Open(ctx, be, testPass, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := mustRestore(t, v2, p1.ID, "tree")
	compareTrees(t, want1, snapshot(t, got))
	for _, n := range rep2.Restored {
		if strings.HasPrefix(n, "keys/") && !strings.HasPrefix(n, "keys/feature-") {
			t.Errorf("key slot %s undeleted", n)
		}
	}
	if rep3, err := vault.Undelete(ctx, be, time.Time{}, false); err != nil || len(rep3.Restored) != 0 {
		t.Errorf("second undelete: %+v %v, want nothing to do", rep3, err)
	}
}
