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
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
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

// entry is the in-memory form: 52 bytes a blob, so that a vault of a million
// chunks needs about 50 MiB (DESIGN.md, "Index memory").
type entry struct {
	id        blob.ID
	pack      uint32 // into Index.packs
	offset    uint32
	length    uint32
	rawLength uint32
	typ       blob.Type
}

// extent is what a pack's entry list says of the pack: how many blobs it
// holds and where the last one ends.
type extent struct {
	blobs uint32
	end   int64
}

// tailMax is how many recent additions stay in a map before being merged
// into the sorted array.
const tailMax = 1 << 16

// Index maps blob ids to their pack and offset: a sorted array searched by
// binary search, plus a small map of recent additions merged in batches.
// A blob already known keeps its first location. Safe for concurrent use.
type Index struct {
	mu      sync.RWMutex
	packs   []blob.PackID
	extents []extent // by pack number, as packs
	packNum map[blob.PackID]uint32
	sorted  []entry
	tail    map[blob.ID]entry
}

// New returns an empty index.
func New() *Index {
	return &Index{packNum: map[blob.PackID]uint32{}, tail: map[blob.ID]entry{}}
}

func (x *Index) find(id blob.ID) (entry, bool) {
	if e, ok := x.tail[id]; ok {
		return e, true
	}
	i, ok := slices.BinarySearchFunc(x.sorted, id, func(e entry, id blob.ID) int { return bytes.Compare(e.id[:], id[:]) })
	if !ok {
		return entry{}, false
	}
	return x.sorted[i], true
}

// Add records a pack's blobs.
func (x *Index) Add(p blob.PackID, es []blob.Entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := x.number(p, es)
	for _, e := range es {
		if _, dup := x.find(e.ID); dup {
			continue
		}
		x.tail[e.ID] = entry{id: e.ID, pack: n, offset: e.Offset, length: e.Length, rawLength: e.RawLength, typ: e.Type}
		if len(x.tail) >= tailMax {
			x.merge()
		}
	}
}

// Replace records a pack's blobs, taking over the location of blobs already
// known: a writer that stored a blob again (its old pack is condemned) makes
// the new copy the one read and deduped against from now on.
func (x *Index) Replace(p blob.PackID, es []blob.Entry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	n := x.number(p, es)
	for _, e := range es {
		ne := entry{id: e.ID, pack: n, offset: e.Offset, length: e.Length, rawLength: e.RawLength, typ: e.Type}
		if _, ok := x.tail[e.ID]; ok {
			x.tail[e.ID] = ne
			continue
		}
		i, ok := slices.BinarySearchFunc(x.sorted, e.ID, func(e entry, id blob.ID) int { return bytes.Compare(e.id[:], id[:]) })
		if ok {
			x.sorted[i] = ne
			continue
		}
		x.tail[e.ID] = ne
		if len(x.tail) >= tailMax {
			x.merge()
		}
	}
}

// number returns pack p's number, giving it one (and its extent, from es:
// every caller passes a pack's whole entry list) when p is new.
func (x *Index) number(p blob.PackID, es []blob.Entry) uint32 {
	if n, ok := x.packNum[p]; ok {
		return n
	}
	n := uint32(len(x.packs))
	x.packs = append(x.packs, p)
	x.packNum[p] = n
	ext := extent{blobs: uint32(len(es))}
	for _, e := range es {
		ext.end = max(ext.end, int64(e.Offset)+int64(e.Length))
	}
	x.extents = append(x.extents, ext)
	return n
}

// PackExtent returns what the entry list pack p was added with says of
// it: how many blobs it holds, and where the last one ends (pack.Size
// gives the pack's size from them).
func (x *Index) PackExtent(p blob.PackID) (blobs int, end int64, ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n, ok := x.packNum[p]
	if !ok {
		return 0, 0, false
	}
	return int(x.extents[n].blobs), x.extents[n].end, true
}

// merge moves the tail into the sorted array.
func (x *Index) merge() {
	add := make([]entry, 0, len(x.tail))
	for _, e := range x.tail {
		add = append(add, e)
	}
	cmp := func(a, b entry) int { return bytes.Compare(a.id[:], b.id[:]) }
	slices.SortFunc(add, cmp)
	out := make([]entry, 0, len(x.sorted)+len(add))
	i, j := 0, 0
	for i < len(x.sorted) && j < len(add) {
		if cmp(x.sorted[i], add[j]) < 0 {
			out = append(out, x.sorted[i])
			i++
		} else {
			out = append(out, add[j])
			j++
		}
	}
	out = append(append(out, x.sorted[i:]...), add[j:]...)
	x.sorted = out
	clear(x.tail)
}

func (x *Index) location(e entry) Location {
	return Location{Pack: x.packs[e.pack], Entry: blob.Entry{ID: e.id, Type: e.typ, Offset: e.offset, Length: e.length, RawLength: e.rawLength}}
}

// Lookup finds a blob.
func (x *Index) Lookup(id blob.ID) (Location, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.find(id)
	if !ok {
		return Location{}, false
	}
	return x.location(e), true
}

// Has reports whether a blob is indexed.
func (x *Index) Has(id blob.ID) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.find(id)
	return ok
}

// Len is the number of blobs.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.sorted) + len(x.tail)
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
	for _, e := range x.sorted {
		fn(x.location(e))
	}
	for _, e := range x.tail {
		fn(x.location(e))
	}
}
