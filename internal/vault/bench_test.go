package vault

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/pack"
)

// discard is a backend that keeps objects' names but not their bytes, so
// benchmarks measure the engine, not a memory copy.
type discard struct{ *memory.Backend }

func (d discard) Put(ctx context.Context, name string, data []byte) error {
	if len(data) > 4096 {
		data = nil
	}
	return d.Backend.Put(ctx, name, data)
}

func benchVault(b *testing.B) *Vault {
	v, err := Init(context.Background(), discard{memory.New()}, []byte("pw"), Options{KDF: &weakKDF})
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// BenchmarkHash: keyed BLAKE3 of 1 MiB chunks (blob ids).
func BenchmarkHash(b *testing.B) {
	v := benchVault(b)
	data := make([]byte, 1<<20)
	rand.Read(data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		v.Hash(data)
	}
}

// BenchmarkPackWriting: sealing 1 MiB blobs into an in-memory pack and
// finishing it (the path S3 uploads take).
func BenchmarkPackWriting(b *testing.B) {
	v := benchVault(b)
	data := make([]byte, 1<<20)
	rand.Read(data)
	b.SetBytes(16 << 20)
	buf := make([]byte, 0, 17<<20)
	for b.Loop() {
		w := pack.NewWriter(blob.PackID{1}, buf)
		for i := range 16 {
			id := blob.ID{byte(i)}
			w.AppendSealed(blob.Data, id, len(data), func(dst []byte) []byte { return v.sealer().Seal(dst, data, blob.Context(blob.Data, id)) })
		}
		out, _ := w.Finish(v.sealer())
		buf = out[:0]
	}
}

// BenchmarkSaveBlob: the whole per-chunk path (hash, dedup, compress, seal,
// pack) for new incompressible 1 MiB chunks, packs going to memory storage.
func BenchmarkSaveBlob(b *testing.B) {
	v := benchVault(b)
	s := v.newSaver(context.Background())
	data := make([]byte, 1<<20)
	rand.Read(data)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		data[0], data[1], data[2] = byte(i), byte(i>>8), byte(i>>16) // a new blob each time
		if _, _, err := s.save(blob.Data, data); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.finish(); err != nil {
		b.Fatal(err)
	}
}
