package config

import (
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Type is the type of a setting's value.
type Type string

// The types a setting can have. Env files give strings only.
const (
	TypeString Type = "string"
	TypeNumber Type = "number"
	TypeBool   Type = "bool"
	TypeNull   Type = "null"
)

// Setting is one typed key/value. Value is the canonical text: the string
// itself, "true"/"false", a number as written in the source (JSON and YAML
// numbers keep their text, so 1.0 -> 1.00 is a change), "" for null.
//
// Setting formats and logs itself without its value; its JSON form does carry
// the value and is meant for the encrypted vault only. Use Show for output.
type Setting struct {
	Key   string `json:"key"`
	Type  Type   `json:"type"`
	Value string `json:"value"`
}

// String returns the key and type, never the value.
func (s Setting) String() string { return s.Key + " (" + string(s.Type) + ") " + redacted }

// GoString is like String, so %#v does not print the value either.
func (s Setting) GoString() string { return s.String() }

// Format prints String for every verb, so no fmt verb prints the value.
func (s Setting) Format(f fmt.State, verb rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue logs the key and type, never the value.
func (s Setting) LogValue() slog.Value {
	return slog.GroupValue(slog.String("key", s.Key), slog.String("type", string(s.Type)), slog.String("value", redacted))
}

// Settings is a list of settings sorted by Key, with unique keys.
type Settings []Setting

// Get returns the setting with the given key.
func (s Settings) Get(key string) (Setting, bool) {
	i := sort.Search(len(s), func(i int) bool { return s[i].Key >= key })
	if i < len(s) && s[i].Key == key {
		return s[i], true
	}
	return Setting{}, false
}

// SyntaxError is bad input: it names the file, the line and column (1-based,
// 0 when unknown) and what is wrong, without quoting the content.
type SyntaxError struct {
	File string
	Line int
	Col  int // in characters
	Msg  string
}

func (e *SyntaxError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Col > 0 {
			b.WriteString(":" + strconv.Itoa(e.Col))
		}
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// position turns a byte offset into a 1-based line and character column.
func position(src string, off int) (line, col int) {
	off = min(max(off, 0), len(src))
	line = 1 + strings.Count(src[:off], "\n")
	start := strings.LastIndexByte(src[:off], '\n') + 1
	return line, 1 + utf8.RuneCountInString(src[start:off])
}

// pos finds a setting's place in its source, computed only when an error
// needs it.
type pos func() (line, col int)

// builder collects flattened settings and refuses keys that collide.
type builder struct {
	file string
	list Settings
	at   map[string]pos // key -> where it was defined, for collision errors
}

func newBuilder(file string) *builder {
	return &builder{file: file, at: make(map[string]pos)}
}

// add records a leaf found at where.
func (b *builder) add(s Setting, where pos) error {
	fail := func(msg string) error {
		line, col := where()
		return &SyntaxError{File: b.file, Line: line, Col: col, Msg: msg}
	}
	if s.Key == "" {
		return fail("empty key")
	}
	if prev, ok := b.at[s.Key]; ok {
		line, col := prev()
		return fail(fmt.Sprintf("key %q also defined at line %d:%d (keys are flattened with '.' and [i])", s.Key, line, col))
	}
	if len(b.list) >= maxSettings {
		return fail(fmt.Sprintf("more than %d settings", maxSettings))
	}
	b.at[s.Key] = where
	b.list = append(b.list, s)
	return nil
}

func (b *builder) settings() Settings {
	sort.Slice(b.list, func(i, j int) bool { return b.list[i].Key < b.list[j].Key })
	if b.list == nil {
		return Settings{}
	}
	return b.list
}

// maxSettings bounds the work of one parse; YAML aliases could otherwise
// expand a small file into billions of settings.
const maxSettings = 100_000

// maxDepth bounds nesting in JSON and inline settings.
const maxDepth = 1000

// joinKey appends a map key to a flattened prefix.
func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// indexKey appends a list index to a flattened prefix.
func indexKey(prefix string, i int) string {
	return prefix + "[" + strconv.Itoa(i) + "]"
}

const redacted = "[redacted]"

// bom is the UTF-8 byte order mark, skipped at the start of every file.
const bom = "\xef\xbb\xbf"
