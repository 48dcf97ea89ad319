package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
)

var syncSites = []string{"file", "dir", "mkdir-parent"}

// newCrashVault creates a vault on a fresh CrashFS with every fsync, crashes
// once (so only what Create made durable is there) and opens it with skip.
func newCrashVault(t *testing.T, skip string) (*CrashFS, *Backend) {
	t.Helper()
	c := NewCrashFS()
	if _, err := Create("/srv/vault", Options{FS: c}); err != nil {
		t.Fatal(err)
	}
	c.Crash()
	b, err := Open("/srv/vault", Options{FS: c, SkipSync: skip})
	if err != nil {
		t.Fatalf("open after a crash right after Create: %v", err)
	}
	return c, b
}

// wantSurvival judges an acknowledged object after power loss: with every
// fsync (skip "") it must be intact; with the fsync site skip removed it
// must be lost, or the test shows nothing. what names the case.
func wantSurvival(t *testing.T, skip, what string, got []byte, err error, want string) {
	t.Helper()
	survived := err == nil && string(got) == want
	if skip == "" && !survived {
		t.Errorf("%s: the acknowledged object is gone after power loss: %q, %v", what, got, err)
	}
	if skip != "" && survived {
		t.Errorf("%s: without the %q fsync the object survived: the test shows nothing", what, skip)
	}
}

// TestEachFsyncIsNeeded: with any one fsync site skipped, a Put that
// returned nil does not survive power loss intact; with none skipped it
// does. So the randomized test below would notice the loss of any fsync.
func TestEachFsyncIsNeeded(t *testing.T) {
	ctx := context.Background()
	data := []byte("acknowledged content")
	for _, site := range append([]string{""}, syncSites...) {
		for _, fallback := range []bool{false, true} {
			t.Run(fmt.Sprintf("skip=%q/linkfallback=%v", site, fallback), func(t *testing.T) {
				c, b := newCrashVault(t, site)
				c.SetNoRenameNoReplace(fallback)
				// data/ab does not exist yet: Put makes two directories.
				if err := b.Put(ctx, "data/ab/abcdef", data); err != nil {
					t.Fatal(err)
				}
				c.Crash()
				b, err := Open("/srv/vault", Options{FS: c})
				if err != nil {
					t.Fatal(err)
				}
				got, err := storage.ReadAll(ctx, b, "data/ab/abcdef")
				intact := err == nil && bytes.Equal(got, data)
				switch {
				case site == "" && !intact:
					t.Fatalf("with every fsync, the acknowledged object is %q, %v", got, err)
				case site != "" && intact:
					t.Fatalf("without the %q fsync the object survived: the fsync is not shown to matter", site)
				case site != "":
					t.Logf("without the %q fsync: %q, %v", site, got, err)
				}
			})
		}
	}
}

// TestLeftoverDirectoryIsSynced: a process that died between mkdir and the
// fsync of the parent (no power loss: the page cache keeps the directory)
// leaves a volatile directory. The next process must fsync it into its
// parent before it trusts it, or a later power loss takes acknowledged
// objects with it.
func TestLeftoverDirectoryIsSynced(t *testing.T) {
	ctx := context.Background()
	for _, skip := range []string{"", "mkdir-parent"} {
		c, _ := newCrashVault(t, skip)
		if err := c.Mkdir("/srv/vault/data"); err != nil { // the dead process's mkdir
			t.Fatal(err)
		}
		b, err := Open("/srv/vault", Options{FS: c, SkipSync: skip})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Put(ctx, "data/ab/x", []byte("x")); err != nil {
			t.Fatal(err)
		}
		c.Crash()
		_, err = b.Stat(ctx, "data/ab/x")
		if skip == "" && err != nil {
			t.Errorf("object in a leftover directory lost: %v", err)
		}
		if skip != "" && err == nil {
			t.Errorf("without the mkdir-parent fsync the object survived: the test shows nothing")
		}
	}
}

// TestExistsMeansDurable: a writer died between its rename and the fsync of
// the directory (a process crash: the page cache keeps the entry). A later
// Put of the same name is told ErrExists and takes the object as stored, so
// the backend must make the entry durable before saying so.
func TestExistsMeansDurable(t *testing.T) {
	ctx := context.Background()
	for _, skip := range []string{"", "dir"} {
		for _, streamed := range []bool{false, true} {
			c, b := newCrashVault(t, skip)
			if err := b.Put(ctx, "data/ab/other", nil); err != nil { // makes data/ab durable
				t.Fatal(err)
			}
			f, err := c.CreateExcl("/srv/vault/data/ab/.tmp-dead")
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("content"))
			f.Sync()
			if err := c.RenameNoReplace("/srv/vault/data/ab/.tmp-dead", "/srv/vault/data/ab/obj"); err != nil {
				t.Fatal(err)
			}
			if streamed {
				w, err := b.Create(ctx, "data/ab/obj2") // commit meets the dead writer's object
				if err != nil {
					t.Fatal(err)
				}
				c.Link("/srv/vault/data/ab/obj", "/srv/vault/data/ab/obj2")
				w.Write([]byte("content"))
				err = w.Commit()
				if !errors.Is(err, storage.ErrExists) {
					t.Fatalf("commit: %v", err)
				}
			} else if err := b.Put(ctx, "data/ab/obj", []byte("content")); !errors.Is(err, storage.ErrExists) {
				t.Fatalf("put: %v", err)
			}
			c.Crash()
			name := map[bool]string{false: "data/ab/obj", true: "data/ab/obj2"}[streamed]
			got, err := storage.ReadAll(ctx, b, name)
			wantSurvival(t, skip, fmt.Sprintf("streamed=%v, answered ErrExists", streamed), got, err, "content")
		}
	}
}

