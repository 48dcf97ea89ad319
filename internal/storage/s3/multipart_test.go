package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/testenv"
)

// TestMultipartPutIsConditional runs large puts against the real server,
// with the multipart threshold lowered so that 12 MiB takes three parts.
func TestMultipartPutIsConditional(t *testing.T) {
	env := testenv.Require(t, "LIFEBOAT_TEST_S3_ENDPOINT", "LIFEBOAT_TEST_S3_ACCESS", "LIFEBOAT_TEST_S3_SECRET", "LIFEBOAT_TEST_S3_BUCKET")
	var r [8]byte
	rand.Read(r[:])
	cfg := Config{Endpoint: env["LIFEBOAT_TEST_S3_ENDPOINT"], AccessKey: env["LIFEBOAT_TEST_S3_ACCESS"],
		SecretKey: env["LIFEBOAT_TEST_S3_SECRET"], Bucket: env["LIFEBOAT_TEST_S3_BUCKET"], Prefix: "test/" + hex.EncodeToString(r[:])}
	ctx := context.Background()
	b, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.multipartAt, b.partSize = 5<<20, 5<<20
	first := make([]byte, 12<<20+3)
	rand.Read(first)
	if err := b.Put(ctx, "data/ab/big", first); err != nil {
		t.Fatalf("multipart put: %v", err)
	}
	got, err := storage.ReadAll(ctx, b, "data/ab/big")
	if err != nil || !bytes.Equal(got, first) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	second := bytes.Repeat([]byte("x"), 6<<20)
	if err := b.Put(ctx, "data/ab/big", second); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second multipart put: %v, want ErrExists", err)
	}
	if got, _ := storage.ReadAll(ctx, b, "data/ab/big"); !bytes.Equal(got, first) {
		t.Fatalf("object replaced by a refused multipart put (%d bytes)", len(got))
	}
	// The refused upload was aborted: no parts left behind.
	res, err := minio.Core{Client: b.c}.ListMultipartUploads(ctx, b.bucket, b.prefix, "", "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Uploads) != 0 {
		t.Errorf("%d incomplete uploads left: %+v", len(res.Uploads), res.Uploads)
	}
}
