package config

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// checkInvariants holds for every parser's output.
func checkInvariants(t *testing.T, s Settings) {
	t.Helper()
	checkSorted(t, s)
	for _, st := range s {
		if !utf8.ValidString(st.Key) || !utf8.ValidString(st.Value) {
			t.Fatalf("invalid UTF-8 in %q", st.Key)
		}
		switch st.Type {
		case TypeString:
		case TypeNumber:
			if st.Value == "" {
				t.Fatalf("%q: empty number", st.Key)
			}
		case TypeBool:
			if st.Value != "true" && st.Value != "false" {
				t.Fatalf("%q: bool %q", st.Key, st.Value)
			}
		case TypeNull:
			if st.Value != "" {
				t.Fatalf("%q: null with a value", st.Key)
			}
		default:
			t.Fatalf("%q: type %q", st.Key, st.Type)
		}
	}
}

// renderEnv writes settings as an env file, double-quoting every value.
func renderEnv(s Settings) []byte {
	var b strings.Builder
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`)
	for _, st := range s {
		b.WriteString(st.Key + `="` + r.Replace(st.Value) + "\"\n")
	}
	return []byte(b.String())
}

// renderJSON writes settings as one flat JSON object.
func renderJSON(s Settings) []byte {
	var b strings.Builder
	b.WriteString("{")
	for i, st := range s {
		if i > 0 {
			b.WriteString(",")
		}
		k, _ := json.Marshal(st.Key)
		b.Write(k)
		b.WriteString(":")
		switch st.Type {
		case TypeString:
			v, _ := json.Marshal(st.Value)
			b.Write(v)
		case TypeNull:
			b.WriteString("null")
		default:
			b.WriteString(st.Value)
		}
	}
	b.WriteString("}")
	return []byte(b.String())
}

func FuzzParseEnv(f *testing.F) {
	for _, seed := range []string{
		"", "A=1\n", "export A='x'\n# c\nB=\"a\\nb\" # c\nC=x #y\n", "A=\"multi\nline\"\r\n", "\ufeffK=v", "A='", "1=2", "A=\"\\\"\"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseEnv("f.env", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.env:") {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		checkInvariants(t, got)
		again, err := ParseEnv("f.env", renderEnv(got))
		if err != nil {
			t.Fatalf("re-parse: %v\n%q", err, renderEnv(got))
		}
		if diff := cmp.Diff(plain(got), plain(again)); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func FuzzParseJSON(f *testing.F) {
	for _, seed := range []string{
		"", "{}", `{"a":{"b":[1,2.5e3,"x",true,null,{"c":"\u00e9"}]}}`, `{"a":1,"a":2}`, "\ufeff{\r\n\"k\":\"v\"}", `{"a":"\ud800"}`, `[1]`, `{"a":-0.0E-1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseJSON("f.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.json") {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		if trimmed := strings.TrimSpace(strings.TrimPrefix(string(data), bom)); trimmed != "" && !json.Valid([]byte(trimmed)) {
			t.Fatalf("accepted input encoding/json rejects: %q", data)
		}
		checkInvariants(t, got)
		again, err := ParseJSON("f.json", renderJSON(got))
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if diff := cmp.Diff(plain(got), plain(again)); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func FuzzParseYAML(f *testing.F) {
	for _, seed := range []string{
		"", "a: 1\n", "a: &x {b: [1, 2]}\nc: *x\nd:\n  <<: *x\n  e: yes\n", "a: |\n  x\n", "- 1\n", "a: 1\n---\nb: 2\n",
		"? [a]\n: 1\n", "1: ~\ntrue: .inf\n", "a: !!binary aGk=\nb: 2001-12-14t21:59:43.10-05:00\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := ParseYAML("f.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error without file name: %v", err)
			}
			return
		}
		checkInvariants(t, got)
		again, err := ParseYAML("f.yaml", data)
		if err != nil {
			t.Fatalf("second parse: %v", err)
		}
		if diff := cmp.Diff(plain(got), plain(again)); diff != "" {
			t.Fatalf("not deterministic (-first +second):\n%s", diff)
		}
		// Strings and JSON-shaped numbers survive a trip through JSON.
		js, err := ParseJSON("f.json", renderJSON(jsonable(got)))
		if err != nil {
			t.Fatalf("JSON re-parse: %v", err)
		}
		if diff := cmp.Diff(plain(jsonable(got)), plain(js)); diff != "" {
			t.Fatalf("JSON round trip (-yaml +json):\n%s", diff)
		}
	})
}

// jsonable turns numbers that are not JSON numbers ("0x1F", ".inf") into
// strings.
func jsonable(s Settings) Settings {
	out := append(Settings(nil), s...)
	for i, st := range out {
		if st.Type == TypeNumber && !isJSONNumber(st.Value) {
			out[i].Type = TypeString
		}
	}
	return out
}
