// Package blob defines the identifiers shared by the vault's encodings:
// blob ids (keyed BLAKE3 of the plaintext), blob types, pack ids and where a
// blob lives. It imports the standard library only.
package blob

import (
	"encoding/hex"
	"fmt"
)

// ID names a blob: keyed BLAKE3-256 of its plaintext under the vault's id key.
type ID [32]byte

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short is the first 8 hex digits, for messages.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// MarshalText encodes the id as hex.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hex id.
func (id *ID) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("blob id %q: want 64 hex digits", b)
	}
	_, err := hex.Decode(id[:], b)
	if err != nil {
		return fmt.Errorf("blob id %q: %w", b, err)
	}
	return nil
}

// IsZero reports whether id is the zero id.
func (id ID) IsZero() bool { return id == ID{} }

// Type says what a blob holds.
type Type uint8

const (
	Data Type = 1 // file content chunk
	Tree Type = 2 // encoded directory listing
)

func (t Type) String() string {
	switch t {
	case Data:
		return "data"
	case Tree:
		return "tree"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Valid reports whether t is a known type.
func (t Type) Valid() bool { return t == Data || t == Tree }

// PackID names a pack file: 16 random bytes.
type PackID [16]byte

func (p PackID) String() string { return hex.EncodeToString(p[:]) }

// ObjectName is the storage name of the pack: data/<2 hex>/<32 hex>.
func (p PackID) ObjectName() string {
	s := p.String()
	return "data/" + s[:2] + "/" + s
}

// ParsePackName parses a pack's object name.
func ParsePackName(name string) (PackID, error) {
	var p PackID
	if len(name) != len("data/xx/")+32 || name[:5] != "data/" || name[7] != '/' || name[5:7] != name[8:10] {
		return p, fmt.Errorf("not a pack name: %q", name)
	}
	if _, err := hex.Decode(p[:], []byte(name[8:])); err != nil {
		return p, fmt.Errorf("not a pack name: %q", name)
	}
	return p, nil
}

// Entry says where one blob is stored: the sealed bytes [Offset, Offset+Length)
// of its pack; RawLength is the plaintext length after decompression.
type Entry struct {
	ID        ID
	Type      Type
	Offset    uint32
	Length    uint32
	RawLength uint32
}

// Context is the AEAD context string binding a sealed blob to its id and type.
func Context(t Type, id ID) string {
	return "blob " + t.String() + " " + string(id[:])
}
