package vault_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// roBackend refuses every write, as storage does to a read-only key.
type roBackend struct{ *memory.Backend }

var errRO = errors.New("read-only key")

func (roBackend) Put(ctx context.Context, name string, data []byte) error {
	return errors.Join(storage.ErrUnavailable, errRO)
}
func (roBackend) Delete(ctx context.Context, name string) error {
	return errors.Join(storage.ErrUnavailable, errRO)
}

// Listing points, restoring and checking (reading all data) write nothing:
// they work with a key that may only read (an S3 key for restores and
// audits).
func TestReadOnlyStorageRestores(t *testing.T) {
	v, be := newTestVault(t)
	src := filepath.Join(t.TempDir(), "s")
	writeFile(t, filepath.Join(src, "f"), []byte("x"), 0o644)
	p := mustBackup(t, v, src)
	ro := roBackend{be.(*memory.Backend)}
	rv, err := vault.Open(context.Background(), ro, testPass, testOpts())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if _, err := rv.Points(context.Background()); err != nil {
		t.Fatalf("points: %v", err)
	}
	if _, err := rv.Restore(context.Background(), p, vault.RestoreOptions{Target: filepath.Join(t.TempDir(), "r")}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	rep, err := rv.Check(context.Background(), vault.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check: %+v %v", rep, err)
	}
}
