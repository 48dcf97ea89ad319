package lifeboat_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayering enforces STYLE.md's import rules: storage never imports the
// vault; the vault never imports the control plane (storage plus key must be
// enough to restore); lifeboat imports the standard library only.
func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "github.com/lifeboat-vault/lifeboat/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const mod = "github.com/lifeboat-vault/lifeboat/internal/"
	rules := []struct {
		pkg       string   // package prefix (under internal/)
		forbidden []string // import prefixes (under internal/)
	}{
		{"storage", []string{"vault", "cli", "catalog", "server", "access", "jobs", "capture"}},
		{"vault", []string{"cli", "catalog", "server", "access", "jobs", "schedule", "audit", "capture"}},
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imports := strings.TrimPrefix(f[0], mod), f[1:]
		if pkg == "lifeboat" {
			for _, imp := range imports {
				if strings.Contains(imp, ".") {
					t.Errorf("internal/lifeboat imports %s (standard library only)", imp)
				}
			}
		}
		for _, r := range rules {
			if pkg != r.pkg && !strings.HasPrefix(pkg, r.pkg+"/") {
				continue
			}
			checked++
			for _, imp := range imports {
				for _, bad := range r.forbidden {
					if strings.HasPrefix(imp, mod+bad) {
						t.Errorf("%s imports %s", pkg, imp)
					}
				}
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d packages checked: the rule matches nothing", checked)
	}
}
