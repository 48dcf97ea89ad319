// Package pack writes and parses pack files: sealed blobs back to back,
// followed by a sealed trailer listing them, followed by the trailer's length.
//
//	pack    = blob* sealed-trailer trailer-length
//	blob    = crypto envelope of (codec byte || payload), context blob.Context(type, id)
//	trailer = crypto envelope of entries, context "pack trailer <pack id hex>"
//	entries = 0x01 | count uint32 LE | count × entry
//	entry   = type u8 | id [32] | offset u32 LE | length u32 LE | raw length u32 LE
//	trailer-length = uint32 LE, length of sealed-trailer
//
// The trailer makes a pack self-describing, so indexes can be rebuilt from
// the packs alone. pack imports blob and crypto only.
package pack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
)

// EntrySize is the encoded size of one entry.
const EntrySize = 1 + 32 + 4 + 4 + 4

// MaxEntries bounds a decoded entry list (a crafted trailer cannot make us
// allocate more than this many entries).
const MaxEntries = 1 << 20

// EncodeEntries encodes an entry list (shared with the index encoding).
func EncodeEntries(dst []byte, es []blob.Entry) []byte {
	dst = append(dst, 1)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(es)))
	for _, e := range es {
		dst = AppendEntry(dst, e)
	}
	return dst
}

