package config

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// ParseJSON parses a JSON settings file (RFC 8259; name is used in errors
// only). The top level must be an object; nested objects and arrays are
// flattened ("db.host", "hosts[0]"). Strings give Type string, numbers Type
// number with their JSON text, true/false Type bool, null Type null.
//
// A leading UTF-8 BOM is skipped; an empty (or blank) file has no settings.
// A member name given twice in one object keeps its last value, as
// encoding/json and JavaScript do. Errors carry file:line:column.
func ParseJSON(name string, data []byte) (Settings, error) {
	src := strings.TrimPrefix(string(data), bom)
	p := &jsonParser{file: name, src: src}
	p.skipSpace()
	if p.pos == len(src) {
		return Settings{}, nil
	}
	if src[p.pos] != '{' {
		return nil, p.fail(p.pos, "the top level must be an object")
	}
	root, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(src) {
		return nil, p.fail(p.pos, "unexpected data after the top-level object")
	}
	b := newBuilder(name)
	if err := p.flatten(b, "", root); err != nil {
		return nil, err
	}
	return b.settings(), nil
}

// jsonValue is a parsed JSON value: a leaf (typ set), an object or an array.
type jsonValue struct {
	off   int // byte offset where the value starts
	typ   Type
	text  string
	keys  []string // object member names, in order, last duplicate wins
	vals  map[string]*jsonValue
	elems []*jsonValue
	isObj bool
}

type jsonParser struct {
	file string
	src  string
	pos  int
}

func (p *jsonParser) fail(off int, msg string) error {
	line, col := position(p.src, off)
	return &SyntaxError{File: p.file, Line: line, Col: col, Msg: msg}
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (*jsonValue, error) {
	if depth > maxDepth {
		return nil, p.fail(p.pos, "nesting deeper than "+strconv.Itoa(maxDepth)+" levels")
	}
	p.skipSpace()
	if p.pos == len(p.src) {
		return nil, p.fail(p.pos, "unexpected end of file, expected a value")
	}
	start := p.pos
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return &jsonValue{off: start, typ: TypeString, text: s}, nil
	case c == '-' || '0' <= c && c <= '9':
		n, err := p.number()
		if err != nil {
			return nil, err
		}
		return &jsonValue{off: start, typ: TypeNumber, text: n}, nil
	case strings.HasPrefix(p.src[p.pos:], "true"):
		p.pos += 4
		return &jsonValue{off: start, typ: TypeBool, text: "true"}, nil
	case strings.HasPrefix(p.src[p.pos:], "false"):
		p.pos += 5
		return &jsonValue{off: start, typ: TypeBool, text: "false"}, nil
	case strings.HasPrefix(p.src[p.pos:], "null"):
		p.pos += 4
		return &jsonValue{off: start, typ: TypeNull}, nil
	default:
		return nil, p.fail(p.pos, "invalid character, expected a value")
	}
}

func (p *jsonParser) object(depth int) (*jsonValue, error) {
	v := &jsonValue{off: p.pos, isObj: true, vals: make(map[string]*jsonValue)}
	p.pos++ // '{'
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		return v, nil
	}
	for {
		p.skipSpace()
		if p.pos == len(p.src) {
			return nil, p.fail(p.pos, "unexpected end of file in object")
		}
		if p.src[p.pos] != '"' {
			return nil, p.fail(p.pos, "expected a string member name")
		}
		name, err := p.str()
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos == len(p.src) || p.src[p.pos] != ':' {
			return nil, p.fail(p.pos, "expected ':' after member name")
		}
		p.pos++
		elem, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		if _, dup := v.vals[name]; !dup {
			v.keys = append(v.keys, name)
		}
		v.vals[name] = elem
		p.skipSpace()
		if p.pos == len(p.src) {
			return nil, p.fail(p.pos, "unexpected end of file in object")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case '}':
			p.pos++
			return v, nil
		default:
			return nil, p.fail(p.pos, "expected ',' or '}' after object member")
		}
	}
}

