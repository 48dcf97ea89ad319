package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// TestDocumentedYAML decodes the YAML examples of the docs and the example
// app strictly, so they cannot rot.
func TestDocumentedYAML(t *testing.T) {
	md, err := os.ReadFile("../../docs/control-plane.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(md), "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in docs/control-plane.md")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "doc.yaml")
	os.WriteFile(path, []byte(block), 0o644)
	for _, p := range []string{path, "../../examples/notes/lifeboat.yaml"} {
		doc, err := readDocuments(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if len(doc.Apps) == 0 || len(doc.Policies) == 0 {
			t.Errorf("%s: %d apps, %d policies", p, len(doc.Apps), len(doc.Policies))
		}
	}
	doc, _ := readDocuments(path)
	if doc.Policies[1].Retention.Within != lifeboat.Duration(14*24*3600e9) || doc.Apps[0].RenamedFrom != "webshop" || doc.Vaults[0].CredentialsFile == "" {
		t.Errorf("decoded: %+v %+v", doc.Policies[1], doc.Vaults[0])
	}
}
