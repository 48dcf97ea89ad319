package vault_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// faulty fails every Put after the first n (a storage that fills up or goes away).
type faulty struct {
	*memory.Backend
	left atomic.Int64
}

var errInjected = fmt.Errorf("injected: %w", storage.ErrUnavailable)

func (f *faulty) Put(ctx context.Context, name string, data []byte) error {
	if f.left.Add(-1) < 0 {
		return errInjected
	}
	return f.Backend.Put(ctx, name, data)
}

// TestStorageFailureMidBackup: whatever Put fails, the backup reports an
// error, leaves no point, and the vault stays consistent for the next one.
func TestStorageFailureMidBackup(t *testing.T) {
	src := filepath.Join(t.TempDir(), "app")
	r := rand.New(rand.NewPCG(5, 5))
	for i := range 30 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("d%d/f%d", i%4, i)), randBytes(r, r.IntN(300<<10)), 0o644)
	}
	ctx := context.Background()
	for n := int64(0); n < 40; n += 3 {
		f := &faulty{Backend: memory.New()}
		f.left.Store(1 << 30)
		v, err := vault.Init(ctx, f, testPass, testOpts())
		if err != nil {
			t.Fatal(err)
		}
		f.left.Store(n)
		_, err = v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: src}}})
		f.left.Store(1 << 30)
		if err == nil {
			continue // n was enough for the whole backup
		}
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Fatalf("n=%d: error %v does not say the storage failed", n, err)
		}
		v2 := reopen(t, f)
		if ids, _ := v2.PointIDs(ctx); len(ids) != 0 {
			t.Fatalf("n=%d: a failed backup left points %v", n, ids)
		}
		if rep, err := v2.Check(ctx, vault.CheckOptions{ReadData: true}); err != nil || !rep.OK() {
			t.Fatalf("n=%d: check after failure: %v %+v", n, err, rep)
		}
		p, err := v2.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: src}}})
		if err != nil {
			t.Fatalf("n=%d: backup after failure: %v", n, err)
		}
		dst, _ := mustRestore(t, v2, p.ID, "app")
		compareTrees(t, snapshot(t, src), snapshot(t, dst))
	}
}
