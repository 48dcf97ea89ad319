package storage

import (
	"fmt"
	"strings"
)

// Name limits: a segment must fit a file name on every local file system
// (NAME_MAX), a whole name an S3 key.
const (
	maxSegment = 255
	maxName    = 1024
)

// CheckName returns an error naming name unless it is a valid object name:
// slash-separated segments, each non-empty, not "." or "..", made of
// [A-Za-z0-9._-] only (so no leading "/", NUL, backslash or space). Backends
// call it before touching storage, so that a name can never escape a root
// directory or mean different things on different backends.
func CheckName(name string) error {
	if name == "" {
		return fmt.Errorf("invalid object name %q: empty", name)
	}
	if len(name) > maxName {
		return fmt.Errorf("invalid object name %q: longer than %d bytes", name, maxName)
	}
	for seg := range strings.SplitSeq(name, "/") {
		if err := checkSegment(seg); err != nil {
			return fmt.Errorf("invalid object name %q: %s", name, err)
		}
	}
	return nil
}

// CheckPrefix returns an error naming prefix unless it can start valid
// object names: "" or valid segments, each followed by "/", then possibly
// the start of one more segment ("data/", "data/a").
func CheckPrefix(prefix string) error {
	last := prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		last = prefix[i+1:]
		for seg := range strings.SplitSeq(prefix[:i], "/") {
			if err := checkSegment(seg); err != nil {
				return fmt.Errorf("invalid object name prefix %q: %s", prefix, err)
			}
		}
	}
	if err := checkChars(last); err != nil {
		return fmt.Errorf("invalid object name prefix %q: %s", prefix, err)
	}
	return nil
}

func checkSegment(seg string) error {
	switch {
	case seg == "":
		return fmt.Errorf("empty segment")
	case seg == "." || seg == "..":
		return fmt.Errorf("segment %q", seg)
	case len(seg) > maxSegment:
		return fmt.Errorf("segment longer than %d bytes", maxSegment)
	}
	return checkChars(seg)
}

func checkChars(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	return nil
}
