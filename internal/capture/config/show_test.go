package config

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustPublic(t *testing.T, patterns ...string) Public {
	t.Helper()
	p, err := NewPublic(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPublic(t *testing.T) {
	p := mustPublic(t, "PORT", "LOG_*", "feature.*", "hosts[0]", `list\[*\]`)
	for key, want := range map[string]bool{
		"PORT": true, "PORT2": false, "port": false,
		"LOG_LEVEL": true, "LOG_": true, "XLOG_LEVEL": false,
		"feature.a": true, "feature.a.b[2]": true, "feature": false, "features.a": false,
		"hosts[0]": true, "hosts[1]": false,
		"list[3]": true, "list": false,
		"db.password": false,
	} {
		if got := p.Match(key); got != want {
			t.Errorf("Match(%q) = %v, want %v", key, got, want)
		}
	}
	if (Public{}).Match("PORT") {
		t.Error("zero Public matches")
	}
	for _, bad := range [][]string{{""}, {"a["}, {`x\`}} {
		if _, err := NewPublic(bad); err == nil {
			t.Errorf("NewPublic(%q): no error", bad)
		}
	}
}

func TestHasher(t *testing.T) {
	h1, h1b, h2 := mustHasher(t, 1), mustHasher(t, 1), mustHasher(t, 2)
	s := str("DB_PASSWORD", "hunter2")
	sum := h1.Sum(s)
	if len(sum) != 32 {
		t.Fatalf("Sum = %q, want 32 hex digits", sum)
	}
	if h1b.Sum(s) != sum || h1.Sum(s) != sum {
		t.Error("Sum is not deterministic")
	}
	for name, other := range map[string]string{
		"other key":   h2.Sum(s),
		"other name":  h1.Sum(str("DB_PASS", "hunter2")),
		"other value": h1.Sum(str("DB_PASSWORD", "hunter3")),
		"other type":  h1.Sum(Setting{Key: "DB_PASSWORD", Type: TypeNumber, Value: "hunter2"}),
		"boundary":    h1.Sum(str("DB_PASSWORDh", "unter2")),
	} {
		if other == sum {
			t.Errorf("%s: same hash", name)
		}
	}
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewHasher(make([]byte, n)); err == nil {
			t.Errorf("NewHasher(%d bytes): no error", n)
		}
	}
}

func TestShowNeverLeaks(t *testing.T) {
	const secret = "s3cr3t-Value-42"
	settings := Settings{num("PORT", "8080"), str("DB_PASSWORD", secret), str("LOG_LEVEL", "debug"), str("API_TOKEN", secret)}
	settings = sorted(settings)
	h := mustHasher(t, 7)
	got := Show(settings, mustPublic(t, "PORT", "LOG_*"), h)

	port, debug := "8080", "debug"
	want := []Shown{
		{Key: "API_TOKEN", Type: TypeString, Secret: true, Hash: h.Sum(settings[0])},
		{Key: "DB_PASSWORD", Type: TypeString, Secret: true, Hash: h.Sum(settings[1])},
		{Key: "LOG_LEVEL", Type: TypeString, Value: &debug, Hash: h.Sum(settings[2])},
		{Key: "PORT", Type: TypeNumber, Value: &port, Hash: h.Sum(settings[3])},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	js, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(js, []byte(secret)) {
		t.Fatalf("JSON leaks the secret: %s", js)
	}
	if !bytes.Contains(js, []byte(`"value":"8080"`)) || bytes.Count(js, []byte(`"value"`)) != 2 {
		t.Errorf("JSON should show exactly the two public values: %s", js)
	}
	if Show(settings, Public{}, nil)[0].Hash != "" {
		t.Error("nil hasher gave a hash")
	}
}

func TestDiff(t *testing.T) {
	p := mustPublic(t, "PORT", "LOG_*")
	old := Settings{str("API_KEY", "k1"), str("DB_PASSWORD", "old-secret"), str("LOG_LEVEL", "info"), str("PORT", "80"), str("SAME", "x"), str("TYPE", "1")}
	new := Settings{str("API_KEY", "k1"), str("DB_PASSWORD", "new-secret"), str("LOG_FORMAT", "json"), num("PORT", "8080"), str("SAME", "x"), num("TYPE", "1"), str("Z_NEW", "z-secret")}
	s := func(v string) *string { return &v }
	want := []Change{
		{Key: "DB_PASSWORD", Op: OpChanged, Secret: true, OldType: TypeString, NewType: TypeString},
		{Key: "LOG_FORMAT", Op: OpAdded, NewType: TypeString, New: s("json")},
		{Key: "LOG_LEVEL", Op: OpRemoved, OldType: TypeString, Old: s("info")},
		{Key: "PORT", Op: OpChanged, OldType: TypeString, NewType: TypeNumber, Old: s("80"), New: s("8080")},
		{Key: "TYPE", Op: OpChanged, Secret: true, OldType: TypeString, NewType: TypeNumber},
		{Key: "Z_NEW", Op: OpAdded, Secret: true, NewType: TypeString},
	}
	got := Diff(old, new, p)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	js, _ := json.Marshal(got)
	for _, secret := range []string{"old-secret", "new-secret", "z-secret"} {
		if strings.Contains(string(js), secret) {
			t.Errorf("JSON leaks %q: %s", secret, js)
		}
	}
	if d := Diff(old, old, p); len(d) != 0 {
		t.Errorf("Diff(x, x) = %v", d)
	}
	if d := Diff(nil, nil, p); len(d) != 0 {
		t.Errorf("Diff(nil, nil) = %v", d)
	}
	// Unsorted input is sorted first, without changing the caller's slice.
	unsorted := Settings{str("B", "1"), str("A", "1")}
	if d := Diff(unsorted, Settings{str("A", "1"), str("B", "1")}, p); len(d) != 0 {
		t.Errorf("unsorted: %v", d)
	}
	if unsorted[0].Key != "B" {
		t.Error("Diff sorted the caller's slice")
	}
}