// AppendEntry appends one encoded entry.
func AppendEntry(dst []byte, e blob.Entry) []byte {
	dst = append(dst, byte(e.Type))
	dst = append(dst, e.ID[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, e.Offset)
	dst = binary.LittleEndian.AppendUint32(dst, e.Length)
	return binary.LittleEndian.AppendUint32(dst, e.RawLength)
}

// ErrMalformed marks an entry list or trailer that does not decode.
var ErrMalformed = errors.New("malformed")

// DecodeEntry decodes one entry from b (len(b) >= EntrySize).
func DecodeEntry(b []byte) (blob.Entry, error) {
	e := blob.Entry{
		Type:      blob.Type(b[0]),
		ID:        blob.ID(b[1:33]),
		Offset:    binary.LittleEndian.Uint32(b[33:]),
		Length:    binary.LittleEndian.Uint32(b[37:]),
		RawLength: binary.LittleEndian.Uint32(b[41:]),
	}
	if !e.Type.Valid() {
		return e, fmt.Errorf("%w entry: unknown blob type %d", ErrMalformed, b[0])
	}
	if e.Length < crypto.Overhead+1 {
		return e, fmt.Errorf("%w entry: blob %s length %d too small", ErrMalformed, e.ID.Short(), e.Length)
	}
	return e, nil
}

// DecodeEntries decodes an entry list that must fill b exactly. limit is the
// size of the data area the entries point into (offset+length <= limit).
func DecodeEntries(b []byte, limit uint64) ([]blob.Entry, error) {
	if len(b) < 5 || b[0] != 1 {
		return nil, fmt.Errorf("%w entry list: bad header", ErrMalformed)
	}
	n := binary.LittleEndian.Uint32(b[1:])
	if n > MaxEntries || uint64(len(b)-5) != uint64(n)*EntrySize {
		return nil, fmt.Errorf("%w entry list: %d entries in %d bytes", ErrMalformed, n, len(b)-5)
	}
	es := make([]blob.Entry, n)
	for i := range es {
		e, err := DecodeEntry(b[5+i*EntrySize:])
		if err != nil {
			return nil, err
		}
		if uint64(e.Offset)+uint64(e.Length) > limit {
			return nil, fmt.Errorf("%w entry list: blob %s at %d+%d beyond %d", ErrMalformed, e.ID.Short(), e.Offset, e.Length, limit)
		}
		es[i] = e
	}
	return es, nil
}

func trailerContext(id blob.PackID) string { return "pack trailer " + id.String() }

// Writer assembles one pack, in memory or streamed into a sink.
type Writer struct {
	ID      blob.PackID
	buf     []byte
	sink    io.Writer // if set, bytes go here instead of buf
	size    int
	entries []blob.Entry
}

// NewWriter starts a pack with id, appending to buf (reused capacity).
func NewWriter(id blob.PackID, buf []byte) *Writer {
	return &Writer{ID: id, buf: buf[:0]}
}

// NewStreamWriter starts a pack whose bytes are written to sink as they come.
func NewStreamWriter(id blob.PackID, sink io.Writer) *Writer {
	return &Writer{ID: id, sink: sink}
}

// Streaming reports whether the pack goes to a sink.
func (w *Writer) Streaming() bool { return w.sink != nil }

// Release hands back the buffer once the pack is stored; the writer is dead.
func (w *Writer) Release() []byte {
	b := w.buf
	w.buf = nil
	return b[:0]
}

// Add appends a sealed blob.
func (w *Writer) Add(t blob.Type, id blob.ID, sealed []byte, rawLen int) (blob.Entry, error) {
	e := blob.Entry{ID: id, Type: t, Offset: uint32(w.size), Length: uint32(len(sealed)), RawLength: uint32(rawLen)}
	if w.sink != nil {
		if _, err := w.sink.Write(sealed); err != nil {
			return e, err
		}
	} else {
		w.buf = append(w.buf, sealed...)
	}
	w.size += len(sealed)
	w.entries = append(w.entries, e)
	return e, nil
}

// AppendSealed lets seal write a blob straight into the in-memory buffer,
// saving a copy. Not for streaming writers.
func (w *Writer) AppendSealed(t blob.Type, id blob.ID, rawLen int, seal func(dst []byte) []byte) blob.Entry {
	off := len(w.buf)
	w.buf = seal(w.buf)
	e := blob.Entry{ID: id, Type: t, Offset: uint32(off), Length: uint32(len(w.buf) - off), RawLength: uint32(rawLen)}
	w.size = len(w.buf)
	w.entries = append(w.entries, e)
	return e
}

// Size is the number of bytes so far.
func (w *Writer) Size() int { return w.size }

// Count is the number of blobs so far.
func (w *Writer) Count() int { return len(w.entries) }

// Entries returns the blobs so far.
func (w *Writer) Entries() []blob.Entry { return w.entries }

// Finish appends the sealed trailer. In memory it returns the whole pack;
// streaming, it writes the trailer to the sink and returns nil.
func (w *Writer) Finish(s *crypto.Sealer) ([]byte, error) {
	plain := EncodeEntries(make([]byte, 0, 5+len(w.entries)*EntrySize), w.entries)
	if w.sink != nil {
		t := s.Seal(nil, plain, trailerContext(w.ID))
		t = binary.LittleEndian.AppendUint32(t, uint32(len(t)))
		_, err := w.sink.Write(t)
		return nil, err
	}
	start := len(w.buf)
	w.buf = s.Seal(w.buf, plain, trailerContext(w.ID))
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(w.buf)-start))
	return w.buf, nil
}

// Size is the size of a pack of blobs blobs whose sealed blobs end at end:
// the trailer and its length follow them.
func Size(blobs int, end int64) int64 {
	return end + int64(crypto.Overhead+5+blobs*EntrySize) + 4
}

// TrailerLength reads the final 4 bytes of a pack.
func TrailerLength(last4 []byte) uint32 { return binary.LittleEndian.Uint32(last4) }

// ParseTrailer opens a sealed trailer. packSize is the whole pack's size.
func ParseTrailer(s *crypto.Sealer, id blob.PackID, sealed []byte, packSize int64) ([]blob.Entry, error) {
	plain, err := s.Open(nil, sealed, trailerContext(id))
	if err != nil {
		return nil, fmt.Errorf("pack %s trailer: %w", id, err)
	}
	dataEnd := packSize - int64(len(sealed)) - 4
	if dataEnd < 0 {
		return nil, fmt.Errorf("pack %s trailer: %w: longer than the pack", id, ErrMalformed)
	}
	es, err := DecodeEntries(plain, uint64(dataEnd))
	if err != nil {
		return nil, fmt.Errorf("pack %s trailer: %w", id, err)
	}
	return es, nil
}
