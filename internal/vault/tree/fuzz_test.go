package tree

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
)

func TestDecodeRejectsUnsafe(t *testing.T) {
	bad := []string{
		`{"nodes":[{"name":"..","type":"file","mode":0,"uid":0,"gid":0,"mtime":0}]}`,
		`{"nodes":[{"name":"a/b","type":"file","mode":0,"uid":0,"gid":0,"mtime":0}]}`,
		`{"nodes":[{"name":"","type":"file","mode":0,"uid":0,"gid":0,"mtime":0}]}`,
		`{"nodes":[{"name":"a\u0000","type":"file","mode":0,"uid":0,"gid":0,"mtime":0}]}`,
		`{"nodes":[{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"mtime":0},{"name":"a","type":"dir","mode":0,"uid":0,"gid":0,"mtime":0,"subtree":"` + strings.Repeat("0", 64) + `"}]}`,
		`{"nodes":[{"name":"d","type":"dir","mode":0,"uid":0,"gid":0,"mtime":0}]}`,
		`{"nodes":[{"name":"s","type":"symlink","mode":0,"uid":0,"gid":0,"mtime":0}]}`,
		`{"nodes":[{"name":"x","type":"fifo","mode":0,"uid":0,"gid":0,"mtime":0}]}`,
		`{"nodes":[{"name":"x","type":"file","mode":0,"uid":0,"gid":0,"mtime":0,"extra":1}]}`,
		`{"nodes":[{"name":"x","type":"file","mode":0,"uid":0,"gid":0,"mtime":0,"content":[{"hole":-1}]}]}`,
		`{"nodes":[null]}`,
		`{"nodes":[]} {}`,
	}
	for _, b := range bad {
		if _, err := Decode([]byte(b)); err == nil {
			t.Errorf("accepted %s", b)
		}
	}
	id := blob.ID{1}
	good := &Tree{Nodes: []*Node{{Name: "a", Type: File, Content: []Extent{{ID: &id}, {Hole: 5}}}, {Name: "b", Type: Dir, Subtree: &id}, {Name: "c", Type: Symlink, Target: "/abs"}}}
	enc, err := Encode(good)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(enc)
	if err != nil || len(back.Nodes) != 3 || back.Find("b") == nil || back.Find("zz") != nil {
		t.Fatalf("round trip: %v", err)
	}
}

// FuzzDecode: whatever Decode accepts is safe to restore and re-encodes.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"nodes":[{"name":"a","type":"file","mode":420,"uid":0,"gid":0,"mtime":1}]}`))
	f.Add([]byte(`{"nodes":[]}`))
	f.Add([]byte(`{"nodes":[{"name":"..","type":"dir"}]}`))
	if b, err := Encode(oddTree()); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := Decode(b)
		if err != nil {
			return
		}
		for i, n := range tr.Nodes {
			if !ValidName(n.Name) || (i > 0 && tr.Nodes[i-1].Name >= n.Name) {
				t.Fatalf("accepted unsafe or unsorted name %q", n.Name)
			}
		}
		if _, err := Encode(tr); err != nil {
			t.Fatalf("accepted tree does not re-encode: %v", err)
		}
	})
}

func oddTree() *Tree {
	id, sub := blob.ID{7, 7}, blob.ID{9}
	return &Tree{Nodes: []*Node{
		{Name: "a\xff\xfe", Type: File, Mode: 04755, UID: 1<<32 - 1, GID: 5, User: "us\xc3er", Group: "g", MTime: -5, CTime: 1 << 62,
			Inode: 1<<64 - 1, Dev: 3, Links: 2, Size: 1 << 40, Sparse: true, Content: []Extent{{ID: &id}, {Hole: 1 << 40}, {ID: &id}}},
		{Name: "a\xff\xff", Type: File},
		{Name: "d", Type: Dir, Mode: 01777, Subtree: &sub},
		{Name: "l\x80", Type: Symlink, Target: "../\xc0\xaf/x"},
	}}
}

func TestBinaryRoundTripKeepsEveryByte(t *testing.T) {
	for _, want := range []*Tree{{}, oddTree()} {
		enc, err := Encode(want)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(enc), binaryMagic) {
			t.Fatalf("Encode did not write the binary encoding: %q", enc[:min(len(enc), 8)])
		}
		got, err := Decode(enc)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Nodes) != len(want.Nodes) {
			t.Fatalf("%d nodes back, want %d", len(got.Nodes), len(want.Nodes))
		}
		for i := range want.Nodes {
			if !reflect.DeepEqual(got.Nodes[i], want.Nodes[i]) {
				t.Errorf("node %d:\n got %+v\nwant %+v", i, *got.Nodes[i], *want.Nodes[i])
			}
		}
		// The encoder's output decodes and re-encodes to the same bytes, so an
		// unchanged directory keeps its tree id (dedup).
		if again, _ := Encode(got); !bytes.Equal(again, enc) {
			t.Errorf("re-encoding differs")
		}
	}
}

// JSON trees (vaults without the feature trees2) still decode.
func TestDecodeReadsJSONTrees(t *testing.T) {
	want := oddTree()
	for _, n := range want.Nodes {
		n.Name = strings.ToValidUTF8(n.Name, "?")
		n.User = strings.ToValidUTF8(n.User, "?")
		n.Target = strings.ToValidUTF8(n.Target, "?")
	}
	want.Nodes = append(want.Nodes[:1], want.Nodes[2:]...) // "a??" twice otherwise
	enc, err := EncodeJSON(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("JSON tree decoded differently:\n got %+v\nwant %+v", got, want)
	}
}

func TestBinaryDecodeRejects(t *testing.T) {
	good, err := Encode(oddTree())
	if err != nil {
		t.Fatal(err)
	}
	// Every truncation, and anything appended.
	for i := len(binaryMagic); i < len(good); i++ {
		if _, err := Decode(good[:i]); err == nil {
			t.Fatalf("accepted the tree cut to %d of %d bytes", i, len(good))
		}
	}
	if _, err := Decode(append(bytes.Clone(good), 0)); err == nil {
		t.Fatal("accepted trailing data")
	}
	mk := func(nodes ...*Node) []byte { return encodeBinary(&Tree{Nodes: nodes}) }
	sub := blob.ID{1}
	bad := map[string][]byte{
		"dot-dot":        mk(&Node{Name: "..", Type: Dir, Subtree: &sub}),
		"slash":          mk(&Node{Name: "a/b", Type: File}),
		"unsorted":       mk(&Node{Name: "b", Type: File}, &Node{Name: "a", Type: File}),
		"duplicate":      mk(&Node{Name: "a", Type: File}, &Node{Name: "a", Type: File}),
		"mode":           mk(&Node{Name: "a", Type: File, Mode: 010000}),
		"empty target":   mk(&Node{Name: "a", Type: Symlink}),
		"huge count":     append([]byte(binaryMagic), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"varint overrun": append([]byte(binaryMagic), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f),
	}
	// A node's type byte, flags and extent kind out of range.
	base := mk(&Node{Name: "a", Type: File, Content: []Extent{{Hole: 3}}})
	typeAt := len(binaryMagic) + 1 + 2
	flagsAt := len(base) - 5
	kindAt := len(base) - 2
	for name, at := range map[string]int{"type": typeAt, "flags": flagsAt, "extent kind": kindAt} {
		b := bytes.Clone(base)
		b[at] = 9
		bad[name] = b
	}
	if _, err := Decode(base); err != nil {
		t.Fatalf("the base of the byte edits does not decode: %v", err)
	}
	for name, b := range bad {
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
