package config

import (
	"strings"
	"testing"
)

func TestParseJSON(t *testing.T) {
	runParseCases(t, "app.json", ParseJSON, []parseCase{
		{name: "empty file", in: ""},
		{name: "blank file", in: " \n\t\r\n"},
		{name: "empty object", in: "{}"},
		{name: "types", in: `{"s":"x","n":1.50,"i":-3,"e":2E+10,"t":true,"f":false,"z":null}`,
			want: Settings{num("e", "2E+10"), boolean("f", "false"), num("i", "-3"), num("n", "1.50"), str("s", "x"), boolean("t", "true"), null("z")}},
		{name: "nested", in: `{"db":{"host":"h","port":5432,"opts":{"ssl":true}},"hosts":["a","b"],"m":[[1],{"k":"v"}]}`,
			want: Settings{str("db.host", "h"), boolean("db.opts.ssl", "true"), num("db.port", "5432"), str("hosts[0]", "a"), str("hosts[1]", "b"), num("m[0][0]", "1"), str("m[1].k", "v")}},
		{name: "empty containers vanish", in: `{"a":{},"b":[],"c":1}`, want: Settings{num("c", "1")}},
		{name: "escapes", in: `{"s":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00\ud800x"}`,
			want: Settings{str("s", "a\"b\\c/d\b\f\n\r\té😀\uFFFDx")}},
		{name: "unicode", in: `{"naïve":"日本語"}`, want: Settings{str("naïve", "日本語")}},
		{name: "crlf and bom", in: "\ufeff{\r\n  \"a\": 1,\r\n  \"b\": \"x\"\r\n}\r\n", want: Settings{num("a", "1"), str("b", "x")}},
		{name: "duplicate last wins", in: `{"a":{"x":1},"a":{"y":2}}`, want: Settings{num("a.y", "2")}},

		{name: "top level array", in: `[1]`, wantErr: "app.json:1:1: the top level must be an object"},
		{name: "top level scalar", in: "\n  \"secret\"", wantErr: "app.json:2:3: the top level must be an object"},
		{name: "trailing comma", in: "{\n  \"a\": 1,\n}", wantErr: "app.json:3:1: expected a string member name"},
		{name: "missing colon", in: `{"a" 1}`, wantErr: "app.json:1:6: expected ':' after member name"},
		{name: "bad literal", in: "{\"a\":\n  tru}", wantErr: "app.json:2:3: invalid character, expected a value"},
		{name: "unterminated string", in: `{"a":"secret`, wantErr: "app.json:1:6: unterminated string"},
		{name: "control char", in: "{\"a\":\"x\ty\"}", wantErr: "app.json:1:8: control character in string (must be escaped)"},
		{name: "bad escape", in: `{"a":"\q"}`, wantErr: "app.json:1:7: invalid escape in string"},
		{name: "bad unicode escape", in: `{"a":"\u12G4"}`, wantErr: "app.json:1:7: invalid \\u escape in string"},
		{name: "leading zero", in: `{"a":01}`, wantErr: "app.json:1:7: expected ',' or '}' after object member"},
		{name: "bad fraction", in: `{"a":1.}`, wantErr: "app.json:1:8: invalid number: digits expected after '.'"},
		{name: "bad exponent", in: `{"a":1e}`, wantErr: "app.json:1:8: invalid number: digits expected in exponent"},
		{name: "plus sign", in: `{"a":+1}`, wantErr: "app.json:1:6: invalid character, expected a value"},
		{name: "trailing data", in: "{}\n{}", wantErr: "app.json:2:1: unexpected data after the top-level object"},
		{name: "eof", in: `{"a":[1,`, wantErr: "app.json:1:9: unexpected end of file, expected a value"},
		{name: "invalid utf8", in: "{\"a\":\"\xff\"}", wantErr: "app.json:1:7: invalid UTF-8 in string"},
		{name: "column counts characters", in: `{"é":"é" x}`, wantErr: "app.json:1:10: expected ',' or '}' after object member"},
		{name: "flatten collision", in: "{\"a.b\": 1,\n \"a\": {\"b\": 2}}", wantErr: `app.json:2:13: key "a.b" also defined at line 1:9 (keys are flattened with '.' and [i])`},
		{name: "empty key", in: `{"":1}`, wantErr: "app.json:1:5: empty key"},
		{name: "too deep", in: `{"a":` + strings.Repeat("[", maxDepth+5), wantErr: "app.json:1:1006: nesting deeper than 1000 levels"},
	})
}
