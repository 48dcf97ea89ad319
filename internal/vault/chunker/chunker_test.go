package chunker

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/iotest"
)

var small = Params{Min: 2 << 10, Avg: 8 << 10, Max: 32 << 10}

func rnd(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func chunks(t testing.TB, data []byte, seed [32]byte, p Params, r io.Reader) [][]byte {
	if r == nil {
		r = bytes.NewReader(data)
	}
	c := New(r, seed, p)
	var out [][]byte
	for {
		ch, err := c.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(ch))
	}
}

func TestChunksCoverInputWithinBounds(t *testing.T) {
	for _, n := range []int{0, 1, small.Min - 1, small.Min, small.Min + 1, small.Max - 1, small.Max, small.Max + 1, 3*small.Max + 7, 1 << 20} {
		data := rnd(uint64(n), n)
		cs := chunks(t, data, [32]byte{1}, small, iotest.OneByteReader(bytes.NewReader(data)))
		if got := bytes.Join(cs, nil); !bytes.Equal(got, data) {
			t.Fatalf("n=%d: chunks do not concatenate to the input", n)
		}
		for i, c := range cs {
			if len(c) == 0 || len(c) > small.Max || (i < len(cs)-1 && len(c) < small.Min) {
				t.Fatalf("n=%d: chunk %d has %d bytes", n, i, len(c))
			}
		}
	}
}

func TestDeterministicAndKeyed(t *testing.T) {
	data := rnd(5, 4<<20)
	a := chunks(t, data, [32]byte{1}, small, nil)
	b := chunks(t, data, [32]byte{1}, small, nil)
	c := chunks(t, data, [32]byte{2}, small, nil)
	if len(a) != len(b) {
		t.Fatal("not deterministic")
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatal("not deterministic")
		}
	}
	same := 0
	bset := map[string]bool{}
	for _, x := range c {
		bset[string(x)] = true
	}
	for _, x := range a {
		if bset[string(x)] {
			same++
		}
	}
	if same > len(a)/10 {
		t.Fatalf("another seed gives the same boundaries (%d of %d chunks equal)", same, len(a))
	}
	// Average size is near Avg.
	if avg := len(data) / len(a); avg < small.Avg/2 || avg > small.Avg*2 {
		t.Errorf("average chunk %d bytes for Avg %d", avg, small.Avg)
	}
}

func TestInsertionChangesOnlyNearbyChunks(t *testing.T) {
	data := rnd(9, 8<<20)
	edited := append(append(bytes.Clone(data[:4<<20]), []byte("0123456789")...), data[4<<20:]...)
	a := chunks(t, data, [32]byte{3}, small, nil)
	b := chunks(t, edited, [32]byte{3}, small, nil)
	set := map[string]bool{}
	for _, x := range a {
		set[string(x)] = true
	}
	shared := 0
	for _, x := range b {
		if set[string(x)] {
			shared++
		}
	}
	if shared < len(a)-4 {
		t.Fatalf("only %d of %d chunks shared after a 10-byte insert", shared, len(a))
	}
}

func TestResetAndErrors(t *testing.T) {
	data := rnd(1, 100000)
	c := New(bytes.NewReader(data), [32]byte{}, small)
	for {
		if _, err := c.Next(); err != nil {
			break
		}
	}
	c.Reset(bytes.NewReader(data[:10]))
	ch, err := c.Next()
	if err != nil || !bytes.Equal(ch, data[:10]) {
		t.Fatalf("after reset: %q %v", ch, err)
	}
	boom := errors.New("boom")
	c.Reset(iotest.DataErrReader(io.MultiReader(bytes.NewReader(data[:5000]), iotest.ErrReader(boom))))
	for {
		_, err := c.Next()
		if err == io.EOF {
			t.Fatal("read error swallowed")
		}
		if err != nil {
			if !errors.Is(err, boom) {
				t.Fatalf("got %v", err)
			}
			break
		}
	}
	if err := (Params{Min: 1, Avg: 3, Max: 2}).Validate(); err == nil {
		t.Error("bad params accepted")
	}
	if err := DefaultParams().Validate(); err != nil {
		t.Error(err)
	}
}

func FuzzChunker(f *testing.F) {
	f.Add([]byte("hello"), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, k uint8) {
		p := Params{Min: 64, Avg: 256, Max: 1024}
		cs := chunks(t, data, [32]byte{k}, p, nil)
		if !bytes.Equal(bytes.Join(cs, nil), data) {
			t.Fatal("concatenation differs")
		}
		for i, c := range cs {
			if len(c) > p.Max || (i < len(cs)-1 && len(c) < p.Min) {
				t.Fatalf("chunk %d: %d bytes", i, len(c))
			}
		}
		// Windows of the two-chain scan need ranges of 1 KiB and more.
		for _, p := range []Params{p, {Min: 64, Avg: 2048, Max: 8192}} {
			got := boundaries(data, [32]byte{k}, p, (*Chunker).cut)
			want := boundaries(data, [32]byte{k}, p, refCut)
			if !slices.Equal(got, want) {
				t.Fatalf("%+v: boundaries %v, reference %v", p, got, want)
			}
		}
	})
}

func BenchmarkChunker(b *testing.B) {
	data := rnd(1, 64<<20)
	c := NewWithTable(nil, NewTable([32]byte{1}), DefaultParams())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c.Reset(bytes.NewReader(data))
		for {
			if _, err := c.Next(); err != nil {
				break
			}
		}
	}
}

func BenchmarkNewTable(b *testing.B) {
	for b.Loop() {
		NewTable([32]byte{1})
	}
}
