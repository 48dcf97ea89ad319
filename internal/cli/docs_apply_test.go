package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReadDocumentsMerges: every section of every file reaches the server.
func TestReadDocumentsMerges(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("databaseServers:\n  - {name: pg, engine: postgres, host: h, user: u}\nhosts:\n  - {name: local, roots: [/srv]}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yml"), []byte("vaults:\n  - {name: v, location: /v}\npolicies:\n  - {name: p, schedule: {cron: '@daily'}}\napps:\n  - {name: a, components: [{name: c, kind: files, path: /srv/a}]}\n"), 0o644)
	d, err := readDocuments(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.DatabaseServers) != 1 || len(d.Hosts) != 1 || len(d.Vaults) != 1 || len(d.Policies) != 1 || len(d.Apps) != 1 {
		t.Errorf("merged: %d db servers, %d hosts, %d vaults, %d policies, %d apps", len(d.DatabaseServers), len(d.Hosts), len(d.Vaults), len(d.Policies), len(d.Apps))
	}
}
