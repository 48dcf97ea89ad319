package tree

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
)

// The binary encoding (vault feature "trees2"): every string is stored as
// the bytes it was read as, so names, link targets and owner names that are
// not UTF-8 survive (JSON cannot carry them), and it decodes several times
// faster than JSON, which matters when a re-backup reads every parent tree.
//
//	tree   = magic "LBT\x02" | uvarint count | node × count
//	node   = bytes name | u8 type (1 file, 2 dir, 3 symlink)
//	         | uvarint mode | uvarint uid | uvarint gid | bytes user | bytes group
//	         | varint mtime | varint ctime | uvarint inode | uvarint dev
//	         | uvarint links | varint size | u8 flags (bit 0: sparse)
//	         | bytes target | uvarint extents | extent × extents
//	         | id subtree (directories only)
//	extent = 0x00 id | 0x01 uvarint hole (> 0)
//	bytes  = uvarint length | length bytes
//	id     = 32 bytes
//
// Varints are encoding/binary's. Decoding is strict: every length and count
// is checked against the bytes left, nothing may follow the last node, and
// the tree must pass Validate.
const binaryMagic = "LBT\x02"

// minBinaryNode is the smallest encoded node: a one-byte name (2), type,
// mode uid gid, user group, mtime ctime, inode dev links, size, flags,
// target, extents.
const minBinaryNode = 2 + 1 + 3 + 2 + 2 + 3 + 1 + 1 + 1 + 1

var typeCodes = map[string]byte{File: 1, Dir: 2, Symlink: 3}

var typeNames = [...]string{1: File, 2: Dir, 3: Symlink}

func appendBytes(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// encodeBinary encodes a validated tree.
func encodeBinary(t *Tree) []byte {
	size := len(binaryMagic) + binary.MaxVarintLen64
	for _, n := range t.Nodes {
		size += len(n.Name) + len(n.User) + len(n.Group) + len(n.Target) + 80 + len(n.Content)*33
	}
	b := make([]byte, 0, size)
	b = append(b, binaryMagic...)
	b = binary.AppendUvarint(b, uint64(len(t.Nodes)))
	for _, n := range t.Nodes {
		b = appendBytes(b, n.Name)
		b = append(b, typeCodes[n.Type])
		b = binary.AppendUvarint(b, uint64(n.Mode))
		b = binary.AppendUvarint(b, uint64(n.UID))
		b = binary.AppendUvarint(b, uint64(n.GID))
		b = appendBytes(b, n.User)
		b = appendBytes(b, n.Group)
		b = binary.AppendVarint(b, n.MTime)
		b = binary.AppendVarint(b, n.CTime)
		b = binary.AppendUvarint(b, n.Inode)
		b = binary.AppendUvarint(b, n.Dev)
		b = binary.AppendUvarint(b, n.Links)
		b = binary.AppendVarint(b, n.Size)
		var flags byte
		if n.Sparse {
			flags |= 1
		}
		b = append(b, flags)
		b = appendBytes(b, n.Target)
		b = binary.AppendUvarint(b, uint64(len(n.Content)))
		for _, e := range n.Content {
			if e.ID != nil {
				b = append(b, 0)
				b = append(b, e.ID[:]...)
			} else {
				b = append(b, 1)
				b = binary.AppendUvarint(b, uint64(e.Hole))
			}
		}
		if n.Type == Dir {
			b = append(b, n.Subtree[:]...)
		}
	}
	return b
}

var errShort = errors.New("truncated")

// binReader reads fields off a binary tree; the first error sticks.
type binReader struct {
	s   string // the whole tree: decoded strings share it
	off int
	err error
}

func (r *binReader) fail(err error) {
	if r.err == nil {
		r.err = fmt.Errorf("tree: at byte %d: %w", r.off, err)
	}
}

func (r *binReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	var v uint64
	var shift uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if r.off >= len(r.s) {
			r.fail(errShort)
			return 0
		}
		c := r.s[r.off]
		r.off++
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			return v | uint64(c)<<shift
		}
		v |= uint64(c&0x7f) << shift
		shift += 7
	}
	r.fail(errors.New("varint overflows 64 bits"))
	return 0
}

