package storage

import (
	"strconv"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, name := range []string{"a", "lifeboat.json", "data/ab/abcdef", "keys/K-1_x.y", "a/b/c/d", "..a", "a..", strings.Repeat("x", 255)} {
		if err := CheckName(name); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "../a", "a\x00b", `a\b`, "a b", "a/b:c", "é", "a\nb",
		strings.Repeat("x", 256), strings.Repeat("a/", 600) + "a"} {
		err := CheckName(name)
		if err == nil {
			t.Errorf("CheckName(%q) = nil, want an error", name)
			continue
		}
		if !strings.Contains(err.Error(), strconv.Quote(name)) {
			t.Errorf("CheckName(%q) = %v: the error does not name the name", name, err)
		}
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, p := range []string{"", "d", "data/", "data/a", "data/ab/", "data/ab/x.", "."} {
		if err := CheckPrefix(p); err != nil {
			t.Errorf("CheckPrefix(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"/", "/data", "../", "a/../", "./", "a//", "data/a b", "a\x00/", `a\`} {
		if err := CheckPrefix(p); err == nil {
			t.Errorf("CheckPrefix(%q) = nil, want an error", p)
		}
	}
}
