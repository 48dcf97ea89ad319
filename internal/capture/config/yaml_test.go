package config

import (
	"strings"
	"testing"
)

func TestParseYAML(t *testing.T) {
	runParseCases(t, "app.yaml", ParseYAML, []parseCase{
		{name: "empty file", in: ""},
		{name: "comments only", in: "# nothing\n"},
		{name: "null document", in: "---\n~\n"},
		{name: "document start", in: "---\na: 1\n", want: Settings{num("a", "1")}},
		{name: "types", in: "s: x\nq: '1'\nn: 1.50\ni: -3\nh: 0x1F\ninf: .inf\nt: True\nf: false\nz: ~\ne:\nts: 2024-01-02\n",
			want: Settings{null("e"), boolean("f", "false"), num("h", "0x1F"), num("i", "-3"), num("inf", ".inf"), num("n", "1.50"), str("q", "1"), str("s", "x"), boolean("t", "true"), str("ts", "2024-01-02"), null("z")}},
		{name: "yes is a string", in: "a: yes\nb: on\n", want: Settings{str("a", "yes"), str("b", "on")}},
		{name: "explicit tags", in: "a: !!str 12\nb: !custom text\nc: !!bool true\n", want: Settings{str("a", "12"), str("b", "text"), boolean("c", "true")}},
		{name: "nested", in: "db:\n  host: h\n  port: 5432\nhosts: [a, b]\nlist:\n  - k: v\n  - [1, 2]\n",
			want: Settings{str("db.host", "h"), num("db.port", "5432"), str("hosts[0]", "a"), str("hosts[1]", "b"), str("list[0].k", "v"), num("list[1][0]", "1"), num("list[1][1]", "2")}},
		{name: "block scalars", in: "lit: |\n  l1\n  l2\nfold: >\n  a\n  b\n", want: Settings{str("fold", "a b\n"), str("lit", "l1\nl2\n")}},
		{name: "quoted escapes", in: "a: \"x\\ty\\u00e9\"\nb: 'it''s'\n", want: Settings{str("a", "x\tyé"), str("b", "it's")}},
		{name: "non-string keys", in: "1: a\ntrue: b\n~: c\n1.5: d\n", want: Settings{str("1", "a"), str("1.5", "d"), str("null", "c"), str("true", "b")}},
		{name: "anchors and aliases", in: "base: &b\n  host: h\n  port: 1\ncopy: *b\nname: &n x\nother: *n\n",
			want: Settings{str("base.host", "h"), num("base.port", "1"), str("copy.host", "h"), num("copy.port", "1"), str("name", "x"), str("other", "x")}},
		{name: "merge keys", in: "base: &b\n  host: h\n  port: 1\nprod:\n  <<: *b\n  port: 2\n",
			want: Settings{str("base.host", "h"), num("base.port", "1"), str("prod.host", "h"), num("prod.port", "2")}},
		{name: "merge list", in: "a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n",
			want: Settings{num("a.x", "1"), num("a.y", "1"), num("b.y", "2"), num("b.z", "2"), num("c.x", "1"), num("c.y", "1"), num("c.z", "2")}},
		{name: "empty containers vanish", in: "a: {}\nb: []\nc: 1\n", want: Settings{num("c", "1")}},
		{name: "unicode", in: "naïve: 日本語\n", want: Settings{str("naïve", "日本語")}},
		{name: "crlf and bom", in: "\ufeffa: 1\r\nb:\r\n  c: x\r\n", want: Settings{num("a", "1"), str("b.c", "x")}},

		{name: "syntax error", in: "a: 1\nb: 2\nc 2\nd: 3\n", wantErr: "app.yaml:3: could not find expected ':'"},
		{name: "tab indent", in: "a:\n\tb: 1\n", wantErr: "app.yaml:2: found character that cannot start any token"},
		{name: "multi document", in: "a: 1\n---\nb: 2\n", wantErr: "app.yaml:2: more than one YAML document (only one is supported)"},
		{name: "duplicate key", in: "a: 1\nb: 2\na: 3\n", wantErr: `app.yaml:3:1: key "a" defined twice in this mapping (also at line 1:1)`},
		{name: "duplicate after stringify", in: "1: a\n\"1\": b\n", wantErr: `app.yaml:2:1: key "1" defined twice in this mapping (also at line 1:1)`},
		{name: "flatten collision", in: "a.b: 1\na:\n  b: 2\n", wantErr: `app.yaml:3:6: key "a.b" also defined at line 1:6 (keys are flattened with '.' and [i])`},
		{name: "top level list", in: "- a\n", wantErr: "app.yaml:1:1: the top level must be a mapping"},
		{name: "top level scalar", in: "secretvalue\n", wantErr: "app.yaml:1:1: the top level must be a mapping"},
		{name: "mapping key", in: "? {a: 1}\n: x\n", wantErr: "app.yaml:1:3: a key must be a scalar, not a mapping or sequence"},
		{name: "unknown alias", in: "a: *nope\n", wantErr: "app.yaml:1:4: unknown anchor 'nope' referenced"},
		{name: "alias cycle", in: "a: &a\n  b: *a\n", wantErr: "app.yaml:2:6: alias cycle: a value contains itself"},
		{name: "merge cycle", in: "a: &a\n  <<: *a\n", wantErr: "app.yaml:2:7: alias cycle: a value contains itself"},
		{name: "bad merge", in: "a:\n  <<: 1\n", wantErr: "app.yaml:2:7: a merge key (<<) needs a mapping or a list of mappings"},
		{name: "bad int tag", in: "a: !!int secretvalue\n", wantErr: "app.yaml:1:4: invalid !!int value"},
		{name: "bad bool tag", in: "a: !!bool secretvalue\n", wantErr: "app.yaml:1:4: invalid !!bool value"},
	})
}

// TestParseYAMLAliasBomb checks that exponential alias expansion stops with
// an error instead of exhausting memory.
func TestParseYAMLAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		prev := "*l" + string(rune('0'+i-1))
		if i > 9 {
			prev = "*l" + string(rune('a'+i-10))
		}
		name := "l" + string(rune('0'+i))
		if i > 9 {
			name = "l" + string(rune('a'+i-10))
		}
		b.WriteString(name + ": &" + name + " [" + strings.Repeat(prev+", ", 9) + prev + "]\n")
	}
	_, err := ParseYAML("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("got error %v, want alias expansion error", err)
	}
}
