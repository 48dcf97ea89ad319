package pack

import (
	"bytes"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
)

func testSealer(t testing.TB) *crypto.Sealer {
	s, err := crypto.NewSealer(map[uint32][32]byte{1: {1, 2, 3}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPackRoundTrip(t *testing.T) {
	s := testSealer(t)
	w := NewWriter(blob.PackID{9}, nil)
	var ids []blob.ID
	for i := range 5 {
		id := blob.ID{byte(i)}
		ids = append(ids, id)
		w.Add(blob.Data, id, s.Seal(nil, bytes.Repeat([]byte{byte(i)}, 100*i+1), blob.Context(blob.Data, id)), 100*i+1)
	}
	data, _ := w.Finish(s)
	// The streamed form is the same layout.
	var sink bytes.Buffer
	sw := NewStreamWriter(blob.PackID{9}, &sink)
	for i, e := range w.Entries() {
		sw.Add(e.Type, e.ID, data[e.Offset:e.Offset+e.Length], 100*i+1)
	}
	sw.Finish(s)
	if sink.Len() != len(data) || !bytes.Equal(sink.Bytes()[:w.Size()], data[:w.Size()]) {
		t.Fatalf("streamed pack differs")
	}
	if got := Size(w.Count(), int64(w.Size())); got != int64(len(data)) {
		t.Fatalf("Size says %d bytes, the pack has %d", got, len(data))
	}
	tl := TrailerLength(data[len(data)-4:])
	es, err := ParseTrailer(s, w.ID, data[len(data)-4-int(tl):len(data)-4], int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 5 {
		t.Fatalf("%d entries", len(es))
	}
	for i, e := range es {
		plain, err := s.Open(nil, data[e.Offset:e.Offset+e.Length], blob.Context(e.Type, e.ID))
		if err != nil || len(plain) != 100*i+1 || e.ID != ids[i] {
			t.Fatalf("blob %d: %v", i, err)
		}
	}
	// The trailer of another pack id does not open.
	if _, err := ParseTrailer(s, blob.PackID{8}, data[len(data)-4-int(tl):len(data)-4], int64(len(data))); err == nil {
		t.Fatal("trailer opened under another pack id")
	}
}

// FuzzDecodeEntries: the entry decoder never panics and what it accepts
// re-encodes to the same bytes, within the stated limit.
func FuzzDecodeEntries(f *testing.F) {
	f.Add(EncodeEntries(nil, []blob.Entry{{ID: blob.ID{1}, Type: blob.Data, Offset: 0, Length: 100, RawLength: 50}}), uint64(1000))
	f.Add([]byte{1, 0, 0, 0, 0}, uint64(0))
	f.Add([]byte{1, 255, 255, 255, 255}, uint64(10))
	f.Fuzz(func(t *testing.T, b []byte, limit uint64) {
		es, err := DecodeEntries(b, limit)
		if err != nil {
			return
		}
		for _, e := range es {
			if uint64(e.Offset)+uint64(e.Length) > limit || !e.Type.Valid() {
				t.Fatalf("accepted bad entry %+v", e)
			}
		}
		if got := EncodeEntries(nil, es); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzParseTrailer feeds arbitrary pack tails to the trailer parser.
func FuzzParseTrailer(f *testing.F) {
	s := testSealer(f)
	w := NewWriter(blob.PackID{1}, nil)
	w.Add(blob.Tree, blob.ID{2}, s.Seal(nil, []byte("x"), "c"), 1)
	pk, _ := w.Finish(s)
	f.Add(pk)
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		tl := TrailerLength(data[len(data)-4:])
		if int64(tl)+4 > int64(len(data)) {
			return
		}
		_, _ = ParseTrailer(s, blob.PackID{1}, data[len(data)-4-int(tl):len(data)-4], int64(len(data)))
	})
}
