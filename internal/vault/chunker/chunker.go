// Package chunker cuts streams into content-defined chunks with FastCDC
// (normalized chunking over a gear rolling hash) keyed by a per-vault secret.
//
// Keying: the 256-entry gear table is derived from the vault's 32-byte
// chunker seed as
//
//	out = BLAKE3-XOF(key = seed, input = "lifeboat fastcdc gear table v1"), first 2048 bytes
//	gear[i] = little-endian uint64 of out[8i : 8i+8]
//
// so chunk boundaries, and with them chunk sizes, depend on the secret: an
// observer of the vault cannot match chunk sizes against known files. This
// derivation is part of vault format 1 ("fastcdc-gear-v1") and must never
// change silently.
//
// Cut rule, for the bytes after the previous boundary (fp starts at 0):
//
//	skip the first Min bytes;
//	up to Avg: fp = fp<<1 + gear[b]; cut after b if fp & maskS == 0
//	after Avg: same with maskL; cut at Max at the latest
//
// maskS has log2(Avg)+2 bits set and maskL log2(Avg)-2, taken from the top of
// the 64-bit fingerprint (the bits that depend on the most recent 64 bytes).
// A boundary depends only on bytes since the previous one, so an edit moves
// at most the boundaries near it.
//
// DefaultParams (128 KiB / 512 KiB / 2 MiB) were chosen by measuring, on the
// benchmark dataset, the new bytes a backup stores after its 5% mutation
// (docs/benchmarks.md): 1 MiB average chunks stored 45% more after the
// database edits. Throughput does not depend on the parameters
// (BenchmarkChunker).
package chunker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/zeebo/blake3"
)

// Params bound chunk sizes, in bytes. Avg must be a power of two.
type Params struct{ Min, Avg, Max int }

// DefaultParams are the parameters of new vaults.
func DefaultParams() Params { return Params{Min: 128 << 10, Avg: 512 << 10, Max: 2 << 20} }

// Validate checks that p is usable.
func (p Params) Validate() error {
	if p.Avg < 256 || p.Avg&(p.Avg-1) != 0 || p.Min < 64 || p.Min > p.Avg || p.Max < p.Avg || p.Max > 64<<20 {
		return fmt.Errorf("chunker parameters %+v: want 64 <= min <= avg (a power of two >= 256) <= max <= 64 MiB", p)
	}
	return nil
}

// Table is a derived gear table; derive once per vault.
type Table struct{ gear [256]uint64 }

// NewTable derives the gear table from a seed.
func NewTable(seed [32]byte) *Table {
	h, err := blake3.NewKeyed(seed[:])
	if err != nil {
		panic(err)
	}
	h.WriteString("lifeboat fastcdc gear table v1")
	var out [2048]byte
	if _, err := io.ReadFull(h.Digest(), out[:]); err != nil {
		panic(err)
	}
	t := &Table{}
	for i := range t.gear {
		t.gear[i] = binary.LittleEndian.Uint64(out[8*i:])
	}
	return t
}

// Chunker splits one stream. Not safe for concurrent use.
type Chunker struct {
	t            *Table
	p            Params
	maskS, maskL uint64
	r            io.Reader
	buf          []byte
	start, end   int
	eof          bool
	err          error
}

func topMask(n int) uint64 { return ^uint64(0) << (64 - n) }

// New returns a chunker for r with a table derived from seed.
func New(r io.Reader, seed [32]byte, p Params) *Chunker { return NewWithTable(r, NewTable(seed), p) }

// NewWithTable returns a chunker for r using an already derived table.
func NewWithTable(r io.Reader, t *Table, p Params) *Chunker {
	b := bits.TrailingZeros(uint(p.Avg))
	c := &Chunker{t: t, p: p, maskS: topMask(b + 2), maskL: topMask(b - 2), buf: make([]byte, 2*p.Max)}
	c.Reset(r)
	return c
}

