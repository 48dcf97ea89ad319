package server

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/openapi.json")

// TestOpenAPI compares the API description with the golden file (a change
// to the API is deliberate: run with -update and bump APIVersion), and
// checks every described operation against the live server: each one is
// routed (no "no API route" answer), and each one that needs a permission
// refuses a request without a token.
func TestOpenAPI(t *testing.T) {
	ts := newTestServer(t, testOpts{})
	got, err := json.MarshalIndent(ts.OpenAPI(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "openapi.json")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestOpenAPI -update ./internal/server/)", err)
	}
	if strings.TrimSpace(string(want)) != strings.TrimSpace(string(got)) {
		t.Fatalf("the API description changed: review it, bump APIVersion, run with -update")
	}
	// The served document is the same.
	code, body := ts.rawDo(t, "GET", "/api/v1/openapi.json", "", "")
	if code != 200 || strings.TrimSpace(body) != strings.TrimSpace(string(got)) {
		t.Fatalf("served description differs: %d", code)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Security   []any  `json:"security"`
			Permission string `json:"x-lifeboat-permission"`
		} `json:"paths"`
	}
	json.Unmarshal(got, &doc)
	param := regexp.MustCompile(`\{[a-z]+\}`)
	n := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			n++
			p := param.ReplaceAllString(path, "x")
			code, body := ts.rawDo(t, strings.ToUpper(method), p, "", "")
			if strings.Contains(body, "no API route") || code == 405 {
				t.Errorf("%s %s is described but not routed: %d %s", method, path, code, body)
			}
			if op.Permission != "" && code != 401 {
				t.Errorf("%s %s needs %s but answered %d without a token", method, path, op.Permission, code)
			}
			if op.Permission == "" && code == 401 {
				t.Errorf("%s %s is public but asked for a token", method, path)
			}
		}
	}
	if n != len(ts.routes()) {
		t.Errorf("%d operations described, %d routes", n, len(ts.routes()))
	}
}