func (p *jsonParser) array(depth int) (*jsonValue, error) {
	v := &jsonValue{off: p.pos}
	p.pos++ // '['
	p.skipSpace()
	if p.pos < len(p.src) && p.src[p.pos] == ']' {
		p.pos++
		return v, nil
	}
	for {
		elem, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v.elems = append(v.elems, elem)
		p.skipSpace()
		if p.pos == len(p.src) {
			return nil, p.fail(p.pos, "unexpected end of file in array")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case ']':
			p.pos++
			return v, nil
		default:
			return nil, p.fail(p.pos, "expected ',' or ']' after array element")
		}
	}
}

// str reads a string starting at the opening quote.
func (p *jsonParser) str() (string, error) {
	start := p.pos
	p.pos++
	var b strings.Builder
	for {
		if p.pos >= len(p.src) {
			return "", p.fail(start, "unterminated string")
		}
		c := p.src[p.pos]
		switch {
		case c == '"':
			p.pos++
			return b.String(), nil
		case c < 0x20:
			return "", p.fail(p.pos, "control character in string (must be escaped)")
		case c == '\\':
			if err := p.escape(&b); err != nil {
				return "", err
			}
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			p.pos++
		default:
			r, size := utf8.DecodeRuneInString(p.src[p.pos:])
			if r == utf8.RuneError && size == 1 {
				return "", p.fail(p.pos, "invalid UTF-8 in string")
			}
			b.WriteString(p.src[p.pos : p.pos+size])
			p.pos += size
		}
	}
}

// escape reads one backslash escape. A lone UTF-16 surrogate becomes U+FFFD,
// as in encoding/json.
func (p *jsonParser) escape(b *strings.Builder) error {
	at := p.pos
	if p.pos+1 >= len(p.src) {
		return p.fail(at, "unterminated escape in string")
	}
	c := p.src[p.pos+1]
	p.pos += 2
	switch c {
	case '"', '\\', '/':
		b.WriteByte(c)
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case 'u':
		r, ok := p.hex4()
		if !ok {
			return p.fail(at, "invalid \\u escape in string")
		}
		if utf16.IsSurrogate(r) {
			if strings.HasPrefix(p.src[p.pos:], `\u`) {
				save := p.pos
				p.pos += 2
				if r2, ok := p.hex4(); ok {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						b.WriteRune(d)
						return nil
					}
				}
				p.pos = save
			}
			r = utf8.RuneError
		}
		b.WriteRune(r)
	default:
		return p.fail(at, "invalid escape in string")
	}
	return nil
}

func (p *jsonParser) hex4() (rune, bool) {
	if p.pos+4 > len(p.src) {
		return 0, false
	}
	n, err := strconv.ParseUint(p.src[p.pos:p.pos+4], 16, 32)
	if err != nil || strings.ContainsAny(p.src[p.pos:p.pos+4], "+-_xX") {
		return 0, false
	}
	p.pos += 4
	return rune(n), true
}

// number reads -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)? and returns its text.
func (p *jsonParser) number() (string, error) {
	start := p.pos
	s := p.src
	i := p.pos
	if s[i] == '-' {
		i++
	}
	digits := func() int {
		j := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i - j
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return "", p.fail(i, "invalid number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return "", p.fail(i, "invalid number: digits expected after '.'")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return "", p.fail(i, "invalid number: digits expected in exponent")
		}
	}
	p.pos = i
	return s[start:i], nil
}

func (p *jsonParser) flatten(b *builder, prefix string, v *jsonValue) error {
	switch {
	case v.isObj:
		for _, k := range v.keys {
			if err := p.flatten(b, joinKey(prefix, k), v.vals[k]); err != nil {
				return err
			}
		}
	case v.typ == "":
		for i, e := range v.elems {
			if err := p.flatten(b, indexKey(prefix, i), e); err != nil {
				return err
			}
		}
	default:
		return b.add(Setting{Key: prefix, Type: v.typ, Value: v.text}, func() (int, int) { return position(p.src, v.off) })
	}
	return nil
}

// isJSONNumber reports whether s is exactly one JSON number.
func isJSONNumber(s string) bool {
	if s == "" {
		return false
	}
	p := &jsonParser{src: s}
	_, err := p.number()
	return err == nil && p.pos == len(s)
}
