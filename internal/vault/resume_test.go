package vault_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/memory"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// resumeSource writes 3 MiB of incompressible files (a dozen packs of the
// test vaults' 256 KiB) and returns their directory.
func resumeSource(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "app")
	r := rand.New(rand.NewPCG(7, 7))
	for _, name := range []string{"a.bin", "b.bin", "c.bin", "sub/d.bin"} {
		writeFile(t, filepath.Join(src, name), randBytes(r, 768<<10), 0o644)
	}
	return src
}

// fullBackupBytes is what a backup of src stores in an empty vault.
func fullBackupBytes(t *testing.T, src string) int64 {
	t.Helper()
	v, _ := newTestVault(t)
	return mustBackup(t, v, src).Stats.BytesNew
}

// failDataPut fails the n-th put of a data pack (counting from 1), once or,
// with after, that one and every put after it (the process died there).
func failDataPut(n int64, after bool) func(string) error {
	var puts atomic.Int64
	var dead atomic.Bool
	return func(name string) error {
		if dead.Load() {
			return errInjected
		}
		if strings.HasPrefix(name, "data/") && puts.Add(1) == n {
			dead.Store(after)
			return errInjected
		}
		return nil
	}
}

// A backup that fails half-way keeps the packs it stored: an index object
// names them, the error says how much is kept, and the next backup stores
// only the rest. (Without the index, the next backup uploaded it all again.)
func TestFailedBackupKeepsItsPacks(t *testing.T) {
	ctx := context.Background()
	src := resumeSource(t)
	full := fullBackupBytes(t, src)
	h := &storageHooks{Backend: memory.New()}
	v, err := vault.Init(ctx, h, testPass, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	h.onPut = failDataPut(6, false)
	_, err = v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: src}}})
	var be *vault.BackupError
	if !errors.As(err, &be) {
		t.Fatalf("backup with a failing put: %v, want a BackupError", err)
	}
	if !errors.Is(err, storage.ErrUnavailable) || lifeboat.ErrorCode(err) != lifeboat.EUnavailable {
		t.Errorf("the error %v no longer says the storage failed", err)
	}
	if packs := listNames(t, h, "data/"); be.KeptPacks != 5 || len(packs) != 5 {
		t.Fatalf("kept %d packs, %d in the storage; want the 5 stored before the failure", be.KeptPacks, len(packs))
	}
	if !strings.Contains(err.Error(), "is kept for the next backup") {
		t.Errorf("the error does not say what is kept: %v", err)
	}
	if ids, _ := v.PointIDs(ctx); len(ids) != 0 {
		t.Fatalf("a failed backup left points %v", ids)
	}

	v2 := reopen(t, h)
	p := mustBackup(t, v2, src)
	// (Trees differ by a few bytes from the whole backup's: times.)
	if p.Stats.BytesNew > full-be.KeptBytes+4<<10 || be.KeptBytes < 5*200<<10 {
		t.Errorf("the second backup stored %d bytes, kept %d, a whole backup %d: the kept packs were not reused", p.Stats.BytesNew, be.KeptBytes, full)
	}
	rep, err := v2.Check(ctx, vault.CheckOptions{ReadData: true})
	if err != nil || !rep.OK() {
		t.Fatalf("check after the resumed backup: %v %+v", err, rep)
	}
	mustRestoreEqual(t, v2, p.ID, "app", snapshot(t, src))
}

// A backup killed after some packs (every later write lost) leaves them
// reusable by the next backup once a checkpoint named them.
func TestBackupCheckpoints(t *testing.T) {
	ctx := context.Background()
	src := resumeSource(t)
	full := fullBackupBytes(t, src)
	for _, c := range []struct {
		every    time.Duration
		reusable bool
	}{{time.Nanosecond, true}, {time.Hour, false}} {
		h := &storageHooks{Backend: memory.New()}
		o := testOpts()
		o.CheckpointEvery = c.every
		v, err := vault.Init(ctx, h, testPass, o)
		if err != nil {
			t.Fatal(err)
		}
		h.onPut = failDataPut(6, true)
		if _, err := v.Backup(ctx, vault.BackupOptions{Sources: []vault.Source{{Path: src}}}); err == nil {
			t.Fatal("backup into a dead storage succeeded")
		}
		h.onPut = nil
		p := mustBackup(t, reopen2(t, h, o), src)
		if reused := p.Stats.BytesNew < full-64<<10; reused != c.reusable {
			t.Errorf("checkpoint every %s: the second backup stored %d of %d bytes; want reuse %v", c.every, p.Stats.BytesNew, full, c.reusable)
		}
		mustRestoreEqual(t, reopen2(t, h, o), p.ID, "app", snapshot(t, src))
	}
}

// While a backup runs, a collection leaves alone the packs an earlier
// failed backup kept (indexed, no point's), even past the grace period: the
// running backup may be reusing them, and failed at its commit when they
// were condemned. With no backup running they are collected.
func TestKeptPacksSurviveCollectionDuringBackup(t *testing.T) {
	ctx := context.Background()
	_, mbe, c, o := newClockVault(t)
	defer vault.SetSessionBeat(20 * time.Millisecond)()
	h := &storageHooks{Backend: mbe}
	a := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{3}).Read(a)
	b := []byte("the rest of the dump")
	stream := func(r io.Reader) vault.Source {
		return vault.Source{Name: "db", Streams: []vault.Stream{{Name: "dump", Open: func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(r), nil
		}}}}
	}
	h.onPut = failDataPut(6, false)
	_, err := reopen2(t, h, o).Backup(ctx, vault.BackupOptions{Sources: []vault.Source{stream(bytes.NewReader(append(a, b...)))}, Host: "h"})
	var be *vault.BackupError
	if !errors.As(err, &be) || be.KeptPacks == 0 {
		t.Fatalf("first backup: %v, want one that kept packs", err)
	}
	h.onPut = nil
	c.Add(2 * time.Hour)

	gcv := reopen2(t, mbe, o)
	var rep *vault.CollectReport
	mid := func() {
		var err error
		if rep, err = gcv.Collect(ctx, vault.CollectOptions{}); err != nil {
			t.Errorf("collect: %v", err)
		}
	}
	p, err := reopen2(t, mbe, o).Backup(ctx, vault.BackupOptions{Host: "h",
		Sources: []vault.Source{{Name: "db", Streams: []vault.Stream{{Name: "dump", Open: func(context.Context) (io.ReadCloser, error) {
			return &stallReader{first: a, rest: b, mid: mid}, nil
		}}}}}})
	if err != nil {
		t.Fatalf("the backup reusing the kept packs, a collection in between: %v", err)
	}
	if rep == nil || rep.PacksCondemned != 0 {
		t.Fatalf("the collection condemned kept packs while a backup ran: %+v", rep)
	}
	if p.Stats.BytesNew >= int64(len(a)) {
		t.Errorf("the backup stored %d bytes again; the kept packs were not reused", p.Stats.BytesNew)
	}

	// The kept packs the point did not reuse (none here: it reused all) and
	// nothing else: a collection with no backup running condemns nothing the
	// point needs, and the point restores.
	c.Add(2 * time.Hour)
	mustCollect(t, gcv, vault.CollectOptions{})
	c.Add(2 * time.Hour)
	mustCollect(t, gcv, vault.CollectOptions{})
	rep2, err := reopen2(t, mbe, o).Check(ctx, vault.CheckOptions{ReadData: true})
	if err != nil || !rep2.OK() {
		t.Fatalf("check after the collections: %v %+v", err, rep2)
	}
}
