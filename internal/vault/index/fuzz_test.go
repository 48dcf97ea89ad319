package index

import (
	"bytes"
	"testing"

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