// powerLossRun opens a vault on CrashFS and runs random puts (whole and
// streamed) and deletes until the machine dies at a random operation, then
// cuts the power (exact or random writeback) and checks what came back:
//
//   - every acknowledged put is there with exactly its content;
//   - every acknowledged delete stayed deleted;
//   - every object present is one that was attempted, with exactly its
//     content: unacknowledged ones may be missing, never partial;
//   - the vault accepts new puts, including of names that were lost.
//
// It returns how many acknowledged objects were lost or damaged.
func powerLossRun(t *testing.T, skip string, seed uint64) (acked, lost int, died bool) {
	t.Helper()
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 42))
	c, b := newCrashVault(t, skip)
	c.SetNoRenameNoReplace(seed%4 == 3)
	want := map[string][]byte{}  // acknowledged puts
	tried := map[string][]byte{} // every put attempted
	deleted := map[string]bool{} // acknowledged deletes
	var names []string           // acknowledged puts not deleted, in order
	c.SetFailAfter(r.IntN(120))
	for i := 0; i < 300; i++ {
		if len(names) > 0 && r.IntN(8) == 0 {
			k := r.IntN(len(names))
			victim := names[k]
			names = append(names[:k], names[k+1:]...)
			delete(want, victim) // an unacknowledged delete may have happened
			if err := b.Delete(ctx, victim); err != nil {
				if !errors.Is(err, ErrCrashed) {
					t.Fatalf("seed %d: delete: %v", seed, err)
				}
				break
			}
			deleted[victim] = true
			continue
		}
		name := fmt.Sprintf("%s/%02x/obj%d", []string{"data", "index", "points"}[r.IntN(3)], r.IntN(6), i)
		data := make([]byte, r.IntN(3000))
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		tried[name] = data
		var err error
		if r.IntN(2) == 0 {
			err = b.Put(ctx, name, data)
		} else {
			err = streamPut(ctx, b, name, data, r)
		}
		if err != nil {
			if !errors.Is(err, ErrCrashed) {
				t.Fatalf("seed %d: put: %v", seed, err)
			}
			break
		}
		want[name] = data
		names = append(names, name)
	}
	died = c.IsDown()
	if seed%2 == 0 {
		c.Crash()
	} else {
		c.CrashRandom(r)
	}

	b, err := Open("/srv/vault", Options{FS: c})
	if err != nil {
		t.Fatalf("seed %d: open after power loss: %v", seed, err)
	}
	for name, data := range want {
		got, err := storage.ReadAll(ctx, b, name)
		if err != nil || !bytes.Equal(got, data) {
			lost++
		}
	}
	if skip != "" {
		return len(want), lost, died
	}
	for name := range deleted {
		if _, err := b.Stat(ctx, name); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("seed %d: acknowledged delete of %s undone: %v", seed, name, err)
		}
	}
	err = b.List(ctx, "", func(oi storage.ObjectInfo) error {
		data, ok := tried[oi.Name]
		if !ok {
			t.Errorf("seed %d: object %s was never put", seed, oi.Name)
			return nil
		}
		got, err := storage.ReadAll(ctx, b, oi.Name)
		if err != nil || !bytes.Equal(got, data) || oi.Size != int64(len(data)) {
			t.Errorf("seed %d: %s is partial or damaged: %d of %d bytes (listed %d), %v", seed, oi.Name, len(got), len(data), oi.Size, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed %d: list: %v", seed, err)
	}
	for name := range tried {
		if _, ok := want[name]; ok {
			continue
		}
		if _, err := b.Stat(ctx, name); errors.Is(err, storage.ErrNotFound) {
			if err := b.Put(ctx, name, []byte("again")); err != nil {
				t.Errorf("seed %d: put of the lost name %s after reboot: %v", seed, name, err)
			}
		}
	}
	if err := b.Put(ctx, "data/ff/after-reboot", []byte("new")); err != nil {
		t.Errorf("seed %d: put after reboot: %v", seed, err)
	}
	return len(want), lost, died
}

// streamPut writes data through storage.Streamer in a few pieces.
func streamPut(ctx context.Context, b *Backend, name string, data []byte, r *rand.Rand) error {
	w, err := b.Create(ctx, name)
	if err != nil {
		return err
	}
	for len(data) > 0 {
		n := min(len(data), 1+r.IntN(1000))
		if _, err := w.Write(data[:n]); err != nil {
			w.Abort()
			return err
		}
		data = data[n:]
	}
	return w.Commit()
}

func TestPowerLossKeepsAcknowledgedPuts(t *testing.T) {
	seeds := uint64(1000)
	if testing.Short() {
		seeds = 60
	}
	total, deaths := 0, 0
	for seed := range seeds {
		acked, lost, died := powerLossRun(t, "", seed)
		total += acked
		if died {
			deaths++
		}
		if lost > 0 {
			t.Fatalf("seed %d: %d of %d acknowledged objects lost or damaged", seed, lost, acked)
		}
	}
	// The test proves something only if machines died mid-run, after
	// acknowledging objects.
	if total == 0 || deaths < int(seeds)*9/10 {
		t.Fatalf("%d objects acknowledged, %d of %d runs died: the test proves little", total, deaths, seeds)
	}
	t.Logf("%d runs, %d died mid-run, %d acknowledged objects all intact", seeds, deaths, total)
}

// TestPowerLossCatchesEachMissingFsync: the randomized run above fails
// without any one fsync site, so it would catch a regression.
func TestPowerLossCatchesEachMissingFsync(t *testing.T) {
	for _, site := range syncSites {
		lost := 0
		for seed := range uint64(40) {
			_, l, _ := powerLossRun(t, site, seed)
			lost += l
		}
		if lost == 0 {
			t.Errorf("skipping the %q fsync lost nothing: the power-loss test cannot see it", site)
		} else {
			t.Logf("without the %q fsync: %d acknowledged objects lost or damaged in 40 runs", site, lost)
		}
	}
}

// TestCreateDefersDirectorySync: creating an object fsyncs nothing (a backup
// creates its packs under a lock every worker needs); the directories it
// made become durable at commit instead. Two writers share a new directory
// and the one created second commits first: its object must survive power
// loss, though the directory was made by the other, which never commits.
func TestCreateDefersDirectorySync(t *testing.T) {
	ctx := context.Background()
	for _, skip := range []string{"", "mkdir-parent"} {
		c, b := newCrashVault(t, skip)
		_, syncs0, _ := c.Counters()
		first, err := b.Create(ctx, "data/cd/first") // makes data and data/cd
		if err != nil {
			t.Fatal(err)
		}
		second, err := b.Create(ctx, "data/cd/second")
		if err != nil {
			t.Fatal(err)
		}
		if _, syncs, _ := c.Counters(); syncs != syncs0 {
			t.Fatalf("creating two objects in a new directory fsynced %d times; want none before commit", syncs-syncs0)
		}
		second.Write([]byte("second"))
		if err := second.Commit(); err != nil {
			t.Fatal(err)
		}
		first.Write([]byte("first"))
		c.Crash()
		got, err := storage.ReadAll(ctx, b, "data/cd/second")
		wantSurvival(t, skip, "committed in a directory another writer made", got, err, "second")
	}
}

// TestExistsMakesDirectoriesDurable: a writer died after its rename and the
// fsync of the object's directory, but before that directory was fsynced
// into its parent (a process crash). A later Put of the same name is told
// ErrExists and takes the object as stored, so the backend must make every
// directory level durable before saying so, though this process created
// none of them.
func TestExistsMakesDirectoriesDurable(t *testing.T) {
	ctx := context.Background()
	for _, skip := range []string{"", "mkdir-parent"} {
		for _, streamed := range []bool{false, true} {
			c, b := newCrashVault(t, skip)
			for _, d := range []string{"/srv/vault/data", "/srv/vault/data/cd"} { // the dead process's mkdirs
				if err := c.Mkdir(d); err != nil {
					t.Fatal(err)
				}
			}
			f, err := c.CreateExcl("/srv/vault/data/cd/.tmp-dead")
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("content"))
			f.Sync()
			if err := c.RenameNoReplace("/srv/vault/data/cd/.tmp-dead", "/srv/vault/data/cd/obj"); err != nil {
				t.Fatal(err)
			}
			if err := c.SyncDir("/srv/vault/data/cd"); err != nil {
				t.Fatal(err)
			}
			if streamed {
				// Create finds the object there already: ErrExists at once.
				if _, err := b.Create(ctx, "data/cd/obj"); !errors.Is(err, storage.ErrExists) {
					t.Fatalf("create: %v", err)
				}
			} else if err := b.Put(ctx, "data/cd/obj", []byte("content")); !errors.Is(err, storage.ErrExists) {
				t.Fatalf("put: %v", err)
			}
			c.Crash()
			got, err := storage.ReadAll(ctx, b, "data/cd/obj")
			wantSurvival(t, skip, fmt.Sprintf("streamed=%v, answered ErrExists in a dead process's directories", streamed), got, err, "content")
		}
	}
}
