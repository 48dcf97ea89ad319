package index

import (
	"bytes"
	"testing"
	"unsafe"

	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
)

func TestIndexRoundTrip(t *testing.T) {
	in := []PackEntries{
		{Pack: blob.PackID{1}, Entries: []blob.Entry{{ID: blob.ID{1}, Type: blob.Data, Offset: 0, Length: 64, RawLength: 10}, {ID: blob.ID{2}, Type: blob.Tree, Offset: 64, Length: 100, RawLength: 90}}},
		{Pack: blob.PackID{2}},
	}
	out, err := Decode(Encode(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || len(out[0].Entries) != 2 || out[0].Entries[1] != in[0].Entries[1] || out[1].Pack != in[1].Pack {
		t.Fatalf("round trip: %+v", out)
	}
	x := New()
	for _, pe := range out {
		x.Add(pe.Pack, pe.Entries)
	}
	if l, ok := x.Lookup(blob.ID{2}); !ok || l.Pack != (blob.PackID{1}) || l.Offset != 64 {
		t.Fatalf("lookup: %+v %v", l, ok)
	}
	// Truncations are errors, never panics.
	b := Encode(in)
	for i := range b {
		if _, err := Decode(b[:i]); err == nil {
			t.Fatalf("truncated at %d decoded", i)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode([]PackEntries{{Pack: blob.PackID{1}, Entries: []blob.Entry{{ID: blob.ID{1}, Type: blob.Data, Length: 64}}}}))
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Add([]byte{1, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		pes, err := Decode(b)
		if err != nil {
			return
		}
		if got := Encode(pes); !bytes.Equal(got, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

func TestIndexManyBlobsAndMerges(t *testing.T) {
	x := New()
	const n = 3*tailMax + 123
	var es []blob.Entry
	for i := range n {
		var id blob.ID
		id[0], id[1], id[2], id[31] = byte(i*7), byte(i>>8), byte(i>>16), byte(i)
		es = append(es, blob.Entry{ID: id, Type: blob.Data, Offset: uint32(i), Length: 100, RawLength: 50})
	}
	for i := 0; i < n; i += 1000 {
		x.Add(blob.PackID{byte(i / 1000)}, es[i:min(i+1000, n)])
	}
	// A second location of a known blob does not replace the first.
	x.Add(blob.PackID{0xff}, es[:10])
	if x.Len() != n {
		t.Fatalf("len %d, want %d", x.Len(), n)
	}
	for i, e := range es {
		l, ok := x.Lookup(e.ID)
		if !ok || l.Offset != uint32(i) || l.Pack != (blob.PackID{byte(i / 1000)}) {
			t.Fatalf("blob %d: %+v %v", i, l, ok)
		}
	}
	if x.Has(blob.ID{0xee, 0xee}) {
		t.Fatal("unknown blob found")
	}
	seen := 0
	x.Each(func(Location) { seen++ })
	if seen != n {
		t.Fatalf("Each saw %d", seen)
	}
}

func BenchmarkLookup(b *testing.B) {
	x := New()
	var ids []blob.ID
	for i := range 1 << 20 {
		var id blob.ID
		id[0], id[1], id[2], id[3] = byte(i), byte(i>>8), byte(i>>16), byte(i*13)
		ids = append(ids, id)
	}
	for i := 0; i < len(ids); i += 4096 {
		es := make([]blob.Entry, 0, 4096)
		for _, id := range ids[i:min(i+4096, len(ids))] {
			es = append(es, blob.Entry{ID: id, Type: blob.Data, Length: 64})
		}
		x.Add(blob.PackID{byte(i)}, es)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		x.Has(ids[i%len(ids)])
	}
}

func TestEntrySize(t *testing.T) {
	if s := unsafe.Sizeof(entry{}); s > 52 {
		t.Fatalf("in-memory index entry is %d bytes; keep it at 52 or less", s)
	}
}

func TestReplaceTakesOver(t *testing.T) {
	x := New()
	x.Add(blob.PackID{1}, []blob.Entry{{ID: blob.ID{7}, Type: blob.Data, Length: 10}})
	for range tailMax { // push the first entry into the sorted array
		x.Add(blob.PackID{3}, []blob.Entry{{ID: blob.ID{byte(len(x.tail)), byte(len(x.tail) >> 8), 9}, Type: blob.Data}})
	}
	x.Add(blob.PackID{2}, []blob.Entry{{ID: blob.ID{7}, Type: blob.Data, Length: 20}})
	if l, _ := x.Lookup(blob.ID{7}); l.Pack != (blob.PackID{1}) {
		t.Fatalf("Add replaced a known blob: %+v", l)
	}
	x.Replace(blob.PackID{2}, []blob.Entry{{ID: blob.ID{7}, Type: blob.Data, Length: 20}})
	if l, _ := x.Lookup(blob.ID{7}); l.Pack != (blob.PackID{2}) || l.Length != 20 {
		t.Fatalf("Replace did not take over: %+v", l)
	}
	x.Replace(blob.PackID{4}, []blob.Entry{{ID: blob.ID{8}, Type: blob.Tree}})
	if l, ok := x.Lookup(blob.ID{8}); !ok || l.Pack != (blob.PackID{4}) {
		t.Fatalf("Replace of a new blob: %+v %v", l, ok)
	}
}

// A pack's extent counts every entry of the list it was added with, blobs
// known from another pack too (they are in it all the same).
func TestPackExtent(t *testing.T) {
	x := New()
	x.Add(blob.PackID{1}, []blob.Entry{{ID: blob.ID{7}, Type: blob.Data, Offset: 0, Length: 10}})
	x.Add(blob.PackID{2}, []blob.Entry{{ID: blob.ID{8}, Offset: 0, Length: 30}, {ID: blob.ID{7}, Offset: 30, Length: 10}, {ID: blob.ID{9}, Offset: 40, Length: 5}})
	x.Replace(blob.PackID{2}, []blob.Entry{{ID: blob.ID{8}, Offset: 0, Length: 30}})
	if n, end, ok := x.PackExtent(blob.PackID{2}); !ok || n != 3 || end != 45 {
		t.Fatalf("extent of pack 2: %d blobs to %d (%v), want 3 to 45", n, end, ok)
	}
	if _, _, ok := x.PackExtent(blob.PackID{5}); ok {
		t.Fatal("extent of a pack never added")
	}
}
