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

// config returns the test server's configuration (scripts/test-services.sh)
// with a prefix of its own, so that tests and packages running in parallel
// never see each other's objects.
func config(t *testing.T) s3.Config {
	t.Helper()
	env := testenv.Require(t, "LIFEBOAT_TEST_S3_ENDPOINT", "LIFEBOAT_TEST_S3_ACCESS", "LIFEBOAT_TEST_S3_SECRET", "LIFEBOAT_TEST_S3_BUCKET")
	var r [8]byte
	rand.Read(r[:])
	return s3.Config{
		Endpoint:  env["LIFEBOAT_TEST_S3_ENDPOINT"],
		AccessKey: env["LIFEBOAT_TEST_S3_ACCESS"],
		SecretKey: env["LIFEBOAT_TEST_S3_SECRET"],
		Bucket:    env["LIFEBOAT_TEST_S3_BUCKET"],
		Prefix:    "test/" + hex.EncodeToString(r[:]),
	}
}

func TestConformance(t *testing.T) {
	config(t) // skip (or fail) once, not in every subtest
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := s3.Open(context.Background(), config(t))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// TestOpenWithURLEndpoint: an endpoint given as a URL works, and objects
// are stored under prefix + "/" + name.
func TestOpenWithURLEndpoint(t *testing.T) {
	cfg := config(t)
	cfg.Endpoint = "http://" + cfg.Endpoint
	b, err := s3.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open with a URL endpoint: %v", err)
	}
	defer b.Close()
	if want := "s3://" + cfg.Bucket + "/" + cfg.Prefix; b.Location() != want {
		t.Errorf("location %q, want %q", b.Location(), want)
	}
	// Keys are prefix + "/" + name, without double slashes.
	ctx := context.Background()
	if err := b.Put(ctx, "data/ab/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	whole := cfg
	whole.Prefix = ""
	wb, err := s3.Open(ctx, whole)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := storage.ReadAll(ctx, wb, cfg.Prefix+"/data/ab/x"); err != nil || string(got) != "x" {
		t.Errorf("object seen from the whole bucket: %q, %v", got, err)
	}
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
}

// A password in an endpoint URL never reaches an error; the endpoint is
// refused with where credentials come from instead.
func TestEndpointUserinfoRedacted(t *testing.T) {
	for _, ep := range []string{"https://AKID:TopSecretPW@s3.example:443", "htps://AKID:TopSecretPW@s3.example:443/x", "https://AKID:TopSecretPW@s3.example:443/path"} {
		_, err := s3.Open(context.Background(), s3.Config{Endpoint: ep, Bucket: "abc", AccessKey: "AKID", SecretKey: "other"})
		if err == nil || strings.Contains(err.Error(), "TopSecretPW") {
			t.Errorf("open with endpoint %q: %v", ep, err)
		}
	}
	for in, want := range map[string]string{
		"https://u:p@host:9000":     "https://[redacted]@host:9000",
		"u:p@host:9000/a@b":         "[redacted]@host:9000/a@b",
		"http://host:9000/x?y=a@b":  "http://host:9000/x?y=a@b",
		"https://a@b:pw@host:9000/": "https://[redacted]@host:9000/",
	} {
		if got := s3.RedactEndpoint(in); got != want {
			t.Errorf("RedactEndpoint(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUnreachableEndpoint needs no server: nothing listens on port 1.
func TestUnreachableEndpoint(t *testing.T) {
	cfg := s3.Config{Endpoint: "127.0.0.1:1", Bucket: "vault-test", Prefix: "p", AccessKey: "ak", SecretKey: "sk-do-not-print"}
	t0 := time.Now()
	_, err := s3.Open(context.Background(), cfg)
	d := time.Since(t0)
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "s3://vault-test/p") || strings.Contains(err.Error(), cfg.SecretKey) {
		t.Errorf("unreachable endpoint: %v", err)
	}
	if d > 5*time.Second {
		t.Errorf("unreachable endpoint took %v to fail", d)
	}
	t.Logf("failed in %v: %v", d.Round(time.Millisecond), err)
}

func TestParseLocation(t *testing.T) {
	for in, want := range map[string]string{
		"s3://bucket/a/b": "bucket a/b",
		"s3://bucket":     "bucket ",
		"s3://bucket/":    "bucket ",
		"s3://bkt/x/":     "bkt x",
		"s3://my.bkt-1/x": "my.bkt-1 x",
	} {
		b, p, err := s3.ParseLocation(in)
		if err != nil || b+" "+p != want {
			t.Errorf("%s: %q %q %v, want %s", in, b, p, err, want)
		}
	}
	for _, in := range []string{"s3://", "s3://B/x", "s3://ab", "s3://bucket/a/../b", "s3://bucket//x", "s3://bucket/a//b",
		"file:///x", "bucket/x", "s3://bucket/a b", "s3://bucket/x?y", "S3://bucket/x"} {
		if _, _, err := s3.ParseLocation(in); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}
