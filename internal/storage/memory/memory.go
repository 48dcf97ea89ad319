// Package memory is an in-memory storage.Backend for unit tests only: it is
// fast and forgets everything when the process ends. It imports storage only.
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
	// Now is the storage clock (object timestamps); default time.Now.
	Now func() time.Time

	mu sync.Mutex
	m  map[string]object
}

var _ storage.Backend = (*Backend)(nil)

// New returns an empty backend.
func New() *Backend { return &Backend{m: map[string]object{}, Now: time.Now} }

// Location implements storage.Backend.
func (b *Backend) Location() string { return "memory" }

// Put implements storage.Backend.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[name]; ok {
		return fmt.Errorf("put %s: %w", name, storage.ErrExists)
	}
	b.m[name] = object{data: bytes.Clone(data), mod: b.Now()}
	return nil
}

// Get implements storage.Backend.
func (b *Backend) Get(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.m[name]
	if !ok {
		return nil, fmt.Errorf("get %s: %w", name, storage.ErrNotFound)
	}
	d := o.data
	if off < 0 {
		return nil, fmt.Errorf("get %s: negative offset", name)
	}
	d = d[min(off, int64(len(d))):]
	if n >= 0 && n < int64(len(d)) {
		d = d[:n]
	}
	return io.NopCloser(bytes.NewReader(d)), nil
}

// Stat implements storage.Backend.
func (b *Backend) Stat(ctx context.Context, name string) (storage.ObjectInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.m[name]
	if !ok {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", name, storage.ErrNotFound)
	}
	return storage.ObjectInfo{Name: name, Size: int64(len(o.data)), ModTime: o.mod}, nil
}

// List implements storage.Backend.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
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
			return err
		}
		if err := fn(oi); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements storage.Backend.
func (b *Backend) Delete(ctx context.Context, name string) error {
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

// Mutate lets corruption tests change a stored object in place.
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
