package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parseCase is one table entry for a parser: want settings, or an error
// whose text is wantErr exactly.
type parseCase struct {
	name    string
	in      string
	want    Settings
	wantErr string
}

func runParseCases(t *testing.T, file string, parse func(string, []byte) (Settings, error), cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse(file, []byte(tc.in))
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("got %d settings, want error %q", len(got), tc.wantErr)
				}
				if err.Error() != tc.wantErr {
					t.Fatalf("error %q, want %q", err, tc.wantErr)
				}
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("error %T is not a *SyntaxError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.want == nil {
				tc.want = Settings{}
			}
			checkSorted(t, got)
			if diff := cmp.Diff(plain(tc.want), plain(got)); diff != "" {
				t.Errorf("settings mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// str, num, boolean and null build expected settings.
func str(k, v string) Setting     { return Setting{Key: k, Type: TypeString, Value: v} }
func num(k, v string) Setting     { return Setting{Key: k, Type: TypeNumber, Value: v} }
func boolean(k, v string) Setting { return Setting{Key: k, Type: TypeBool, Value: v} }
func null(k string) Setting       { return Setting{Key: k, Type: TypeNull} }

// checkSorted fails unless s is sorted by key with unique keys.
func checkSorted(t *testing.T, s Settings) {
	t.Helper()
	for i := 1; i < len(s); i++ {
		if s[i-1].Key >= s[i].Key {
			t.Fatalf("settings not sorted/unique at %d: %q, %q", i, s[i-1].Key, s[i].Key)
		}
	}
	for _, st := range s {
		if st.Key == "" {
			t.Fatalf("empty key")
		}
	}
}

// mustHasher returns a Hasher with a fixed key byte.
func mustHasher(t testing.TB, b byte) *Hasher {
	t.Helper()
	h, err := NewHasher([]byte(strings.Repeat(string([]byte{b}), HashKeySize)))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// plainSetting has no String method, so go-cmp shows values in test diffs.
type plainSetting struct{ Key, Type, Value string }

func plain(s Settings) []plainSetting {
	out := make([]plainSetting, len(s))
	for i, st := range s {
		out[i] = plainSetting{st.Key, string(st.Type), st.Value}
	}
	return out
}
