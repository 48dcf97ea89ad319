package crypto

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
)

// Keys is the whole secret of a vault, as held in every key slot.
type Keys struct {
	Master   [32]byte            // derives the id key and chunker seed; never rotated
	DataKeys map[uint32][32]byte // sealing keys by version
	Current  uint32              // version used for new objects
}

// NewKeys makes fresh random keys with data key version 1.
func NewKeys() *Keys {
	k := &Keys{DataKeys: map[uint32][32]byte{}, Current: 1}
	mustRand(k.Master[:])
	var d [32]byte
	mustRand(d[:])
	k.DataKeys[1] = d
	return k
}

func mustRand(b []byte) {
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand: " + err.Error())
	}
}

func (k *Keys) derive(label string) [32]byte {
	out, err := hkdf.Key(sha256.New, k.Master[:], nil, label, 32)
	if err != nil {
		panic(err)
	}
	return [32]byte(out)
}

// IDKey is the key of the keyed BLAKE3 hash that names blobs.
func (k *Keys) IDKey() [32]byte { return k.derive("lifeboat v1 blob id key") }

// ChunkerSeed seeds the content-defined chunker's gear table.
func (k *Keys) ChunkerSeed() [32]byte { return k.derive("lifeboat v1 chunker seed") }

// Sealer returns a sealer over the data keys.
func (k *Keys) Sealer() (*Sealer, error) {
	if len(k.DataKeys) == 0 {
		return nil, fmt.Errorf("keys hold no data key")
	}
	return NewSealer(k.DataKeys, k.Current)
}
