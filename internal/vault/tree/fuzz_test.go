package tree

import (
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
