package config

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Kind
	}{
		{".env", KindEnv}, {"/srv/app/.env", KindEnv}, {"app.env", KindEnv}, {".env.production", KindEnv},
		{".ENV.local", KindEnv}, {"settings.json", KindJSON}, {"C:\\app\\Settings.JSON", KindJSON},
		{"config.yaml", KindYAML}, {"config.yml", KindYAML},
	} {
		got, err := KindOf(tc.name)
		if err != nil || got != tc.want {
			t.Errorf("KindOf(%q) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	for _, name := range []string{"config.toml", "environment", "app.ini", "json", ""} {
		_, err := KindOf(name)
		if err == nil || !strings.Contains(err.Error(), "supported: .env") || !strings.Contains(err.Error(), name) {
			t.Errorf("KindOf(%q): error %v, want one naming the file and the supported kinds", name, err)
		}
	}
}

func TestParseFile(t *testing.T) {
	for name, in := range map[string]string{
		".env.production": "A=1\n",
		"app.json":        `{"A":"1"}`,
		"app.yml":         "A: '1'\n",
	} {
		got, err := ParseFile(name, []byte(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(plain(Settings{str("A", "1")}), plain(got)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	if _, err := ParseFile("app.yaml", []byte("a: [")); err == nil || !strings.HasPrefix(err.Error(), "app.yaml:") {
		t.Errorf("error %v, want one starting with the file name", err)
	}
	if _, err := ParseFile("app.toml", []byte("a = 1")); err == nil {
		t.Error("app.toml: no error")
	}
}

func TestFromInline(t *testing.T) {
	got, err := FromInline(map[string]any{
		"s": "x", "b": true, "n": nil, "i": 42, "i8": int8(-8), "u": uint64(1 << 63), "f": 2.5, "f32": float32(0.1),
		"big": 1e21, "num": json.Number("1.50"),
		"db":    map[string]any{"host": "h", "port": 5432},
		"hosts": []any{"a", map[string]any{"k": "v"}},
		"yaml2": map[any]any{1: "one", true: "yes", nil: "nil"},
		"empty": map[string]any{},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{
		boolean("b", "true"), num("big", "1e+21"), str("db.host", "h"), num("db.port", "5432"),
		num("f", "2.5"), num("f32", "0.1"), str("hosts[0]", "a"), str("hosts[1].k", "v"),
		num("i", "42"), num("i8", "-8"), null("n"), num("num", "1.50"), str("s", "x"),
		num("u", "9223372036854775808"), str("yaml2.1", "one"), str("yaml2.null", "nil"), str("yaml2.true", "yes"),
	}
	checkSorted(t, got)
	if diff := cmp.Diff(plain(want), plain(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		in      map[string]any
		wantErr string
	}{
		{map[string]any{"a.b": "1", "a": map[string]any{"b": "2"}}, `inline setting "a.b": defined twice`},
		{map[string]any{"": "secretvalue"}, "inline settings: empty key"},
		{map[string]any{"k": struct{}{}}, `inline setting "k": unsupported value type struct {}`},
		{map[string]any{"k": math.NaN()}, `inline setting "k": NaN and infinite`},
		{map[string]any{"k": json.Number("secretvalue")}, `inline setting "k": invalid number`},
		{map[string]any{"k": "\xff"}, `inline setting "k": invalid UTF-8`},
		{map[string]any{"k": map[any]any{[2]int{}: 1}}, `inline setting "k": unsupported key type [2]int`},
	} {
		_, err := FromInline(tc.in)
		if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
			t.Errorf("FromInline(%v): error %v, want prefix %q", tc.in, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "secretvalue") {
			t.Errorf("error %q quotes a value", err)
		}
	}
	if got, err := FromInline(nil); err != nil || len(got) != 0 {
		t.Errorf("FromInline(nil) = %v, %v", got, err)
	}
}
