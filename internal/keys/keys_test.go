package keys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

func TestSealOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "master.key")
	m, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatal(err, created)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %o", st.Mode().Perm())
	}
	s := m.Seal("vault/main", []byte("hunter2"))
	if strings.Contains(s, "hunter2") {
		t.Fatal("plaintext visible")
	}
	m2, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatal(err, created)
	}
	if p, err := m2.Open("vault/main", s); err != nil || string(p) != "hunter2" {
		t.Fatalf("open: %q %v", p, err)
	}
	if _, err := m2.Open("vault/other", s); lifeboat.ErrorCode(err) != lifeboat.EAuth {
		t.Errorf("opened under another name: %v", err)
	}
	other, _, _ := LoadOrCreate(filepath.Join(dir, "other.key"))
	if _, err := other.Open("vault/main", s); lifeboat.ErrorCode(err) != lifeboat.EAuth {
		t.Errorf("opened with another key: %v", err)
	}
	bad := []byte(s)
	bad[10] ^= 1
	if _, err := m.Open("vault/main", string(bad)); err == nil {
		t.Error("altered value opened")
	}
	os.Chmod(path, 0o644)
	if _, _, err := LoadOrCreate(path); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		t.Errorf("world-readable key accepted: %v", err)
	}
}
