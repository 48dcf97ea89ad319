package crypto

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"
)

// A data key object (datakeys/<version, 8 hex digits>) holds one data key,
// wrapped with a key derived from the master secret, so that every key slot
// (whatever its age) reaches every data key without being rewritten:
//
//	wrap key = HKDF-SHA256(master, salt none, info "lifeboat v1 data key wrap", 32)
//	object   = "LK" | 0x01 | version uint32 LE | nonce [12] | AES-256-GCM(payload) ‖ tag
//	AD       = the 19-byte header ‖ "lifeboat data key <version, 8 hex digits>"
//	payload  = JSON {"version": N, "key": base64 (32 bytes), "created": RFC 3339}
//
// The version is in the name, the header (authenticated) and the payload;
// all three must agree, so objects cannot be swapped between versions.
const (
	dkMagic0, dkMagic1 = 'L', 'K'
	dkFormat           = 1
	dkHeaderSize       = 2 + 1 + 4 + 12
	// maxDataKeyObject bounds what UnwrapDataKey reads: the payload is ~110 bytes.
	maxDataKeyObject = 4 << 10
)

// DataKey is one version of the data key.
type DataKey struct {
	Version uint32
	Key     [32]byte
	Created time.Time
}

type dataKeyPayload struct {
	Version uint32    `json:"version"`
	Key     []byte    `json:"key"`
	Created time.Time `json:"created"`
}

// NewDataKey draws a fresh random data key.
func NewDataKey(version uint32, now time.Time) DataKey {
	d := DataKey{Version: version, Created: now.UTC()}
	mustRand(d.Key[:])
	return d
}

// DataKeyObjectName is where version v's data key object is stored.
func DataKeyObjectName(v uint32) string { return fmt.Sprintf("datakeys/%08x", v) }

// ParseDataKeyObjectName returns the version a data key object name holds.
func ParseDataKeyObjectName(name string) (uint32, bool) {
	const prefix = "datakeys/"
	if len(name) != len(prefix)+8 || name[:len(prefix)] != prefix {
		return 0, false
	}
	h := name[len(prefix):]
	for i := 0; i < len(h); i++ {
		if !('0' <= h[i] && h[i] <= '9' || 'a' <= h[i] && h[i] <= 'f') {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil || v == 0 {
		return 0, false
	}
	return uint32(v), true
}

func dataKeyAD(header []byte, v uint32) []byte {
	return fmt.Appendf(append([]byte(nil), header...), "lifeboat data key %08x", v)
}

// dataKeyWrapKey derives the key that wraps data key objects.
func (k *Keys) dataKeyWrapKey() [32]byte { return k.derive("lifeboat v1 data key wrap") }

// WrapDataKey seals d as a data key object under the master secret.
func (k *Keys) WrapDataKey(d DataKey) ([]byte, error) {
	if d.Version == 0 {
		return nil, errors.New("data key version 0 is not valid")
	}
	plain, err := json.Marshal(dataKeyPayload{Version: d.Version, Key: d.Key[:], Created: d.Created.UTC()})
	if err != nil {
		return nil, err
	}
	wk := k.dataKeyWrapKey()
	a, err := newGCM(wk[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, dkHeaderSize, dkHeaderSize+len(plain)+16)
	out[0], out[1], out[2] = dkMagic0, dkMagic1, dkFormat
	binary.LittleEndian.PutUint32(out[3:], d.Version)
	if _, err := rand.Read(out[7:dkHeaderSize]); err != nil {
		return nil, err
	}
	return a.Seal(out, out[7:dkHeaderSize], plain, dataKeyAD(out[:dkHeaderSize], d.Version)), nil
}

// UnwrapDataKey opens a data key object read from datakeys/<version>. It
// fails unless the object authenticates under the master secret and names
// version in its header and its payload. The error never holds key bytes.
func (k *Keys) UnwrapDataKey(version uint32, b []byte) (DataKey, error) {
	if len(b) < dkHeaderSize+16 || len(b) > maxDataKeyObject || b[0] != dkMagic0 || b[1] != dkMagic1 {
		return DataKey{}, fmt.Errorf("data key object: bad header or size: %w", ErrAuth)
	}
	if b[2] != dkFormat {
		return DataKey{}, fmt.Errorf("data key object: unknown format %d", b[2])
	}
	if hv := binary.LittleEndian.Uint32(b[3:]); hv != version {
		return DataKey{}, fmt.Errorf("data key object: header names version %d, not %d", hv, version)
	}
	wk := k.dataKeyWrapKey()
	a, err := newGCM(wk[:])
	if err != nil {
		return DataKey{}, err
	}
	plain, err := a.Open(nil, b[7:dkHeaderSize], b[dkHeaderSize:], dataKeyAD(b[:dkHeaderSize], version))
	if err != nil {
		return DataKey{}, fmt.Errorf("data key object: %w", ErrAuth)
	}
	var p dataKeyPayload
	if err := json.Unmarshal(plain, &p); err != nil {
		return DataKey{}, errors.New("data key object: payload does not decode")
	}
	if p.Version != version || len(p.Key) != 32 {
		return DataKey{}, fmt.Errorf("data key object: payload names version %d with a %d-byte key", p.Version, len(p.Key))
	}
	return DataKey{Version: version, Key: [32]byte(p.Key), Created: p.Created}, nil
}

// Clone returns a deep copy of k.
func (k *Keys) Clone() *Keys {
	return &Keys{Master: k.Master, DataKeys: maps.Clone(k.DataKeys), Current: k.Current}
}

// UnknownKeyError: an envelope names a data key version the sealer does not hold.
type UnknownKeyError struct{ Version uint32 }

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("sealed under data key version %d, which this key does not hold", e.Version)
}

// Has reports whether s holds data key version v.
func (s *Sealer) Has(v uint32) bool { _, ok := s.aeads[v]; return ok }

// Current is the version s seals with.
func (s *Sealer) Current() uint32 { return s.current }
