package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ParseYAML parses a YAML settings file (name is used in errors only). The
// document must be a mapping (or empty: no settings); nested mappings and
// sequences are flattened like JSON ("db.host", "hosts[0]").
//
// Scalars are typed as YAML 1.2 resolves them (go.yaml.in/yaml/v3): !!str,
// !!timestamp, !!binary and custom tags give Type string with the scalar's
// text; !!int and !!float give Type number with the text as written ("0x1F",
// ".inf"); !!bool gives "true"/"false"; !!null gives Type null and "".
// Non-string keys are stringified (1 -> "1", true -> "true", ~ -> "null");
// mapping and sequence keys are an error. Aliases and merge keys ("<<") are
// resolved; an alias cycle is an error. A key given twice in one mapping and
// more than one document are errors. Errors carry file:line (and column when
// known).
func ParseYAML(name string, data []byte) (Settings, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Settings{}, nil
		}
		return nil, yamlError(name, data, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, yamlError(name, data, err)
	default:
		return nil, &SyntaxError{File: name, Line: extra.Line, Msg: "more than one YAML document (only one is supported)"}
	}
	f := &yamlFlattener{b: newBuilder(name), active: make(map[*yaml.Node]bool)}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return Settings{}, nil
		}
		root = root.Content[0]
	}
	for root.Kind == yaml.AliasNode && root.Alias != nil {
		root = root.Alias
	}
	switch {
	case root.Kind == yaml.MappingNode:
	case root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null":
		return Settings{}, nil
	default:
		return nil, f.fail(root, "the top level must be a mapping")
	}
	if err := f.flatten("", root); err != nil {
		return nil, err
	}
	return f.b.settings(), nil
}

var yamlLine = regexp.MustCompile(`^yaml: line ([0-9]+): `)

// yamlError turns a go-yaml error ("yaml: line 3: msg") into a SyntaxError.
// go-yaml's parser messages describe the problem without quoting values.
func yamlError(name string, data []byte, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &SyntaxError{File: name, Line: line, Msg: msg[len(m[0]):]}
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	e := &SyntaxError{File: name, Msg: msg}
	// go-yaml gives no line for an unknown anchor: find the first use.
	if m := yamlUnknownAnchor.FindStringSubmatch(msg); m != nil {
		if i := strings.Index(string(data), "*"+m[1]); i >= 0 {
			e.Line, e.Col = position(string(data), i)
		}
	}
	return e
}

var yamlUnknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// maxWork bounds the nodes visited while flattening, aliases expanded.
const maxWork = 10 * maxSettings

type yamlFlattener struct {
	b      *builder
	active map[*yaml.Node]bool // nodes being expanded: an alias to one is a cycle
	work   int                 // nodes visited, bounded against alias bombs
}

func (f *yamlFlattener) fail(n *yaml.Node, msg string) error {
	return &SyntaxError{File: f.b.file, Line: n.Line, Col: n.Column, Msg: msg}
}

// enter guards against alias cycles and exponential alias expansion; at is
// the node to blame (the alias, when n is its target).
func (f *yamlFlattener) enter(n, at *yaml.Node) error {
	if f.active[n] {
		return f.fail(at, "alias cycle: a value contains itself")
	}
	f.work++
	if f.work > maxWork {
		return f.fail(at, fmt.Sprintf("aliases expand to more than %d values", maxWork))
	}
	f.active[n] = true
	return nil
}

func (f *yamlFlattener) flatten(prefix string, n *yaml.Node) error {
	return f.flattenAt(prefix, n, n)
}

func (f *yamlFlattener) flattenAt(prefix string, n, at *yaml.Node) error {
	if err := f.enter(n, at); err != nil {
		return err
	}
	defer delete(f.active, n)
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias == nil {
			return f.fail(n, "unknown alias")
		}
		return f.flattenAt(prefix, n.Alias, n)
	case yaml.MappingNode:
		pairs, err := f.pairs(n)
		if err != nil {
			return err
		}
		for _, p := range pairs {
			if err := f.flatten(joinKey(prefix, p.key), p.val); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			if err := f.flatten(indexKey(prefix, i), e); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		s, err := f.scalar(n)
		if err != nil {
			return err
		}
		s.Key = prefix
		return f.b.add(s, func() (int, int) { return n.Line, n.Column })
	default:
		return f.fail(n, "unexpected YAML node")
	}
	return nil
}

type yamlPair struct {
	key string
	val *yaml.Node
}

// pairs returns a mapping's effective entries: its own keys, then keys
// merged in with "<<" that it does not define itself (earlier merge sources
// win over later ones, as in YAML's merge key spec).
func (f *yamlFlattener) pairs(m *yaml.Node) ([]yamlPair, error) {
	if len(m.Content)%2 != 0 {
		return nil, f.fail(m, "mapping with a key but no value")
	}
	var out []yamlPair
	seen := make(map[string]*yaml.Node)
	var merges []*yaml.Node
	for i := 0; i < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		key, err := f.key(k)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[key]; dup {
			return nil, f.fail(k, fmt.Sprintf("key %q defined twice in this mapping (also at line %d:%d)", key, prev.Line, prev.Column))
		}
		seen[key] = k
		out = append(out, yamlPair{key, v})
	}
	merge := func(src *yaml.Node) error {
		at := src
		for src.Kind == yaml.AliasNode && src.Alias != nil {
			src = src.Alias
		}
		if src.Kind != yaml.MappingNode {
			return f.fail(at, "a merge key (<<) needs a mapping or a list of mappings")
		}
		if err := f.enter(src, at); err != nil {
			return err
		}
		defer delete(f.active, src)
		pairs, err := f.pairs(src)
		if err != nil {
			return err
		}
		for _, p := range pairs {
			if _, ok := seen[p.key]; !ok {
				seen[p.key] = src
				out = append(out, p)
			}
		}
		return nil
	}
	for _, v := range merges {
		r := v
		for r.Kind == yaml.AliasNode && r.Alias != nil {
			r = r.Alias
		}
		if r.Kind == yaml.SequenceNode {
			for _, e := range r.Content {
				if err := merge(e); err != nil {
					return nil, err
				}
			}
			continue
		}
		if err := merge(v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// key stringifies a mapping key.
func (f *yamlFlattener) key(k *yaml.Node) (string, error) {
	for k.Kind == yaml.AliasNode && k.Alias != nil {
		k = k.Alias
	}
	if k.Kind != yaml.ScalarNode {
		return "", f.fail(k, "a key must be a scalar, not a mapping or sequence")
	}
	s, err := f.scalar(k)
	if err != nil {
		return "", err
	}
	if s.Type == TypeNull {
		return "null", nil
	}
	return s.Value, nil
}

// scalar types a scalar node; the returned setting has no key.
func (f *yamlFlattener) scalar(n *yaml.Node) (Setting, error) {
	switch tag := n.ShortTag(); tag {
	case "!!null":
		return Setting{Type: TypeNull}, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return Setting{}, f.fail(n, "invalid !!bool value")
		}
		return Setting{Type: TypeBool, Value: strconv.FormatBool(b)}, nil
	case "!!int", "!!float":
		var v any
		if err := n.Decode(&v); err != nil {
			return Setting{}, f.fail(n, "invalid "+tag+" value")
		}
		switch v.(type) {
		case int, int64, uint64, float64:
		default:
			return Setting{}, f.fail(n, "invalid "+tag+" value")
		}
		return Setting{Type: TypeNumber, Value: n.Value}, nil
	default:
		return Setting{Type: TypeString, Value: n.Value}, nil
	}
}
