package config

import (
	"sort"
	"strings"
	"unicode/utf8"
)

// ParseEnv parses an env file (name is used in errors only). Every value has
// Type string.
//
// Syntax, one setting per line:
//
//	# comment                 blank lines and lines starting with # are skipped
//	KEY=value                 unquoted: trimmed of spaces and tabs; " #..." or
//	                          "\t#..." starts a comment, "a#b" does not
//	export KEY=value          "export " is ignored
//	KEY='literal'             no escapes; may span lines
//	KEY="a\nb"                \n \r \t \" \\ are escapes, any other \x is kept
//	                          as is; may span lines
//	KEY=                      empty value
//
// A key starts with a letter or '_' and continues with letters, digits, '_',
// '.' or '-'. There is no ${VAR} expansion: values are what the file says.
// After a closing quote only spaces and an optional # comment may follow.
// A leading UTF-8 BOM is skipped and CRLF is read as LF. Invalid UTF-8 is an
// error. A key given twice keeps its last value, as dotenv loaders and shells
// do.
func ParseEnv(name string, data []byte) (Settings, error) {
	p := envParser{file: name, src: strings.ReplaceAll(strings.TrimPrefix(string(data), bom), "\r\n", "\n"), line: 1}
	if !utf8.ValidString(p.src) {
		off := invalidUTF8(p.src)
		line, col := position(p.src, off)
		return nil, &SyntaxError{File: name, Line: line, Col: col, Msg: "invalid UTF-8"}
	}
	vals := make(map[string]string)
	for p.pos < len(p.src) {
		key, val, ok, err := p.next()
		if err != nil {
			return nil, err
		}
		if ok {
			vals[key] = val
		}
	}
	out := make(Settings, 0, len(vals))
	for k, v := range vals {
		out = append(out, Setting{Key: k, Type: TypeString, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

type envParser struct {
	file string
	src  string
	pos  int // byte offset of the next unread byte
	line int // line of pos
}

func (p *envParser) fail(line, col int, msg string) error {
	return &SyntaxError{File: p.file, Line: line, Col: col, Msg: msg}
}

// col returns the 1-based character column of byte offset off, which lies
// on the line starting at lineStart.
func (p *envParser) col(lineStart, off int) int {
	return 1 + utf8.RuneCountInString(p.src[lineStart:off])
}

// restOfLine returns the text from pos up to the end of the line and moves
// past the newline.
func (p *envParser) restOfLine() string {
	end := strings.IndexByte(p.src[p.pos:], '\n')
	var s string
	if end < 0 {
		s, p.pos = p.src[p.pos:], len(p.src)
	} else {
		s, p.pos = p.src[p.pos:p.pos+end], p.pos+end+1
		p.line++
	}
	return s
}

// next reads one line (or more, for a quoted value spanning lines); ok is
// false for blank and comment lines.
func (p *envParser) next() (key, val string, ok bool, err error) {
	start, line := p.pos, p.line
	i := skipBlanks(p.src, p.pos)
	if i == len(p.src) || p.src[i] == '\n' || p.src[i] == '#' {
		p.restOfLine()
		return "", "", false, nil
	}
	if rest, found := strings.CutPrefix(p.src[i:], "export"); found && len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		if j := skipBlanks(p.src, len(p.src)-len(rest)); j < len(p.src) && isKeyStart(p.src[j]) {
			i = j
		}
	}
	k := i
	if !isKeyStart(p.src[k]) {
		return "", "", false, p.fail(line, p.col(start, k), "a key must start with a letter or '_'")
	}
	for k < len(p.src) && isKeyByte(p.src[k]) {
		k++
	}
	key = p.src[i:k]
	e := skipBlanks(p.src, k)
	if e == len(p.src) || p.src[e] != '=' {
		if e < len(p.src) && p.src[e] != '\n' && e == k {
			return "", "", false, p.fail(line, p.col(start, e), "invalid character in key (allowed: letters, digits, '_', '.', '-')")
		}
		return "", "", false, p.fail(line, p.col(start, e), "expected '=' after the key")
	}
	v := skipBlanks(p.src, e+1)
	p.pos = v
	if v < len(p.src) && (p.src[v] == '\'' || p.src[v] == '"') {
		val, err = p.quoted(start, line)
		return key, val, err == nil, err
	}
	// Unquoted: the line up to a comment, trimmed. A '#' right after '='
	// (no blank before it) belongs to the value.
	raw := p.restOfLine()
	if v > e+1 && strings.HasPrefix(raw, "#") {
		raw = ""
	}
	for j := 1; j < len(raw); j++ {
		if raw[j] == '#' && (raw[j-1] == ' ' || raw[j-1] == '\t') {
			raw = raw[:j]
			break
		}
	}
	return key, strings.TrimRight(raw, " \t"), true, nil
}

// quoted reads a quoted value starting at p.pos.
func (p *envParser) quoted(lineStart, line int) (string, error) {
	q := p.src[p.pos]
	openLine, openCol := line, p.col(lineStart, p.pos)
	var b strings.Builder
	i := p.pos + 1
	for {
		if i >= len(p.src) {
			what := "unterminated double-quoted value"
			if q == '\'' {
				what = "unterminated single-quoted value"
			}
			return "", p.fail(openLine, openCol, what)
		}
		c := p.src[i]
		if c == q {
			i++
			break
		}
		if c == '\n' {
			p.line++
			lineStart = i + 1
		}
		if c == '\\' && q == '"' && i+1 < len(p.src) {
			switch p.src[i+1] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '"':
				b.WriteByte('"')
			case '\\':
				b.WriteByte('\\')
			default:
				b.WriteByte('\\')
				i++
				continue
			}
			i += 2
			continue
		}
		b.WriteByte(c)
		i++
	}
	// After the closing quote: blanks, then end of line or a comment.
	j := skipBlanks(p.src, i)
	if j < len(p.src) && p.src[j] != '\n' && p.src[j] != '#' {
		return "", p.fail(p.line, p.col(lineStart, j), "unexpected text after the closing quote")
	}
	p.pos = j
	p.restOfLine()
	return b.String(), nil
}

func skipBlanks(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func isKeyStart(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isKeyByte(c byte) bool {
	return isKeyStart(c) || '0' <= c && c <= '9' || c == '.' || c == '-'
}

// invalidUTF8 returns the byte offset of the first invalid UTF-8 sequence.
func invalidUTF8(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return i
			}
		}
	}
	return len(s)
}
