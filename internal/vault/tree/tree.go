// Package tree encodes directory listings (trees) stored as blobs.
//
// A tree is binary (see binary.go; vault feature "trees2"), or in vaults
// written before that feature JSON {"nodes":[...]}, which Decode still
// reads; nodes are sorted by name. Decode is strict:
// it rejects names that are empty, ".", "..", or contain "/" or NUL, duplicate
// or unsorted names, unknown node types, and a directory without a subtree, so
// that restore can never be steered outside its target by a crafted vault.
// tree imports blob only.
package tree

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
)

// Node types.
const (
	File    = "file"
	Dir     = "dir"
	Symlink = "symlink"
)

// Extent is one piece of a file's content: a data blob or a hole of Hole bytes.
type Extent struct {
	ID   *blob.ID `json:"id,omitempty"`
	Hole int64    `json:"hole,omitempty"`
}

// Node is one directory entry.
type Node struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Mode  uint32 `json:"mode"` // permission bits incl. setuid, setgid, sticky (07777)
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
	MTime int64  `json:"mtime"` // ns since the epoch
	CTime int64  `json:"ctime,omitempty"`
	Inode uint64 `json:"inode,omitempty"`
	Dev   uint64 `json:"dev,omitempty"`
	Links uint64 `json:"links,omitempty"`
	Size  int64  `json:"size,omitempty"`
	// Sparse is set when the file had holes when read.
	Sparse  bool     `json:"sparse,omitempty"`
	Target  string   `json:"target,omitempty"` // symlink target, as stored
	Content []Extent `json:"content,omitempty"`
	Subtree *blob.ID `json:"subtree,omitempty"`
}

// Tree is a directory listing.
type Tree struct {
	Nodes []*Node `json:"nodes"`
}

// Encode encodes a tree in the binary encoding; nodes must already be
// sorted by name. The vault must carry the feature "trees2".
func Encode(t *Tree) ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return encodeBinary(t), nil
}

// EncodeJSON encodes a tree as vaults without the feature "trees2" hold
// it (for tests of reading such vaults). Strings that are not UTF-8 do not
// survive it.
func EncodeJSON(t *Tree) ([]byte, error) {
	if t.Nodes == nil {
		t.Nodes = []*Node{}
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(t)
}

// Decode parses and validates a tree in either encoding.
func Decode(b []byte) (*Tree, error) {
	if bytes.HasPrefix(b, []byte(binaryMagic)) {
		return decodeBinary(b)
	}
	var t Tree
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&t); err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	if d.More() {
		return nil, fmt.Errorf("tree: trailing data")
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// ValidName reports whether name is safe as one path component.
func ValidName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00") && len(name) <= 4096
}

// Validate checks the rules Decode enforces.
func (t *Tree) Validate() error {
	for i, n := range t.Nodes {
		if n == nil {
			return fmt.Errorf("tree: node %d is null", i)
		}
		if !ValidName(n.Name) {
			return fmt.Errorf("tree: unsafe name %q", n.Name)
		}
		if i > 0 && t.Nodes[i-1].Name >= n.Name {
			return fmt.Errorf("tree: names not sorted and unique at %q", n.Name)
		}
		if n.Mode&^07777 != 0 {
			return fmt.Errorf("tree: %q: mode %o out of range", n.Name, n.Mode)
		}
		switch n.Type {
		case File:
			if n.Subtree != nil || n.Target != "" {
				return fmt.Errorf("tree: file %q has directory or link fields", n.Name)
			}
			if n.Size < 0 {
				return fmt.Errorf("tree: file %q: negative size", n.Name)
			}
			for _, e := range n.Content {
				if (e.ID == nil) == (e.Hole == 0) || e.Hole < 0 {
					return fmt.Errorf("tree: file %q: bad extent", n.Name)
				}
			}
		case Dir:
			if n.Subtree == nil {
				return fmt.Errorf("tree: directory %q has no subtree", n.Name)
			}
			if len(n.Content) != 0 || n.Target != "" {
				return fmt.Errorf("tree: directory %q has file or link fields", n.Name)
			}
		case Symlink:
			if n.Target == "" || strings.ContainsRune(n.Target, 0) {
				return fmt.Errorf("tree: symlink %q has a bad target", n.Name)
			}
			if len(n.Content) != 0 || n.Subtree != nil {
				return fmt.Errorf("tree: symlink %q has file or directory fields", n.Name)
			}
		default:
			return fmt.Errorf("tree: %q has unknown type %q", n.Name, n.Type)
		}
	}
	return nil
}

// Find returns the node named name, or nil.
func (t *Tree) Find(name string) *Node {
	lo, hi := 0, len(t.Nodes)
	for lo < hi {
		m := (lo + hi) / 2
		switch c := strings.Compare(t.Nodes[m].Name, name); {
		case c == 0:
			return t.Nodes[m]
		case c < 0:
			lo = m + 1
		default:
			hi = m
		}
	}
	return nil
}
