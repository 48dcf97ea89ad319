// Package s3test gives tests buckets of their own on the test S3 server
// (scripts/test-services.sh): in particular buckets with object lock, which
// must be created with it.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lifeboat-vault/lifeboat/internal/testenv"
)

// Server is the test server's endpoint and credentials.
type Server struct {
	Endpoint, Access, Secret, Bucket string
}

// Require returns the test server, or skips (fails in CI) without one.
func Require(t testing.TB) Server {
	t.Helper()
	env := testenv.Require(t, "LIFEBOAT_TEST_S3_ENDPOINT", "LIFEBOAT_TEST_S3_ACCESS", "LIFEBOAT_TEST_S3_SECRET", "LIFEBOAT_TEST_S3_BUCKET")
	return Server{Endpoint: env["LIFEBOAT_TEST_S3_ENDPOINT"], Access: env["LIFEBOAT_TEST_S3_ACCESS"],
		Secret: env["LIFEBOAT_TEST_S3_SECRET"], Bucket: env["LIFEBOAT_TEST_S3_BUCKET"]}
}

// Client is a raw S3 client of the test server, for tests that act as
// someone going around Lifeboat (an attacker with the bucket's keys).
func (s Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.Access, s.Secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// LockedBucket creates a new bucket with object lock (and so versioning)
// enabled and returns its name. Its objects stay as long as their
// retention says: the test server's data is thrown away with it.
func (s Server) LockedBucket(t testing.TB) string {
	t.Helper()
	var r [6]byte
	rand.Read(r[:])
	name := "locked-" + hex.EncodeToString(r[:])
	if err := s.Client(t).MakeBucket(context.Background(), name, minio.MakeBucketOptions{Region: "us-east-1", ObjectLocking: true}); err != nil {
		t.Fatalf("create bucket %s with object lock: %v", name, err)
	}
	return name
}
