package s3_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/s3"
	"github.com/lifeboat-vault/lifeboat/internal/storage/storagetest"
	"github.com/lifeboat-vault/lifeboat/internal/testenv"
)

// Config returns the test server's configuration with a fresh prefix.
func config(t *testing.T) s3.Config {
	t.Helper()
	env := testenv.Require(t, "LIFEBOAT_TEST_S3_ENDPOINT", "LIFEBOAT_TEST_S3_ACCESS", "LIFEBOAT_TEST_S3_SECRET", "LIFEBOAT_TEST_S3_BUCKET")
	var r [6]byte
	rand.Read(r[:])
	return s3.Config{Endpoint: env["LIFEBOAT_TEST_S3_ENDPOINT"], AccessKey: env["LIFEBOAT_TEST_S3_ACCESS"],
		SecretKey: env["LIFEBOAT_TEST_S3_SECRET"], Bucket: env["LIFEBOAT_TEST_S3_BUCKET"], Prefix: "test-" + hex.EncodeToString(r[:])}
}

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := s3.Open(context.Background(), config(t))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestOpenErrors(t *testing.T) {
	cfg := config(t)
	ctx := context.Background()
	bad := cfg
	bad.SecretKey = "wrong-secret-value"
	_, err := s3.Open(ctx, bad)
	if !errors.Is(err, storage.ErrUnavailable) || strings.Contains(err.Error(), bad.SecretKey) || strings.Contains(err.Error(), cfg.SecretKey) {
		t.Errorf("wrong secret: %v", err)
	}
	nob := cfg
	nob.Bucket = "no-such-bucket-lifeboat"
	if _, err := s3.Open(ctx, nob); !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "no-such-bucket-lifeboat") {
		t.Errorf("missing bucket: %v", err)
	}
	down := cfg
	down.Endpoint = "127.0.0.1:1"
	t0 := time.Now()
	if _, err := s3.Open(ctx, down); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("unreachable endpoint: %v", err)
	}
	if d := time.Since(t0); d > 20*time.Second {
		t.Errorf("unreachable endpoint took %v to fail", d)
	}
}

func TestParseLocation(t *testing.T) {
	for in, want := range map[string]string{"s3://bucket/a/b": "bucket a/b", "s3://bucket": "bucket ", "s3://bkt/x/": "bkt x"} {
		b, p, err := s3.ParseLocation(in)
		if err != nil || b+" "+p != want {
			t.Errorf("%s: %q %q %v", in, b, p, err)
		}
	}
	for _, in := range []string{"s3://", "s3://B/x", "s3://ab", "s3://bucket/a/../b", "file:///x"} {
		if _, _, err := s3.ParseLocation(in); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}