// Reset starts over on a new reader, keeping buffers and table.
func (c *Chunker) Reset(r io.Reader) {
	c.r, c.start, c.end, c.eof, c.err = r, 0, 0, r == nil, nil
}

// fill tops the buffer up so that at least Max bytes follow start, or EOF.
func (c *Chunker) fill() {
	if c.eof || c.end-c.start >= c.p.Max {
		return
	}
	if c.start > 0 {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	for c.end < len(c.buf) && !c.eof {
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		if err != nil {
			c.eof = true
			if !errors.Is(err, io.EOF) {
				c.err = err
			}
		}
		if n == 0 && err == nil && c.end-c.start >= c.p.Max {
			break
		}
	}
}

// Next returns the next chunk, valid until the next call; io.EOF at the end.
// A read error is returned as soon as it is met (chunks already returned stay valid).
func (c *Chunker) Next() ([]byte, error) {
	c.fill()
	if c.err != nil {
		return nil, c.err
	}
	if c.start == c.end {
		return nil, io.EOF
	}
	n := c.cut(c.buf[c.start:c.end])
	chunk := c.buf[c.start : c.start+n]
	c.start += n
	return chunk, nil
}

// cut returns the length of the next chunk of data.
func (c *Chunker) cut(data []byte) int {
	n := len(data)
	if n <= c.p.Min {
		return n
	}
	n = min(n, c.p.Max)
	normal := min(c.p.Avg, n)
	at, fp := c.scan(data, c.p.Min, normal, 0, c.maskS)
	if at < 0 {
		at, _ = c.scan(data, normal, n, fp, c.maskL)
	}
	if at < 0 {
		return n
	}
	return at + 1
}

// scan looks for the first position i in [from, to) whose fingerprint
// matches mask (fp&mask == 0), given fp, the fingerprint after the bytes
// before from. It returns i, or -1 and the fingerprint after data[to-1].
//
// The gear hash is one serial chain of a shift and an add per byte, so a
// plain loop runs at that chain's latency. A fingerprint depends only on the
// last 64 bytes, so the range is taken in windows whose second half gets its
// own chain, primed on the 64 bytes before it; the two chains run side by
// side and the first half still decides first (BenchmarkChunker).
func (c *Chunker) scan(data []byte, from, to int, fp uint64, mask uint64) (int, uint64) {
	const window = 16 << 10
	gear := &c.t.gear
	for to-from >= 1024 {
		half := min(window, to-from) / 2
		mid := from + half
		var fpB uint64
		for _, b := range data[mid-64 : mid] {
			fpB = fpB<<1 + gear[b]
		}
		j, inA, fpA, fpB := twoChains(gear, data[from:mid], data[mid:mid+half], fp, fpB, mask)
		switch {
		case inA:
			return from + j, fpA
		case j < half:
			// The second chain matched; the first half may still hold an
			// earlier match.
			if at, _ := c.scan(data, from+j+1, mid, fpA, mask); at >= 0 {
				return at, 0
			}
			return mid + j, fpB
		}
		from, fp = mid+half, fpB
	}
	for i, b := range data[from:to] {
		fp = fp<<1 + gear[b]
		if fp&mask == 0 {
			return from + i, fp
		}
	}
	return -1, fp
}

// twoChains advances the fingerprints of a and b side by side and stops at
// the first j where one matches mask (inA says which, a winning a tie), or
// at len(a). A leaf function, so that both chains stay in registers.
func twoChains(gear *[256]uint64, a, b []byte, fpA, fpB, mask uint64) (j int, inA bool, _, _ uint64) {
	b = b[:len(a)]
	for j = range a {
		fpA = fpA<<1 + gear[a[j]]
		fpB = fpB<<1 + gear[b[j]]
		if (fpA&mask == 0) || (fpB&mask == 0) {
			return j, fpA&mask == 0, fpA, fpB
		}
	}
	return len(a), false, fpA, fpB
}
