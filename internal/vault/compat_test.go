package vault_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/local"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// testdata/rev2-vault was written by lifeboat before the feature trees2
// (JSON trees), passphrase "rev2-fixture", one point of a directory "app":
// a.txt "hello\n", sub/名前.txt "ünï\n", sub/big.txt 200000 × 'z', link ->
// a.txt, empty/. Files under app dated 2024-01-02T03:04:05Z.
func TestReadsAndExtendsVaultWithJSONTrees(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "v")
	if err := os.CopyFS(dir, os.DirFS("testdata/rev2-vault")); err != nil {
		t.Fatal(err)
	}
	be, err := local.Open(dir, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hasTrees2 := func() bool {
		_, err := be.Stat(ctx, "keys/feature-trees2")
		return err == nil
	}
	if hasTrees2() {
		t.Fatal("the fixture already has the feature trees2")
	}
	v, err := vault.Open(ctx, be, []byte("rev2-fixture"), vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pts, err := v.Points(ctx)
	if err != nil || len(pts) != 1 {
		t.Fatalf("points: %d, %v", len(pts), err)
	}
	old, _ := mustRestore(t, v, pts[0].ID, "")
	app := filepath.Join(old, "app")
	want := map[string]string{"a.txt": "hello\n", "sub/名前.txt": "ünï\n", "sub/big.txt": strings.Repeat("z", 200000)}
	for name, content := range want {
		got, err := os.ReadFile(filepath.Join(app, name))
		if err != nil || string(got) != content {
			t.Fatalf("%s restored as %d bytes, %v", name, len(got), err)
		}
	}
	if fi, err := os.Stat(filepath.Join(app, "a.txt")); err != nil || !fi.ModTime().Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("a.txt mtime: %v", err)
	}
	if l, err := os.Readlink(filepath.Join(app, "link")); l != "a.txt" {
		t.Fatalf("link: %q %v", l, err)
	}
	if fi, err := os.Stat(filepath.Join(app, "empty")); err != nil || !fi.IsDir() {
		t.Fatalf("empty dir: %v", err)
	}

	// A backup into it: the feature is announced first, the new point's
	// binary trees sit beside the JSON ones, and it restores the same tree.
	p, err := v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: app}}, Host: "testhost"})
	if err != nil {
		t.Fatal(err)
	}
	if !hasTrees2() {
		t.Fatal("a backup wrote binary trees without announcing the feature trees2")
	}
	rep, err := v.Check(ctx, vault.CheckOptions{ReadData: true})
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("check: %v %+v", err, rep)
	}
	again, _ := mustRestore(t, reopenLocal(t, be), p.ID, "")
	compareTrees(t, snapshot(t, old), snapshot(t, again))
}

func reopenLocal(t *testing.T, be storage.Backend) *vault.Vault {
	t.Helper()
	v, err := vault.Open(context.Background(), be, []byte("rev2-fixture"), vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return v
}
