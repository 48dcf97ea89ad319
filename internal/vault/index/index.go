// Package index encodes index objects and holds the in-memory blob index.
//
//	index object = crypto envelope, context "index <object name>", of
//	    0x01 | pack count uint32 LE | pack count × (pack id [16] | entry list)
//	entry list   = as in package pack
//
// An index object is written only after every pack it names is durable, and
// before any manifest that needs those blobs (docs/vault-format.md).
package index

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/pack"
)

// PackEntries is one pack's part of an index object.
type PackEntries struct {
	Pack    blob.PackID
	Entries []blob.Entry
}

// MaxPacks bounds a decoded index object.
const MaxPacks = 1 << 16

// Encode encodes an index object's plaintext.
func Encode(packs []PackEntries) []byte {
	var b []byte
	b = append(b, 1)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(packs)))
	for _, p := range packs {
		b = append(b, p.Pack[:]...)
		b = pack.EncodeEntries(b, p.Entries)
	}
	return b
}

// Decode decodes an index object's plaintext.
func Decode(b []byte) ([]PackEntries, error) {
	if len(b) < 5 || b[0] != 1 {
		return nil, fmt.Errorf("index: %w: bad header", pack.ErrMalformed)
	}
	n := binary.LittleEndian.Uint32(b[1:])
	if n > MaxPacks {
		return nil, fmt.Errorf("index: %w: %d packs", pack.ErrMalformed, n)
	}
	b = b[5:]
	out := make([]PackEntries, 0, min(n, 1024))
	for i := uint32(0); i < n; i++ {
		if len(b) < 16+5 {
			return nil, fmt.Errorf("index: %w: truncated at pack %d", pack.ErrMalformed, i)
		}
		var pe PackEntries
		pe.Pack = blob.PackID(b[:16])
		cnt := binary.LittleEndian.Uint32(b[17:])
		if cnt > pack.MaxEntries {
			return nil, fmt.Errorf("index: %w: pack %s has %d entries", pack.ErrMalformed, pe.Pack, cnt)
		}
		end := 16 + 5 + int(cnt)*pack.EntrySize
		if len(b) < end {
			return nil, fmt.Errorf("index: %w: truncated at pack %s", pack.ErrMalformed, pe.Pack)
		}
		es, err := pack.DecodeEntries(b[16:end], 1<<32)
		if err != nil {
			return nil, fmt.Errorf("index: pack %s: %w", pe.Pack, err)
		}
		pe.Entries = es
		out = append(out, pe)
		b = b[end:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("index: %w: %d trailing bytes", pack.ErrMalformed, len(b))
	}
	return out, nil
}

// Location is where the index says a blob is.
type Location struct {
	Pack blob.PackID
	blob.Entry
}

type loc struct {
	pack      uint32 // into Index.packs
	offset    uint32
	length    uint32
	rawLength uint32
	typ       blob.Type
}

// Index maps blob ids to their pack and offset. Safe for concurrent use.
type Index struct {
	mu      sync.RWMutex
	packs   []blob.PackID
	packNum map[blob.PackID]uint32
	blobs   map[blob.ID]loc
}

// New returns an empty index.
func New() *Index {
	return &Index{packNum: map[blob.PackID]uint32{}, blobs: map[blob.ID]loc{}}
}

// Add records a pack's blobs. A blob already known keeps its first location.
func (x *Index) Add(p blob.PackID, es []blob.Entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n, ok := x.packNum[p]
	if !ok {
		n = uint32(len(x.packs))
		x.packs = append(x.packs, p)
		x.packNum[p] = n
	}
	for _, e := range es {
		if _, dup := x.blobs[e.ID]; dup {
			continue
		}
		x.blobs[e.ID] = loc{pack: n, offset: e.Offset, length: e.Length, rawLength: e.RawLength, typ: e.Type}
	}
}

// Lookup finds a blob.
func (x *Index) Lookup(id blob.ID) (Location, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	l, ok := x.blobs[id]
	if !ok {
		return Location{}, false
	}
	return Location{Pack: x.packs[l.pack], Entry: blob.Entry{ID: id, Type: l.typ, Offset: l.offset, Length: l.length, RawLength: l.rawLength}}, true
}

// Has reports whether a blob is indexed.
func (x *Index) Has(id blob.ID) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.blobs[id]
	return ok
}

// Len is the number of blobs.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.blobs)
}

// Packs lists every pack the index names.
func (x *Index) Packs() []blob.PackID {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return append([]blob.PackID(nil), x.packs...)
}

// Each calls fn for every blob, in no order, under a read lock.
func (x *Index) Each(fn func(Location)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for id, l := range x.blobs {
		fn(Location{Pack: x.packs[l.pack], Entry: blob.Entry{ID: id, Type: l.typ, Offset: l.offset, Length: l.length, RawLength: l.rawLength}})
	}
}
