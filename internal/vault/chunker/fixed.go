package chunker

import (
	"errors"
	"io"
)

// Fixed cuts a stream into chunks of one size (the last may be shorter):
// for database files, whose changes fall on page boundaries, fixed chunks
// aligned to pages store a changed page's chunk only (content-defined
// chunks around it would be larger). Size is a multiple of the page size.
type Fixed struct {
	r    io.Reader
	buf  []byte
	done bool
}

// NewFixed returns a fixed-size chunker of size bytes.
func NewFixed(size int) *Fixed { return &Fixed{buf: make([]byte, size)} }

// Reset starts over on a new reader.
func (f *Fixed) Reset(r io.Reader) { f.r, f.done = r, r == nil }

// Next returns the next chunk, valid until the next call; io.EOF at the end.
func (f *Fixed) Next() ([]byte, error) {
	if f.done {
		return nil, io.EOF
	}
	n, err := io.ReadFull(f.r, f.buf)
	switch {
	case errors.Is(err, io.EOF):
		f.done = true
		return nil, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		f.done = true
		return f.buf[:n], nil
	case err != nil:
		return nil, err
	}
	return f.buf[:n], nil
}
