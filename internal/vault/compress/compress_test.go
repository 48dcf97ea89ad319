package compress

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestCompressRoundTrip(t *testing.T) {
	text := bytes.Repeat([]byte("lifeboat vault "), 10000)
	random := make([]byte, 200000)
	rand.Read(random)
	// Random bytes repeated: every byte value equally common, so only
	// matches can shrink it, and they halve it.
	repeated := append(append([]byte(nil), random[:100000]...), random[:100000]...)
	for name, in := range map[string][]byte{"empty": nil, "small": []byte("x"), "text": text, "random": random, "repeated": repeated} {
		f := Compress(nil, in)
		out, err := Decompress(nil, f)
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("%s: round trip: %v", name, err)
		}
		switch name {
		case "text":
			if f[0] != Zstd || len(f) > len(in)/10 {
				t.Errorf("text not compressed: %d -> %d", len(in), len(f))
			}
		case "random":
			if f[0] != Raw {
				t.Errorf("random data stored compressed")
			}
		case "repeated":
			if f[0] != Zstd || len(f) > len(in)*6/10 {
				t.Errorf("repeated random data not compressed: %d -> %d", len(in), len(f))
			}
		}
	}
}

func FuzzDecompress(f *testing.F) {
	f.Add(Compress(nil, bytes.Repeat([]byte("ab"), 1000)))
	f.Add([]byte{1, 0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := Decompress(nil, b)
		if err == nil && len(out) > MaxDecoded {
			t.Fatalf("decoded %d bytes", len(out))
		}
	})
}

func BenchmarkCompressText(b *testing.B) {
	in := bytes.Repeat([]byte("<div class=\"x\">lifeboat vault</div>\n"), 30000)
	b.SetBytes(int64(len(in)))
	dst := make([]byte, 0, len(in))
	for b.Loop() {
		dst = Compress(dst[:0], in)
	}
}

func BenchmarkCompressIncompressible(b *testing.B) {
	in := make([]byte, 1<<20)
	rand.Read(in)
	b.SetBytes(int64(len(in)))
	dst := make([]byte, 0, len(in)+64)
	for b.Loop() {
		dst = Compress(dst[:0], in)
	}
}

// TestHexText: hex text (bytea in a database dump) has no repeats for LZ
// but half its bits are redundant: it must be stored compressed.
func TestHexText(t *testing.T) {
	var src []byte
	for i := 0; len(src) < 512<<10; i++ {
		s := sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		src = append(src, hex.EncodeToString(s[:])...)
	}
	framed := Compress(nil, src)
	if framed[0] != Zstd || float64(len(framed)) > 0.6*float64(len(src)) {
		t.Errorf("hex text stored at %.2f of its size (codec %d)", float64(len(framed))/float64(len(src)), framed[0])
	}
	back, err := Decompress(nil, framed)
	if err != nil || !bytes.Equal(back, src) {
		t.Fatalf("round trip: %v", err)
	}
}
