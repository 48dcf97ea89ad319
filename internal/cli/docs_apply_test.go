package cli

import (
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
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

func TestOfferedFingerprint(t *testing.T) {
	err := lifeboat.Errorf(lifeboat.EInvalid, "host web1 at 10.0.0.1:22 offers the host key SHA256:abc: if that is its key, register it with fingerprint SHA256:abc (lifeboat host add ... --fingerprint SHA256:abc)")
	if fp := offeredFingerprint(err); fp != "SHA256:abc" {
		t.Errorf("got %q", fp)
	}
	if fp := offeredFingerprint(lifeboat.Errorf(lifeboat.EAuth, "register it with fingerprint SHA256:x y")); fp != "" {
		t.Errorf("an auth error gave %q", fp)
	}
}
