package config

import (
	"fmt"
	"path"
	"strings"
)

// Public is an app's `public:` list: the keys whose values may be shown.
// Every other key is secret. The zero Public matches nothing.
type Public struct {
	exact map[string]bool
	globs []string
}

// NewPublic compiles a public list. A pattern matches a key exactly, or as a
// path.Match glob when it contains * ? [ or \: "LOG_*", "feature.*" ('*'
// crosses '.' and '[', so "feature.*" covers the whole subtree). A pattern
// names whole keys only: "db" does not make "db.password" public. An empty
// or malformed pattern is an error.
func NewPublic(patterns []string) (Public, error) {
	p := Public{exact: make(map[string]bool)}
	for _, pat := range patterns {
		if pat == "" {
			return Public{}, fmt.Errorf("public keys: empty pattern")
		}
		p.exact[pat] = true
		if strings.ContainsAny(pat, `*?[\`) {
			if _, err := path.Match(pat, ""); err != nil {
				return Public{}, fmt.Errorf("public keys: pattern %q: %w", pat, err)
			}
			p.globs = append(p.globs, pat)
		}
	}
	return p, nil
}

// Match reports whether key's value is public.
func (p Public) Match(key string) bool {
	if p.exact[key] {
		return true
	}
	for _, g := range p.globs {
		if ok, _ := path.Match(g, key); ok {
			return true
		}
	}
	return false
}
