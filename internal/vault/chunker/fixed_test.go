package chunker

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFixed(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000) // 10,000 bytes
	f := NewFixed(4096)
	f.Reset(bytes.NewReader(data))
	var got []byte
	var sizes []int
	for {
		c, err := f.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(c))
		got = append(got, c...)
	}
	if !bytes.Equal(got, data) || len(sizes) != 3 || sizes[0] != 4096 || sizes[2] != 10000-8192 {
		t.Errorf("sizes %v", sizes)
	}
	f.Reset(bytes.NewReader(nil))
	if _, err := f.Next(); err != io.EOF {
		t.Errorf("empty: %v", err)
	}
	boom := errors.New("boom")
	f.Reset(io.MultiReader(bytes.NewReader(data[:100]), &errReader{boom}))
	if _, err := f.Next(); !errors.Is(err, boom) {
		t.Errorf("read error: %v", err)
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }
