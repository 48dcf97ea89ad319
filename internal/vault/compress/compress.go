package compress

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Codec bytes.
const (
	Raw  byte = 0
	Zstd byte = 1
)

const (
	sampleSize = 32 << 10
	// A chunk must shrink to this fraction or better to be stored compressed.
	keepRatio = 0.97
)

// MaxDecoded bounds what one frame may expand to: larger than any chunk or
// tree we write, small enough that a crafted frame cannot exhaust memory.
const MaxDecoded = 64 << 20

// Level is the zstd level of new blobs, chosen by benchmark
// (docs/benchmarks.md): the default level saved 0.6% of the vault for 19%
// more CPU in a first backup.
var Level = zstd.SpeedFastest

var (
	// encoders: one single-threaded encoder per concurrent caller, so that
	// workers compress in parallel (a shared encoder would serialise them).
	// A sync.Pool, measured: a long-lived free list of encoders cost 13% more
	// CPU in a first backup than encoders the pool drops at garbage collection.
	encoders = sync.Pool{New: func() any { return newEncoder(Level) }}
	// litEncoders also entropy-code the literals of blocks with no matches,
	// which the fastest level stores raw: hex or base64 text (bytea in a
	// database dump) halves with them and does not shrink at all without.
	// They test samples and retry chunks the fast encoders left as they were.
	litEncoders = sync.Pool{New: func() any { return newEncoder(Level, zstd.WithAllLitEntropyCompression(true)) }}
	decoder     *zstd.Decoder
	once        sync.Once
)

func newEncoder(l zstd.EncoderLevel, extra ...zstd.EOption) *zstd.Encoder {
	e, err := zstd.NewWriter(nil, append([]zstd.EOption{zstd.WithEncoderLevel(l), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true)}, extra...)...)
	if err != nil {
		panic(err)
	}
	return e
}

func setup() {
	var err error
	decoder, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxDecoded), zstd.WithDecoderMaxWindow(MaxDecoded))
	if err != nil {
		panic(err)
	}
}

// Compress appends the framed form of src to dst.
//
// The fast encoder goes first: it is what text needs, and it gives up on
// random data at several GB/s, so no sample is compressed ahead of it
// (measured on the benchmark dataset: a 32 KiB probe per chunk cost more
// CPU than it saved). When it leaves the chunk as it was, the byte entropy
// of a sample says whether entropy-coded literals could help (hex, base64);
// only then is the chunk encoded a second time.
func Compress(dst, src []byte) []byte {
	if len(src) >= 64 {
		start := len(dst)
		if dst, ok := encode(&encoders, dst, src); ok {
			return dst
		}
		if literalGain(src) {
			if dst, ok := encode(&litEncoders, dst[:start], src); ok {
				return dst
			}
		}
		dst = dst[:start]
	}
	dst = append(dst, Raw)
	return append(dst, src...)
}

// encode appends the zstd framing of src using an encoder from pool, and
// reports whether it shrank to keepRatio; dst may hold garbage past its
// original length when it did not.
func encode(pool *sync.Pool, dst, src []byte) ([]byte, bool) {
	start := len(dst)
	encoder := pool.Get().(*zstd.Encoder)
	dst = append(dst, Zstd)
	dst = encoder.EncodeAll(src, dst)
	pool.Put(encoder)
	return dst, float64(len(dst)-start-1) <= keepRatio*float64(len(src))
}

// literalGain reports whether the bytes of src are skewed enough for
// entropy coding alone to reach keepRatio with a margin: the Shannon entropy
// of a sample, in bits per byte, over 8 is about the ratio it would reach.
func literalGain(src []byte) bool {
	sample := src[:min(len(src), sampleSize)]
	var counts [256]int
	for _, c := range sample {
		counts[c]++
	}
	n := float64(len(sample))
	bits := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			bits -= p * math.Log2(p)
		}
	}
	return bits/8 < keepRatio-0.05
}

// ErrFrame: the frame is malformed.
var ErrFrame = errors.New("bad compression frame")

// Decompress appends the payload of a framed buffer to dst.
func Decompress(dst, framed []byte) ([]byte, error) {
	once.Do(setup)
	if len(framed) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrFrame)
	}
	switch framed[0] {
	case Raw:
		return append(dst, framed[1:]...), nil
	case Zstd:
		out, err := decoder.DecodeAll(framed[1:], dst)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrFrame, err)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: unknown codec %d", ErrFrame, framed[0])
	}
}
