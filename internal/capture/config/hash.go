package config

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/zeebo/blake3"
)

// HashKeySize is the size of a Hasher key.
const HashKeySize = 32

// Hasher computes the keyed hash that tells whether a secret value changed
// without revealing it. Equal hashes mean equal settings (key, type and
// value); without the key, a hash says nothing about a value, not even a
// guessable one. Use one key per vault (or app), kept with its other keys.
// A Hasher is safe for concurrent use.
type Hasher struct {
	base *blake3.Hasher // keyed, never written to: each Sum clones it
}

// NewHasher returns a Hasher for a HashKeySize-byte key; any other length is
// an error.
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) != HashKeySize {
		return nil, fmt.Errorf("config hash key: %d bytes, want %d", len(key), HashKeySize)
	}
	h, err := blake3.NewKeyed(key)
	if err != nil {
		return nil, fmt.Errorf("config hash key: %w", err)
	}
	return &Hasher{base: h}, nil
}

// hashDomain separates these hashes from any other use of the same key.
const hashDomain = "lifeboat config setting v1"

// Sum returns 16 bytes of BLAKE3 in keyed mode, in hex, over the key, type
// and value of s, each length-prefixed so no two settings share an input:
// equal values under different keys or types hash differently.
func (h *Hasher) Sum(s Setting) string {
	d := h.base.Clone()
	var n [binary.MaxVarintLen64]byte
	for _, field := range []string{hashDomain, s.Key, string(s.Type), s.Value} {
		_, _ = d.Write(n[:binary.PutUvarint(n[:], uint64(len(field)))])
		_, _ = d.WriteString(field)
	}
	var sum [16]byte
	_, _ = d.Digest().Read(sum[:])
	return hex.EncodeToString(sum[:])
}
