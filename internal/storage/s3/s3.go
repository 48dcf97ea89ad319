// Package s3 stores a vault under a prefix of an S3-compatible bucket with
// github.com/minio/minio-go/v7. Put is a conditional create
// (If-None-Match: *), probed when the backend is opened: storage that would
// let a second put overwrite an object is refused, because the vault's
// crash safety depends on objects never being replaced.
//
// s3 imports storage only. Errors never contain the secret key.
package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
)

// Config locates a bucket prefix. SecretKey is a secret: it is never printed.
type Config struct {
	Endpoint  string // host:port
	Bucket    string
	Prefix    string
	AccessKey string
	SecretKey string
	Region    string // default us-east-1
	UseTLS    bool
}

// Backend is a bucket prefix.
type Backend struct {
	c      *minio.Client
	core   minio.Core
	bucket string
	prefix string // "" or "p/" (with the slash)
	loc    string
}

var _ storage.Backend = (*Backend)(nil)

// ParseLocation splits s3://bucket/prefix.
func ParseLocation(loc string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(loc, "s3://")
	if !ok {
		return "", "", fmt.Errorf("not an s3:// location")
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	prefix = strings.Trim(prefix, "/")
	if len(bucket) < 3 || len(bucket) > 63 || strings.ToLower(bucket) != bucket || strings.ContainsAny(bucket, " _/\\") {
		return "", "", fmt.Errorf("bad bucket name %q", bucket)
	}
	if strings.Contains(prefix, "//") || strings.Contains(prefix, "..") {
		return "", "", fmt.Errorf("bad prefix %q", prefix)
	}
	return bucket, prefix, nil
}

// Open connects, checks the bucket, and probes conditional writes and
// read-after-write listing.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	loc := "s3://" + cfg.Bucket
	if cfg.Prefix != "" {
		loc += "/" + strings.Trim(cfg.Prefix, "/")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   16,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       90 * time.Second,
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:     cfg.UseTLS,
		Region:     cfg.Region,
		Transport:  tr,
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", storage.ErrUnavailable, loc, scrub(err, cfg.SecretKey))
	}
	b := &Backend{c: c, core: minio.Core{Client: c}, bucket: cfg.Bucket, loc: loc}
	if p := strings.Trim(cfg.Prefix, "/"); p != "" {
		b.prefix = p + "/"
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ok, err := c.BucketExists(pctx, cfg.Bucket)
	if err != nil {
		return nil, b.wrap("open", "", err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: %s: bucket %q does not exist", storage.ErrUnavailable, loc, cfg.Bucket)
	}
	if err := b.probe(pctx); err != nil {
		return nil, err
	}
	return b, nil
}

func scrub(err error, secret string) string {
	s := err.Error()
	if secret != "" {
		s = strings.ReplaceAll(s, secret, "[secret]")
	}
	return s
}

func (b *Backend) probe(ctx context.Context) error {
	var r [8]byte
	rand.Read(r[:])
	name := "locks/probe-" + hex.EncodeToString(r[:])
	if err := b.Put(ctx, name, []byte("probe")); err != nil {
		return err
	}
	defer b.Delete(context.WithoutCancel(ctx), name)
	err := b.Put(ctx, name, []byte("second"))
	if err == nil || !errors.Is(err, storage.ErrExists) {
		if err == nil {
			return fmt.Errorf("%w: storage at %s does not support conditional writes (If-None-Match: *): a second put overwrote an object; refusing it", storage.ErrUnavailable, b.loc)
		}
		return err
	}
	seen := false
	if err := b.List(ctx, name, func(oi storage.ObjectInfo) error { seen = seen || oi.Name == name; return nil }); err != nil {
		return err
	}
	if !seen {
		return fmt.Errorf("%w: storage at %s does not list an object right after writing it; refusing it", storage.ErrUnavailable, b.loc)
	}
	return nil
}

// Location implements storage.Backend.
func (b *Backend) Location() string { return b.loc }

// Close implements storage.Backend.
func (b *Backend) Close() error { return nil }

func (b *Backend) key(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "//") || strings.Contains(name, "..") {
		return "", fmt.Errorf("bad object name %q", name)
	}
	return b.prefix + name, nil
}

// wrap translates minio errors into storage sentinels.
func (b *Backend) wrap(op, name string, err error) error {
	what := op
	if name != "" {
		what += " " + name
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s at %s: %w", what, b.loc, err)
	}
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey":
		return fmt.Errorf("%s: %w", what, storage.ErrNotFound)
	case "PreconditionFailed":
		return fmt.Errorf("%s: %w", what, storage.ErrExists)
	case "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return fmt.Errorf("%w: %s at %s: %s", storage.ErrUnavailable, what, b.loc, resp.Code)
	}
	if resp.StatusCode == http.StatusNotFound && op != "open" {
		return fmt.Errorf("%s: %w", what, storage.ErrNotFound)
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) || resp.StatusCode >= 500 {
		return fmt.Errorf("%w: %s at %s: %v", storage.ErrUnavailable, what, b.loc, err)
	}
	return fmt.Errorf("%s at %s: %v", what, b.loc, err)
}

// Put implements storage.Backend with a conditional create.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	k, err := b.key(name)
	if err != nil {
		return fmt.Errorf("put: %w", err)
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: 128 << 20, DisableMultipart: len(data) < 128<<20}
	opts.SetMatchETagExcept("*")
	_, err = b.c.PutObject(ctx, b.bucket, k, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		return b.wrap("put", name, err)
	}
	return nil
}

// Get implements storage.Backend.
func (b *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	k, err := b.key(name)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset", name)
	}
	var opts minio.GetObjectOptions
	if length == 0 {
		if _, err := b.Stat(ctx, name); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	if length > 0 {
		err = opts.SetRange(offset, offset+length-1)
	} else if offset > 0 {
		err = opts.SetRange(offset, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", name, err)
	}
	rc, _, _, err := b.core.GetObject(ctx, b.bucket, k, opts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "InvalidRange" {
			if _, serr := b.Stat(ctx, name); serr != nil {
				return nil, serr
			}
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		return nil, b.wrap("get", name, err)
	}
	return rc, nil
}

// Stat implements storage.Backend.
func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	k, err := b.key(name)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("stat: %w", err)
	}
	oi, err := b.c.StatObject(ctx, b.bucket, k, minio.StatObjectOptions{})
	if err != nil {
		return storage.ObjectInfo{}, b.wrap("stat", name, err)
	}
	return storage.ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// List implements storage.Backend.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for oi := range b.c.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix + prefix, Recursive: true}) {
		if oi.Err != nil {
			return b.wrap("list", prefix, oi.Err)
		}
		name := strings.TrimPrefix(oi.Key, b.prefix)
		if strings.HasSuffix(name, "/") {
			continue
		}
		if err := fn(storage.ObjectInfo{Name: name, Size: oi.Size, ModTime: oi.LastModified}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Delete implements storage.Backend. S3 deletes of missing keys succeed, so
// Delete stats first to report ErrNotFound as the contract says.
func (b *Backend) Delete(ctx context.Context, name string) error {
	k, err := b.key(name)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if _, err := b.Stat(ctx, name); err != nil {
		return err
	}
	if err := b.c.RemoveObject(ctx, b.bucket, k, minio.RemoveObjectOptions{}); err != nil {
		return b.wrap("delete", name, err)
	}
	return nil
}
