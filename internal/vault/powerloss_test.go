package vault_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/storage/local"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

type ackedPoint struct {
	id    string
	state map[string]entry
}

// powerLoss runs backups on a local backend over CrashFS, the machine dying at
// random moments, and after each crash checks the vault: it must open and
// pass check, and every point a backup acknowledged must restore exactly.
// It returns the first violation found ("" if none).
func powerLoss(t *testing.T, skip string, rounds int, seed uint64) string {
	t.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 7))
	src := filepath.Join(t.TempDir(), "app")
	os.MkdirAll(src, 0o755)
	for i := range 6 {
		writeFile(t, filepath.Join(src, fmt.Sprintf("f%d", i)), randBytes(r, 100<<10+r.IntN(200<<10)), 0o644)
	}
	fs := local.NewCrashFS()
	opts := vault.Options{KDF: &fastKDF, PackSize: 64 << 10}
	// The vault is created with every fsync; skip applies to the backups.
	be, err := local.Create("/vault", local.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vault.Init(ctx, be, testPass, opts); err != nil {
		t.Fatal(err)
	}
	fs.Crash()
	var acked []ackedPoint
	opsPerBackup := 0
	for round := range rounds {
		// New data every round.
		writeFile(t, filepath.Join(src, fmt.Sprintf("new%d", round)), randBytes(r, 50<<10+r.IntN(300<<10)), 0o644)
		state := snapshot(t, src)
		be, err := local.Open("/vault", local.Options{FS: fs, SkipSync: skip})
		if err != nil {
			return fmt.Sprintf("round %d: open storage: %v", round, err)
		}
		v, err := vault.Open(ctx, be, testPass, opts)
		if err != nil {
			return fmt.Sprintf("round %d: open after crash: %v", round, err)
		}
		if round > 0 && opsPerBackup > 0 {
			fs.SetFailAfter(r.IntN(opsPerBackup + 10))
		}
		before := fs.Ops
		p, err := v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: src}}, Host: "h"})
		if err == nil {
			acked = append(acked, ackedPoint{p.ID, state})
			if round == 0 {
				opsPerBackup = fs.Ops - before
			}
		}
		fs.Crash()
		// After the power loss: open, check, restore every acknowledged point.
		be, err = local.Open("/vault", local.Options{FS: fs})
		if err != nil {
			return fmt.Sprintf("round %d: open storage after power loss: %v", round, err)
		}
		v, err = vault.Open(ctx, be, testPass, opts)
		if err != nil {
			return fmt.Sprintf("round %d: open after power loss: %v", round, err)
		}
		rep, err := v.Check(ctx, vault.CheckOptions{ReadData: true})
		if err != nil {
			return fmt.Sprintf("round %d: check: %v", round, err)
		}
		if !rep.OK() {
			return fmt.Sprintf("round %d: check found %+v", round, rep.Problems)
		}
		for _, a := range acked {
			pt, err := v.LoadPoint(ctx, a.id)
			if err != nil {
				return fmt.Sprintf("round %d: acknowledged point %s: %v", round, a.id[:8], err)
			}
			dst := filepath.Join(t.TempDir(), "r")
			res, err := v.Restore(ctx, pt, vault.RestoreOptions{Target: dst, Path: "app"})
			if err != nil || len(res.Failed) > 0 {
				return fmt.Sprintf("round %d: restore %s: %v %v", round, a.id[:8], err, res)
			}
			got := snapshot(t, dst)
			for k, w := range a.state {
				if got[k] != w {
					return fmt.Sprintf("round %d: point %s: %s differs", round, a.id[:8], k)
				}
			}
		}
	}
	if len(acked) < 2 {
		t.Fatalf("only %d backups acknowledged: the test proves little", len(acked))
	}
	return ""
}

func TestPowerLossKeepsAcknowledgedPoints(t *testing.T) {
	for seed := range uint64(3) {
		if msg := powerLoss(t, "", 12, seed); msg != "" {
			t.Fatalf("seed %d: %s", seed, msg)
		}
	}
}

// TestPowerLossCatchesMissingFsync: with any one fsync of the commit path
// removed, the power-loss test above fails.
func TestPowerLossCatchesMissingFsync(t *testing.T) {
	for _, site := range []string{"file", "dir", "mkdir-parent"} {
		if msg := powerLoss(t, site, 6, 1); msg == "" {
			t.Errorf("without the %q fsync, power loss went unnoticed", site)
		} else {
			t.Logf("without the %q fsync: %s", site, msg)
		}
	}
}
