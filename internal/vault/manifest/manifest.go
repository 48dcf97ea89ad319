// Package manifest encodes point manifests: what one recovery point holds.
//
// A manifest is JSON, sealed with context "point <id>" and stored at
// points/<id>. It is written last, after every pack and index it needs is
// durable: a point exists exactly when its manifest does. It never holds a
// secret. manifest imports blob only.
package manifest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/tree"
)

// Version of the manifest encoding.
const Version = 1

// Component is one captured thing. In the point's root tree it appears as the
// node named Name.
type Component struct {
	Name   string    `json:"name"`
	Kind   string    `json:"kind"`   // "files" or "config" (later: postgres, mysql, sqlite)
	Host   string    `json:"host"`   // where it was captured
	Source string    `json:"source"` // absolute path or spec; never a secret
	Taken  time.Time `json:"taken"`
	Stats  Stats     `json:"stats"`
	// Meta is what the capture recorded of the component (a database's
	// engine, versions, size and row counts), as JSON; never a secret.
	Meta json.RawMessage `json:"meta,omitempty"`
}

// componentJSON is Component as stored: JSON strings cannot carry bytes
// that are not UTF-8 (encoding/json writes U+FFFD), so a name or source that
// is not UTF-8 is also stored as its bytes (base64), which readers prefer.
// Readers that do not know these fields see the U+FFFD form, as before.
type componentJSON struct {
	plainComponent
	NameRaw   []byte `json:"name_raw,omitempty"`
	SourceRaw []byte `json:"source_raw,omitempty"`
}

type plainComponent Component

// MarshalJSON implements json.Marshaler.
func (c Component) MarshalJSON() ([]byte, error) {
	out := componentJSON{plainComponent: plainComponent(c)}
	if !utf8.ValidString(c.Name) {
		out.NameRaw = []byte(c.Name)
	}
	if !utf8.ValidString(c.Source) {
		out.SourceRaw = []byte(c.Source)
	}
	return json.Marshal(out)
}

// UnmarshalJSON implements json.Unmarshaler.
func (c *Component) UnmarshalJSON(b []byte) error {
	var in componentJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*c = Component(in.plainComponent)
	if in.NameRaw != nil {
		c.Name = string(in.NameRaw)
	}
	if in.SourceRaw != nil {
		c.Source = string(in.SourceRaw)
	}
	return nil
}

// Stats counts what a capture did.
type Stats struct {
	Files          int64 `json:"files"`
	Dirs           int64 `json:"dirs"`
	Symlinks       int64 `json:"symlinks,omitempty"`
	UnchangedFiles int64 `json:"unchanged_files"`
	Bytes          int64 `json:"bytes"`         // logical size of the files
	BytesRead      int64 `json:"bytes_read"`    // file data actually read
	BytesNew       int64 `json:"bytes_new"`     // sealed bytes added to the vault
	BytesNewRaw    int64 `json:"bytes_new_raw"` // the same blobs before compression
	BlobsNew       int64 `json:"blobs_new"`
	Warnings       int64 `json:"warnings"`
}

// Add sums stats.
func (s *Stats) Add(o Stats) {
	s.Files += o.Files
	s.Dirs += o.Dirs
	s.Symlinks += o.Symlinks
	s.UnchangedFiles += o.UnchangedFiles
	s.Bytes += o.Bytes
	s.BytesRead += o.BytesRead
	s.BytesNew += o.BytesNew
	s.BytesNewRaw += o.BytesNewRaw
	s.BlobsNew += o.BlobsNew
	s.Warnings += o.Warnings
}

// Point is a recovery point's manifest.
type Point struct {
	Version    int               `json:"version"`
	ID         string            `json:"id"`
	Time       time.Time         `json:"time"`     // start of the capture
	Finished   time.Time         `json:"finished"` // manifest written
	Host       string            `json:"host"`
	User       string            `json:"user,omitempty"`
	App        string            `json:"app,omitempty"` // the app of a point taken by the server
	Labels     map[string]string `json:"labels,omitempty"`
	Parent     string            `json:"parent,omitempty"`
	Root       blob.ID           `json:"root"` // tree with one node per component
	Components []Component       `json:"components"`
	Stats      Stats             `json:"stats"`
	// Partial is set when some items could not be read; Warnings lists the first few.
	Partial  bool     `json:"partial,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// NewID returns a random id: 16 bytes, hex. Random from the first digit, so
// that the 8-digit short form users see is unique in practice (points are
// ordered by their manifest's time, not by id).
func NewID(now time.Time) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// ValidID reports whether id has the shape of a point id.
func ValidID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && id == string(bytes.ToLower([]byte(id)))
}

// ObjectName is where a point's manifest is stored.
func ObjectName(id string) string { return "points/" + id }

// Context is the AEAD context of a manifest.
func Context(id string) string { return "point " + id }

// Encode marshals a point.
func Encode(p *Point) ([]byte, error) { return json.Marshal(p) }

// Decode parses and validates a point; id is the name it was stored under.
func Decode(b []byte, id string) (*Point, error) {
	var p Point
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&p); err != nil {
		return nil, fmt.Errorf("point %s: %w", id, err)
	}
	if p.Version != Version {
		return nil, fmt.Errorf("point %s: unknown manifest version %d", id, p.Version)
	}
	if p.ID != id {
		return nil, fmt.Errorf("point %s: manifest names itself %q", id, p.ID)
	}
	if p.Root.IsZero() {
		return nil, fmt.Errorf("point %s: no root tree", id)
	}
	seen := map[string]bool{}
	for _, c := range p.Components {
		if !tree.ValidName(c.Name) || seen[c.Name] {
			return nil, fmt.Errorf("point %s: bad or duplicate component name %q", id, c.Name)
		}
		seen[c.Name] = true
	}
	return &p, nil
}
