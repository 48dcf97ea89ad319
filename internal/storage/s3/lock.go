package s3

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
)

var (
	_ storage.Retainer  = (*Backend)(nil)
	_ storage.Versioner = (*Backend)(nil)
)

// ObjectLock implements storage.Retainer: the bucket must have object lock
// enabled (which implies versioning).
func (b *Backend) ObjectLock(ctx context.Context) error {
	enabled, _, _, _, err := b.c.GetObjectLockConfig(ctx, b.bucket)
	if err != nil {
		er := errorResponse(err)
		if er.Code == "ObjectLockConfigurationNotFoundError" || er.Code == "ObjectLockConfigurationNotFound" || er.StatusCode == 404 {
			return fmt.Errorf("bucket %q has no object lock: create a bucket with object lock enabled (it cannot be turned on for an existing bucket on most S3 services)", b.bucket)
		}
		return b.wrap(ctx, "get object lock configuration of bucket "+b.bucket, "", err)
	}
	if !strings.EqualFold(enabled, "Enabled") {
		return fmt.Errorf("bucket %q: object lock is %q, not Enabled", b.bucket, enabled)
	}
	vc, err := b.c.GetBucketVersioning(ctx, b.bucket)
	if err != nil {
		return b.wrap(ctx, "get versioning of bucket "+b.bucket, "", err)
	}
	if !vc.Enabled() {
		return fmt.Errorf("bucket %q has object lock but versioning is %q: object lock needs versioning enabled", b.bucket, vc.Status)
	}
	return nil
}

// Retention implements storage.Retainer. It reads the retention headers
// of a HEAD (GetObjectRetention's answer is not the same XML on every
// S3-compatible server).
func (b *Backend) Retention(ctx context.Context, name string) (time.Time, error) {
	if err := b.check(ctx, "get retention of", name); err != nil {
		return time.Time{}, err
	}
	oi, err := b.c.StatObject(ctx, b.bucket, b.key(name), minio.StatObjectOptions{})
	if err != nil {
		return time.Time{}, b.wrap(ctx, "get retention of", name, err)
	}
	v := oi.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date")
	if v == "" {
		return time.Time{}, nil // an object without retention
	}
	until, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("get retention of %s at %s: retain-until date %q: %w", name, b.loc, v, err)
	}
	return until, nil
}

// Retain implements storage.Retainer with a compliance-mode retention on
// the object's current version.
func (b *Backend) Retain(ctx context.Context, name string, until time.Time) error {
	if err := b.check(ctx, "retain", name); err != nil {
		return err
	}
	if err := b.writable(ctx); err != nil {
		return fmt.Errorf("retain %s: %w", name, err)
	}
	mode := minio.Compliance
	until = until.UTC().Truncate(time.Second)
	err := b.c.PutObjectRetention(ctx, b.bucket, b.key(name), minio.PutObjectRetentionOptions{Mode: &mode, RetainUntilDate: &until})
	if err != nil {
		return b.wrap(ctx, "retain", name, err)
	}
	return nil
}

// ListVersions implements storage.Versioner.
func (b *Backend) ListVersions(ctx context.Context, prefix string, fn func(storage.Version) error) error {
	if err := storage.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("list versions: %w", err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for oi := range b.c.ListObjects(lctx, b.bucket, minio.ListObjectsOptions{Prefix: b.key(prefix), Recursive: true, WithVersions: true}) {
		if oi.Err != nil {
			return b.wrap(ctx, "list versions", prefix, oi.Err)
		}
		name, ok := strings.CutPrefix(oi.Key, b.prefix)
		if !ok || storage.CheckName(name) != nil {
			continue
		}
		v := storage.Version{Name: name, VersionID: oi.VersionID, Size: oi.Size, ModTime: oi.LastModified, Latest: oi.IsLatest, DeleteMarker: oi.IsDeleteMarker}
		if err := fn(v); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list versions %s: %w", prefix, err)
	}
	return nil
}

// DeleteVersion implements storage.Versioner.
func (b *Backend) DeleteVersion(ctx context.Context, name, versionID string) error {
	if err := b.check(ctx, "delete version of", name); err != nil {
		return err
	}
	if versionID == "" {
		return fmt.Errorf("delete version of %s: no version id", name)
	}
	if err := b.writable(ctx); err != nil {
		return fmt.Errorf("delete version of %s: %w", name, err)
	}
	if err := b.c.RemoveObject(ctx, b.bucket, b.key(name), minio.RemoveObjectOptions{VersionID: versionID}); err != nil {
		return b.wrap(ctx, "delete version "+versionID+" of", name, err)
	}
	return nil
}
