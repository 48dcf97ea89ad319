package vault

import (
	"strings"
	"testing"
)

func TestSplitResealed(t *testing.T) {
	for name, want := range map[string]struct {
		base string
		ver  uint32
	}{
		"points/0123456789abcdef0123456789abcdef":                {"points/0123456789abcdef0123456789abcdef", 0},
		"points/0123456789abcdef0123456789abcdef.00000002":       {"points/0123456789abcdef0123456789abcdef", 2},
		"markers/p/0000000000000000001-0badcafe.delete.0000000a": {"markers/p/0000000000000000001-0badcafe.delete", 10},
		"markers/p/0000000000000000001-0badcafe.undelete":        {"markers/p/0000000000000000001-0badcafe.undelete", 0},
		"audit/0000000000000001-0000000000000002.ffffffff":       {"audit/0000000000000001-0000000000000002", 0xffffffff},
		"points/x.00000000": {"points/x.00000000", 0},
		"points/x.0000000A": {"points/x.0000000A", 0},
		"points/.00000002":  {"points/.00000002", 0},
		".00000002":         {".00000002", 0},
		"points/0123456789abcdef0123456789abcdef.00000002.00000003": {"points/0123456789abcdef0123456789abcdef.00000002", 3},
	} {
		base, ver := splitResealed(name)
		if base != want.base || ver != want.ver {
			t.Errorf("%s: %s %d, want %s %d", name, base, ver, want.base, want.ver)
		}
	}
	names := []string{"a", "a.00000002", "a.0000000a", "a.00000003"}
	sortCopies(names)
	if strings.Join(names, " ") != "a.0000000a a.00000003 a.00000002 a" {
		t.Errorf("order: %v", names)
	}
}

// FuzzSplitResealed: object names come from listing untrusted storage.
func FuzzSplitResealed(f *testing.F) {
	f.Add("points/0123456789abcdef0123456789abcdef.00000002")
	f.Add("a.b")
	f.Fuzz(func(t *testing.T, name string) {
		base, ver := splitResealed(name)
		if ver == 0 {
			if base != name {
				t.Fatalf("%q: base %q without a version", name, base)
			}
			return
		}
		if resealedName(base, ver) != name {
			t.Fatalf("%q: split into %q %d, which names %q", name, base, ver, resealedName(base, ver))
		}
	})
}
