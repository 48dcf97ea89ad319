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
	decoder  *zstd.Decoder
	once     sync.Once
)

func newEncoder(l zstd.EncoderLevel) *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(l), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true))
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
		encoder := encoders.Get().(*zstd.Encoder)
		defer encoders.Put(encoder)
		sample := src
		if len(sample) > sampleSize {
			sample = src[:sampleSize]
		}
		try := true
		if len(sample) < len(src) {
			probe := encoder.EncodeAll(sample, make([]byte, 0, len(sample)))
			try = float64(len(probe)) <= keepRatio*float64(len(sample))
		}
		if try {
			start := len(dst)
			dst = append(dst, Zstd)
			dst = encoder.EncodeAll(src, dst)
			if float64(len(dst)-start-1) <= keepRatio*float64(len(src)) {
				return dst
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
