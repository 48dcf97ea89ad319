package compress

import (
	"errors"
	"fmt"
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
func Compress(dst, src []byte) []byte {
	if len(src) >= 64 {
		sample := src
		if len(sample) > sampleSize {
			sample = src[:sampleSize]
		}
		try := true
		if len(sample) < len(src) {
			lit := litEncoders.Get().(*zstd.Encoder)
			probe := lit.EncodeAll(sample, make([]byte, 0, len(sample)))
			litEncoders.Put(lit)
			try = float64(len(probe)) <= keepRatio*float64(len(sample))
		}
		if try {
			start := len(dst)
			for _, pool := range []*sync.Pool{&encoders, &litEncoders} {
				encoder := pool.Get().(*zstd.Encoder)
				dst = append(dst[:start], Zstd)
				dst = encoder.EncodeAll(src, dst)
				pool.Put(encoder)
				if float64(len(dst)-start-1) <= keepRatio*float64(len(src)) {
					return dst
				}
			}
			dst = dst[:start]
		}
	}
	dst = append(dst, Raw)
	return append(dst, src...)
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
