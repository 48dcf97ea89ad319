package memory

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
)

type object struct {
	data []byte
	mod  time.Time
}

// Backend keeps objects in a map.
type Backend struct {
	// Now is the storage clock that stamps ModTime; default time.Now. Set
	// it before the first Put.
	Now func() time.Time

	mu sync.Mutex
	m  map[string]object
}

var _ storage.Backend = (*Backend)(nil)

// New returns an empty backend.
func New() *Backend { return &Backend{m: map[string]object{}, Now: time.Now} }

// Location implements storage.Backend.
func (b *Backend) Location() string { return "memory" }

// check validates the context and the name of an operation.
func check(ctx context.Context, op, name string) error {
	if err := storage.CheckName(name); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %s: %w", op, name, err)
	}
	return nil
}

// Put implements storage.Backend.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	if err := check(ctx, "put", name); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[name]; ok {
		return fmt.Errorf("put %s: %w", name, storage.ErrExists)
	}
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	b.m[name] = object{data: bytes.Clone(data), mod: now()}
	return nil
}

// Get implements storage.Backend.
func (b *Backend) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := check(ctx, "get", name); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", name, offset)
	}
	b.mu.Lock()
	o, ok := b.m[name]
	b.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("get %s: %w", name, storage.ErrNotFound)
	}
	// o.data is never modified in place (Mutate replaces it), so the
	// reader may share it.
	d := o.data[min(offset, int64(len(o.data))):]
	if length >= 0 && length < int64(len(d)) {
		d = d[:length]
	}
	return io.NopCloser(bytes.NewReader(d)), nil
}

// Stat implements storage.Backend.
func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	if err := check(ctx, "stat", name); err != nil {
		return storage.ObjectInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.m[name]
	if !ok {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", name, storage.ErrNotFound)
	}
	return storage.ObjectInfo{Name: name, Size: int64(len(o.data)), ModTime: o.mod}, nil
}

// List implements storage.Backend. fn runs without the lock held, so it may
// call the backend.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := storage.CheckPrefix(prefix); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	b.mu.Lock()
	var l []storage.ObjectInfo
	for k, o := range b.m {
		if strings.HasPrefix(k, prefix) {
			l = append(l, storage.ObjectInfo{Name: k, Size: int64(len(o.data)), ModTime: o.mod})
		}
	}
	b.mu.Unlock()
	for _, oi := range l {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if err := fn(oi); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements storage.Backend.
func (b *Backend) Delete(ctx context.Context, name string) error {
	if err := check(ctx, "delete", name); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[name]; !ok {
		return fmt.Errorf("delete %s: %w", name, storage.ErrNotFound)
	}
	delete(b.m, name)
	return nil
}

// Close implements storage.Backend.
func (b *Backend) Close() error { return nil }

// Mutate lets corruption tests change a stored object in place: f gets a
// copy of the content and returns the new content. It reports whether name
// exists.
func (b *Backend) Mutate(name string, f func([]byte) []byte) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.m[name]
	if !ok {
		return false
	}
	o.data = f(bytes.Clone(o.data))
	b.m[name] = o
	return true
}
