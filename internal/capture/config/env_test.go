package config

import (
	"strings"
	"testing"
)

func TestParseEnv(t *testing.T) {
	runParseCases(t, "app.env", ParseEnv, []parseCase{
		{name: "empty", in: ""},
		{name: "blank and comments", in: "\n  \n# a comment\n   # indented\n"},
		{name: "simple", in: "A=1\nB=two\n", want: Settings{str("A", "1"), str("B", "two")}},
		{name: "sorted output", in: "Z=1\nA=2\nM=3", want: Settings{str("A", "2"), str("M", "3"), str("Z", "1")}},
		{name: "no final newline", in: "A=1", want: Settings{str("A", "1")}},
		{name: "empty value", in: "A=\nB=   \n", want: Settings{str("A", ""), str("B", "")}},
		{name: "trimmed", in: "  A  =   x y  \t\n", want: Settings{str("A", "x y")}},
		{name: "export", in: "export A=1\nexport\tB=2\n", want: Settings{str("A", "1"), str("B", "2")}},
		{name: "key named export", in: "export=1\nexporter=2\n", want: Settings{str("export", "1"), str("exporter", "2")}},
		{name: "key chars", in: "_a.b-C9=1\n", want: Settings{str("_a.b-C9", "1")}},
		{name: "inline comment", in: "A=x # note\nB=x\t#note\nC=x#y\nD=#z\nE= #only\n",
			want: Settings{str("A", "x"), str("B", "x"), str("C", "x#y"), str("D", "#z"), str("E", "")}},
		{name: "equals in value", in: "URL=postgres://u:p@h/db?sslmode=require&a=b\n",
			want: Settings{str("URL", "postgres://u:p@h/db?sslmode=require&a=b")}},
		{name: "single quotes literal", in: `A='x \n "y" # not a comment $HOME'` + "\n",
			want: Settings{str("A", `x \n "y" # not a comment $HOME`)}},
		{name: "double quote escapes", in: `A="l1\nl2\t\"q\" \\ \r \x ${B}"` + "\n",
			want: Settings{str("A", "l1\nl2\t\"q\" \\ \r \\x ${B}")}},
		{name: "quoted keeps spaces", in: "A='  x  '\nB=\"  y  \"\n", want: Settings{str("A", "  x  "), str("B", "  y  ")}},
		{name: "comment after quote", in: "A='x' # c\nB=\"y\"#c\n", want: Settings{str("A", "x"), str("B", "y")}},
		{name: "multi-line double", in: "A=\"l1\nl2\"\nB=3\n", want: Settings{str("A", "l1\nl2"), str("B", "3")}},
		{name: "multi-line single", in: "A='-----BEGIN KEY-----\nabc\n-----END KEY-----'\n",
			want: Settings{str("A", "-----BEGIN KEY-----\nabc\n-----END KEY-----")}},
		{name: "empty quotes", in: "A=''\nB=\"\"\n", want: Settings{str("A", ""), str("B", "")}},
		{name: "unicode", in: "GREETING=héllo wörld ✓\nNAME=\"日本\"\n", want: Settings{str("GREETING", "héllo wörld ✓"), str("NAME", "日本")}},
		{name: "crlf", in: "A=1\r\nB=\"x\r\ny\"\r\n# c\r\nC='z'\r\n", want: Settings{str("A", "1"), str("B", "x\ny"), str("C", "z")}},
		{name: "bom", in: "\ufeffA=1\n", want: Settings{str("A", "1")}},
		{name: "duplicate last wins", in: "A=1\nA=2\n", want: Settings{str("A", "2")}},

		{name: "missing equals", in: "A=1\nSECRETVALUE\n", wantErr: "app.env:2:12: expected '=' after the key"},
		{name: "space in key", in: "A B=1\n", wantErr: "app.env:1:3: expected '=' after the key"},
		{name: "bad key start", in: "\n\n1A=x\n", wantErr: "app.env:3:1: a key must start with a letter or '_'"},
		{name: "bad key char", in: "A$=x\n", wantErr: "app.env:1:2: invalid character in key (allowed: letters, digits, '_', '.', '-')"},
		{name: "no key", in: "=x\n", wantErr: "app.env:1:1: a key must start with a letter or '_'"},
		{name: "unterminated double", in: "A=1\nB=\"abc\nC=2\n", wantErr: "app.env:2:3: unterminated double-quoted value"},
		{name: "unterminated single", in: "B='abc", wantErr: "app.env:1:3: unterminated single-quoted value"},
		{name: "text after quote", in: "A='x'y\n", wantErr: "app.env:1:6: unexpected text after the closing quote"},
		{name: "error line after multi-line", in: "A=\"x\ny\"\nB C\n", wantErr: "app.env:3:3: expected '=' after the key"},
		{name: "invalid utf8", in: "A=ok\nB=\xff\n", wantErr: "app.env:2:3: invalid UTF-8"},
	})
}

// TestParseEnvErrorsHideValues checks that no error quotes the file's text.
func TestParseEnvErrorsHideValues(t *testing.T) {
	const secret = "hunter2hunter2"
	for _, in := range []string{
		secret + "\n",
		"A='" + secret,
		"A=\"" + secret + "\"" + secret,
		"A" + secret + "$=1",
		"9" + secret + "=1",
	} {
		_, err := ParseEnv("app.env", []byte(in))
		if err == nil {
			t.Fatalf("%q: no error", in)
		}
		if strings.Contains(err.Error(), "hunter") {
			t.Errorf("%q: error %q quotes the content", in, err)
		}
	}
}
