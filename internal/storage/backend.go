package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// Sentinel errors. Backends translate their native errors into these so that
// callers can test with errors.Is.
var (
	// ErrNotFound: the named object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrExists: Put was asked to create an object whose name is taken.
	ErrExists = errors.New("object already exists")
	// ErrUnavailable: the storage could not be reached (network, permissions
	// on the root, a missing bucket). Wrapped with the location.
	ErrUnavailable = errors.New("storage unavailable")
)

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Name    string    // full object name, slash separated, e.g. "data/ab/ab12..."
	Size    int64     // bytes
	ModTime time.Time // storage's own timestamp (used for ages; never a local clock)
}

// Backend stores immutable, named objects. Names are slash-separated relative
// paths made of [a-z0-9._-] segments; backends may reject anything else.
// All methods are safe for concurrent use.
type Backend interface {
	// Location is a human-readable description with no secret in it
	// (e.g. "/srv/vault" or "s3://bucket/prefix").
	Location() string

	// Put stores data under name atomically: after Put returns nil the object
	// is durable (local: fsynced file and directory) and complete; a reader
	// never sees a partial object. If name exists, Put returns an error
	// wrapping ErrExists and leaves the existing object untouched.
	Put(ctx context.Context, name string, data []byte) error

	// Get returns length bytes of name starting at offset; length < 0 reads
	// to the end. A missing object gives an error wrapping ErrNotFound. A range
	// past the end returns what exists (possibly nothing); callers check
	// lengths. The caller closes the reader.
	Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)

	// Stat describes one object; ErrNotFound if it is missing.
	Stat(ctx context.Context, name string) (ObjectInfo, error)

	// List calls fn for every object whose name starts with prefix, in no
	// particular order. Listing shows every object whose Put has returned.
	// An error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error

	// Delete removes name. Deleting a missing object returns ErrNotFound.
	Delete(ctx context.Context, name string) error

	// Close releases resources.
	Close() error
}

// ReadAll reads a whole object.
func ReadAll(ctx context.Context, b Backend, name string) ([]byte, error) {
	rc, err := b.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// Streamer is implemented by backends that can receive an object written
// piece by piece (the local backend writes straight into its temp file), so
// that a pack needs no buffer of its own. The object appears, atomically and
// durably, only at Commit; the contract of Put applies to it.
type Streamer interface {
	Create(ctx context.Context, name string) (ObjectWriter, error)
}

// Sweeper is implemented by backends where a writer that dies (killed,
// power loss) leaves its unfinished object behind, invisible to List (the
// local backend's temp files). Sweep removes those last written more than
// olderThan ago, returning how many and their bytes.
type Sweeper interface {
	Sweep(ctx context.Context, olderThan time.Duration) (n int, bytes int64, err error)
}

// ObjectWriter is an object being written.
type ObjectWriter interface {
	io.Writer
	// Commit makes the object durable and visible; ErrExists if the name was taken.
	Commit() error
	// Abort discards it.
	Abort() error
}

// Retainer is implemented by storage that can enforce retention itself
// (S3 object lock in compliance mode): an object version given a
// retain-until date cannot be deleted or overwritten by anyone, the
// vault's owner included, before that date.
type Retainer interface {
	// ObjectLock returns nil when the storage enforces retention (an S3
	// bucket with object lock enabled), or an error saying why not.
	ObjectLock(ctx context.Context) error
	// Retention returns name's retain-until date (zero when it has none).
	Retention(ctx context.Context, name string) (time.Time, error)
	// Retain sets name's retain-until date. Storage refuses to shorten one.
	Retain(ctx context.Context, name string, until time.Time) error
}

// Version is one stored version of an object, or a delete marker, in a
// versioned bucket.
type Version struct {
	Name         string    `json:"name"`
	VersionID    string    `json:"versionId"`
	Size         int64     `json:"size"`
	ModTime      time.Time `json:"modTime"`
	Latest       bool      `json:"latest"`       // the version readers see (or the marker hiding the others)
	DeleteMarker bool      `json:"deleteMarker"` // a delete of a versioned bucket: it hides, it removes nothing
}

// Versioner is implemented by storage that keeps object versions (a
// versioned S3 bucket, as object lock requires): a delete there only adds
// a delete marker, and the versions behind it stay readable by id.
type Versioner interface {
	// ListVersions calls fn for every version and delete marker of every
	// object whose name starts with prefix.
	ListVersions(ctx context.Context, prefix string, fn func(Version) error) error
	// DeleteVersion removes one version or delete marker. Removing the
	// delete marker that is an object's latest version makes the version
	// behind it readable again.
	DeleteVersion(ctx context.Context, name, versionID string) error
}
