package local_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/local"
	"github.com/lifeboat-vault/lifeboat/internal/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := local.Create(filepath.Join(t.TempDir(), "vault"), local.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestBadNamesAndRoot(t *testing.T) {
	b, _ := local.Create(t.TempDir(), local.Options{})
	for _, n := range []string{"", "/abs", "../x", "a/../b", "a//b", "a/./b", ".tmp-x", "a\x00b", "a b", `a\b`} {
		if err := b.Put(context.Background(), n, nil); err == nil {
			t.Errorf("put %q accepted", n)
		}
	}
	if _, err := local.Open(filepath.Join(t.TempDir(), "missing"), local.Options{}); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("open missing dir: %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := local.Open(f, local.Options{}); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("open a file: %v", err)
	}
}
