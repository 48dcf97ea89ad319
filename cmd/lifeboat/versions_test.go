package main_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/lifeboat-vault/lifeboat/internal/storage/s3/s3test"
)

// TestCLIRecoverDeleted: on a bucket with object lock, someone with the
// bucket's keys deletes a vault's objects and destroys its key slots; the
// disaster-kit commands list the versions, recover the deleted objects,
// and restore with a copy of the key slot kept aside.
func TestCLIRecoverDeleted(t *testing.T) {
	srv := s3test.Require(t)
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "site")
	writeTree(t, src, rand.New(rand.NewPCG(5, 6)), 30)
	bucket := srv.LockedBucket(t)
	loc := "s3://" + bucket + "/v"
	e := append(passEnv(), "AWS_ENDPOINT_URL=http://"+srv.Endpoint, "AWS_ACCESS_KEY_ID="+srv.Access, "AWS_SECRET_ACCESS_KEY="+srv.Secret)
	mustRun(t, e, "vault", "init", "--vault", loc)
	mustRun(t, e, "vault", "backup", "--vault", loc, src)

	// A copy of the key slot, as a disaster kit keeps it.
	raw := srv.Client(t)
	var slotKey string
	for oi := range raw.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "v/keys/", Recursive: true}) {
		if !strings.Contains(oi.Key, "feature-") {
			slotKey = oi.Key
		}
	}
	obj, err := raw.GetObject(ctx, bucket, slotKey, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slotFile := filepath.Join(dir, "slot.json")
	f, _ := os.Create(slotFile)
	if _, err := f.ReadFrom(obj); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// The attack: every object deleted, the key slot destroyed for good.
	for oi := range raw.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "v/", Recursive: true, WithVersions: true}) {
		if strings.HasPrefix(oi.Key, "v/keys/") && !strings.Contains(oi.Key, "feature-") {
			raw.RemoveObject(ctx, bucket, oi.Key, minio.RemoveObjectOptions{VersionID: oi.VersionID})
		}
	}
	for oi := range raw.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "v/", Recursive: true}) {
		raw.RemoveObject(ctx, bucket, oi.Key, minio.RemoveObjectOptions{})
	}
	if r := lifeboat(t, e, "vault", "points", "--vault", loc); r.code == 0 {
		t.Fatalf("the vault opens after the attack: %s", r.stdout)
	}

	r := mustRun(t, e, "vault", "versions", "--vault", loc, "--prefix", "points/")
	if !strings.Contains(r.stdout, "DELETE MARKER") || !strings.Contains(r.stdout, "1 objects hidden") {
		t.Errorf("versions: %s", r.stdout)
	}
	r = mustRun(t, e, "vault", "versions", "--vault", loc, "-o", "json")
	var vs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &vs); err != nil || len(vs) == 0 {
		t.Errorf("versions -o json: %v %s", err, r.stdout)
	}
	r = mustRun(t, e, "vault", "recover-deleted", "--vault", loc, "--dry-run")
	if !strings.Contains(r.stdout, "would recover points/") {
		t.Errorf("dry run: %s", r.stdout)
	}
	if r := lifeboat(t, e, "vault", "points", "--vault", loc); r.code == 0 {
		t.Fatal("a dry run recovered something")
	}
	if r := lifeboat(t, e, "vault", "recover-deleted", "--vault", loc, "--since", "yesterday"); r.code != 2 || !strings.Contains(r.stderr, "RFC 3339") {
		t.Errorf("bad --since: %d %s", r.code, r.stderr)
	}
	r = mustRun(t, e, "vault", "recover-deleted", "--vault", loc)
	if !strings.Contains(r.stdout, "recovered points/") || !strings.Contains(r.stdout, "recovered lifeboat.json") {
		t.Errorf("recover-deleted: %s", r.stdout)
	}
	// The slot is gone for good: the kept copy opens the vault.
	if r := lifeboat(t, e, "vault", "points", "--vault", loc); r.code != 7 || !strings.Contains(r.stderr, "no key slot") {
		t.Errorf("without the slot: %d %s", r.code, r.stderr)
	}
	out := filepath.Join(dir, "out")
	mustRun(t, e, "vault", "restore", "--vault", loc, "--key-slot-file", slotFile, "latest", "--to", out)
	if d := diffDirs(t, src, filepath.Join(out, "site")); d != "" {
		t.Fatalf("restore after recovery differs: %s", d)
	}
	// A local vault keeps no versions: said so.
	local := filepath.Join(dir, "local")
	mustRun(t, passEnv(), "vault", "init", "--vault", local)
	if r := lifeboat(t, passEnv(), "vault", "versions", "--vault", local); r.code != 2 || !strings.Contains(r.stderr, "keeps no object versions") {
		t.Errorf("versions of a local vault: %d %s", r.code, r.stderr)
	}
}