func (r *binReader) varint() int64 {
	u := r.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (r *binReader) u32(what string) uint32 {
	v := r.uvarint()
	if v > math.MaxUint32 {
		r.fail(fmt.Errorf("%s %d out of range", what, v))
		return 0
	}
	return uint32(v)
}

func (r *binReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.s) {
		r.fail(errShort)
		return 0
	}
	c := r.s[r.off]
	r.off++
	return c
}

func (r *binReader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.s)-r.off) {
		r.fail(fmt.Errorf("string of %d bytes beyond the end", n))
		return ""
	}
	s := r.s[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

func (r *binReader) id(dst *blob.ID) {
	if r.err != nil {
		return
	}
	if len(r.s)-r.off < len(dst) {
		r.fail(errShort)
		return
	}
	copy(dst[:], r.s[r.off:])
	r.off += len(dst)
}

// decodeBinary parses a binary tree (b starts with binaryMagic).
func decodeBinary(b []byte) (*Tree, error) {
	r := &binReader{s: string(b), off: len(binaryMagic)}
	count := r.uvarint()
	if r.err == nil && count > uint64(len(r.s)-r.off)/minBinaryNode {
		return nil, fmt.Errorf("tree: %d nodes cannot fit in %d bytes", count, len(r.s)-r.off)
	}
	nodes := make([]Node, count)
	t := &Tree{Nodes: make([]*Node, count)}
	for i := range nodes {
		n := &nodes[i]
		t.Nodes[i] = n
		n.Name = r.str()
		typ := r.byte()
		if int(typ) >= len(typeNames) || typeNames[typ] == "" {
			r.fail(fmt.Errorf("node %d: unknown type %d", i, typ))
		}
		n.Mode = r.u32("mode")
		n.UID = r.u32("uid")
		n.GID = r.u32("gid")
		n.User = r.str()
		n.Group = r.str()
		n.MTime = r.varint()
		n.CTime = r.varint()
		n.Inode = r.uvarint()
		n.Dev = r.uvarint()
		n.Links = r.uvarint()
		n.Size = r.varint()
		flags := r.byte()
		if flags&^1 != 0 {
			r.fail(fmt.Errorf("node %d: unknown flags %#x", i, flags))
		}
		n.Sparse = flags&1 != 0
		n.Target = r.str()
		ne := r.uvarint()
		if r.err == nil && ne > uint64(len(r.s)-r.off)/2 {
			r.fail(fmt.Errorf("node %d: %d extents cannot fit", i, ne))
		}
		if r.err != nil {
			return nil, r.err
		}
		n.Type = typeNames[typ]
		if ne > 0 {
			n.Content = make([]Extent, ne)
			// At most one id per 33 bytes left: appends never move ids.
			ids := make([]blob.ID, 0, min(ne, uint64(len(r.s)-r.off)/33))
			for j := range n.Content {
				switch k := r.byte(); k {
				case 0:
					if len(ids) == cap(ids) {
						r.fail(errShort)
						break
					}
					ids = append(ids, blob.ID{})
					r.id(&ids[len(ids)-1])
					n.Content[j].ID = &ids[len(ids)-1]
				case 1:
					h := r.uvarint()
					if h == 0 || h > math.MaxInt64 {
						r.fail(fmt.Errorf("node %d: hole of %d bytes", i, h))
					}
					n.Content[j].Hole = int64(h)
				default:
					r.fail(fmt.Errorf("node %d: unknown extent kind %d", i, k))
				}
			}
		}
		if n.Type == Dir {
			n.Subtree = new(blob.ID)
			r.id(n.Subtree)
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(r.s) {
		return nil, fmt.Errorf("tree: %d bytes of trailing data", len(r.s)-r.off)
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return t, nil
}
