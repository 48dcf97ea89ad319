package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// Envelope layout of every sealed object or blob:
//
//	"LB" | format 0x01 | key version uint32 LE | nonce [12] | AES-256-GCM(ciphertext||tag)
//
// The additional data is the 19-byte header followed by a context string the
// caller chooses (the blob id, or the object's kind and name), so an object
// moved to another name or a blob under another id fails to open.
const (
	envMagic0, envMagic1 = 'L', 'B'
	envFormat            = 1
	HeaderSize           = 2 + 1 + 4 + 12
	Overhead             = HeaderSize + 16
)

// ErrAuth means a sealed object did not authenticate: wrong key, corruption,
// or an object presented under another name.
var ErrAuth = errors.New("authentication failed")

// Sealer seals with the current data key and opens with any known version.
type Sealer struct {
	current uint32
	aeads   map[uint32]cipher.AEAD
}

// NewSealer builds a Sealer from data keys by version.
func NewSealer(keys map[uint32][32]byte, current uint32) (*Sealer, error) {
	s := &Sealer{current: current, aeads: make(map[uint32]cipher.AEAD, len(keys))}
	for v, k := range keys {
		a, err := newGCM(k[:])
		if err != nil {
			return nil, err
		}
		s.aeads[v] = a
	}
	if _, ok := s.aeads[current]; !ok {
		return nil, fmt.Errorf("current data key version %d missing", current)
	}
	return s, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Seal appends the envelope of plaintext to dst and returns it.
func (s *Sealer) Seal(dst, plaintext []byte, context string) []byte {
	start := len(dst)
	dst = append(dst, envMagic0, envMagic1, envFormat, 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(dst[start+3:], s.current)
	dst = append(dst, make([]byte, 12)...)
	if _, err := rand.Read(dst[start+7 : start+HeaderSize]); err != nil {
		panic("crypto/rand: " + err.Error())
	}
	ad := make([]byte, 0, HeaderSize+len(context))
	ad = append(append(ad, dst[start:start+HeaderSize]...), context...)
	return s.aeads[s.current].Seal(dst, dst[start+7:start+HeaderSize], plaintext, ad)
}

// Open authenticates and decrypts an envelope, appending the plaintext to dst.
func (s *Sealer) Open(dst, sealed []byte, context string) ([]byte, error) {
	if len(sealed) < Overhead || sealed[0] != envMagic0 || sealed[1] != envMagic1 {
		return nil, fmt.Errorf("sealed object: bad header: %w", ErrAuth)
	}
	if sealed[2] != envFormat {
		return nil, fmt.Errorf("sealed object: unknown envelope format %d", sealed[2])
	}
	v := binary.LittleEndian.Uint32(sealed[3:])
	a, ok := s.aeads[v]
	if !ok {
		return nil, &UnknownKeyError{Version: v}
	}
	ad := make([]byte, 0, HeaderSize+len(context))
	ad = append(append(ad, sealed[:HeaderSize]...), context...)
	out, err := a.Open(dst, sealed[7:HeaderSize], sealed[HeaderSize:], ad)
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}

// KeyVersion reports the data key version named in an envelope's header;
// false if sealed does not start with an envelope header.
func KeyVersion(sealed []byte) (uint32, bool) {
	if len(sealed) < HeaderSize || sealed[0] != envMagic0 || sealed[1] != envMagic1 || sealed[2] != envFormat {
		return 0, false
	}
	return binary.LittleEndian.Uint32(sealed[3:]), true
}
