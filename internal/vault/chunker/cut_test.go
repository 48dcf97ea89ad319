package chunker

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// refCut is the cut rule of format 1 as the package documents it, one byte
// at a time: the two-chain scan must find exactly the same boundaries.
func refCut(c *Chunker, data []byte) int {
	n := len(data)
	if n <= c.p.Min {
		return n
	}
	n = min(n, c.p.Max)
	normal := min(c.p.Avg, n)
	var fp uint64
	for i := c.p.Min; i < n; i++ {
		fp = fp<<1 + c.t.gear[data[i]]
		mask := c.maskL
		if i < normal {
			mask = c.maskS
		}
		if fp&mask == 0 {
			return i + 1
		}
	}
	return n
}

// text is low-entropy input (words from a small vocabulary, long runs of one
// byte), where fingerprints match often and both chains of a window hit.
func text(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	words := []string{`<div class="row">`, "lorem", "ipsum", "\n", "  ", "</div>", "dolor", "sit", "amet"}
	var b bytes.Buffer
	for b.Len() < n {
		if r.IntN(50) == 0 {
			b.Write(make([]byte, r.IntN(4096)))
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

func boundaries(data []byte, seed [32]byte, p Params, cut func(*Chunker, []byte) int) []int {
	c := New(nil, seed, p)
	var out []int
	for at := 0; at < len(data); {
		n := cut(c, data[at:min(len(data), at+2*p.Max)])
		at += n
		out = append(out, at)
	}
	return out
}

func TestCutMatchesReference(t *testing.T) {
	params := []Params{DefaultParams(), small, {Min: 64, Avg: 256, Max: 1024}, {Min: 64, Avg: 4096, Max: 64 << 10}, {Min: 1 << 10, Avg: 1 << 20, Max: 8 << 20}}
	inputs := map[string][]byte{"random": rnd(11, 8<<20), "text": text(12, 8<<20), "zeros": make([]byte, 4<<20)}
	for name, data := range inputs {
		for _, p := range params {
			for k := range byte(3) {
				seed := [32]byte{k}
				got := boundaries(data, seed, p, (*Chunker).cut)
				want := boundaries(data, seed, p, refCut)
				if len(got) != len(want) {
					t.Fatalf("%s %+v seed %d: %d chunks, reference %d", name, p, k, len(got), len(want))
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("%s %+v seed %d: boundary %d at %d, reference %d", name, p, k, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestBoundariesPinned pins format 1's boundaries on fixed inputs: a change
// here breaks deduplication against every existing vault.
func TestBoundariesPinned(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		p    Params
		want string
	}{
		{"random", rnd(21, 16<<20), DefaultParams(), "7189343494615175a193a4b415fc4dbb3e0dcfef49f94ab13c919847f2d0a49a"},
		{"text", text(22, 16<<20), DefaultParams(), "5088d253c90a9023a3b61796f1a3d0681dccc3de4ef4a26de1f2899bf47d1f59"},
		{"random small", rnd(23, 4<<20), small, "5cf25383e8456caf9ae0c6894def005923fc63748e10f51fbdf70d65650072d9"},
		{"text small", text(24, 4<<20), small, "058c82ed45897eca98517a6a934441cf0a6ed1375bb6cb919d0686b778b0f2b2"},
	} {
		h := sha256.New()
		bs := boundaries(tc.data, [32]byte{7}, tc.p, (*Chunker).cut)
		for _, b := range bs {
			h.Write(binary.LittleEndian.AppendUint64(nil, uint64(b)))
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != tc.want {
			t.Errorf("%s: boundaries hash %s (%d chunks), pinned %s", tc.name, got, len(bs), tc.want)
		}
	}
}
